//! Discovery: from a physical memory source to a ready view of the kernel in it.
//!
//! [`Kernel::discover`] does, in order, with nothing but the memory:
//! 1. paging: levels, `phys_base` and `init_top_pgt` from VMCOREINFO give a
//!    page-table walker with the kernel-image fast path;
//! 2. kallsyms: the symbol table at the addresses VMCOREINFO names, and every
//!    symbol the walkers need ([`WANTED`]) looked up at once (binary searches of
//!    the kernel's name index where it has one, else one pass over the table);
//! 3. the direct map: `page_offset_base` read from memory, checked against a page
//!    walk before the fast path is trusted;
//! 4. BTF: the kernel's own blob between `__start_BTF` and `__stop_BTF` (or a
//!    file the caller names) turned into [`Offsets`] once;
//! 5. CPUs: `nr_cpu_ids` and `__cpu_possible_mask`.
//!
//! Each step that fails says which step and why ([`DiscoveryError`]).

use std::fmt;
use std::path::PathBuf;

use bpfmem_core::bpf_map::{read_map, MapInfo};
use bpfmem_core::bpf_prog::{bpf_prog_for_each, read_prog, IdrObjects, ProgInfo};
use bpfmem_core::btf::{bpf_btf_for_each, read_btf, BtfObject};
use bpfmem_core::kallsyms::Kallsyms;
use bpfmem_core::paging::{is_canonical, max_physmem, KernelMem, Translator, PUD_SIZE};
use bpfmem_core::vmcoreinfo::VmcoreInfo;
use bpfmem_core::xarray::{idr_find, idr_for_each, IdrIter, XaLimits};
use bpfmem_core::{Error, KernelRead, Kva, Offsets, Pa, PhysRead};

use crate::btf::{self, BtfError};

/// Where the VMCOREINFO in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmcoreinfoOrigin {
    /// The ELF core's VMCOREINFO note (QEMU's `-device vmcoreinfo`, kdump).
    ElfNote,
    /// Found by scanning physical memory.
    Memory {
        pa: Pa,
        framing: bpfmem_core::vmcoreinfo::Framing,
    },
    /// Handed over by the caller.
    Caller,
}

impl fmt::Display for VmcoreinfoOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use bpfmem_core::vmcoreinfo::Framing;
        match self {
            VmcoreinfoOrigin::ElfNote => f.write_str("ELF note"),
            VmcoreinfoOrigin::Memory { pa, framing } => {
                let how = match framing {
                    Framing::Note => "inside a note",
                    Framing::PageAligned => "page aligned",
                    Framing::Bare => "bare text",
                };
                write!(f, "memory at {pa} ({how})")
            }
            VmcoreinfoOrigin::Caller => f.write_str("given by the caller"),
        }
    }
}

/// Where the kernel's BTF came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfOrigin {
    /// The image, `len` bytes at `__start_BTF`.
    Image { start: Kva, len: u64 },
    /// A vmlinux or raw BTF file the caller named.
    File(PathBuf),
}

impl fmt::Display for BtfOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfOrigin::Image { start, len } => write!(f, "image, {len} bytes at {start}"),
            BtfOrigin::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// What [`Kernel::discover`] may take from outside the image.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Read structure layouts from this vmlinux (its `.BTF` section) or raw BTF
    /// file instead of the image's own BTF.
    pub btf_file: Option<PathBuf>,
}

/// The symbols discovery looks up, in one pass over kallsyms.
pub const WANTED: [&str; 9] = [
    "map_idr",
    "prog_idr",
    "btf_idr",
    "page_offset_base",
    "__per_cpu_offset",
    "nr_cpu_ids",
    "__cpu_possible_mask",
    "__start_BTF",
    "__stop_BTF",
];

/// Addresses of the [`WANTED`] symbols, `None` where the kernel has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelSymbols {
    pub map_idr: Option<Kva>,
    pub prog_idr: Option<Kva>,
    pub btf_idr: Option<Kva>,
    pub page_offset_base: Option<Kva>,
    pub per_cpu_offset: Option<Kva>,
    pub nr_cpu_ids: Option<Kva>,
    pub cpu_possible_mask: Option<Kva>,
    pub start_btf: Option<Kva>,
    pub stop_btf: Option<Kva>,
}

impl KernelSymbols {
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Kva>> {
        Some(match name {
            b"map_idr" => &mut self.map_idr,
            b"prog_idr" => &mut self.prog_idr,
            b"btf_idr" => &mut self.btf_idr,
            b"page_offset_base" => &mut self.page_offset_base,
            b"__per_cpu_offset" => &mut self.per_cpu_offset,
            b"nr_cpu_ids" => &mut self.nr_cpu_ids,
            b"__cpu_possible_mask" => &mut self.cpu_possible_mask,
            b"__start_BTF" => &mut self.start_btf,
            b"__stop_BTF" => &mut self.stop_btf,
            _ => return None,
        })
    }

    /// The address of a [`WANTED`] symbol by name.
    pub fn get(&self, name: &str) -> Option<Kva> {
        let mut copy = *self;
        copy.slot(name.as_bytes()).and_then(|s| *s)
    }
}

/// `NR_CPUS` can be at most 8192 on x86-64 (arch/x86/Kconfig, `NR_CPUS_RANGE_END`
/// with MAXSMP); `nr_cpu_ids` above it is not a kernel.
pub const MAX_CPUS: u32 = 8192;

/// The discovery step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Finding and reading VMCOREINFO.
    Vmcoreinfo,
    /// Setting up address translation from VMCOREINFO.
    Paging,
    /// Decoding kallsyms.
    Kallsyms,
    /// Reading and checking `page_offset_base`.
    DirectMap,
    /// Reading the kernel's BTF and resolving structure layouts.
    Btf,
    /// Reading the possible-CPU mask.
    Cpus,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Vmcoreinfo => "VMCOREINFO",
            Step::Paging => "page tables",
            Step::Kallsyms => "kallsyms",
            Step::DirectMap => "direct map",
            Step::Btf => "BTF",
            Step::Cpus => "possible CPUs",
        })
    }
}

/// Discovery failed at `step`.
#[derive(Debug)]
pub struct DiscoveryError {
    pub step: Step,
    pub kind: DiscoveryErrorKind,
}

/// Why a discovery step failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryErrorKind {
    /// Reading or decoding memory failed.
    Memory(Error),
    /// VMCOREINFO (from where it was found) lacks a key this step needs.
    MissingKey(&'static str, VmcoreinfoOrigin),
    /// kallsyms has no symbol of this name.
    MissingSymbol(&'static str),
    /// A value read from memory cannot be what it claims to be.
    Implausible { what: &'static str, value: u64 },
    /// The direct map does not land where the page tables say.
    DirectMapMismatch { base: Kva, walked: Pa, expected: Pa },
    /// BTF could not be had or used.
    Btf(BtfError),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.step)?;
        match &self.kind {
            DiscoveryErrorKind::Memory(e) => write!(f, "{e}"),
            DiscoveryErrorKind::MissingKey(k, from) => {
                write!(f, "VMCOREINFO ({from}) has no {k}")
            }
            DiscoveryErrorKind::MissingSymbol(s) => write!(f, "kallsyms has no symbol {s}"),
            DiscoveryErrorKind::Implausible { what, value } => {
                write!(f, "implausible {what} {value:#x}")
            }
            DiscoveryErrorKind::DirectMapMismatch {
                base,
                walked,
                expected,
            } => write!(
                f,
                "page_offset_base {base} does not map physical memory linearly: \
                 the page tables put {expected} at {walked}"
            ),
            // BtfError prints its own "BTF: " prefix.
            DiscoveryErrorKind::Btf(e) => {
                let text = e.to_string();
                f.write_str(text.strip_prefix("BTF: ").unwrap_or(&text))
            }
        }
    }
}

impl std::error::Error for DiscoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            DiscoveryErrorKind::Memory(e) => Some(e),
            DiscoveryErrorKind::Btf(e) => Some(e),
            _ => None,
        }
    }
}

fn fail(step: Step) -> impl Fn(Error) -> DiscoveryError {
    move |e| DiscoveryError {
        step,
        kind: DiscoveryErrorKind::Memory(e),
    }
}

fn err(step: Step, kind: DiscoveryErrorKind) -> DiscoveryError {
    DiscoveryError { step, kind }
}

/// A kernel found in physical memory: translation, symbols, layouts and CPUs,
/// ready for the walkers.
pub struct Kernel<M> {
    mem: KernelMem<M>,
    vmcoreinfo: VmcoreInfo,
    vmcoreinfo_origin: VmcoreinfoOrigin,
    kallsyms: Kallsyms,
    symbols: KernelSymbols,
    page_offset_base: Kva,
    offsets: Offsets,
    btf_origin: BtfOrigin,
    possible_cpus: Vec<u32>,
    nr_cpu_ids: u32,
    /// Bytes of physical memory the source has.
    phys_size: u64,
}

impl<M: PhysRead> Kernel<M> {
    /// Discover the kernel in `mem`, whose VMCOREINFO the caller already found.
    pub fn discover(
        mem: M,
        vmcoreinfo: VmcoreInfo,
        vmcoreinfo_origin: VmcoreinfoOrigin,
        opts: &DiscoverOptions,
    ) -> Result<Self, DiscoveryError> {
        let info = &vmcoreinfo;
        let missing = |k| {
            err(
                Step::Paging,
                DiscoveryErrorKind::MissingKey(k, vmcoreinfo_origin),
            )
        };
        // NUMBER(pgtable_l5_enabled) exists since v4.17 (commit c100a583601d);
        // older kernels only ran with 4 levels.
        let levels = match info.pgtable_l5_enabled() {
            Some(true) => 5,
            Some(false) | None => 4,
        };
        let phys_base = info
            .phys_base()
            .ok_or_else(|| missing("NUMBER(phys_base)"))?;
        let pgt = info
            .init_top_pgt()
            .or(info.swapper_pg_dir())
            .ok_or_else(|| missing("SYMBOL(init_top_pgt)"))?;
        let tr = Translator::for_kernel(levels, phys_base, pgt).map_err(fail(Step::Paging))?;
        let mut mem = KernelMem::new(mem, tr);
        // The image mapping must reach the top-level table through itself.
        let walked = tr.walk(mem.mem(), Kva(pgt)).map_err(fail(Step::Paging))?;
        if walked.0 != tr.pgd() {
            return Err(err(
                Step::Paging,
                DiscoveryErrorKind::Implausible {
                    what: "init_top_pgt mapping",
                    value: walked.0.get(),
                },
            ));
        }

        let kallsyms = Kallsyms::new(&mem, info.kallsyms(), info.kernel_offset())
            .map_err(fail(Step::Kallsyms))?;
        let symbols = find_symbols(&mem, &kallsyms).map_err(fail(Step::Kallsyms))?;

        let page_offset_base = direct_map(&mem, &symbols, levels)?;
        let tr = tr.with_direct_map(page_offset_base, max_physmem(levels).unwrap_or(0));
        mem = KernelMem::new(mem.into_inner(), tr);

        let (blob, btf_origin) = match &opts.btf_file {
            Some(path) => (
                btf::load_btf_file(path).map_err(|e| err(Step::Btf, DiscoveryErrorKind::Btf(e)))?,
                BtfOrigin::File(path.clone()),
            ),
            None => {
                let need = |s: Option<Kva>, name| {
                    s.ok_or(err(Step::Btf, DiscoveryErrorKind::MissingSymbol(name)))
                };
                let start = need(symbols.start_btf, "__start_BTF")?;
                let stop = need(symbols.stop_btf, "__stop_BTF")?;
                let blob = btf::read_kernel_btf(&mem, start, stop)
                    .map_err(|e| err(Step::Btf, DiscoveryErrorKind::Btf(e)))?;
                let len = blob.len() as u64;
                (blob, BtfOrigin::Image { start, len })
            }
        };
        let offsets =
            btf::offsets_from_btf(&blob).map_err(|e| err(Step::Btf, DiscoveryErrorKind::Btf(e)))?;
        drop(blob);

        let (nr_cpu_ids, possible_cpus) = possible_cpus(&mem, &symbols)?;
        let phys_size = phys_size(mem.mem());

        Ok(Kernel {
            mem,
            vmcoreinfo,
            vmcoreinfo_origin,
            kallsyms,
            symbols,
            page_offset_base,
            offsets,
            btf_origin,
            possible_cpus,
            nr_cpu_ids,
            phys_size,
        })
    }

    /// Bytes of physical memory the source has (the sum of its ranges; 0 for
    /// a source that cannot tell). Nothing the kernel allocated is larger.
    pub fn phys_size(&self) -> u64 {
        self.phys_size
    }

    /// Kernel virtual memory, translated and cached.
    pub fn mem(&self) -> &KernelMem<M> {
        &self.mem
    }

    /// The VMCOREINFO in use.
    pub fn vmcoreinfo(&self) -> &VmcoreInfo {
        &self.vmcoreinfo
    }

    /// Where the VMCOREINFO came from.
    pub fn vmcoreinfo_origin(&self) -> VmcoreinfoOrigin {
        self.vmcoreinfo_origin
    }

    /// The kernel's symbol table.
    pub fn kallsyms(&self) -> &Kallsyms {
        &self.kallsyms
    }

    /// The symbols discovery found.
    pub fn symbols(&self) -> &KernelSymbols {
        &self.symbols
    }

    /// Any symbol by name, from kallsyms (a binary search of its name index,
    /// or a scan of the table where it has none; not cached).
    pub fn symbol(&self, name: &str) -> bpfmem_core::Result<Option<Kva>> {
        if let Some(kva) = self.symbols.get(name) {
            return Ok(Some(kva));
        }
        Ok(self.kallsyms.lookup(&self.mem, name)?.map(Kva))
    }

    /// Paging levels, 4 or 5.
    pub fn paging_levels(&self) -> u8 {
        self.mem.translator().levels()
    }

    /// `page_offset_base`: where the direct map of physical memory starts.
    pub fn page_offset_base(&self) -> Kva {
        self.page_offset_base
    }

    /// Structure layouts, from BTF.
    pub fn offsets(&self) -> &Offsets {
        &self.offsets
    }

    /// Where the BTF behind [`Kernel::offsets`] came from.
    pub fn btf_origin(&self) -> &BtfOrigin {
        &self.btf_origin
    }

    /// The possible CPUs (`cpu_possible_mask`), ascending.
    pub fn possible_cpus(&self) -> &[u32] {
        &self.possible_cpus
    }

    /// `nr_cpu_ids`.
    pub fn nr_cpu_ids(&self) -> u32 {
        self.nr_cpu_ids
    }

    /// Every BPF map in `map_idr`, in id order. Stops for good at the first error.
    pub fn maps(&self) -> Maps<'_, M> {
        Maps {
            kernel: self,
            ids: self
                .symbols
                .map_idr
                .map(|idr| idr_for_each(&self.mem, idr, &self.offsets, XaLimits::default())),
            done: false,
        }
    }

    /// The map with this id, if there is one.
    pub fn map(&self, id: u32) -> bpfmem_core::Result<Option<MapInfo>> {
        let Some(idr) = self.symbols.map_idr else {
            return Err(Error::NotFound { what: "map_idr" });
        };
        match idr_find(&self.mem, idr, u64::from(id), &self.offsets)? {
            Some(kva) => {
                let m = self.read_map(kva)?;
                // map_idr slot `id` holds a map that says otherwise.
                if m.id != id {
                    return Err(Error::malformed("bpf_map.id", kva));
                }
                Ok(Some(m))
            }
            None => Ok(None),
        }
    }

    fn read_map(&self, kva: Kva) -> bpfmem_core::Result<MapInfo> {
        read_map(&self.mem, kva, &self.offsets.bpf_map, &self.offsets.btf)
    }

    /// Every BPF program in `prog_idr`, in id order. Stops for good at the
    /// first error.
    pub fn progs(&self) -> Objects<'_, M, ProgInfo> {
        Objects {
            walk: self
                .symbols
                .prog_idr
                .map(|idr| bpf_prog_for_each(&self.mem, idr, &self.offsets, XaLimits::default())),
            missing: "prog_idr",
            done: false,
        }
    }

    /// The program with this id, if there is one.
    pub fn prog(&self, id: u32) -> bpfmem_core::Result<Option<ProgInfo>> {
        let idr = self
            .symbols
            .prog_idr
            .ok_or(Error::NotFound { what: "prog_idr" })?;
        match idr_find(&self.mem, idr, u64::from(id), &self.offsets)? {
            Some(kva) => {
                let p = read_prog(&self.mem, kva, &self.offsets)?;
                if p.id != id {
                    return Err(Error::malformed("bpf_prog_aux.id", kva));
                }
                Ok(Some(p))
            }
            None => Ok(None),
        }
    }

    /// Every BTF object in `btf_idr` (vmlinux, modules, loaded BTF), in id
    /// order. Stops for good at the first error.
    pub fn btfs(&self) -> Objects<'_, M, BtfObject> {
        Objects {
            walk: self
                .symbols
                .btf_idr
                .map(|idr| bpf_btf_for_each(&self.mem, idr, &self.offsets, XaLimits::default())),
            missing: "btf_idr",
            done: false,
        }
    }

    /// The BTF object with this id, if there is one.
    pub fn btf(&self, id: u32) -> bpfmem_core::Result<Option<BtfObject>> {
        let idr = self
            .symbols
            .btf_idr
            .ok_or(Error::NotFound { what: "btf_idr" })?;
        match idr_find(&self.mem, idr, u64::from(id), &self.offsets)? {
            Some(kva) => {
                let b = read_btf(&self.mem, kva, &self.offsets.btf)?;
                if b.id != id {
                    return Err(Error::malformed("btf.id", kva));
                }
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }
}

/// The walk of [`Kernel::progs`] and [`Kernel::btfs`]: the core walker over
/// the IDR, or the missing symbol as its one error.
pub struct Objects<'a, M, T> {
    walk: Option<IdrObjects<'a, KernelMem<M>, T>>,
    missing: &'static str,
    done: bool,
}

impl<M: PhysRead, T> Objects<'_, M, T> {
    /// The next object, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bpfmem_core::Result<Option<T>> {
        if self.done {
            return Ok(None);
        }
        let r = match &mut self.walk {
            None => Err(Error::NotFound { what: self.missing }),
            Some(walk) => walk.next(),
        };
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }
}

impl<M: PhysRead, T> Iterator for Objects<'_, M, T> {
    type Item = bpfmem_core::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        Objects::next(self).transpose()
    }
}

/// The walk of [`Kernel::maps`].
pub struct Maps<'a, M> {
    kernel: &'a Kernel<M>,
    ids: Option<IdrIter<'a, KernelMem<M>>>,
    done: bool,
}

impl<M: PhysRead> Maps<'_, M> {
    /// The next map, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bpfmem_core::Result<Option<MapInfo>> {
        if self.done {
            return Ok(None);
        }
        let r = match &mut self.ids {
            None => Err(Error::NotFound { what: "map_idr" }),
            Some(ids) => match ids.next() {
                Ok(Some((id, kva))) => self.kernel.read_map(kva).and_then(|m| {
                    if m.id == id {
                        Ok(Some(m))
                    } else {
                        // map_idr slot `id` holds a map that says otherwise.
                        Err(Error::malformed("bpf_map.id", kva))
                    }
                }),
                other => other.map(|_| None),
            },
        };
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }
}

impl<M: PhysRead> Iterator for Maps<'_, M> {
    type Item = bpfmem_core::Result<MapInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        Maps::next(self).transpose()
    }
}

/// Every [`WANTED`] symbol from kallsyms (first of each name).
fn find_symbols<K: KernelRead + ?Sized>(
    k: &K,
    ks: &Kallsyms,
) -> bpfmem_core::Result<KernelSymbols> {
    let mut addrs = [None; WANTED.len()];
    ks.lookup_many(k, &WANTED, &mut addrs)?;
    let mut found = KernelSymbols::default();
    for (name, addr) in WANTED.iter().zip(addrs) {
        if let Some(slot) = found.slot(name.as_bytes()) {
            *slot = addr.map(Kva);
        }
    }
    Ok(found)
}

/// Read `page_offset_base` and check that the direct map it starts really maps
/// physical memory linearly, at the top-level page table's address.
fn direct_map<M: PhysRead>(
    mem: &KernelMem<M>,
    symbols: &KernelSymbols,
    levels: u8,
) -> Result<Kva, DiscoveryError> {
    let at = symbols.page_offset_base.ok_or(err(
        Step::DirectMap,
        DiscoveryErrorKind::MissingSymbol("page_offset_base"),
    ))?;
    let base = Kva(mem.read_kva_u64(at).map_err(fail(Step::DirectMap))?);
    // arch/x86/mm/kaslr.c: regions start PUD-aligned in the kernel half.
    if !is_canonical(base, levels) || base.get() >> 63 == 0 || base.page_offset(PUD_SIZE) != 0 {
        return Err(err(
            Step::DirectMap,
            DiscoveryErrorKind::Implausible {
                what: "page_offset_base",
                value: base.get(),
            },
        ));
    }
    let expected = mem.translator().pgd();
    let probe = base.checked_add(expected.get()).ok_or(err(
        Step::DirectMap,
        DiscoveryErrorKind::Implausible {
            what: "page_offset_base",
            value: base.get(),
        },
    ))?;
    let (walked, _) = mem
        .translator()
        .walk(mem.mem(), probe)
        .map_err(fail(Step::DirectMap))?;
    if walked != expected {
        return Err(err(
            Step::DirectMap,
            DiscoveryErrorKind::DirectMapMismatch {
                base,
                walked,
                expected,
            },
        ));
    }
    Ok(base)
}

/// The sum of the ranges `mem` has, at most 1 TiB of ranges walked.
fn phys_size<M: PhysRead + ?Sized>(mem: &M) -> u64 {
    let mut total = 0u64;
    let mut from = Pa(0);
    for _ in 0..(1 << 20) {
        let Some(r) = mem.next_range(from) else {
            break;
        };
        total = total.saturating_add(r.len);
        match r.start.checked_add(r.len) {
            Some(end) if end > from => from = end,
            _ => break,
        }
    }
    total
}

/// `nr_cpu_ids` and the CPUs set in `__cpu_possible_mask` below it.
fn possible_cpus<M: PhysRead>(
    mem: &KernelMem<M>,
    symbols: &KernelSymbols,
) -> Result<(u32, Vec<u32>), DiscoveryError> {
    let need =
        |s: Option<Kva>, name| s.ok_or(err(Step::Cpus, DiscoveryErrorKind::MissingSymbol(name)));
    let nr_at = need(symbols.nr_cpu_ids, "nr_cpu_ids")?;
    let mask_at = need(symbols.cpu_possible_mask, "__cpu_possible_mask")?;
    let nr = mem.read_kva_u32(nr_at).map_err(fail(Step::Cpus))?;
    if nr == 0 || nr > MAX_CPUS {
        return Err(err(
            Step::Cpus,
            DiscoveryErrorKind::Implausible {
                what: "nr_cpu_ids",
                value: nr.into(),
            },
        ));
    }
    // struct cpumask { DECLARE_BITMAP(bits, NR_CPUS); }: unsigned longs.
    let mut bits = vec![0u8; (nr as usize).div_ceil(64) * 8];
    mem.read_kva(mask_at, &mut bits).map_err(fail(Step::Cpus))?;
    let cpus: Vec<u32> = (0..nr)
        .filter(|&cpu| bits[(cpu / 8) as usize] & (1 << (cpu % 8)) != 0)
        .collect();
    if cpus.is_empty() {
        return Err(err(
            Step::Cpus,
            DiscoveryErrorKind::Implausible {
                what: "__cpu_possible_mask (empty)",
                value: 0,
            },
        ));
    }
    Ok((nr, cpus))
}
