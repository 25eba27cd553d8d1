//! Synthetic kernel memory for the benches: physical memory in a `Vec`, 4-level
//! page tables over it, and BPF structures laid out in it the way the kernel
//! lays them out. Core's own test builders are private to its tests; these are
//! the same ideas, sized for measuring rather than for corner cases.
//!
//! Memory map (x86-64, 4-level paging, no KASLR, as a PVH boot of Debian's
//! kernels): the direct map at [`PAGE_OFFSET`] covers all of physical memory
//! with 2 MiB pages; `kmalloc` hands out direct-map addresses from a bump
//! allocator in the low half; `vmalloc` maps pages taken in random order from
//! the high half, 4 KiB at a time, at [`VMALLOC_START`], one guard page apart.
//! Layouts are Debian 6.12's, as its BTF reports them ([`offsets`]).

use std::collections::HashMap;

use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::htab::{htab_elem_size, htab_n_buckets, nulls_marker, round_up_8};
use bpfmem_core::kallsyms::Kallsyms;
use bpfmem_core::offsets::{
    BpfArrayOffsets, BpfHtabOffsets, BucketOffsets, HtabElemOffsets, IdrOffsets, XaNodeOffsets,
    XarrayOffsets,
};
use bpfmem_core::paging::{KernelMem, Translator, PAGE_PRESENT, PAGE_PSE};
use bpfmem_core::percpu::PerCpu;
use bpfmem_core::uapi::{MapType, BPF_F_NO_PREALLOC, BPF_OBJ_NAME_LEN};
use bpfmem_core::vmcoreinfo::KallsymsSymbols;
use bpfmem_core::xarray::xa_mk_node;
use bpfmem_core::{Flat, Kva, Offsets, Pa};

/// `page_offset_base` without KASLR.
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// `VMALLOC_START` without KASLR (4-level paging).
pub const VMALLOC_START: u64 = 0xffff_c900_0000_0000;
const PAGE: u64 = 4096;
const PMD: u64 = 2 << 20;
/// `_PAGE_RW`: set in every entry, as in the kernel's own tables.
const PAGE_RW: u64 = 0x2;

/// Kernel memory as the walkers see it: [`KernelMem`] over the synthetic
/// physical memory, with the direct-map fast path on.
pub type SynthMem<'a> = KernelMem<Flat<&'a [u8]>>;

/// x86-64 layouts of Debian's 6.12 kernel, as its BTF reports them (the ones
/// these structures use; 6.1 has the same for all of them).
pub fn offsets() -> Offsets {
    let mut o = Offsets::default();
    o.xarray = XarrayOffsets { xa_head: 8 };
    o.xa_node = XaNodeOffsets {
        shift: 0,
        offset: 1,
        count: 2,
        parent: 8,
        slots: 40,
        nr_slots: 64,
        size: 576,
    };
    o.idr = IdrOffsets {
        idr_rt: 0,
        idr_base: 16,
    };
    o.bpf_array = BpfArrayOffsets {
        map: 0,
        elem_size: 248,
        index_mask: 252,
        value: 264,
        ptrs: 264,
        pptrs: 264,
        size: 264,
    };
    o.bpf_htab = BpfHtabOffsets {
        map: 0,
        buckets: 376,
        elems: 384,
        n_buckets: 760,
        elem_size: 764,
        size: 896,
    };
    o.bucket = BucketOffsets { head: 0, size: 16 };
    o.htab_elem = HtabElemOffsets {
        hash_node: 0,
        hash: 40,
        key: 48,
        ptr_to_pptr: Some(16),
        size: 48,
    };
    o
}

/// A small deterministic generator (64-bit LCG, high bits out).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform below `n` (`n > 0`), good enough for shuffles.
    pub fn below(&mut self, n: u64) -> u64 {
        (u64::from(self.next_u32()) << 32 | u64::from(self.next_u32())) % n
    }
}

/// Synthetic physical memory with page tables and two allocators.
pub struct Synth {
    phys: Vec<u8>,
    pgd: u64,
    /// Next free byte of the bump allocator (low half).
    brk: u64,
    /// Free pages of the high half, in random order.
    pool: Vec<u64>,
    /// Next free vmalloc address.
    vnext: u64,
    /// vmalloc page -> physical page.
    vpages: HashMap<u64, u64>,
    pub rng: Rng,
}

impl Synth {
    /// `size` bytes of physical memory (a multiple of 2 MiB, at least 8 MiB),
    /// direct-mapped; the top half is the vmalloc page pool.
    pub fn new(size: u64) -> Synth {
        assert!(size & (PMD - 1) == 0 && size >= 4 * PMD);
        let mut rng = Rng::new(size);
        let half = size / 2;
        let mut pool: Vec<u64> = (half / PAGE..size / PAGE).map(|p| p * PAGE).collect();
        for i in (1..pool.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            pool.swap(i, j);
        }
        let mut s = Synth {
            phys: vec![0; size as usize],
            pgd: 0,
            // Page 0 stays unused, as on a PC.
            brk: PAGE,
            pool,
            vnext: VMALLOC_START,
            vpages: HashMap::new(),
            rng,
        };
        s.pgd = s.table();
        for pa in (0..size).step_by(PMD as usize) {
            s.map(PAGE_OFFSET + pa, pa, 2);
        }
        s
    }

    /// Bytes of physical memory.
    pub fn phys_len(&self) -> u64 {
        self.phys.len() as u64
    }

    /// The top-level page table.
    pub fn pgd(&self) -> Pa {
        Pa(self.pgd)
    }

    /// A translator for these tables, with the direct-map fast path.
    pub fn translator(&self) -> Translator {
        Translator::new(4, Pa(self.pgd))
            .expect("4-level tables at a page-aligned address")
            .with_direct_map(Kva(PAGE_OFFSET), self.phys_len())
    }

    /// The physical memory, as a source.
    pub fn phys(&self) -> Flat<&[u8]> {
        Flat::new(Pa(0), &self.phys[..])
    }

    /// Kernel memory through the page tables, caches empty.
    pub fn kernel(&self) -> SynthMem<'_> {
        KernelMem::new(self.phys(), self.translator())
    }

    fn bump(&mut self, size: u64, align: u64) -> u64 {
        let at = self.brk.next_multiple_of(align);
        assert!(
            at + size <= self.phys_len() / 2,
            "synthetic memory too small"
        );
        self.brk = at + size;
        at
    }

    fn table(&mut self) -> u64 {
        self.bump(PAGE, PAGE)
    }

    fn entry(&self, table: u64, index: u64) -> u64 {
        self.get_u64_pa(table + 8 * index)
    }

    /// Map `kva` to `pa`: a 4 KiB page (`level` 1) or a 2 MiB page (`level` 2).
    fn map(&mut self, kva: u64, pa: u64, level: u8) {
        let mut table = self.pgd;
        for l in (level + 1..=4).rev() {
            let index = (kva >> (12 + 9 * (u32::from(l) - 1))) & 511;
            let e = self.entry(table, index);
            table = if e & PAGE_PRESENT == 0 {
                let t = self.table();
                self.put_u64_pa(table + 8 * index, t | PAGE_PRESENT | PAGE_RW);
                t
            } else {
                e & 0x000f_ffff_ffff_f000
            };
        }
        let index = (kva >> (12 + 9 * (u32::from(level) - 1))) & 511;
        let pse = if level == 2 { PAGE_PSE } else { 0 };
        self.put_u64_pa(table + 8 * index, pa | PAGE_PRESENT | PAGE_RW | pse);
    }

    /// `kmalloc()`: `size` bytes in the direct map, physically contiguous.
    pub fn kmalloc(&mut self, size: u64, align: u64) -> Kva {
        Kva(PAGE_OFFSET + self.bump(size, align))
    }

    /// `vmalloc()`: whole pages, each somewhere else in physical memory, then
    /// a guard page.
    pub fn vmalloc(&mut self, size: u64) -> Kva {
        let start = self.vnext;
        let pages = size.div_ceil(PAGE).max(1);
        for i in 0..pages {
            let pa = self.pool.pop().expect("vmalloc pool exhausted");
            self.map(start + i * PAGE, pa, 1);
            self.vpages.insert(start + i * PAGE, pa);
        }
        self.vnext = start + (pages + 1) * PAGE;
        Kva(start)
    }

    /// The physical address of `kva` (direct map or vmalloc).
    pub fn pa_of(&self, kva: Kva) -> u64 {
        let k = kva.get();
        if (PAGE_OFFSET..PAGE_OFFSET + self.phys_len()).contains(&k) {
            return k - PAGE_OFFSET;
        }
        let page = self.vpages[&(k & !(PAGE - 1))];
        page + (k & (PAGE - 1))
    }

    fn put_u64_pa(&mut self, pa: u64, v: u64) {
        self.phys[pa as usize..pa as usize + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn get_u64_pa(&self, pa: u64) -> u64 {
        u64::from_le_bytes(self.phys[pa as usize..pa as usize + 8].try_into().unwrap())
    }

    /// Write `bytes` at `kva`, page by page.
    pub fn put(&mut self, kva: Kva, bytes: &[u8]) {
        let mut at = kva.get();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = ((PAGE - at % PAGE) as usize).min(rest.len());
            let pa = self.pa_of(Kva(at)) as usize;
            self.phys[pa..pa + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            at += n as u64;
        }
    }

    pub fn put_u8(&mut self, kva: Kva, v: u8) {
        self.put(kva, &[v]);
    }

    pub fn put_u32(&mut self, kva: Kva, v: u32) {
        self.put(kva, &v.to_le_bytes());
    }

    pub fn put_u64(&mut self, kva: Kva, v: u64) {
        self.put(kva, &v.to_le_bytes());
    }

    pub fn get_u64(&self, kva: Kva) -> u64 {
        let pa = self.pa_of(kva);
        assert!(pa % PAGE <= PAGE - 8);
        self.get_u64_pa(pa)
    }
}

fn at(base: Kva, off: u64) -> Kva {
    base.checked_add(off).expect("address in range")
}

/// A `MapInfo` as `read_map()` would report it for a map at `kva`.
fn map_info(
    id: u32,
    map_type: MapType,
    flags: u32,
    key_size: u32,
    value_size: u32,
    max: u32,
    kva: Kva,
) -> MapInfo {
    let mut name = [0u8; BPF_OBJ_NAME_LEN];
    name[..5].copy_from_slice(b"synth");
    MapInfo {
        id,
        map_type,
        name,
        map_flags: flags,
        key_size,
        value_size,
        max_entries: max,
        map_extra: 0,
        btf_id: 0,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        btf_vmlinux_value_type_id: 0,
        kva,
    }
}

/// A `struct idr` holding `n` pointers at ids `1..=n` (what `map_idr` looks
/// like after `n` map creations), built as `idr_alloc_cyclic()` and
/// `xa_store()` build it: nodes of 64 slots, `kmalloc`'d in order.
pub fn build_idr(s: &mut Synth, n: u64) -> Kva {
    let o = offsets();
    let idr = s.kmalloc(24, 64);
    let xa = at(idr, u64::from(o.idr.idr_rt));
    // idr_base is 0 (DEFINE_IDR); ids start at 1 as bpf_map_alloc_id() makes them.
    for id in 1..=n {
        // Every "map" is some kmalloc'd object; its address is what is stored.
        let obj = s.kmalloc(256, 64);
        xa_store(s, xa, id, obj.get());
    }
    idr
}

fn node_alloc(s: &mut Synth, shift: u8, parent: Option<(Kva, u8)>) -> Kva {
    let o = offsets().xa_node;
    let node = s.kmalloc(u64::from(o.size), 64);
    s.put_u8(at(node, u64::from(o.shift)), shift);
    if let Some((p, offset)) = parent {
        s.put_u8(at(node, u64::from(o.offset)), offset);
        s.put_u64(at(node, u64::from(o.parent)), p.get());
    }
    node
}

fn slot(node: Kva, offset: u64) -> Kva {
    at(node, u64::from(offsets().xa_node.slots) + 8 * offset)
}

/// `xa_store()` of a non-NULL pointer: grow the root like `xas_expand()`,
/// then create the path like `xas_create()`.
pub fn xa_store(s: &mut Synth, xa: Kva, index: u64, entry: u64) {
    let o = offsets();
    let head_at = at(xa, u64::from(o.xarray.xa_head));
    let shift_of = |s: &Synth, node: Kva| (s.get_u64(node) & 0xff) as u8;
    let mut need = 0u8;
    while need < 60 && index >> need > 63 {
        need += 6;
    }
    let head = s.get_u64(head_at);
    if head == 0 && index == 0 {
        return s.put_u64(head_at, entry);
    }
    if head == 0 {
        let root = node_alloc(s, need, None);
        s.put_u64(head_at, xa_mk_node(root));
    } else if head & 3 != 2 {
        let root = node_alloc(s, 0, None);
        s.put_u64(slot(root, 0), head);
        s.put_u64(head_at, xa_mk_node(root));
    }
    loop {
        let root = Kva(s.get_u64(head_at) & !3);
        let shift = shift_of(s, root);
        if shift >= need {
            break;
        }
        let up = node_alloc(s, shift + 6, None);
        s.put_u64(slot(up, 0), xa_mk_node(root));
        s.put_u8(at(root, u64::from(o.xa_node.offset)), 0);
        s.put_u64(at(root, u64::from(o.xa_node.parent)), up.get());
        s.put_u64(head_at, xa_mk_node(up));
    }
    let mut node = Kva(s.get_u64(head_at) & !3);
    loop {
        let shift = shift_of(s, node);
        let offset = (index >> shift) & 63;
        if shift == 0 {
            return s.put_u64(slot(node, offset), entry);
        }
        let child = s.get_u64(slot(node, offset));
        node = if child == 0 {
            let child = node_alloc(s, shift - 6, Some((node, offset as u8)));
            s.put_u64(slot(node, offset), xa_mk_node(child));
            child
        } else {
            Kva(child & !3)
        };
    }
}

/// What a hash table to build looks like.
#[derive(Clone, Copy, Debug)]
pub struct HtabSpec {
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Preallocated (the default), or `BPF_F_NO_PREALLOC`.
    pub prealloc: bool,
    /// Elements to insert, at most `max_entries`.
    pub entries: u32,
}

/// CPUs of the synthetic kernel (per-CPU areas, `htab_has_extra_elems()`).
pub const NR_CPUS: u32 = 4;

/// A `BPF_MAP_TYPE_HASH` as `htab_map_alloc()` and `htab_map_update_elem()`
/// leave it: `struct bpf_htab` kmalloc'd, buckets vmalloc'd with their nulls
/// markers, elements taken in order from the vmalloc'd `htab->elems` area
/// (prealloc) or kmalloc'd one by one with gaps between them (no prealloc,
/// where `bpf_mem_alloc` hands out slab objects), each linked at the head of
/// bucket `hash & (n_buckets - 1)` for a random 32-bit hash. Key `i` is `i`
/// little-endian (zero-padded); its value is `value_byte(i, j)` for byte `j`.
pub fn build_htab(s: &mut Synth, spec: HtabSpec) -> MapInfo {
    assert!(spec.entries <= spec.max_entries && spec.key_size >= 4);
    let o = offsets();
    let n_buckets = htab_n_buckets(spec.max_entries).expect("valid max_entries");
    let elem_size = htab_elem_size(o.htab_elem.size, spec.key_size, spec.value_size, false);
    let htab = s.kmalloc(u64::from(o.bpf_htab.size), 64);
    let buckets = s.vmalloc(16 * u64::from(n_buckets));
    for i in 0..u64::from(n_buckets) {
        s.put_u64(at(buckets, 16 * i), nulls_marker(i));
    }
    let elems = spec.prealloc.then(|| {
        // htab_has_extra_elems(): one spare per CPU.
        s.vmalloc(elem_size * (u64::from(spec.max_entries) + u64::from(NR_CPUS)))
    });
    s.put_u64(at(htab, 376), buckets.get());
    s.put_u64(at(htab, 384), elems.map_or(0, Kva::get));
    s.put_u32(at(htab, 760), n_buckets);
    s.put_u32(at(htab, 764), elem_size as u32);
    let value_off = round_up_8(spec.key_size);
    let mut key = vec![0u8; spec.key_size as usize];
    let mut value = vec![0u8; spec.value_size as usize];
    for i in 0..u64::from(spec.entries) {
        let elem = match elems {
            Some(e) => at(e, i * elem_size),
            None => {
                let gap = 8 * s.rng.below(6);
                s.kmalloc(gap, 8);
                s.kmalloc(elem_size, 8)
            }
        };
        let hash = s.rng.next_u32();
        key[..4].copy_from_slice(&(i as u32).to_le_bytes());
        for (j, b) in value.iter_mut().enumerate() {
            *b = value_byte(i, j);
        }
        s.put(at(elem, 48), &key);
        s.put(at(elem, 48 + value_off), &value);
        s.put_u32(at(elem, 40), hash);
        // hlist_nulls_add_head_rcu()
        let head = at(buckets, 16 * u64::from(hash & (n_buckets - 1)));
        let first = s.get_u64(head);
        s.put_u64(elem, first);
        s.put_u64(at(elem, 8), head.get());
        if first & 1 == 0 {
            s.put_u64(at(Kva(first), 8), elem.get());
        }
        s.put_u64(head, elem.get());
    }
    let flags = if spec.prealloc { 0 } else { BPF_F_NO_PREALLOC };
    map_info(
        1,
        MapType::HASH,
        flags,
        spec.key_size,
        spec.value_size,
        spec.max_entries,
        htab,
    )
}

/// Byte `j` of the value of key `i` in built maps.
pub fn value_byte(i: u64, j: usize) -> u8 {
    (i.wrapping_mul(131).wrapping_add(j as u64 * 7)) as u8
}

/// A `BPF_MAP_TYPE_ARRAY` of `max_entries` values of `value_size` bytes:
/// `struct bpf_array` and its values in one `bpf_map_area_alloc()`, which is
/// vmalloc'd (scattered 4 KiB pages) when larger than a page.
pub fn build_array(s: &mut Synth, value_size: u32, max_entries: u32) -> MapInfo {
    let o = offsets().bpf_array;
    let elem = round_up_8(value_size);
    let total = u64::from(o.value) + elem * u64::from(max_entries);
    let array = if total > PAGE {
        s.vmalloc(total)
    } else {
        s.kmalloc(total, 64)
    };
    s.put_u32(at(array, u64::from(o.elem_size)), elem as u32);
    s.put_u32(
        at(array, u64::from(o.index_mask)),
        bpfmem_core::array::array_index_mask(max_entries),
    );
    let mut value = vec![0u8; value_size as usize];
    for i in 0..u64::from(max_entries) {
        for (j, b) in value.iter_mut().enumerate() {
            *b = value_byte(i, j);
        }
        s.put(at(array, u64::from(o.value) + i * elem), &value);
    }
    map_info(2, MapType::ARRAY, 0, 4, value_size, max_entries, array)
}

/// Where per-CPU pointers point: dynamic per-CPU chunks give addresses like
/// this (a kmemleak report in upstream 11ba7ce076e5 shows 0x606fd7c44ac8).
const PCPU_BIAS: u64 = 0x606f_d7c4_0000;

/// A `BPF_MAP_TYPE_PERCPU_ARRAY`, its per-CPU units (one vmalloc'd area per
/// CPU, as the first chunk's units are) and `__per_cpu_offset[]`. Returns the
/// map and the [`PerCpu`] to read it with.
pub fn build_percpu_array(s: &mut Synth, value_size: u32, max_entries: u32) -> (MapInfo, PerCpu) {
    let o = offsets().bpf_array;
    let elem = round_up_8(value_size);
    let array = s.kmalloc(u64::from(o.value) + 8 * u64::from(max_entries), 64);
    s.put_u32(at(array, u64::from(o.elem_size)), elem as u32);
    s.put_u32(
        at(array, u64::from(o.index_mask)),
        bpfmem_core::array::array_index_mask(max_entries),
    );
    let unit = (elem * u64::from(max_entries)).next_multiple_of(PAGE);
    let offsets_at = s.kmalloc(8 * u64::from(NR_CPUS), 64);
    let mut units = Vec::new();
    for cpu in 0..u64::from(NR_CPUS) {
        let u = s.vmalloc(unit);
        s.put_u64(at(offsets_at, 8 * cpu), u.get().wrapping_sub(PCPU_BIAS));
        units.push(u);
    }
    let mut value = vec![0u8; value_size as usize];
    for i in 0..u64::from(max_entries) {
        let pptr = PCPU_BIAS + i * elem;
        s.put_u64(at(array, u64::from(o.pptrs) + 8 * i), pptr);
        for (cpu, u) in units.iter().enumerate() {
            for (j, b) in value.iter_mut().enumerate() {
                *b = value_byte(i + cpu as u64, j);
            }
            s.put(at(*u, i * elem), &value);
        }
    }
    let m = map_info(
        3,
        MapType::PERCPU_ARRAY,
        0,
        4,
        value_size,
        max_entries,
        array,
    );
    (m, PerCpu::new(offsets_at, NR_CPUS))
}

/// Where the synthetic kernel's `_text` is linked (no KASLR).
const TEXT: u64 = 0xffff_ffff_8100_0000;

/// A kallsyms table of `n` symbols, compressed as `scripts/kallsyms.c` does it
/// (greedy, with tokens for frequent pieces of kernel names), in 6.4+ order
/// with `kallsyms_offsets` relative to `kallsyms_relative_base`, markers every
/// 256 names. Symbol 0 is `_text`; then `n - 1` generated names, unique, of
/// kernel-like shapes; the last one is `names.last()`. Returns the decoded
/// table and the names in table order.
pub fn build_kallsyms(s: &mut Synth, n: u32) -> (KallsymsSymbols, Vec<String>) {
    const WORDS: [&str; 24] = [
        "bpf", "map", "htab", "elem", "lookup", "update", "delete", "alloc", "free", "init",
        "exit", "sched", "irq", "net", "dev", "skb", "sock", "tcp", "mm", "page", "get", "put",
        "lock", "work",
    ];
    let mut rng = Rng::new(u64::from(n));
    let mut names = vec!["_text".to_string()];
    for i in 1..n {
        let parts = 2 + rng.below(3);
        let mut name = String::new();
        if rng.below(4) == 0 {
            name.push_str("__");
        }
        for p in 0..parts {
            if p > 0 {
                name.push('_');
            }
            name.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        // Unique, as most kernel names are.
        name.push_str(&format!("_{i}"));
        names.push(name);
    }
    // Tokens: every printable byte stands for itself; the other codes are the
    // words above, with and without a type letter or separator around them.
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|c| vec![c]).collect();
    let mut multi: Vec<Vec<u8>> = Vec::new();
    for w in WORDS {
        multi.push(w.as_bytes().to_vec());
        multi.push(format!("_{w}").into_bytes());
        multi.push(format!("T{w}").into_bytes());
        multi.push(format!("t__{w}").into_bytes());
    }
    multi.push(b"__".to_vec());
    let mut free = (0..=255u8).filter(|c| !(0x20..=0x7e).contains(c));
    for t in multi {
        match free.next() {
            Some(c) => tokens[usize::from(c)] = t,
            None => break,
        }
    }
    for c in free {
        tokens[usize::from(c)] = format!("{{{c:02x}}}").into_bytes();
    }
    let mut by_first: Vec<Vec<(u8, Vec<u8>)>> = vec![Vec::new(); 256];
    for (c, t) in tokens.iter().enumerate() {
        by_first[usize::from(t[0])].push((c as u8, t.clone()));
    }
    for l in &mut by_first {
        l.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    }
    let compress = |text: &[u8]| {
        let mut codes = Vec::new();
        let mut rest = text;
        while let Some(&b) = rest.first() {
            let (c, t) = by_first[usize::from(b)]
                .iter()
                .find(|(_, t)| rest.starts_with(t))
                .expect("a token per byte");
            codes.push(*c);
            rest = &rest[t.len()..];
        }
        codes
    };
    let mut names_bytes = Vec::new();
    let mut markers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i % 256 == 0 {
            markers.push(names_bytes.len() as u32);
        }
        let kind = if i % 3 == 0 { b't' } else { b'T' };
        let mut text = vec![kind];
        text.extend_from_slice(name.as_bytes());
        let codes = compress(&text);
        if codes.len() < 0x80 {
            names_bytes.push(codes.len() as u8);
        } else {
            names_bytes.push((codes.len() & 0x7f) as u8 | 0x80);
            names_bytes.push((codes.len() >> 7) as u8);
        }
        names_bytes.extend_from_slice(&codes);
    }
    let mut table = Vec::new();
    let mut index = Vec::new();
    for t in &tokens {
        index.extend_from_slice(&(table.len() as u16).to_le_bytes());
        table.extend_from_slice(t);
        table.push(0);
    }
    let offs: Vec<u8> = (0..n).flat_map(|i| (i * 64).to_le_bytes()).collect();
    let marker_bytes: Vec<u8> = markers.iter().flat_map(|m| m.to_le_bytes()).collect();
    // write_src() order since 6.4: num_syms, names, markers, token table,
    // token index, offsets, relative base.
    let put = |s: &mut Synth, bytes: &[u8]| {
        let kva = s.kmalloc(bytes.len().max(8) as u64, 8);
        s.put(kva, bytes);
        kva.get()
    };
    let num_syms = put(s, &n.to_le_bytes());
    let names_at = put(s, &names_bytes);
    let markers_at = put(s, &marker_bytes);
    let table_at = put(s, &table);
    let index_at = put(s, &index);
    let offsets_at = put(s, &offs);
    let base_at = put(s, &TEXT.to_le_bytes());
    let mut syms = KallsymsSymbols::default();
    syms.num_syms = Some(num_syms);
    syms.names = Some(names_at);
    syms.markers = Some(markers_at);
    syms.token_table = Some(table_at);
    syms.token_index = Some(index_at);
    syms.offsets = Some(offsets_at);
    syms.relative_base = Some(base_at);
    (syms, names)
}

/// Decode a table [`build_kallsyms`] made.
pub fn kallsyms(k: &SynthMem<'_>, syms: &KallsymsSymbols) -> Kallsyms {
    Kallsyms::new(k, syms, None).expect("a well-formed table")
}

/// The address [`build_kallsyms`] gives symbol `index`.
pub fn kallsyms_addr(index: u32) -> u64 {
    TEXT + u64::from(index) * 64
}
