//! Seeds built like the core crate's unit tests build their images.

use bpfmem_core::kallsyms::AddressMode;
use bpfmem_core::paging::{KERNEL_IMAGE_SIZE, START_KERNEL_MAP};
use bpfmem_core::uapi::{MapType, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC};
use bpfmem_core::{Kva, Pa};
use bpfmem_fuzz::layouts::{map_info, v6_1, v6_12, MapWire, OffsetsWire};
use bpfmem_fuzz::mem::{Layout, DEFAULT_BASES};
use bpfmem_fuzz::targets::*;
use bpfmem_fuzz::wire::input;

use crate::img::{slot, xa_mk_sibling, xa_mk_value, xa_node, xa_store, Img};
use crate::{btf, files, ksyms, Seeds};

const BASE: u64 = DEFAULT_BASES[0];

// ---- page tables -------------------------------------------------------

const FLAGS: u64 = 0x1 | 0x2 | 0x20 | 0x40 | 0x100;
const PSE: u64 = 0x80;
const NX: u64 = 1 << 63;
const PGD: u64 = 0x1000;

struct Tables {
    levels: u8,
    bytes: Vec<u8>,
    next: u64,
}

impl Tables {
    fn new(levels: u8, pages: usize) -> Self {
        Tables {
            levels,
            bytes: vec![0; pages * 0x1000],
            next: 0x2000,
        }
    }

    fn get(&self, pa: u64) -> u64 {
        u64::from_le_bytes(self.bytes[pa as usize..][..8].try_into().unwrap())
    }

    fn set(&mut self, pa: u64, v: u64) {
        self.bytes[pa as usize..][..8].copy_from_slice(&v.to_le_bytes());
    }

    fn index(kva: u64, level: u8) -> u64 {
        (kva >> (12 + 9 * (u32::from(level) - 1))) & 511
    }

    fn slot(&mut self, kva: u64, level: u8) -> u64 {
        let mut table = PGD;
        for l in (level + 1..=self.levels).rev() {
            let s = table + Self::index(kva, l) * 8;
            let e = self.get(s);
            table = if e & 1 == 0 {
                let t = self.next;
                self.next += 0x1000;
                assert!(
                    self.next as usize <= self.bytes.len(),
                    "page-table memory full"
                );
                self.set(s, t | FLAGS);
                t
            } else {
                e & 0x000f_ffff_ffff_f000
            };
        }
        table + Self::index(kva, level) * 8
    }

    fn map(&mut self, kva: u64, pa: u64, level: u8) {
        let pse = if level > 1 { PSE } else { 0 };
        let s = self.slot(kva, level);
        self.set(s, pa | FLAGS | pse | NX);
    }
}

/// The kernel's layout in miniature: the direct map (4 KiB pages for the
/// first 64 KiB, 2 MiB pages to 1 GiB, 1 GiB pages to 4 GiB) and the image
/// mapped with 2 MiB pages onto `phys_base`.
fn kernel_like(levels: u8, phys_base: i64) -> (Tables, u64) {
    let pob = if levels == 5 {
        page_walk::PAGE_OFFSET_L5
    } else {
        page_walk::PAGE_OFFSET_L4
    };
    let mut t = Tables::new(levels, 10);
    for i in 0..16 {
        t.map(pob + i * 0x1000, i * 0x1000, 1);
    }
    for i in 1..512 {
        t.map(pob + i * 0x20_0000, i * 0x20_0000, 2);
    }
    for i in 1..4 {
        t.map(pob + i * 0x4000_0000, i * 0x4000_0000, 3);
    }
    for i in 0..8u64 {
        if let Some(pa) = (i * 0x20_0000).checked_add_signed(phys_base) {
            t.map(START_KERNEL_MAP + i * 0x20_0000, pa, 2);
        }
    }
    for (i, b) in t.bytes[0x9000..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    (t, pob)
}

fn page_walk_seeds(s: &mut Seeds) {
    for levels in [4u8, 5] {
        let (t, pob) = kernel_like(levels, 0);
        let c = page_walk::Config {
            levels,
            pgd: Pa(PGD),
            // Five levels through Translator::for_kernel, four through new().
            for_kernel: levels == 5,
            direct_map: Some((Kva(pob), 1 << 46)),
            kernel_image: Some((0, KERNEL_IMAGE_SIZE)),
            init_top_pgt: START_KERNEL_MAP + PGD,
            mem_base: Pa(0),
        };
        let kvas = [
            pob + 0x8ff8,
            START_KERNEL_MAP + 0x9010,
            pob + 0x4000_0000,
            0xffff_c900_0000_0000,
        ];
        let h = page_walk::Input::encode(&c, kvas, [16, 0x2100, 8, 8]);
        s.add(
            "page_walk",
            &format!("kernel-like-l{levels}-fast-paths"),
            input(&h, &t.bytes),
        );
    }
    // Kernel loaded below where it was linked.
    let (t, _) = kernel_like(4, -0xe0_0000);
    let c = page_walk::Config {
        levels: 4,
        pgd: Pa(PGD),
        for_kernel: false,
        direct_map: None,
        kernel_image: Some((-0xe0_0000, KERNEL_IMAGE_SIZE)),
        init_top_pgt: 0,
        mem_base: Pa(0),
    };
    let kvas = [
        START_KERNEL_MAP + 0xe0_0000,
        START_KERNEL_MAP + 0x10_0000,
        START_KERNEL_MAP + 0xe0_8ff8,
        0,
    ];
    let h = page_walk::Input::encode(&c, kvas, [8, 8, 16, 1]);
    s.add("page_walk", "negative-phys-base", input(&h, &t.bytes));
    // vmalloc: consecutive virtual pages on scattered physical ones.
    let vmalloc = 0xffff_c900_0004_0000;
    let mut t = Tables::new(4, 8);
    t.map(vmalloc, 0x7000, 1);
    t.map(vmalloc + 0x1000, 0x5000, 1);
    t.map(vmalloc + 0x2000, 0x6000, 1);
    for (i, b) in t.bytes[0x5000..].iter_mut().enumerate() {
        *b = (i * 11) as u8;
    }
    let c = page_walk::Config {
        levels: 4,
        pgd: Pa(PGD),
        for_kernel: false,
        direct_map: None,
        kernel_image: None,
        init_top_pgt: 0,
        mem_base: Pa(0),
    };
    let h = page_walk::Input::encode(
        &c,
        [
            vmalloc + 0xff8,
            vmalloc + 0x1ff0,
            vmalloc + 0x2ff8,
            vmalloc + 0x3000,
        ],
        [16, 0x1010, 16, 8],
    );
    s.add("page_walk", "vmalloc-scattered", input(&h, &t.bytes));
    // Tables that point back at themselves.
    let mut t = Tables::new(4, 4);
    for i in 0..512u64 {
        t.set(PGD + 8 * i, PGD | FLAGS);
    }
    let h = page_walk::Input::encode(
        &c,
        [0xffff_8880_0000_0000, 0, u64::MAX - 7, 0x7fff_ffff_f000],
        [16, 8, 16, 0x1000],
    );
    s.add("page_walk", "self-referencing", input(&h, &t.bytes));
}

// ---- xarray ------------------------------------------------------------

fn ptr(n: u64) -> u64 {
    0xffff_8880_2000_0000 + 64 * n
}

fn xarray_seeds(s: &mut Seeds) {
    let cases: Vec<(&str, Vec<(u64, u64)>)> = vec![
        ("head-entry", vec![(0, ptr(1))]),
        (
            "single-level",
            vec![(0, ptr(0)), (5, ptr(5)), (63, ptr(63))],
        ),
        (
            "multi-level-sparse",
            [262_143u64, 1, 70_000, 100, 4095, 4096]
                .iter()
                .map(|&i| (i, ptr(i)))
                .collect(),
        ),
        (
            "shift-60-root",
            [u64::MAX, 0, 1 << 63, u64::MAX - 1]
                .iter()
                .map(|&i| (i, xa_mk_value(i >> 1)))
                .collect(),
        ),
        ("values", (0..40).map(|i| (i * 3, xa_mk_value(i))).collect()),
    ];
    for (name, entries) in cases {
        let mut img = Img::new(BASE);
        let xa = img.alloc(24, 64);
        let idr = img.alloc(24, 64);
        img.put_u32(idr + 16, 100);
        for &(i, e) in &entries {
            xa_store(&mut img, xa, i, e);
            if e & 3 == 0 && i < 1 << 20 {
                xa_store(&mut img, idr, i, e);
            }
        }
        let probes = [
            entries[0].0,
            entries[entries.len() - 1].0.wrapping_add(1),
            4096,
        ];
        let h = xarray::Input {
            layout: Layout::flat(BASE),
            xa: xa ^ BASE,
            idr: idr ^ BASE,
            probes,
            ids: [100, 105],
            ..Default::default()
        };
        s.add("xarray", name, input(&h, &img.bytes));
    }
    // Multi-index entries: an order-7 entry in a shift-6 root, an order-2 in a leaf.
    let mut img = Img::new(BASE);
    let xa = img.alloc(24, 64);
    let root = xa_node(&mut img, 6, None);
    img.put_u64(xa + 8, root | 2);
    img.put_u64(slot(root, 1), ptr(1));
    img.put_u64(slot(root, 2), xa_mk_sibling(1));
    let leaf = xa_node(&mut img, 0, Some((root, 0)));
    img.put_u64(slot(root, 0), leaf | 2);
    img.put_u64(slot(leaf, 4), xa_mk_value(9));
    for o in 5..8 {
        img.put_u64(slot(leaf, o), xa_mk_sibling(4));
    }
    let h = xarray::Input {
        layout: Layout::flat(BASE),
        xa: xa ^ BASE,
        idr: xa ^ BASE,
        probes: [6, 150, 192],
        max_nodes: 3 ^ xarray::DEFAULT_MAX_NODES,
        max_entries: 8 ^ xarray::DEFAULT_MAX_ENTRIES,
        ..Default::default()
    };
    s.add("xarray", "multi-index", input(&h, &img.bytes));
}

// ---- bpf_map and other objects -------------------------------------------

/// A `struct bpf_map` at `at` with layout `off`.
fn put_map(
    img: &mut Img,
    off: &bpfmem_core::Offsets,
    at: u64,
    id: u32,
    ty: u32,
    name: &str,
    btf: u64,
) {
    let o = &off.bpf_map;
    let f = |x: u32| at + u64::from(x);
    img.put_u32(f(o.map_type), ty);
    img.put_u32(f(o.key_size), 4);
    img.put_u32(f(o.value_size), 8);
    img.put_u32(f(o.max_entries), 64);
    img.put_u32(f(o.map_flags), 0);
    img.put_u64(f(o.map_extra), 0);
    img.put_u32(f(o.id), id);
    img.put_u32(f(o.btf_key_type_id), 3);
    img.put_u32(f(o.btf_value_type_id), 5);
    img.put_u64(f(o.btf), btf);
    img.put(f(o.name), name.as_bytes());
    img.pad((at - img.base) as usize + o.size as usize);
}

/// A `struct btf` with `id` whose blob is `data`.
fn put_btf(
    img: &mut Img,
    off: &bpfmem_core::Offsets,
    id: u32,
    name: &str,
    kernel: bool,
    data: &[u8],
) -> u64 {
    let o = &off.btf;
    let at = img.alloc(256, 64);
    let blob = img.alloc(data.len(), 8);
    img.put(blob, data);
    img.put_u64(at + u64::from(o.data), blob);
    img.put_u32(at + u64::from(o.data_size), data.len() as u32);
    img.put_u32(at + u64::from(o.id), id);
    img.put(at + u64::from(o.name), name.as_bytes());
    img.put_u8(at + u64::from(o.kernel_btf), u8::from(kernel));
    at
}

fn bpf_map_seeds(s: &mut Seeds) {
    for (name, wire, off) in [
        ("v6.12", OffsetsWire::default(), v6_12()),
        ("v6.1", OffsetsWire::v6_1(), v6_1()),
    ] {
        let mut img = Img::new(BASE);
        let btf = put_btf(&mut img, &off, 7, "", false, &[0u8; 16]);
        let m1 = img.alloc(off.bpf_map.size as usize, 64);
        put_map(&mut img, &off, m1, 42, 1, "hash", btf);
        let m2 = img.alloc(off.bpf_map.size as usize, 64);
        put_map(&mut img, &off, m2, 43, 2, "array_of_16_char", 0);
        let h = bpf_map::Input {
            layout: Layout::flat(BASE),
            off: wire,
            kvas: [m1 ^ BASE, m2 ^ BASE],
        };
        s.add(
            "bpf_map",
            &format!("two-maps-{name}"),
            input(&h, &img.bytes),
        );
    }
}

fn put_prog(
    img: &mut Img,
    off: &bpfmem_core::Offsets,
    id: u32,
    maps: &[u64],
    subprogs: &[u32],
    btf: u64,
) -> u64 {
    let p = &off.bpf_prog;
    let a = &off.bpf_prog_aux;
    let prog = img.alloc(p.size as usize, 64);
    let aux = img.alloc(a.size as usize, 64);
    img.put_u32(prog + u64::from(p.r#type), 1 + id % 30);
    img.put_u32(prog + u64::from(p.len), 8 * id);
    img.put_u32(prog + u64::from(p.jited_len), 60);
    img.put(prog + u64::from(p.tag), &[id as u8, 1, 2, 3, 4, 5, 6, 7]);
    img.put_u64(prog + u64::from(p.aux), aux);
    img.put_u64(aux + u64::from(a.prog), prog);
    img.put_u32(aux + u64::from(a.id), id);
    img.put_u64(aux + u64::from(a.load_time), 1_000_000 * u64::from(id));
    img.put(aux + u64::from(a.name), b"prog_name");
    img.put_u64(aux + u64::from(a.btf), btf);
    img.put_u32(aux + u64::from(a.used_map_cnt), maps.len() as u32);
    if !maps.is_empty() {
        let arr = img.alloc(8 * maps.len(), 8);
        for (i, m) in maps.iter().enumerate() {
            img.put_u64(arr + 8 * i as u64, *m);
        }
        img.put_u64(aux + u64::from(a.used_maps), arr);
    }
    if !subprogs.is_empty() {
        let func = img.alloc(8 * subprogs.len(), 8);
        for (i, &len) in subprogs.iter().enumerate() {
            let sub = img.alloc(p.size as usize, 64);
            img.put_u32(sub + u64::from(p.jited_len), len);
            img.put_u64(func + 8 * i as u64, sub);
        }
        img.put_u32(aux + u64::from(a.func_cnt), subprogs.len() as u32);
        img.put_u64(aux + u64::from(a.func), func);
    }
    prog
}

fn bpf_objects_seeds(s: &mut Seeds) {
    for (name, wire, off) in [
        ("v6.12", OffsetsWire::default(), v6_12()),
        ("v6.1", OffsetsWire::v6_1(), v6_1()),
    ] {
        let mut img = Img::new(BASE);
        let prog_idr = img.alloc(24, 64);
        let btf_idr = img.alloc(24, 64);
        img.put_u32(btf_idr + 16, 1);
        let kernel = btf::minimal();
        let b1 = put_btf(&mut img, &off, 1, "vmlinux", true, &kernel);
        let b2 = put_btf(&mut img, &off, 2, "", false, &btf::format_btf().0);
        xa_store(&mut img, btf_idr, 0, b1);
        xa_store(&mut img, btf_idr, 1, b2);
        let m1 = img.alloc(off.bpf_map.size as usize, 64);
        put_map(&mut img, &off, m1, 7, 1, "m7", b2);
        let m2 = img.alloc(off.bpf_map.size as usize, 64);
        put_map(&mut img, &off, m2, 9, 2, "m9", 0);
        let p1 = put_prog(&mut img, &off, 3, &[m1, m2], &[], b2);
        let p2 = put_prog(&mut img, &off, 4, &[], &[100, 200, 300], 0);
        let p3 = put_prog(&mut img, &off, 70, &[m2], &[], 0);
        for (id, p) in [(3, p1), (4, p2), (70, p3)] {
            xa_store(&mut img, prog_idr, id, p);
        }
        let start = img.get_u64(b1 + u64::from(off.btf.data));
        let h = bpf_objects::Input {
            layout: Layout::flat(BASE),
            off: wire,
            prog_idr: prog_idr ^ BASE,
            btf_idr: btf_idr ^ BASE,
            prog: p2 ^ BASE,
            btf: b2 ^ BASE,
            start_btf: start ^ BASE,
            stop_btf: (start + kernel.len() as u64) ^ BASE,
            ..Default::default()
        };
        s.add(
            "bpf_objects",
            &format!("progs-and-btfs-{name}"),
            input(&h, &img.bytes),
        );
    }
}

// ---- array -------------------------------------------------------------

const PCPU_BIAS: u64 = 0x606f_d7c4_0000;

fn pattern(key: u32, i: u32) -> u8 {
    (key.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8
}

fn array_seeds(s: &mut Seeds) {
    let off = v6_12();
    let a = off.bpf_array;
    for (value_size, max_entries, mmapable) in
        [(20u32, 10u32, false), (8, 64, false), (24, 5, true)]
    {
        let elem = value_size.next_multiple_of(8);
        let mut img = Img::new(BASE);
        let arr = if mmapable {
            img.pad(0x1000);
            BASE + 0x1000 - u64::from(a.value)
        } else {
            img.alloc(a.size as usize, 64)
        };
        img.put_u32(arr + u64::from(a.elem_size), elem);
        img.put_u32(
            arr + u64::from(a.index_mask),
            bpfmem_core::array::array_index_mask(max_entries),
        );
        for key in 0..max_entries {
            let v: Vec<u8> = (0..value_size).map(|i| pattern(key, i)).collect();
            img.put(arr + u64::from(a.value) + u64::from(elem * key), &v);
        }
        let mut map = map_info(MapType::ARRAY, 4, value_size, max_entries, arr);
        if mmapable {
            map.map_flags = BPF_F_MMAPABLE;
        }
        let h = array::Input {
            layout: Layout::flat(BASE),
            map: MapWire::new(&map, &array::default_map()),
            limit: 0,
            probes: [
                (0, 0, (value_size as u16, 0)),
                (max_entries - 1, 4, (4, 0)),
                (max_entries, 0, (1, 0)),
            ],
            ..Default::default()
        };
        let name = format!(
            "array-v{value_size}-n{max_entries}{}",
            if mmapable { "-mmapable" } else { "" }
        );
        s.add("array", &name, input(&h, &img.bytes));
    }
    // PERCPU_ARRAY: pptrs, __per_cpu_offset, one unit per CPU.
    for (wire, off) in [
        (OffsetsWire::default(), v6_12()),
        (OffsetsWire::v6_1(), v6_1()),
    ] {
        let a = off.bpf_array;
        let (value_size, max_entries, ncpus) = (12u32, 8u32, 2u32);
        let elem = 16u32;
        let mut img = Img::new(BASE);
        let arr = img.alloc((a.pptrs + 8 * max_entries) as usize, 64);
        img.put_u32(arr + u64::from(a.elem_size), elem);
        img.put_u32(
            arr + u64::from(a.index_mask),
            bpfmem_core::array::array_index_mask(max_entries),
        );
        let pco = img.alloc(8 * ncpus as usize, 64);
        let units = img.alloc((elem * max_entries * ncpus) as usize, 64);
        for cpu in 0..ncpus {
            let unit = units + u64::from(cpu * elem * max_entries);
            img.put_u64(pco + 8 * u64::from(cpu), unit.wrapping_sub(PCPU_BIAS));
            for key in 0..max_entries {
                let v: Vec<u8> = (0..value_size)
                    .map(|i| pattern(key * 16 + cpu, i))
                    .collect();
                img.put(unit + u64::from(key * elem), &v);
            }
        }
        for key in 0..max_entries {
            img.put_u64(
                arr + u64::from(a.pptrs) + 8 * u64::from(key),
                PCPU_BIAS + u64::from(key * elem),
            );
        }
        let map = map_info(MapType::PERCPU_ARRAY, 4, value_size, max_entries, arr);
        let h = array::Input {
            layout: Layout::flat(BASE),
            off: wire,
            map: MapWire::new(&map, &array::default_map()),
            per_cpu_offset: pco ^ array::DEFAULT_PER_CPU_OFFSET,
            nr_cpu_ids: ncpus as u8 ^ 2,
            limit: 0,
            probes: [(0, 0, (12, 0)), (7, 8, (4, 1)), (3, 0, (12, 2))],
        };
        let name = if wire.profile & 1 == 1 {
            "percpu-array-v6.1"
        } else {
            "percpu-array-v6.12"
        };
        s.add("array", name, input(&h, &img.bytes));
    }
}

// ---- htab --------------------------------------------------------------

fn nulls(i: u64) -> u64 {
    (i << 1) | 1
}

/// A hash table laid out as `htab_map_alloc()` does, with `n` elements of
/// hashes `hashes`; per-CPU pointers at `key + key_size` when `old_pos`.
fn htab_seed(
    s: &mut Seeds,
    name: &str,
    ty: MapType,
    key_size: u32,
    prealloc: bool,
    old_pos: bool,
    hashes: &[u32],
) {
    let off = v6_12();
    let h = off.bpf_htab;
    let percpu = matches!(ty, MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH);
    let (value_size, max_entries, ncpus) = (8u32, 16u32, 2u32);
    let n_buckets = max_entries.next_power_of_two();
    let ks = u64::from(key_size.next_multiple_of(8));
    let elem_size = 48 + ks + if percpu { 8 } else { 8 };
    let mut img = Img::new(BASE);
    let pco = img.alloc(8 * ncpus as usize, 64);
    let htab = img.alloc(h.size as usize, 64);
    let buckets = img.alloc(16 * n_buckets as usize, 64);
    for i in 0..u64::from(n_buckets) {
        img.put_u64(buckets + 16 * i, nulls(i));
    }
    let nr_elems = u64::from(max_entries)
        + if ty == MapType::HASH {
            u64::from(ncpus)
        } else {
            0
        };
    let elems = if prealloc {
        img.alloc((nr_elems * elem_size) as usize, 4096)
    } else {
        0
    };
    let unit = 0x400u64;
    let units = img.alloc((unit * u64::from(ncpus)) as usize, 4096);
    for cpu in 0..u64::from(ncpus) {
        img.put_u64(pco + 8 * cpu, (units + cpu * unit).wrapping_sub(PCPU_BIAS));
    }
    img.put_u64(htab + u64::from(h.buckets), buckets);
    img.put_u64(htab + u64::from(h.elems), elems);
    img.put_u32(htab + u64::from(h.n_buckets), n_buckets);
    img.put_u32(htab + u64::from(h.elem_size), elem_size as u32);
    let pos = |e: u64| e + 48 + if old_pos { u64::from(key_size) } else { ks };
    if prealloc && percpu {
        for i in 0..u64::from(max_entries) {
            img.put_u64(pos(elems + i * elem_size), PCPU_BIAS + 8 * i);
        }
    }
    for (i, &hash) in hashes.iter().enumerate() {
        let i = i as u64;
        let e = if prealloc {
            elems + i * elem_size
        } else {
            img.alloc(elem_size as usize, 8)
        };
        let key: Vec<u8> = (0..key_size).map(|j| (i as u8) ^ (j as u8 * 3)).collect();
        img.put(e + 48, &key);
        img.put_u32(e + 40, hash);
        if percpu {
            let p = if prealloc {
                img.get_u64(pos(e))
            } else {
                let p = PCPU_BIAS + 8 * i;
                let obj = img.alloc(16, 8);
                img.put_u64(obj + 8, p);
                img.put_u64(e + 16, obj + 8);
                img.put_u64(pos(e), p);
                p
            };
            for cpu in 0..u64::from(ncpus) {
                img.put_u64(units + cpu * unit + (p - PCPU_BIAS), i * 100 + cpu);
            }
        } else {
            img.put_u64(e + 48 + ks, i * 100);
        }
        let head = buckets + 16 * u64::from(hash & (n_buckets - 1));
        let first = img.get_u64(head);
        img.put_u64(e, first);
        img.put_u64(e + 8, head);
        if first & 1 == 0 {
            img.put_u64(first + 8, e);
        }
        img.put_u64(head, e);
    }
    let mut map = map_info(ty, key_size, value_size, max_entries, htab);
    if !prealloc {
        map.map_flags = BPF_F_NO_PREALLOC;
    }
    let hdr = htab::Input {
        layout: Layout::flat(BASE),
        off: OffsetsWire::default(),
        map: MapWire::new(&map, &htab::default_map()),
        per_cpu_offset: pco ^ htab::DEFAULT_PER_CPU_OFFSET,
        nr_cpu_ids: ncpus as u8 ^ 2,
        cpus: 0,
        pcpu_at: 3,
        limits: (0, u32::MAX, u32::MAX),
    };
    s.add("htab", name, input(&hdr, &img.bytes));
}

fn htab_seeds(s: &mut Seeds) {
    let hashes = [0x11, 0x21, 0x3, 0x13, 0xffff_fff0, 7];
    htab_seed(s, "hash-prealloc", MapType::HASH, 4, true, false, &hashes);
    htab_seed(
        s,
        "hash-no-prealloc-key12",
        MapType::HASH,
        12,
        false,
        false,
        &hashes,
    );
    htab_seed(s, "lru-hash", MapType::LRU_HASH, 8, true, false, &hashes);
    htab_seed(
        s,
        "percpu-hash-prealloc-new-pos",
        MapType::PERCPU_HASH,
        4,
        true,
        false,
        &hashes,
    );
    htab_seed(
        s,
        "percpu-hash-prealloc-old-pos",
        MapType::PERCPU_HASH,
        4,
        true,
        true,
        &hashes,
    );
    htab_seed(
        s,
        "percpu-hash-no-prealloc",
        MapType::PERCPU_HASH,
        12,
        false,
        true,
        &hashes,
    );
    htab_seed(
        s,
        "lru-percpu-hash",
        MapType::LRU_PERCPU_HASH,
        8,
        true,
        false,
        &hashes,
    );
    htab_seed(
        s,
        "hash-one-chain",
        MapType::HASH,
        4,
        true,
        false,
        &[1, 17, 33, 49, 65, 81, 97],
    );
}

// ---- arena -------------------------------------------------------------

const KERN_VM_ADDR: u64 = 0xffff_c900_4000_0000;

fn arena_seeds(s: &mut Seeds) {
    let off = v6_12();
    let a = off.bpf_arena.unwrap();
    let kern_vm_start = KERN_VM_ADDR + 0x8000;
    for (name, user, map_extra, present) in [
        ("arena-3-of-16", 0x7f7d_2620_0000u64, 0u64, vec![0u64, 3, 7]),
        ("arena-map-extra", 0x1_0000_0000, 0x1_0000_0000, vec![5, 15]),
    ] {
        let mut img = Img::new(BASE);
        let arena = img.alloc(a.size as usize, 64);
        let vm = img.alloc(off.vm_struct.size as usize, 64);
        img.put_u64(arena + u64::from(a.user_vm_start), user);
        img.put_u64(arena + u64::from(a.user_vm_end), user + 16 * 4096);
        img.put_u64(arena + u64::from(a.kern_vm), vm);
        img.put_u64(vm + u64::from(off.vm_struct.addr), KERN_VM_ADDR);
        img.put_u64(
            vm + u64::from(off.vm_struct.vm_size),
            bpfmem_core::arena::KERN_VM_SZ + 4096,
        );
        let pages: Vec<(u64, Vec<u8>)> = present
            .iter()
            .map(|&p| {
                let kva = kern_vm_start + u64::from((user + p * 4096) as u32);
                let mut page = vec![p as u8 + 1; 4096];
                page[..8].copy_from_slice(&p.to_le_bytes());
                (kva, page)
            })
            .collect();
        let mut map = arena::default_map();
        map.kva = Kva(arena);
        map.map_extra = map_extra;
        let runs = img.bytes.clone();
        let h = arena::Input {
            layout: Layout::sparse(
                [BASE, DEFAULT_BASES[1], DEFAULT_BASES[2]],
                [runs.len() as u32, 0, 0],
            ),
            off: OffsetsWire::default(),
            map: MapWire::new(&map, &arena::default_map()),
            holes: 0,
            budget: 0,
            probes: [present[0], 1, 16],
        };
        s.add(
            "arena",
            name,
            input(&h, &Layout::sparse_payload(&runs, &pages)),
        );
    }
}

// ---- struct_ops --------------------------------------------------------

fn struct_ops_seeds(s: &mut Seeds) {
    for (name, wire, off, state) in [
        ("v6.12-ready", OffsetsWire::default(), v6_12(), 3u32),
        ("v6.1-inuse", OffsetsWire::v6_1(), v6_1(), 1),
        ("v6.12-init", OffsetsWire::default(), v6_12(), 0),
    ] {
        let so = off.bpf_struct_ops_map.unwrap();
        let mut img = Img::new(BASE);
        let st = img.alloc(so.size as usize + 256, 64);
        let uvalue = img.alloc(256, 64);
        let btf = img.alloc(256, 64);
        img.put_u64(st + u64::from(so.uvalue), uvalue);
        let kv = st + u64::from(so.kvalue);
        img.put_u32(kv + u64::from(so.value_refcnt), 7);
        img.put_u32(kv + u64::from(so.value_state), state);
        let v: Vec<u8> = (0..256u32)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(5))
            .collect();
        img.put(uvalue, &v);
        if let (Some(r), Some(u)) = (so.map_refcnt, so.map_usercnt) {
            img.put_u64(st + u64::from(r), 5);
            img.put_u64(st + u64::from(u), 2);
        }
        if let Some(b) = so.btf {
            img.put_u64(st + u64::from(b), btf);
            img.put_u32(btf + u64::from(off.btf.id), 42);
        }
        let mut map = struct_ops::default_map();
        map.kva = Kva(st);
        let h = struct_ops::Input {
            layout: Layout::flat(BASE),
            off: wire,
            map: MapWire::new(&map, &struct_ops::default_map()),
            windows: [(2, 5), (0, 256), (255, 1)],
        };
        s.add("struct_ops", name, input(&h, &img.bytes));
    }
}

// ---- kallsyms ----------------------------------------------------------

fn kallsyms_seeds(s: &mut Seeds) {
    let base = kallsyms::RODATA;
    let kaslr = 0x2e00_0000;
    for (name, mode, order, percpu, extra, how) in [
        (
            "percpu-v6.1-kaslr",
            AddressMode::AbsolutePercpu,
            ksyms::Order::V6_1,
            true,
            20,
            0u8,
        ),
        (
            "relative-v6.4-300-symbols",
            AddressMode::Relative,
            ksyms::Order::V6_4,
            false,
            300,
            0,
        ),
        (
            "relative-no-kernel-offset",
            AddressMode::Relative,
            ksyms::Order::V6_4,
            false,
            5,
            1,
        ),
        (
            "absolute",
            AddressMode::Absolute,
            ksyms::Order::V6_1,
            true,
            5,
            2,
        ),
        (
            "percpu-with-mode",
            AddressMode::AbsolutePercpu,
            ksyms::Order::V6_4,
            true,
            5,
            4,
        ),
    ] {
        let syms = ksyms::kernel_syms(kaslr, percpu, extra);
        let (bytes, ks) = ksyms::build(&syms, mode, order, base);
        let (present, wire) = kallsyms::Input::encode_syms(&ks, base);
        let mut names = [[0u8; 16]; 2];
        names[0][..7].copy_from_slice(b"map_idr");
        names[1][..16].copy_from_slice(b"bpf_helper_17xyz");
        let h = kallsyms::Input {
            layout: Layout::flat(base),
            present,
            syms: wire,
            mode: how,
            kernel_offset: kaslr,
            names,
        };
        s.add("kallsyms", name, input(&h, &bytes));
    }
}

// ---- BTF ---------------------------------------------------------------

fn btf_seeds(s: &mut Seeds) {
    let minimal = btf::minimal();
    s.add("btf_offsets", "minimal", minimal.clone());
    s.add("btf_offsets", "minimal-in-elf", btf::elf_with_btf(&minimal));
    let (blob, maps) = btf::format_btf();
    s.add("btf_offsets", "map-value-btf", blob.clone());
    for (name, key, value) in maps {
        let key_bytes: Vec<u8> = (0..8u8).collect();
        let value_bytes: Vec<u8> = (0..96u8).map(|i| i.wrapping_mul(37) | 0x20).collect();
        for cpus in [0u8, 2] {
            let h = btf_format::Input {
                key_type_id: key,
                value_type_id: value,
                btf_len: blob.len() as u32,
                key_len: 8,
                cpus,
                ..Default::default()
            };
            let mut payload = blob.clone();
            payload.extend_from_slice(&key_bytes);
            payload.extend_from_slice(&value_bytes);
            if cpus > 0 {
                payload.extend_from_slice(&value_bytes);
            }
            s.add(
                "btf_format",
                &format!("{name}-cpus{cpus}"),
                input(&h, &payload),
            );
        }
    }
}

// ---- files -------------------------------------------------------------

fn vmcoreinfo_text() -> String {
    let syms = [
        ("kallsyms_names", 0xffff_ffff_8260_0000u64),
        ("kallsyms_num_syms", 0xffff_ffff_825f_fff8),
        ("kallsyms_token_table", 0xffff_ffff_8280_0000),
        ("kallsyms_token_index", 0xffff_ffff_8280_0800),
        ("kallsyms_offsets", 0xffff_ffff_8250_0000),
        ("kallsyms_relative_base", 0xffff_ffff_825f_fff0),
    ];
    files::vmcoreinfo(
        "6.12.95+deb12-cloud-amd64",
        false,
        0x2e00_0000,
        -0x100_0000,
        &syms,
    )
}

fn file_seeds(s: &mut Seeds) {
    let text = vmcoreinfo_text();
    s.add("vmcoreinfo_parse", "synthetic", text.clone().into_bytes());
    let mut withnul = text.clone().into_bytes();
    withnul.extend_from_slice(b"\0junk after the NUL");
    s.add("vmcoreinfo_parse", "nul-terminated", withnul);
    // Scanner: page-aligned text at pa 0x1000, a note-framed copy, a hole.
    let mut mem = vec![0u8; 0x3000];
    mem[0x1000..0x1000 + text.len()].copy_from_slice(text.as_bytes());
    let n = files::note(b"VMCOREINFO", 0, text.as_bytes());
    mem[0x2400..0x2400 + n.len()].copy_from_slice(&n[..n.len().min(0xc00)]);
    for cut in [0u8, 40, 200] {
        let mut d = vec![cut];
        d.extend_from_slice(&mem);
        s.add("vmcoreinfo_scan", &format!("page-and-note-cut{cut}"), d);
    }
    let mut notes = files::note(b"CORE", 1, &[0u8; 336]);
    notes.extend(files::note(b"QEMU", 0, &[0u8; 456]));
    notes.extend(files::note(b"CORE", 1, &[0u8; 336]));
    notes.extend(files::note(b"VMCOREINFO", 0, text.as_bytes()));
    let ram: Vec<u8> = (0..0x3000u32).map(|i| (i * 13) as u8).collect();
    let loads = [
        files::Load {
            paddr: 0,
            vaddr: 0,
            data: ram[..0x2000].to_vec(),
            extra: 0,
        },
        files::Load {
            paddr: 0x10_0000,
            vaddr: 0,
            data: ram[0x2000..].to_vec(),
            extra: 0x1000,
        },
    ];
    let core = files::core(&notes, &loads);
    s.add("elf_core", "qemu-like", core.clone());
    let mut truncated = core.clone();
    truncated.truncate(core.len() - 0x800);
    s.add("elf_core", "qemu-like-truncated", truncated);
    // kdump: a text segment that repeats part of RAM, first.
    let kdump = [
        files::Load {
            paddr: 0x1000,
            vaddr: START_KERNEL_MAP + 0x1000,
            data: ram[0x1000..0x1800].to_vec(),
            extra: 0,
        },
        files::Load {
            paddr: 0,
            vaddr: 0xffff_8880_0000_0000,
            data: ram[..0x3000].to_vec(),
            extra: 0,
        },
    ];
    s.add(
        "elf_core",
        "kdump-like",
        files::core(
            &notes[notes.len() - files::note(b"VMCOREINFO", 0, text.as_bytes()).len()..],
            &kdump,
        ),
    );
    // kcore: RAM and text with physical addresses, vmalloc without.
    let kc = [
        files::Load {
            paddr: u64::MAX,
            vaddr: 0xffff_c900_0000_0000,
            data: ram[..0x1000].to_vec(),
            extra: 0,
        },
        files::Load {
            paddr: 0x1000,
            vaddr: 0xffff_8880_0000_1000,
            data: ram[..0x2000].to_vec(),
            extra: 0,
        },
        files::Load {
            paddr: 0x100_0000,
            vaddr: START_KERNEL_MAP + 0x100_0000,
            data: ram[0x2000..].to_vec(),
            extra: 0,
        },
    ];
    let mut kn = files::note(b"CORE", 1, &[0u8; 336]);
    kn.extend(files::note(b"VMCOREINFO", 0, text.as_bytes()));
    s.add("kcore", "kcore-like", files::core(&kn, &kc));
}

pub fn all(s: &mut Seeds) {
    page_walk_seeds(s);
    xarray_seeds(s);
    bpf_map_seeds(s);
    bpf_objects_seeds(s);
    array_seeds(s);
    htab_seeds(s);
    arena_seeds(s);
    struct_ops_seeds(s);
    kallsyms_seeds(s);
    btf_seeds(s);
    file_seeds(s);
    discover_seeds(s);
}

// ---- discovery ---------------------------------------------------------

/// A whole small kernel: VMCOREINFO, page tables mapping the image (linked
/// at `__START_KERNEL`, loaded at physical 0: `phys_base` is -16 MiB) and the
/// direct map with 2 MiB pages, kallsyms, the minimal BTF, CPUs, and the
/// IDRs of two maps, a program and a BTF object.
fn discover_seed(s: &mut Seeds, name: &str, levels: u8) {
    let start = ksyms::START_KERNEL; // _text, at physical 0
    let image = |pa: u64| start + pa;
    let pob = if levels == 5 {
        page_walk::PAGE_OFFSET_L5
    } else {
        page_walk::PAGE_OFFSET_L4
    };
    let mut t = Tables::new(levels, 8);
    t.map(start, 0, 2);
    t.map(pob, 0, 2);
    let tables_end = t.next;
    // Physical memory past the tables, as one image whose kvas are `image()`.
    let mut img = Img::new(image(0));
    img.bytes = t.bytes.clone();
    img.pad(tables_end as usize);
    let off = bpfmem::btf::offsets_from_btf(&btf::minimal()).unwrap();
    let pob_var = img.alloc(8, 64);
    img.put_u64(pob_var, pob);
    let nr_cpu_ids = img.alloc(4, 64);
    img.put_u32(nr_cpu_ids, 2);
    let mask = img.alloc(8, 64);
    img.put_u64(mask, 0b11);
    let pco = img.alloc(16, 64);
    let map_idr = img.alloc(24, 64);
    let prog_idr = img.alloc(24, 64);
    let btf_idr = img.alloc(24, 64);
    img.put_u32(btf_idr + 16, 1);
    let blob = btf::minimal();
    let start_btf = img.alloc(blob.len(), 64);
    img.put(start_btf, &blob);
    let stop_btf = start_btf + blob.len() as u64;
    // Heap objects are reached through the direct map.
    let heap = |kva: u64| pob + (kva - image(0));
    let b1 = put_btf(&mut img, &off, 1, "vmlinux", true, &blob);
    xa_store(&mut img, btf_idr, 0, heap(b1));
    let mut maps = Vec::new();
    for (id, ty) in [(1u32, 2u32), (4, 1)] {
        let m = img.alloc(off.bpf_map.size as usize, 64);
        put_map(&mut img, &off, m, id, ty, &format!("map{id}"), 0);
        xa_store(&mut img, map_idr, u64::from(id), heap(m));
        maps.push(heap(m));
    }
    let p = put_prog(&mut img, &off, 3, &maps, &[40, 50], heap(b1));
    xa_store(&mut img, prog_idr, 3, p);
    let syms = [
        ksyms::sym(b'T', "_text", image(0)),
        ksyms::sym(b'T', "startup_64", image(0)),
        ksyms::sym(b'D', "page_offset_base", pob_var),
        ksyms::sym(b'D', "nr_cpu_ids", nr_cpu_ids),
        ksyms::sym(b'D', "__cpu_possible_mask", mask),
        ksyms::sym(b'D', "__per_cpu_offset", pco),
        ksyms::sym(b'd', "map_idr", map_idr),
        ksyms::sym(b'd', "prog_idr", prog_idr),
        ksyms::sym(b'd', "btf_idr", btf_idr),
        ksyms::sym(b'R', "__start_BTF", start_btf),
        ksyms::sym(b'R', "__stop_BTF", stop_btf),
    ];
    let mut syms = syms.into_iter().collect::<Vec<_>>();
    syms.sort_by_key(|s| s.addr);
    let at = img.alloc(0, 64);
    let (tables, ks) = ksyms::build(&syms, AddressMode::Relative, ksyms::Order::V6_4, at);
    img.put(at, &tables);
    let k = |v: Option<u64>| v.unwrap();
    let text = files::vmcoreinfo_text(
        "6.12.0-fuzz",
        levels == 5,
        0,
        -0x100_0000,
        image(PGD),
        &[
            ("kallsyms_names", k(ks.names)),
            ("kallsyms_num_syms", k(ks.num_syms)),
            ("kallsyms_token_table", k(ks.token_table)),
            ("kallsyms_token_index", k(ks.token_index)),
            ("kallsyms_markers", k(ks.markers)),
            ("kallsyms_offsets", k(ks.offsets)),
            ("kallsyms_relative_base", k(ks.relative_base)),
        ],
    );
    let h = discover::Input {
        text_len: text.len() as u16,
        mem_base: 0,
    };
    let mut payload = text.into_bytes();
    payload.extend_from_slice(&img.bytes);
    s.add("discover", name, input(&h, &payload));
}

pub fn discover_seeds(s: &mut Seeds) {
    discover_seed(s, "small-kernel-l4", 4);
    discover_seed(s, "small-kernel-l5", 5);
}
