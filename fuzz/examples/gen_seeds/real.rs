//! Seeds from the test bed's guest images and kernels: every page a walker
//! reads for a real object, recorded through the real translation and
//! replayed as a sparse layout; the real VMCOREINFO, ELF headers and notes;
//! the real BTF cut down to what `offsets_from_btf` needs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use bpfmem::{DiscoverOptions, Image, Kernel};
use bpfmem_core::arena::Arena;
use bpfmem_core::array::Array;
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::htab::{detect_pcpu_ptr_at, Htab, HtabLimits};
use bpfmem_core::percpu::PerCpu;
use bpfmem_core::struct_ops::StructOps;
use bpfmem_core::xarray::{idr_find, idr_for_each, xa_for_each, XaLimits};
use bpfmem_core::{KernelRead, Kva, PhysRead, Result};
use bpfmem_fuzz::layouts::{MapWire, OffsetsWire};
use bpfmem_fuzz::mem::{Layout, DEFAULT_BASES};
use bpfmem_fuzz::targets::*;
use bpfmem_fuzz::wire::input;

use crate::{btf, Seeds};

const BASE: u64 = DEFAULT_BASES[0];
/// Real seeds larger than this are left out.
const MAX_SEED: usize = 64 << 10;

/// Records every page a walker touches.
struct Recorder<'a, K> {
    inner: &'a K,
    pages: RefCell<BTreeMap<u64, Vec<u8>>>,
}

impl<'a, K: KernelRead> Recorder<'a, K> {
    fn new(inner: &'a K) -> Self {
        Recorder {
            inner,
            pages: RefCell::new(BTreeMap::new()),
        }
    }

    fn take(&self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut *self.pages.borrow_mut())
            .into_iter()
            .collect()
    }
}

impl<K: KernelRead> KernelRead for Recorder<'_, K> {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        let r = self.inner.read_kva(kva, buf);
        let mut page = kva.get() & !0xfff;
        let end = kva.get().saturating_add(buf.len().max(1) as u64);
        while page < end {
            if !self.pages.borrow().contains_key(&page) {
                let mut p = vec![0u8; 4096];
                if self.inner.read_kva(Kva(page), &mut p).is_ok() {
                    self.pages.borrow_mut().insert(page, p);
                }
            }
            page = match page.checked_add(4096) {
                Some(p) => p,
                None => break,
            };
        }
        r
    }
}

fn sparse(pages: &[(u64, Vec<u8>)]) -> (Layout, Vec<u8>) {
    let layout = Layout::sparse([BASE, DEFAULT_BASES[1], DEFAULT_BASES[2]], [0, 0, 0]);
    (layout, Layout::sparse_payload(&[], pages))
}

fn add(s: &mut Seeds, target: &str, name: &str, data: Vec<u8>) {
    if data.len() <= MAX_SEED {
        s.add(target, name, data);
    } else {
        println!(
            "{target:>16} {name:<40} {:>7} bytes  left out (too large)",
            data.len()
        );
    }
}

fn guest<M: PhysRead>(s: &mut Seeds, tag: &str, k: &Kernel<M>) {
    let off = k.offsets();
    let wire = if k.vmcoreinfo().osrelease().starts_with("6.1.") {
        OffsetsWire::v6_1()
    } else {
        OffsetsWire::default()
    };
    assert_eq!(
        &wire.decode(),
        off,
        "the built-in layouts of {tag} are what its BTF says"
    );
    let mem = k.mem();
    let rec = Recorder::new(mem);
    let syms = k.symbols();
    let maps: Vec<MapInfo> = k
        .maps()
        .collect::<Result<_>>()
        .expect("the maps of a test-bed guest");
    let by_name = |n: &str| maps.iter().find(|m| m.name() == n).copied();
    // To keep the corpus small, the older kernel only gives what differs.
    let all = !tag.starts_with("6.1-");

    // map_idr, as an xarray and as an IDR.
    if let Some(idr) = syms.map_idr {
        let _ = xa_for_each(&rec, idr, off, XaLimits::default()).count();
        let ids: Vec<_> = idr_for_each(&rec, idr, off, XaLimits::default())
            .flatten()
            .collect();
        for (id, _) in &ids {
            let _ = idr_find(&rec, idr, u64::from(*id), off);
        }
        let (layout, payload) = sparse(&rec.take());
        let h = xarray::Input {
            layout,
            off: wire,
            xa: idr.get() ^ BASE,
            idr: idr.get() ^ BASE,
            probes: [1, 5, 1000],
            ids: [1, 17],
            ..Default::default()
        };
        add(
            s,
            "xarray",
            &format!("real-{tag}-map-idr"),
            input(&h, &payload),
        );
    }
    if let (Some(_), true) = (syms.map_idr, all) {
        // read_map of two maps.
        let two = [maps[0].kva, maps[maps.len() - 1].kva];
        for m in two {
            let _ = bpfmem_core::bpf_map::read_map(&rec, m, &off.bpf_map, &off.btf);
        }
        let (layout, payload) = sparse(&rec.take());
        let h = bpf_map::Input {
            layout,
            off: wire,
            kvas: [two[0].get() ^ BASE, two[1].get() ^ BASE],
        };
        add(
            s,
            "bpf_map",
            &format!("real-{tag}-two-maps"),
            input(&h, &payload),
        );
    }

    // prog_idr and btf_idr, the agent's BTF blob as the "kernel" BTF.
    if let (Some(prog_idr), Some(btf_idr), true) = (syms.prog_idr, syms.btf_idr, all) {
        let limits = XaLimits::default();
        let progs: Vec<_> = bpfmem_core::bpf_prog::bpf_prog_for_each(&rec, prog_idr, off, limits)
            .flatten()
            .collect();
        let btfs: Vec<_> = bpfmem_core::btf::bpf_btf_for_each(&rec, btf_idr, off, limits)
            .flatten()
            .collect();
        let small = btfs
            .iter()
            .find(|b| !b.kernel_btf && b.data_size < 64 << 10)
            .copied();
        if let Some(b) = small {
            let mut blob = vec![0u8; b.data_size as usize];
            let _ = b.read_data(&rec, &mut blob);
        }
        let (layout, payload) = sparse(&rec.take());
        let mut h = bpf_objects::Input {
            layout,
            off: wire,
            prog_idr: prog_idr.get() ^ BASE,
            btf_idr: btf_idr.get() ^ BASE,
            prog: progs.first().map_or(0, |p| p.kva.get() ^ BASE),
            ..Default::default()
        };
        if let Some(b) = small {
            h.btf = b.kva.get() ^ BASE;
            h.start_btf = b.data.get() ^ BASE;
            h.stop_btf = (b.data.get() + u64::from(b.data_size)) ^ BASE;
        }
        add(
            s,
            "bpf_objects",
            &format!("real-{tag}-progs-btfs"),
            input(&h, &payload),
        );
    }

    let pcpu_at = syms.per_cpu_offset.unwrap_or(Kva(0));
    let pcpu = PerCpu::new(pcpu_at, k.nr_cpu_ids());
    let cpus = k.possible_cpus().to_vec();

    for name in ["arr_v20", "pcpu_arr", "dup"] {
        let Some(m) = by_name(name).filter(|_| all) else {
            continue;
        };
        let Ok(a) = Array::new(&rec, &m, off) else {
            continue;
        };
        let _ = a.iter(&rec).count();
        let mut buf = vec![0u8; m.value_size as usize];
        for key in 0..m.max_entries.min(64) {
            let _ = a.read_value(&rec, key, 0, &mut buf);
            for &cpu in &cpus {
                let _ = a.read_percpu_value(&rec, key, &pcpu, cpu, 0, &mut buf);
            }
        }
        let (layout, payload) = sparse(&rec.take());
        let h = array::Input {
            layout,
            off: wire,
            map: MapWire::new(&m, &array::default_map()),
            per_cpu_offset: pcpu_at.get() ^ array::DEFAULT_PER_CPU_OFFSET,
            nr_cpu_ids: k.nr_cpu_ids() as u8 ^ 2,
            limit: 0,
            probes: [
                (0, 0, (m.value_size as u16, 0)),
                (m.max_entries - 1, 0, (4, 1)),
                (1, 3, (5, 0)),
            ],
        };
        add(
            s,
            "array",
            &format!("real-{tag}-{name}"),
            input(&h, &payload),
        );
    }

    for name in [
        "hash_k12_v20",
        "hash_nopre",
        "pcpu_hash",
        "hash_empty",
        "btf_hash",
    ] {
        let Some(m) = by_name(name).filter(|_| all) else {
            continue;
        };
        let Ok(mut h) = Htab::new(&rec, &m, off) else {
            continue;
        };
        if let Ok(Some(at)) = detect_pcpu_ptr_at(&rec, &h, &pcpu, &cpus) {
            h.set_pcpu_ptr_at(at);
        }
        let mut key = vec![0u8; m.key_size as usize];
        let mut value = vec![0u8; m.value_size as usize];
        for e in h.iter(&rec, HtabLimits::default()).take(64).flatten() {
            let _ = h.read_key(&rec, &e, &mut key);
            let _ = h.read_value(&rec, &e, &mut value);
            for &cpu in &cpus {
                let _ = h.read_percpu_value(&rec, &e, &pcpu, cpu, &mut value);
            }
        }
        let pages = rec.take();
        let (layout, payload) = sparse(&pages);
        let hdr = htab::Input {
            layout,
            off: wire,
            map: MapWire::new(&m, &htab::default_map()),
            per_cpu_offset: pcpu_at.get() ^ htab::DEFAULT_PER_CPU_OFFSET,
            nr_cpu_ids: k.nr_cpu_ids() as u8 ^ 2,
            cpus: cpus.iter().fold(0u8, |acc, &c| acc | (1 << c)) ^ 3,
            pcpu_at: 3,
            limits: (0, u32::MAX, u32::MAX),
        };
        add(
            s,
            "htab",
            &format!("real-{tag}-{name}"),
            input(&hdr, &payload),
        );
    }

    if let Some(m) = by_name("arena") {
        if let Ok(a) = Arena::new(&rec, &m, off) {
            let mut page = [0u8; 4096];
            for p in a.pages(&rec).flatten() {
                let _ = a.read_page(&rec, p.pgoff, &mut page);
            }
            let (layout, payload) = sparse(&rec.take());
            let h = arena::Input {
                layout,
                off: wire,
                map: MapWire::new(&m, &arena::default_map()),
                holes: 0,
                budget: 0,
                probes: [0, 3, 15],
            };
            add(
                s,
                "arena",
                &format!("real-{tag}-arena"),
                input(&h, &payload),
            );
        }
    }

    if let Some(m) = by_name("st_ops") {
        if let Ok(so) = StructOps::new(&m, off) {
            let mut v = vec![0u8; m.value_size as usize];
            let _ = so.read_value(&rec, 0, &mut v);
            let _ = so.value_btf_id(&rec);
            let (layout, payload) = sparse(&rec.take());
            let h = struct_ops::Input {
                layout,
                off: wire,
                map: MapWire::new(&m, &struct_ops::default_map()),
                windows: [(0, 8), (8, 64), (m.value_size - 1, 1)],
            };
            add(
                s,
                "struct_ops",
                &format!("real-{tag}-st-ops"),
                input(&h, &payload),
            );
        }
    }

    // A map's own BTF and one of its entries, for the formatter.
    if let Some(m) = by_name("btf_hash").filter(|_| all) {
        let b = k.btf(m.btf_id).ok().flatten();
        let h = Htab::new(mem, &m, off).ok();
        if let (Some(b), Some(h)) = (b, h) {
            let mut blob = vec![0u8; b.data_size as usize];
            b.read_data(mem, &mut blob).expect("the map's BTF");
            if let Ok(Some(e)) = h.iter(mem, HtabLimits::default()).next() {
                let mut key = vec![0u8; m.key_size as usize];
                let mut value = vec![0u8; m.value_size as usize];
                h.read_key(mem, &e, &mut key).unwrap();
                h.read_value(mem, &e, &mut value).unwrap();
                let hdr = btf_format::Input {
                    key_type_id: m.btf_key_type_id,
                    value_type_id: m.btf_value_type_id,
                    btf_len: blob.len() as u32,
                    key_len: key.len() as u16,
                    ..Default::default()
                };
                let mut payload = blob.clone();
                payload.extend_from_slice(&key);
                payload.extend_from_slice(&value);
                add(
                    s,
                    "btf_format",
                    &format!("real-{tag}-btf-hash"),
                    input(&hdr, &payload),
                );
                add(s, "btf_offsets", &format!("real-{tag}-map-btf"), blob);
            }
        }
    }

    add(
        s,
        "vmcoreinfo_parse",
        &format!("real-{tag}"),
        k.vmcoreinfo().text().as_bytes().to_vec(),
    );
}

/// Headers and notes of a real ELF dump, its `PT_LOAD`s cut to a page each
/// of real memory: a core that opens whole.
fn elf_slice(dump: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
    use std::io::Read;
    let mut f = std::fs::File::open(dump).ok()?;
    let mut head = vec![0u8; 64 << 10];
    let n = f.read(&mut head).ok()?;
    head.truncate(n);
    let phoff = u64::from_le_bytes(head[32..40].try_into().ok()?) as usize;
    let phnum = u16::from_le_bytes(head[56..58].try_into().ok()?) as usize;
    let ph = |i: usize, o: usize| {
        u64::from_le_bytes(
            head[phoff + 56 * i + o..phoff + 56 * i + o + 8]
                .try_into()
                .unwrap(),
        )
    };
    let mut notes_end = phoff + 56 * phnum;
    for i in 0..phnum {
        let ty = u32::from_le_bytes(head[phoff + 56 * i..phoff + 56 * i + 4].try_into().ok()?);
        if ty == 4 {
            notes_end = notes_end.max((ph(i, 8) + ph(i, 32)) as usize);
        }
    }
    let headers = head.get(..notes_end)?.to_vec();
    let mut whole = headers.clone();
    let mut at = whole.len() as u64;
    for i in 0..phnum {
        let base = phoff + 56 * i;
        let ty = u32::from_le_bytes(whole[base..base + 4].try_into().ok()?);
        if ty != 1 {
            continue;
        }
        let (off, filesz) = (ph(i, 8), ph(i, 32));
        let take = filesz.min(4096);
        let mut page = vec![0u8; take as usize];
        use std::os::unix::fs::FileExt;
        f.read_exact_at(&mut page, off).ok()?;
        whole[base + 8..base + 16].copy_from_slice(&at.to_le_bytes());
        whole[base + 32..base + 40].copy_from_slice(&take.to_le_bytes());
        whole[base + 40..base + 48].copy_from_slice(&take.to_le_bytes());
        whole.extend_from_slice(&page);
        at += take;
    }
    Some((headers, whole))
}

pub fn all(s: &mut Seeds, dir: &Path) {
    for tag in ["6.1-pvh", "6.12-pvh"] {
        let g = dir.join("guests").join(tag);
        let dump = g.join("dump.elf");
        if let Some((headers, whole)) = elf_slice(&dump) {
            if tag.starts_with("6.12") {
                add(
                    s,
                    "elf_core",
                    &format!("real-{tag}-headers-and-notes"),
                    headers,
                );
            }
            add(
                s,
                "elf_core",
                &format!("real-{tag}-a-page-per-segment"),
                whole.clone(),
            );
            add(s, "kcore", &format!("real-{tag}-a-page-per-segment"), whole);
        }
        let ram = g.join("ram.bin");
        let image = match Image::open(&ram) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{}: {e}", ram.display());
                continue;
            }
        };
        match Kernel::open(image, &DiscoverOptions::default()) {
            Ok(k) => {
                guest(s, tag, &k);
                // The page with VMCOREINFO and the ones around it.
                if let bpfmem::VmcoreinfoOrigin::Memory { pa, .. } = k.vmcoreinfo_origin() {
                    let start = pa.get().saturating_sub(0x1000) & !0xfff;
                    let mut mem = vec![0u8; 0x3000];
                    if k.mem()
                        .mem()
                        .read_phys(bpfmem_core::Pa(start), &mut mem)
                        .is_ok()
                    {
                        let mut d = vec![0u8];
                        d.extend_from_slice(&mem);
                        add(s, "vmcoreinfo_scan", &format!("real-{tag}"), d);
                    }
                }
            }
            Err(e) => eprintln!("{}: {e}", ram.display()),
        }
    }
    let kernels = dir.join("kernels");
    for entry in std::fs::read_dir(&kernels).into_iter().flatten().flatten() {
        let vmlinux = entry.path().join("vmlinux");
        let Ok(full) = bpfmem::btf::load_btf_file(&vmlinux) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(sub) = btf::subset(&full, btf::WALKER_STRUCTS) else {
            continue;
        };
        let want = bpfmem::btf::offsets_from_btf(&full).expect("a real kernel's BTF");
        let got = bpfmem::btf::offsets_from_btf(&sub).expect("the subset resolves");
        assert_eq!(got, want, "the subset of {name} resolves as the whole");
        add(
            s,
            "btf_offsets",
            &format!("real-{name}-walker-structs"),
            sub,
        );
    }
}
