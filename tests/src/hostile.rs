//! Hostile images: a real test-bed image with a few bytes changed where the
//! walkers look, as a malicious guest could change them.
//!
//! [`Patched`] lays byte patches over an image without copying it (a 512 MiB
//! RAM file stays mapped once); [`Facts`] is what a healthy discovery of the same
//! image found, so a case can say where to corrupt in the kernel's own terms;
//! [`WorkingCopy`] applies the same patches to a copy of the RAM file for the
//! `bpfmem` command, and takes them back out afterwards; [`read_everything`]
//! discovers, lists and reads every map of an image into an [`Outcome`] to
//! compare with what the guest reported.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use bpfmem::kernel::{DiscoveryErrorKind, KernelSymbols, Step};
use bpfmem::source::RamFile;
use bpfmem::{
    AccessError, ArenaPageData, BpfMapAccessor, DiscoverOptions, DiscoveryError, Entry, Image,
    Kernel, VmcoreinfoOrigin,
};
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::htab::{Htab, HtabElem, HtabLimits};
use bpfmem_core::paging::{decode_entry, table_index, Entry as Pte, KernelMem, Translator};
use bpfmem_core::phys::PhysRange;
use bpfmem_core::uapi::MapType;
use bpfmem_core::vmcoreinfo::{find_vmcoreinfo, VmcoreInfo, VMCOREINFO_BYTES};
use bpfmem_core::xarray::XaEntry;
use bpfmem_core::{KernelRead, Kva, Offsets, Pa, PhysRead};
use bpfmem_guest_agent::manifest::MapManifest;

use crate::testbed::Guest;

/// Bytes to lay over an image at a physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub pa: Pa,
    pub bytes: Vec<u8>,
}

impl Patch {
    pub fn new(pa: Pa, bytes: impl Into<Vec<u8>>) -> Self {
        Patch {
            pa,
            bytes: bytes.into(),
        }
    }

    pub fn u64(pa: Pa, v: u64) -> Self {
        Patch::new(pa, v.to_le_bytes())
    }

    pub fn u32(pa: Pa, v: u32) -> Self {
        Patch::new(pa, v.to_le_bytes())
    }

    pub fn u8(pa: Pa, v: u8) -> Self {
        Patch::new(pa, [v])
    }

    fn end(&self) -> u64 {
        self.pa.get() + self.bytes.len() as u64
    }
}

/// An image with patches over it: reads copy from the image, then the patches
/// that overlap the read are copied over the result, later patches over
/// earlier ones. Memory ranges are the image's.
pub struct Patched<M> {
    inner: M,
    patches: Vec<Patch>,
}

impl<M> Patched<M> {
    pub fn new(inner: M, patches: Vec<Patch>) -> Self {
        Patched { inner, patches }
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }

    pub fn patches(&self) -> &[Patch] {
        &self.patches
    }
}

impl<M: PhysRead> PhysRead for Patched<M> {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> bpfmem_core::Result<()> {
        self.inner.read_phys(pa, buf)?;
        let start = pa.get();
        let end = start.saturating_add(buf.len() as u64);
        for p in &self.patches {
            let lo = start.max(p.pa.get());
            let hi = end.min(p.end());
            if lo < hi {
                let dst = (lo - start) as usize..(hi - start) as usize;
                let src = (lo - p.pa.get()) as usize..(hi - p.pa.get()) as usize;
                buf[dst].copy_from_slice(&p.bytes[src]);
            }
        }
        Ok(())
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        self.inner.next_range(from)
    }
}

/// One present page-table entry on the way to an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtSlot {
    /// 5 = PGD under LA57 ... 1 = PTE, as in `Error::NotMapped`.
    pub level: u8,
    /// Where the entry is.
    pub slot: Pa,
    /// What it holds.
    pub entry: u64,
    /// Where the table it is in starts.
    pub table: Pa,
}

/// The entries the MMU reads to translate `kva`, top level first, down to the
/// one that maps a page or is not present.
pub fn page_walk<M: PhysRead + ?Sized>(mem: &M, tr: &Translator, kva: Kva) -> Vec<PtSlot> {
    let mut out = Vec::new();
    let mut table = tr.pgd();
    for level in (1..=tr.levels()).rev() {
        let slot = Pa(table.get() + table_index(kva, level).unwrap() * 8);
        let entry = mem.read_u64(slot).expect("page-table entry");
        out.push(PtSlot {
            level,
            slot,
            entry,
            table,
        });
        match decode_entry(entry, level) {
            Pte::Table(next) => table = next,
            _ => break,
        }
    }
    out
}

/// What a healthy discovery of a guest's RAM file found: enough to find any
/// structure the walkers touch, as plain data shared by every case.
pub struct Facts {
    pub translator: Translator,
    pub offsets: Offsets,
    pub symbols: KernelSymbols,
    pub page_offset_base: Kva,
    pub possible_cpus: Vec<u32>,
    pub nr_cpu_ids: u32,
    pub maps: Vec<MapInfo>,
    /// The VMCOREINFO discovery used, and where it was found.
    pub info: VmcoreInfo,
    pub origin: VmcoreinfoOrigin,
    /// Every complete VMCOREINFO copy in RAM.
    pub vmcoreinfo: Vec<VmcoreinfoCopy>,
    /// `pgtable_l5_enabled`: 5 or 4.
    pub levels: u8,
}

impl Facts {
    fn discover(ram: &Path) -> Facts {
        let open = || RamFile::open(ram, Pa(0)).expect("open RAM file");
        let k = Kernel::open(Image::Ram(open()), &DiscoverOptions::default())
            .expect("healthy discovery");
        let maps = k.list_maps().expect("healthy map listing");
        let image = open();
        let vmcoreinfo = vmcoreinfo_copies(&image);
        assert!(!vmcoreinfo.is_empty(), "{}: no VMCOREINFO", ram.display());
        Facts {
            translator: *k.mem().translator(),
            offsets: *k.offsets(),
            symbols: *k.symbols(),
            page_offset_base: k.page_offset_base(),
            possible_cpus: k.possible_cpus().to_vec(),
            nr_cpu_ids: k.nr_cpu_ids(),
            maps,
            info: k.vmcoreinfo().clone(),
            origin: k.vmcoreinfo_origin(),
            vmcoreinfo,
            levels: k.paging_levels(),
        }
    }

    /// The facts of a guest, discovered once per test process.
    pub fn of(g: &Guest) -> &'static Facts {
        static ALL: OnceLock<Mutex<BTreeMap<String, &'static OnceLock<Facts>>>> = OnceLock::new();
        let once: &'static OnceLock<Facts> = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(g.name.clone())
            .or_insert_with(|| Box::leak(Box::default()));
        once.get_or_init(|| Facts::discover(&g.ram))
    }

    /// Kernel virtual memory over `mem`, translated as the healthy kernel does.
    pub fn kmem<M: PhysRead>(&self, mem: M) -> KernelMem<M> {
        KernelMem::new(mem, self.translator)
    }

    /// The map named `name` (the first, for `dup`).
    pub fn map(&self, name: &str) -> &MapInfo {
        self.maps
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no map {name}"))
    }

    /// The kernel's kallsyms table addresses (from VMCOREINFO).
    pub fn kallsyms(&self) -> &bpfmem_core::vmcoreinfo::KallsymsSymbols {
        self.info.kallsyms()
    }
}

/// Where `kva` is in physical memory, by the healthy translation.
pub fn pa_of<M: PhysRead>(k: &KernelMem<M>, kva: Kva) -> Pa {
    k.translate(kva)
        .unwrap_or_else(|e| panic!("translating {kva}: {e}"))
        .0
}

/// `kva + off`.
pub fn at(kva: Kva, off: u32) -> Kva {
    kva.checked_add(u64::from(off)).expect("address overflow")
}

/// Read a pointer-sized value at `kva`.
pub fn read_u64<M: PhysRead>(k: &KernelMem<M>, kva: Kva) -> u64 {
    k.read_kva_u64(kva)
        .unwrap_or_else(|e| panic!("reading {kva}: {e}"))
}

/// A complete VMCOREINFO text found in memory.
#[derive(Clone, Debug)]
pub struct VmcoreinfoCopy {
    /// Where the text (`OSRELEASE=...`) starts.
    pub pa: Pa,
    pub info: VmcoreInfo,
    /// Whether a `VMCOREINFO` ELF note header sits right before it.
    pub in_note: bool,
    /// Whether that note's `n_descsz` is the text's length, as
    /// crash_save_vmcoreinfo() writes it (a stale copy's may not be).
    pub descsz_fits: bool,
}

/// Every complete VMCOREINFO text in `mem` (one with `SYMBOL(` lines), in
/// address order. A plain scan here rather than `find_vmcoreinfo`, which stops
/// at the first note and, built without optimization, takes seconds per pass.
pub fn vmcoreinfo_copies<M: PhysRead>(mem: &M) -> Vec<VmcoreinfoCopy> {
    const NEEDLE: &[u8] = b"OSRELEASE=";
    const CHUNK: usize = 1 << 20;
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK + NEEDLE.len()];
    let mut from = Pa(0);
    while let Some(r) = mem.next_range(from) {
        let end = r.start.get() + r.len;
        let mut pa = r.start.get();
        while pa < end {
            let n = ((end - pa) as usize).min(buf.len());
            mem.read_phys(Pa(pa), &mut buf[..n]).expect("reading RAM");
            let mut i = 0;
            while let Some(j) = buf[i..n].iter().position(|&b| b == b'O') {
                let hit = i + j;
                i = hit + 1;
                if hit >= CHUNK || !buf[hit..n].starts_with(NEEDLE) {
                    continue;
                }
                let at = Pa(pa + hit as u64);
                let mut text = vec![0u8; VMCOREINFO_BYTES];
                let len = (end - at.get()).min(VMCOREINFO_BYTES as u64) as usize;
                mem.read_phys(at, &mut text[..len]).expect("reading RAM");
                let Ok(info) = VmcoreInfo::parse(&text[..len]) else {
                    continue;
                };
                if !info.is_complete() {
                    continue;
                }
                let mut head = [0u8; 0x18];
                let in_note = at.get() >= 0x18
                    && mem.read_phys(Pa(at.get() - 0x18), &mut head).is_ok()
                    && head[..4] == 11u32.to_le_bytes()
                    && head[8..12] == [0; 4]
                    && &head[12..22] == b"VMCOREINFO";
                let descsz_fits = in_note && head[4..8] == (info.text().len() as u32).to_le_bytes();
                out.push(VmcoreinfoCopy {
                    pa: at,
                    info,
                    in_note,
                    descsz_fits,
                });
            }
            pa += CHUNK as u64;
        }
        from = Pa(end);
    }
    out
}

/// Patches that replace the text of every VMCOREINFO copy with `edit(text)`.
/// The new text is NUL-terminated and, where shorter, NUL-padded to the old
/// length, so nothing of the old text shows through; a copy inside an ELF note
/// gets the new length as `n_descsz`, so it still reads as the note it was.
pub fn rewrite_vmcoreinfo(copies: &[VmcoreinfoCopy], edit: impl Fn(&str) -> String) -> Vec<Patch> {
    let mut out = Vec::new();
    for c in copies {
        let old = c.info.text();
        let mut bytes = edit(old).into_bytes();
        let text_len = bytes.len();
        bytes.resize(text_len.max(old.len()) + 1, 0);
        if c.descsz_fits {
            // Elf64_Nhdr.n_descsz (0x14 bytes before the text): the text's
            // length, as crash_save_vmcoreinfo() writes it. A stale note whose
            // length did not fit its text is left so: fitting it would make a
            // copy the scan passes over into one it takes.
            out.push(Patch::u32(Pa(c.pa.get() - 0x14), text_len as u32));
        }
        out.push(Patch::new(c.pa, bytes));
    }
    out
}

/// A physical page of zeros high in RAM, for structures a case makes up.
/// `skip` picks another one.
pub fn free_page<M: PhysRead>(mem: &M, skip: usize) -> Pa {
    let mut page = [0u8; 4096];
    let mut found = 0;
    // From 448 MiB down: high memory a small guest leaves unused.
    let mut pa = 448u64 << 20;
    while pa > 64 << 20 {
        mem.read_phys(Pa(pa), &mut page).expect("reading RAM");
        if page.iter().all(|&b| b == 0) {
            if found == skip {
                return Pa(pa);
            }
            found += 1;
        }
        pa -= 4096;
    }
    panic!("no free page");
}

/// A copy of a guest's RAM file that cases patch for the `bpfmem` command, one
/// case at a time: [`WorkingCopy::lock`] applies patches and takes them back out
/// when the guard drops. Made once per guest and test process, in a directory
/// of this process that later runs remove ([`WorkingCopy::dir`]).
pub struct WorkingCopy {
    path: PathBuf,
    file: File,
    original: PathBuf,
}

/// The patches of one case, applied to a [`WorkingCopy`] until dropped.
pub struct Applied<'a> {
    copy: std::sync::MutexGuard<'a, WorkingCopy>,
    undo: Vec<Patch>,
}

impl Applied<'_> {
    /// The patched RAM file.
    pub fn path(&self) -> &Path {
        &self.copy.path
    }
}

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        // Undo in reverse, so overlapping patches restore the original.
        for p in self.undo.iter().rev() {
            self.copy
                .file
                .write_all_at(&p.bytes, p.pa.get())
                .expect("restoring the working copy");
        }
    }
}

impl WorkingCopy {
    /// This process's directory for copies; directories of processes that
    /// are gone are removed on first use.
    pub fn dir() -> PathBuf {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            let tmp = std::env::temp_dir();
            if let Ok(entries) = fs::read_dir(&tmp) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let Some(pid) = name.strip_prefix("bpfmem-hostile-") else {
                        continue;
                    };
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
            let dir = tmp.join(format!("bpfmem-hostile-{}", std::process::id()));
            fs::create_dir_all(&dir).expect("creating the working directory");
            dir
        })
        .clone()
    }

    /// The working copy of `g`'s RAM file, with `patches` applied until the
    /// returned guard drops. Cases of one guest wait for each other here.
    pub fn lock(g: &Guest, patches: &[Patch]) -> Applied<'static> {
        static COPIES: OnceLock<Mutex<BTreeMap<String, &'static Mutex<WorkingCopy>>>> =
            OnceLock::new();
        let copy: &'static Mutex<WorkingCopy> = {
            let mut all = COPIES
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            all.entry(g.name.clone()).or_insert_with(|| {
                let path = Self::dir().join(format!("{}.ram", g.name));
                fs::copy(&g.ram, &path).expect("copying the RAM file");
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .expect("opening the working copy");
                Box::leak(Box::new(Mutex::new(WorkingCopy {
                    path,
                    file,
                    original: g.ram.clone(),
                })))
            })
        };
        // A case that failed while holding the lock still restored the copy.
        let copy = copy.lock().unwrap_or_else(|e| e.into_inner());
        let original = File::open(&copy.original).expect("opening the RAM file");
        let mut undo = Vec::new();
        for p in patches {
            let mut old = vec![0u8; p.bytes.len()];
            original
                .read_exact_at(&mut old, p.pa.get())
                .expect("reading the original bytes");
            undo.push(Patch::new(p.pa, old));
            copy.file
                .write_all_at(&p.bytes, p.pa.get())
                .expect("patching the working copy");
        }
        Applied { copy, undo }
    }
}

/// The first `len` bytes of `src`, written to `dst` (a file-level case).
pub fn write_prefix(src: &Path, dst: &Path, len: u64) {
    let mut from = File::open(src).expect("opening the image");
    let mut to = File::create(dst).expect("creating the cut copy");
    std::io::copy(&mut std::io::Read::take(&mut from, len), &mut to).expect("copying");
}

/// What reading one map of a (possibly corrupted) image gave.
#[derive(Debug)]
pub struct MapRead {
    pub id: u32,
    pub name: String,
    /// Entries (or arena pages) read before the end or the error.
    pub count: u64,
    /// Whether what was read (entries, and the map's BTF) is exactly what
    /// the guest reported.
    pub as_reported: bool,
    /// The error that ended reading the entries.
    pub error: Option<AccessError>,
    /// For maps with BTF: the blob's length as read, or why it was not.
    pub btf: Option<Result<usize, AccessError>>,
}

/// What discovery, listing and reading every map of an image gave.
#[derive(Debug)]
pub struct Outcome {
    pub discovery: Result<(), DiscoveryError>,
    /// Ids `Kernel::maps` yielded before it ended.
    pub listed: Vec<u32>,
    /// The error that ended the listing, if one did.
    pub listing_error: Option<bpfmem_core::Error>,
    /// Every map the guest reported, read by id (so maps after a break in the
    /// listing are still tried).
    pub maps: Vec<MapRead>,
}

impl Outcome {
    /// The read of the map named `name` (the first of that name).
    pub fn map(&self, name: &str) -> &MapRead {
        self.maps
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no map {name} in the outcome"))
    }
}

/// Keys and values as the guest reported them, sorted.
fn reported(m: &MapManifest) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<(Vec<u8>, Vec<u8>)> = if m.map_type == MapType::ARENA.0 {
        m.arena_pages
            .iter()
            .map(|p| (p.user_addr.to_le_bytes().to_vec(), p.data.0.clone()))
            .collect()
    } else {
        m.entries
            .iter()
            .map(|e| {
                let value = match (&e.value, &e.values) {
                    (Some(v), _) => v.0.clone(),
                    (None, Some(vs)) => vs.iter().flat_map(|v| v.0.clone()).collect(),
                    (None, None) => Vec::new(),
                };
                (e.key.0.clone(), value)
            })
            .collect()
    };
    v.sort();
    v
}

/// Read one map to its end or its first error, comparing with what the guest
/// reported while the count allows (a corrupted map may yield garbage for long).
fn read_map<M: PhysRead>(g: &Guest, k: &Kernel<M>, m: &MapManifest) -> MapRead {
    let want = reported(m);
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut count = 0u64;
    let mut keep = |count: &mut u64, key: &[u8], value: &[u8]| {
        *count += 1;
        if *count <= want.len() as u64 + 1 {
            got.push((key.to_vec(), value.to_vec()));
        }
    };
    let error = if m.map_type == MapType::ARENA.0 {
        match k.arena_pages(m.id) {
            Err(e) => Some(e),
            Ok(mut pages) => {
                let mut p = ArenaPageData {
                    user_addr: 0,
                    data: Vec::new(),
                };
                loop {
                    match pages.next_into(&mut p) {
                        Ok(true) => keep(&mut count, &p.user_addr.to_le_bytes(), &p.data),
                        Ok(false) => break None,
                        Err(e) => break Some(e),
                    }
                }
            }
        }
    } else {
        match k.entries(m.id) {
            Err(e) => Some(e),
            Ok(mut entries) => {
                let mut e = Entry::default();
                loop {
                    match entries.next_into(&mut e) {
                        Ok(true) => keep(&mut count, &e.key, &e.value),
                        Ok(false) => break None,
                        Err(err) => break Some(err),
                    }
                }
            }
        }
    };
    got.sort();
    // The map's BTF object, as `bpftool btf dump map` would fetch it.
    let (btf, btf_ok) = if m.btf_id == 0 {
        (None, true)
    } else {
        let want = g.manifest.btfs.iter().find(|b| b.id == m.btf_id);
        match k.map_btf(m.id) {
            Ok(Some(b)) => {
                let same = want.is_some_and(|w| w.data.0 == b.data);
                (Some(Ok(b.data.len())), same)
            }
            Ok(None) => (Some(Ok(0)), false),
            Err(e) => (Some(Err(e)), false),
        }
    };
    MapRead {
        id: m.id,
        name: m.name.clone(),
        count,
        as_reported: error.is_none() && got == want && btf_ok,
        error,
        btf,
    }
}

/// [`read_everything`] on an image the way `Kernel::open` finds its
/// VMCOREINFO: an ELF core's note when it has a usable one, else a scan.
pub fn read_image(g: &Guest, image: Image) -> Outcome {
    match image.vmcoreinfo() {
        Ok(found) => read_everything(g, image, Some(found)),
        Err(e) => Outcome {
            discovery: Err(DiscoveryError {
                step: Step::Vmcoreinfo,
                kind: DiscoveryErrorKind::Memory(e),
            }),
            listed: Vec::new(),
            listing_error: None,
            maps: Vec::new(),
        },
    }
}

/// Discover the kernel in `mem` the way `Kernel::open` does for a RAM file
/// (or from `info`, when the caller already has the VMCOREINFO and knows
/// where it was found), list its maps, and read every map the guest reported.
pub fn read_everything<M: PhysRead>(
    g: &Guest,
    mem: M,
    info: Option<(VmcoreInfo, VmcoreinfoOrigin)>,
) -> Outcome {
    let found = match info {
        Some(found) => Ok(found),
        None => find_vmcoreinfo(&mem).map(|f| {
            let origin = VmcoreinfoOrigin::Memory {
                pa: f.pa,
                framing: f.framing,
            };
            (f.info, origin)
        }),
    };
    let (info, origin) = match found {
        Ok(f) => f,
        Err(e) => {
            return Outcome {
                discovery: Err(DiscoveryError {
                    step: Step::Vmcoreinfo,
                    kind: DiscoveryErrorKind::Memory(e),
                }),
                listed: Vec::new(),
                listing_error: None,
                maps: Vec::new(),
            }
        }
    };
    let k = match Kernel::discover(mem, info, origin, &DiscoverOptions::default()) {
        Ok(k) => k,
        Err(e) => {
            return Outcome {
                discovery: Err(e),
                listed: Vec::new(),
                listing_error: None,
                maps: Vec::new(),
            }
        }
    };
    let mut listed = Vec::new();
    let mut listing_error = None;
    let mut it = k.maps();
    loop {
        match it.next() {
            Ok(Some(m)) => listed.push(m.id),
            Ok(None) => break,
            Err(e) => {
                listing_error = Some(e);
                break;
            }
        }
    }
    let maps = g.manifest.maps.iter().map(|m| read_map(g, &k, m)).collect();
    Outcome {
        discovery: Ok(()),
        listed,
        listing_error,
        maps,
    }
}

/// `map_idr`'s `xa_head`: where it is, and the root `xa_node` it points to.
pub fn map_idr_root<M: PhysRead>(f: &Facts, k: &KernelMem<M>) -> (Kva, Kva) {
    let idr = f.symbols.map_idr.expect("map_idr");
    let head_at = at(at(idr, f.offsets.idr.idr_rt), f.offsets.xarray.xa_head);
    match decode_entry_xa(read_u64(k, head_at)) {
        XaEntry::Node(root) => (head_at, root),
        other => panic!("map_idr's head is {other:?}, not a node"),
    }
}

fn decode_entry_xa(v: u64) -> XaEntry {
    bpfmem_core::xarray::decode_entry(v)
}

/// Where slot `i` of the `xa_node` at `node` is.
pub fn xa_slot(f: &Facts, node: Kva, i: u32) -> Kva {
    at(node, f.offsets.xa_node.slots + i * 8)
}

/// The elements of a hash map's chains, by bucket, in chain order.
pub fn htab_chains<M: PhysRead>(
    f: &Facts,
    k: &KernelMem<M>,
    m: &MapInfo,
) -> BTreeMap<u32, Vec<HtabElem>> {
    let h = Htab::new(k, m, &f.offsets).expect("healthy bpf_htab");
    let mut it = h.iter(k, HtabLimits::default());
    let mut out: BTreeMap<u32, Vec<HtabElem>> = BTreeMap::new();
    while let Some(e) = it.next().expect("healthy chain") {
        out.entry(e.bucket).or_default().push(e);
    }
    out
}

/// A bucket whose chain has at least `len` elements.
pub fn chain_of_at_least<M: PhysRead>(
    f: &Facts,
    k: &KernelMem<M>,
    m: &MapInfo,
    len: usize,
) -> (u32, Vec<HtabElem>) {
    htab_chains(f, k, m)
        .into_iter()
        .find(|(_, c)| c.len() >= len)
        .unwrap_or_else(|| panic!("{}: no chain of {len}", m.name()))
}

/// A canonical kernel-half address whose top-level page-table entry is not
/// present: nothing is mapped anywhere near it.
pub fn unmapped_kernel_kva<M: PhysRead>(f: &Facts, mem: &M) -> Kva {
    let levels = f.translator.levels();
    let shift = if levels == 5 { 48 } else { 39 };
    let va_bits = if levels == 5 { 57 } else { 48 };
    // Kernel-half entries are 256..512; look from the middle of the half, and
    // past the linear maps the translator takes without a walk.
    for i in (300..480).chain(256..300) {
        let slot = Pa(f.translator.pgd().get() + i * 8);
        if mem.read_u64(slot).expect("pgd entry") & 1 == 0 {
            let low = i << shift;
            // Sign-extend from the top translated bit.
            let kva =
                Kva((((low << (64 - va_bits)) as i64) >> (64 - va_bits)) as u64 + 0x1234_5000);
            if f.translator.fast_path(kva).is_none() {
                return kva;
            }
        }
    }
    panic!("every kernel-half PGD entry is present");
}
