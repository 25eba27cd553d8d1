//! VMCOREINFO: the kernel's own description of its layout, found in its memory.
//!
//! At boot `crash_save_vmcoreinfo_init()` (kernel/crash_core.c in 6.1,
//! kernel/vmcore_info.c since 6.9) prints `KEY=VALUE\n` lines into
//! `vmcoreinfo_data`, a zeroed page from `__get_free_pages()`, and copies them as
//! the desc of the ELF note `vmcoreinfo_note` (zeroed pages from
//! `alloc_pages_exact()`): `Elf64_Nhdr { n_namesz = 11, n_descsz, n_type = 0 }`,
//! the name `"VMCOREINFO\0"` padded to 12 bytes, then the text, so the text starts
//! 0x18 bytes into a page. Both copies are at most `VMCOREINFO_BYTES` (`PAGE_SIZE`)
//! long; `vmcoreinfo_append_str()` silently truncates beyond that.
//!
//! The formats are the `VMCOREINFO_*` macros of include/linux/crash_core.h (6.1)
//! and include/linux/vmcore_info.h (6.12):
//!
//! | line | format |
//! |------|--------|
//! | `OSRELEASE=` | `%s` (`init_uts_ns.name.release`) |
//! | `BUILD-ID=` | `%20phN` (40 hex digits) |
//! | `PAGESIZE=` | `%ld` |
//! | `SYMBOL(name)=` | `%lx`, no `0x` |
//! | `OFFSET(struct.member)=`, `SIZE(name)=`, `LENGTH(name)=` | `%lu` |
//! | `NUMBER(name)=` | `%ld`, but a few are printed raw as `0x%lx` (`NUMBER(VMALLOC_START)` in 6.12, most of arm64's and riscv's) |
//! | `KERNELOFFSET=` | `%lx`, no `0x` (x86 `arch_crash_save_vmcoreinfo()`) |
//! | `NUMBER(pgtable_l5_enabled)=` | `%d`: 0 or 1 (x86) |
//! | `CRASHTIME=` | `%lld`, appended by `crash_save_vmcoreinfo()` at a crash |
//!
//! x86's `arch_crash_save_vmcoreinfo()` lives in arch/x86/kernel/machine_kexec_64.c
//! (6.1) and arch/x86/kernel/vmcore_info_64.c (6.12); it adds `NUMBER(phys_base)`
//! (signed: negative under physical KASLR), `SYMBOL(init_top_pgt)` and
//! `KERNELOFFSET`. `SYMBOL(kallsyms_*)` lines exist since 6.0 (the last added
//! was `kallsyms_num_syms`, commit f09bddbd8661 "vmcoreinfo: add kallsyms_num_syms
//! symbol").
//!
//! [`VmcoreInfo::parse`] is a pure decoder of such a text; [`find_vmcoreinfo`]
//! scans physical memory for the best copy of it.

use core::fmt;

use memchr::memmem::Finder;
use zerocopy::byteorder::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::Pa;
use crate::error::{Error, Location, Result};
use crate::phys::PhysRead;

/// The most VMCOREINFO text the kernel keeps (`VMCOREINFO_BYTES` = `PAGE_SIZE`,
/// 4096 on x86-64).
pub const VMCOREINFO_BYTES: usize = 4096;

/// How many `OSRELEASE=` hits [`find_vmcoreinfo`] examines before it gives up: a
/// guest can plant the string everywhere, and each hit costs a 4 KiB read.
pub const MAX_CANDIDATES: u32 = 256;

/// The longest `init_uts_ns.name.release` (`__NEW_UTS_LEN`,
/// include/uapi/linux/utsname.h).
const UTS_RELEASE_MAX: usize = 64;

/// What every copy starts with.
const NEEDLE: &[u8] = b"OSRELEASE=";

/// Bytes a chunk shares with the one before it, so a needle cut by a chunk
/// boundary is found in the later chunk; shorter than the needle, so no needle is
/// found twice.
const OVERLAP: usize = NEEDLE.len().saturating_sub(1);

/// Bytes of physical memory read per step of the scan.
const SCAN_CHUNK: usize = 64 * 1024;

/// The note name with its padding to 4 bytes (`VMCOREINFO_NOTE_NAME_BYTES`).
const NOTE_NAME: [u8; 12] = *b"VMCOREINFO\0\0";

/// `n_namesz`: `strlen("VMCOREINFO") + 1`.
const NOTE_NAMESZ: u32 = 11;

/// The note header and padded name in front of the text.
const NOTE_HEAD_BYTES: usize = core::mem::size_of::<VmcoreinfoNoteHead>();

const WHAT: &str = "VMCOREINFO";
const WHAT_OSRELEASE: &str = "VMCOREINFO OSRELEASE";
const WHAT_PAGESIZE: &str = "VMCOREINFO PAGESIZE";

/// `Elf64_Nhdr` (include/uapi/linux/elf.h).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Elf64_Nhdr {
    n_namesz: U32,
    n_descsz: U32,
    n_type: U32,
}

/// What `append_elf_note()` writes in front of the text in `vmcoreinfo_note`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct VmcoreinfoNoteHead {
    nhdr: Elf64_Nhdr,
    name: [u8; 12],
}

const _: () = assert!(NOTE_HEAD_BYTES == 0x18);

/// Addresses of the kallsyms tables, from `SYMBOL(kallsyms_*)` lines. Each is
/// `None` when the text has no such line (kernels before 6.0 have none). 6.1
/// and 6.12 export `names`, `num_syms`, `token_table`, `token_index`, `offsets`
/// and `relative_base`; kernels without `CONFIG_KALLSYMS_BASE_RELATIVE` export
/// `addresses` instead of the last two; `markers` and `seqs_of_names` are read
/// when a kernel (or a patch) exports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KallsymsSymbols {
    /// `kallsyms_num_syms`.
    pub num_syms: Option<u64>,
    /// `kallsyms_names`.
    pub names: Option<u64>,
    /// `kallsyms_markers`.
    pub markers: Option<u64>,
    /// `kallsyms_token_table`.
    pub token_table: Option<u64>,
    /// `kallsyms_token_index`.
    pub token_index: Option<u64>,
    /// `kallsyms_offsets`.
    pub offsets: Option<u64>,
    /// `kallsyms_relative_base`.
    pub relative_base: Option<u64>,
    /// `kallsyms_addresses`.
    pub addresses: Option<u64>,
    /// `kallsyms_seqs_of_names`.
    pub seqs_of_names: Option<u64>,
}

#[derive(Clone, Copy)]
enum Kallsym {
    NumSyms,
    Names,
    Markers,
    TokenTable,
    TokenIndex,
    Offsets,
    RelativeBase,
    Addresses,
    SeqsOfNames,
}

impl KallsymsSymbols {
    fn slot(&mut self, which: Kallsym) -> &mut Option<u64> {
        match which {
            Kallsym::NumSyms => &mut self.num_syms,
            Kallsym::Names => &mut self.names,
            Kallsym::Markers => &mut self.markers,
            Kallsym::TokenTable => &mut self.token_table,
            Kallsym::TokenIndex => &mut self.token_index,
            Kallsym::Offsets => &mut self.offsets,
            Kallsym::RelativeBase => &mut self.relative_base,
            Kallsym::Addresses => &mut self.addresses,
            Kallsym::SeqsOfNames => &mut self.seqs_of_names,
        }
    }
}

/// A key [`VmcoreInfo::parse`] decodes into a typed field.
#[derive(Clone, Copy)]
enum Field {
    PageSize,
    KernelOffset,
    PhysBase,
    InitTopPgt,
    SwapperPgDir,
    L5,
    Kallsyms(Kallsym),
}

struct Typed {
    key: &'static str,
    /// The `what` of the error when the value does not parse.
    what: &'static str,
    field: Field,
}

macro_rules! typed {
    ($key:literal, $field:expr) => {
        Typed {
            key: $key,
            what: concat!("VMCOREINFO ", $key),
            field: $field,
        }
    };
}

const TYPED: &[Typed] = &[
    typed!("PAGESIZE", Field::PageSize),
    typed!("KERNELOFFSET", Field::KernelOffset),
    typed!("NUMBER(phys_base)", Field::PhysBase),
    typed!("SYMBOL(init_top_pgt)", Field::InitTopPgt),
    typed!("SYMBOL(swapper_pg_dir)", Field::SwapperPgDir),
    typed!("NUMBER(pgtable_l5_enabled)", Field::L5),
    typed!(
        "SYMBOL(kallsyms_num_syms)",
        Field::Kallsyms(Kallsym::NumSyms)
    ),
    typed!("SYMBOL(kallsyms_names)", Field::Kallsyms(Kallsym::Names)),
    typed!(
        "SYMBOL(kallsyms_markers)",
        Field::Kallsyms(Kallsym::Markers)
    ),
    typed!(
        "SYMBOL(kallsyms_token_table)",
        Field::Kallsyms(Kallsym::TokenTable)
    ),
    typed!(
        "SYMBOL(kallsyms_token_index)",
        Field::Kallsyms(Kallsym::TokenIndex)
    ),
    typed!(
        "SYMBOL(kallsyms_offsets)",
        Field::Kallsyms(Kallsym::Offsets)
    ),
    typed!(
        "SYMBOL(kallsyms_relative_base)",
        Field::Kallsyms(Kallsym::RelativeBase)
    ),
    typed!(
        "SYMBOL(kallsyms_addresses)",
        Field::Kallsyms(Kallsym::Addresses)
    ),
    typed!(
        "SYMBOL(kallsyms_seqs_of_names)",
        Field::Kallsyms(Kallsym::SeqsOfNames)
    ),
];

/// A checked copy of a VMCOREINFO text, with the fields walkers need decoded.
///
/// Owns its bytes: nothing borrows guest memory. When a key appears more than
/// once, the first line wins, for the typed fields and [`VmcoreInfo::get`] alike.
#[derive(Clone, PartialEq, Eq)]
pub struct VmcoreInfo {
    buf: [u8; VMCOREINFO_BYTES],
    len: usize,
    /// Byte range of the `OSRELEASE` value in `buf`.
    osrelease: (usize, usize),
    page_size: u64,
    kernel_offset: Option<u64>,
    phys_base: Option<i64>,
    init_top_pgt: Option<u64>,
    swapper_pg_dir: Option<u64>,
    pgtable_l5_enabled: Option<bool>,
    kallsyms: KallsymsSymbols,
    complete: bool,
}

impl VmcoreInfo {
    /// Parse a VMCOREINFO text. It ends at the first NUL or the end of `text`,
    /// whichever comes first, and must be at most [`VMCOREINFO_BYTES`] long
    /// ([`Error::Limit`]) and UTF-8 ([`Error::Malformed`] at the first bad byte).
    ///
    /// `OSRELEASE` (not empty, not the `%s` of a format string) and `PAGESIZE`
    /// (a power of two) are required ([`Error::NotFound`] when missing). A typed
    /// key whose value does not parse is [`Error::Malformed`] at the offset of its
    /// line. Lines without `=` are skipped; other keys are kept as text.
    pub fn parse(text: &[u8]) -> Result<Self> {
        // Look for the NUL only as far as it can matter.
        let window = text.get(..=VMCOREINFO_BYTES).unwrap_or(text);
        let len = memchr::memchr(0, window).unwrap_or(window.len());
        if len > VMCOREINFO_BYTES {
            return Err(Error::limit(
                WHAT,
                Location::Offset(VMCOREINFO_BYTES as u64),
                VMCOREINFO_BYTES as u64,
            ));
        }
        let bytes = window.get(..len).unwrap_or_default();
        let text = core::str::from_utf8(bytes)
            .map_err(|e| Error::malformed(WHAT, Location::Offset(e.valid_up_to() as u64)))?;

        let mut info = VmcoreInfo {
            buf: [0; VMCOREINFO_BYTES],
            len,
            osrelease: (0, 0),
            page_size: 0,
            kernel_offset: None,
            phys_base: None,
            init_top_pgt: None,
            swapper_pg_dir: None,
            pgtable_l5_enabled: None,
            kallsyms: KallsymsSymbols::default(),
            complete: false,
        };
        info.buf
            .get_mut(..len)
            .ok_or(Error::limit(WHAT, Location::None, VMCOREINFO_BYTES as u64))?
            .copy_from_slice(bytes);

        let mut osrelease = None;
        let mut page_size = None;
        for (at, key, value) in lines(text) {
            let here = Location::Offset(at as u64);
            if key == "OSRELEASE" {
                // The rodata format string `OSRELEASE=%s\n` is not a copy.
                if value.is_empty() || value == "%s" || value.len() > UTS_RELEASE_MAX {
                    return Err(Error::malformed(WHAT_OSRELEASE, here));
                }
                let start = at.saturating_add(key.len()).saturating_add(1);
                first(&mut osrelease, (start, start.saturating_add(value.len())));
                continue;
            }
            if key.starts_with("SYMBOL(") {
                info.complete = true;
            }
            let Some(t) = TYPED.iter().find(|t| t.key == key) else {
                continue;
            };
            let bad = Error::malformed(t.what, here);
            match t.field {
                Field::PageSize => {
                    let v = parse_dec(value)
                        .filter(|v| v.is_power_of_two())
                        .ok_or(bad)?;
                    first(&mut page_size, v);
                }
                Field::KernelOffset => first(&mut info.kernel_offset, parse_hex(value).ok_or(bad)?),
                Field::PhysBase => first(&mut info.phys_base, parse_number(value).ok_or(bad)?),
                Field::InitTopPgt => first(&mut info.init_top_pgt, parse_hex(value).ok_or(bad)?),
                Field::SwapperPgDir => {
                    first(&mut info.swapper_pg_dir, parse_hex(value).ok_or(bad)?)
                }
                Field::L5 => {
                    let v = match value {
                        "0" => false,
                        "1" => true,
                        _ => return Err(bad),
                    };
                    first(&mut info.pgtable_l5_enabled, v);
                }
                Field::Kallsyms(which) => {
                    first(info.kallsyms.slot(which), parse_hex(value).ok_or(bad)?)
                }
            }
        }
        info.osrelease = osrelease.ok_or(Error::NotFound {
            what: WHAT_OSRELEASE,
        })?;
        info.page_size = page_size.ok_or(Error::NotFound {
            what: WHAT_PAGESIZE,
        })?;
        Ok(info)
    }

    /// Parse the desc of a `VMCOREINFO` ELF note (from `/proc/kcore`, a vmcore,
    /// or `/sys/kernel/vmcoreinfo`'s address): the same text as
    /// [`VmcoreInfo::parse`] takes.
    pub fn from_note_desc(desc: &[u8]) -> Result<Self> {
        Self::parse(desc)
    }

    /// The whole text, without the terminating NUL.
    pub fn text(&self) -> &str {
        // Checked by `parse`; a second check is the price of no `unsafe`.
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }

    /// `OSRELEASE`: the kernel release, as `uname -r` prints it.
    pub fn osrelease(&self) -> &str {
        let (start, end) = self.osrelease;
        self.text().get(start..end).unwrap_or_default()
    }

    /// `PAGESIZE`, a power of two.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// `KERNELOFFSET`: the virtual KASLR offset (`kaslr_offset()`).
    pub fn kernel_offset(&self) -> Option<u64> {
        self.kernel_offset
    }

    /// `NUMBER(phys_base)` (x86-64): physical load address minus the link-time
    /// one; negative when physical KASLR loads the kernel lower.
    pub fn phys_base(&self) -> Option<i64> {
        self.phys_base
    }

    /// `SYMBOL(init_top_pgt)` (x86-64): the kernel's top-level page table.
    pub fn init_top_pgt(&self) -> Option<u64> {
        self.init_top_pgt
    }

    /// `SYMBOL(swapper_pg_dir)` (on x86-64 the same table as `init_top_pgt`).
    pub fn swapper_pg_dir(&self) -> Option<u64> {
        self.swapper_pg_dir
    }

    /// `NUMBER(pgtable_l5_enabled)` (x86-64): whether paging has 5 levels.
    pub fn pgtable_l5_enabled(&self) -> Option<bool> {
        self.pgtable_l5_enabled
    }

    /// The `SYMBOL(kallsyms_*)` addresses.
    pub fn kallsyms(&self) -> &KallsymsSymbols {
        &self.kallsyms
    }

    /// Whether the text has at least one `SYMBOL(` line. A copy without one is
    /// truncated, or not VMCOREINFO at all.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The `(key, value)` pairs, in order; lines without `=` are left out.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        lines(self.text()).map(|(_, key, value)| (key, value))
    }

    /// The value of the first line with exactly this key (`"OSRELEASE"`,
    /// `"SYMBOL(map_idr)"`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// `SYMBOL(name)`, or `None` when missing or not hex.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        parse_hex(self.wrapped("SYMBOL", name)?)
    }

    /// `NUMBER(name)`, or `None` when missing or not a number. Values the kernel
    /// prints as `0x%lx` are returned as the same 64 bits.
    pub fn number(&self, name: &str) -> Option<i64> {
        parse_number(self.wrapped("NUMBER", name)?)
    }

    /// `OFFSET(name)`, such as `OFFSET(uts_namespace.name)`.
    pub fn offset(&self, name: &str) -> Option<u64> {
        parse_dec(self.wrapped("OFFSET", name)?)
    }

    /// `SIZE(name)`.
    pub fn size(&self, name: &str) -> Option<u64> {
        parse_dec(self.wrapped("SIZE", name)?)
    }

    /// `LENGTH(name)`.
    pub fn length(&self, name: &str) -> Option<u64> {
        parse_dec(self.wrapped("LENGTH", name)?)
    }

    /// The value of `kind(name)`, without building the key.
    fn wrapped(&self, kind: &str, name: &str) -> Option<&str> {
        self.entries()
            .find(|&(k, _)| {
                k.strip_prefix(kind)
                    .and_then(|k| k.strip_prefix('('))
                    .and_then(|k| k.strip_suffix(')'))
                    == Some(name)
            })
            .map(|(_, v)| v)
    }
}

impl fmt::Debug for VmcoreInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmcoreInfo")
            .field("osrelease", &self.osrelease())
            .field("len", &self.len)
            .field("page_size", &self.page_size)
            .field("kernel_offset", &self.kernel_offset)
            .field("phys_base", &self.phys_base)
            .field("init_top_pgt", &self.init_top_pgt)
            .field("swapper_pg_dir", &self.swapper_pg_dir)
            .field("pgtable_l5_enabled", &self.pgtable_l5_enabled)
            .field("kallsyms", &self.kallsyms)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

/// Store `v` unless a value is already there.
fn first<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

/// The `KEY=VALUE` lines of `text` with the offset of each line; lines without
/// `=` or with an empty key are skipped.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    let mut next = 0usize;
    text.split('\n').filter_map(move |line| {
        let at = next;
        next = next.saturating_add(line.len()).saturating_add(1);
        let (key, value) = line.split_once('=')?;
        (!key.is_empty()).then_some((at, key, value))
    })
}

/// `%lx`: hex digits, no prefix, no sign.
fn parse_hex(s: &str) -> Option<u64> {
    parse_radix(s, 16)
}

/// `%lu`: decimal digits, no sign.
fn parse_dec(s: &str) -> Option<u64> {
    parse_radix(s, 10)
}

/// Digits only: unlike `from_str_radix`, no `+` is accepted.
fn parse_radix(s: &str, radix: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.chars().try_fold(0u64, |acc, c| {
        acc.checked_mul(u64::from(radix))?
            .checked_add(u64::from(c.to_digit(radix)?))
    })
}

/// `%ld`, or `0x%lx` reinterpreted as two's complement.
fn parse_number(s: &str) -> Option<i64> {
    if let Some(hex) = s.strip_prefix("0x") {
        return parse_hex(hex).map(|v| i64::from_ne_bytes(v.to_ne_bytes()));
    }
    match s.strip_prefix('-') {
        Some(mag) => 0i64.checked_sub_unsigned(parse_dec(mag)?),
        None => i64::try_from(parse_dec(s)?).ok(),
    }
}

/// How a copy found in memory is framed, from least to most trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Framing {
    /// Anywhere else: a stale or planted copy, say.
    Bare,
    /// At the start of a page, like `vmcoreinfo_data`.
    PageAligned,
    /// The desc of a well-formed `VMCOREINFO` ELF note, like `vmcoreinfo_note`.
    Note,
}

/// A copy of VMCOREINFO found in physical memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The parsed copy.
    pub info: VmcoreInfo,
    /// Where its text (`OSRELEASE=...`) starts; for [`Framing::Note`] the note
    /// header is 0x18 bytes before.
    pub pa: Pa,
    /// How it is framed.
    pub framing: Framing,
}

/// Scan all of `mem` for VMCOREINFO and return the most trusted complete copy:
/// a note-framed one (the scan stops at the first), else the first page-aligned
/// one, else the first bare one.
///
/// Walks the ranges `mem.next_range` reports, so a source that reports none is
/// searched in vain. At most [`MAX_CANDIDATES`] hits are examined; past that the
/// best copy so far is returned, or [`Error::Limit`] if there is none. With no
/// complete copy, the first failed read is returned if a read failed (ranges that
/// fail to read are skipped), else [`Error::NotFound`].
pub fn find_vmcoreinfo<M: PhysRead + ?Sized>(mem: &M) -> Result<Found> {
    find_vmcoreinfo_in(mem, Pa(0), Pa(u64::MAX))
}

/// [`find_vmcoreinfo`], reading only `start..end`: a copy that runs past `end`
/// is cut there, like one at the end of memory.
pub fn find_vmcoreinfo_in<M: PhysRead + ?Sized>(mem: &M, start: Pa, end: Pa) -> Result<Found> {
    let mut scan = Scanner::<M, SCAN_CHUNK>::new(mem, MAX_CANDIDATES);
    scan.run(start, end);
    scan.finish()
}

enum Flow {
    Continue,
    Stop,
}

/// The scan's state. `CHUNK` is a parameter so tests can put chunk boundaries
/// everywhere.
struct Scanner<'m, M: ?Sized, const CHUNK: usize> {
    mem: &'m M,
    budget: u32,
    examined: u32,
    best: Option<Found>,
    /// The hit that found the budget spent.
    over_budget: Option<Pa>,
    read_error: Option<Error>,
}

impl<'m, M: PhysRead + ?Sized, const CHUNK: usize> Scanner<'m, M, CHUNK> {
    fn new(mem: &'m M, budget: u32) -> Self {
        const { assert!(CHUNK > OVERLAP) };
        Scanner {
            mem,
            budget,
            examined: 0,
            best: None,
            over_budget: None,
            read_error: None,
        }
    }

    fn run(&mut self, start: Pa, end: Pa) {
        let finder = Finder::new(NEEDLE);
        let mut chunk = [0u8; CHUNK];
        let mut cursor = start;
        while cursor < end {
            let Some((run_start, run_end)) = self.next_run(cursor, end) else {
                return;
            };
            if let Flow::Stop = self.scan_run(&finder, &mut chunk, run_start, run_end) {
                return;
            }
            cursor = run_end;
        }
    }

    /// The next run of backed memory at or after `from`, clipped to `end`, with
    /// ranges that touch merged so that a copy across them is whole.
    fn next_run(&self, from: Pa, end: Pa) -> Option<(Pa, Pa)> {
        let r = self.mem.next_range(from)?;
        let start = r.start.max(from);
        let mut run_end = Pa(r.start.get().saturating_add(r.len)).min(end);
        if run_end <= start {
            // Nothing left before `end`, or a source that does not move forward.
            return None;
        }
        // Each step moves `run_end` forward, or stops.
        while run_end < end {
            match self.mem.next_range(run_end) {
                Some(n) if n.start == run_end && n.len > 0 => {
                    run_end = Pa(run_end.get().saturating_add(n.len)).min(end);
                }
                _ => break,
            }
        }
        Some((start, run_end))
    }

    /// Search `run_start..run_end` a chunk at a time.
    fn scan_run(
        &mut self,
        finder: &Finder<'_>,
        chunk: &mut [u8; CHUNK],
        run_start: Pa,
        run_end: Pa,
    ) -> Flow {
        let mut pos = run_start;
        loop {
            let Some(remaining) = run_end.offset_from(pos) else {
                return Flow::Continue;
            };
            let n = clamp_len(remaining, CHUNK);
            let Some(buf) = chunk.get_mut(..n) else {
                return Flow::Continue;
            };
            match self.mem.read_phys(pos, buf) {
                Ok(()) => {
                    for i in finder.find_iter(buf) {
                        let Some(hit) = pos.checked_add(i as u64) else {
                            return Flow::Stop;
                        };
                        if let Flow::Stop = self.examine(hit, run_end) {
                            return Flow::Stop;
                        }
                    }
                }
                Err(e) => first(&mut self.read_error, e),
            }
            if n as u64 >= remaining {
                return Flow::Continue;
            }
            // `n` is `CHUNK` here, larger than `OVERLAP`: the scan moves forward.
            match pos.checked_add(n.saturating_sub(OVERLAP) as u64) {
                Some(next) => pos = next,
                None => return Flow::Continue,
            }
        }
    }

    /// Read, parse and rank the copy whose text starts at `hit`.
    fn examine(&mut self, hit: Pa, run_end: Pa) -> Flow {
        if self.examined >= self.budget {
            self.over_budget = Some(hit);
            return Flow::Stop;
        }
        self.examined = self.examined.saturating_add(1);

        let avail = run_end.offset_from(hit).unwrap_or(0);
        let mut text = [0u8; VMCOREINFO_BYTES];
        let Some(text) = text.get_mut(..clamp_len(avail, VMCOREINFO_BYTES)) else {
            return Flow::Continue;
        };
        if let Err(e) = self.mem.read_phys(hit, text) {
            first(&mut self.read_error, e);
            return Flow::Continue;
        }
        let text = candidate_text(text, text.len() < VMCOREINFO_BYTES);
        let info = match VmcoreInfo::parse(text) {
            Ok(info) if info.is_complete() => info,
            _ => return Flow::Continue,
        };

        let mut head = [0u8; NOTE_HEAD_BYTES];
        let note = hit
            .checked_sub(NOTE_HEAD_BYTES as u64)
            .is_some_and(|at| self.mem.read_phys(at, &mut head).is_ok())
            && note_frames(&head, text.len());
        let framing = if note {
            Framing::Note
        } else if hit.page_offset(VMCOREINFO_BYTES as u64) == 0 {
            Framing::PageAligned
        } else {
            Framing::Bare
        };

        if self.best.as_ref().is_none_or(|b| framing > b.framing) {
            self.best = Some(Found {
                info,
                pa: hit,
                framing,
            });
        }
        match framing {
            Framing::Note => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    fn finish(self) -> Result<Found> {
        if let Some(best) = self.best {
            return Ok(best);
        }
        if let Some(at) = self.over_budget {
            return Err(Error::limit(
                "VMCOREINFO candidates",
                at,
                u64::from(self.budget),
            ));
        }
        Err(self.read_error.unwrap_or(Error::NotFound { what: WHAT }))
    }
}

/// `avail` as a length of at most `max`.
fn clamp_len(avail: u64, max: usize) -> usize {
    usize::try_from(avail).map_or(max, |a| a.min(max))
}

/// The text of a candidate read into `bytes`: up to the first NUL. Without one,
/// a read cut short by the end of memory (`clipped`) drops its last, partial line
/// (a cut `KERNELOFFSET=` would fail to parse, and a cut value would be wrong);
/// a full `VMCOREINFO_BYTES` is kept whole, as the kernel truncates it.
fn candidate_text(bytes: &[u8], clipped: bool) -> &[u8] {
    if let Some(nul) = memchr::memchr(0, bytes) {
        return bytes.get(..nul).unwrap_or_default();
    }
    if !clipped {
        return bytes;
    }
    match memchr::memrchr(b'\n', bytes) {
        Some(nl) => bytes.get(..=nl).unwrap_or_default(),
        None => bytes,
    }
}

/// Whether `head`, the bytes before a text of `text_len` bytes, is the header
/// `append_elf_note()` writes for `vmcoreinfo_note` with a desc that is exactly
/// that text. The kernel's desc is `vmcoreinfo_size` bytes of text followed by
/// NUL padding, so the lengths agree; a copy whose text stops short of its
/// desc was cut off (seen: a user-space copy of `/proc/kcore`'s note whose
/// buffer ran onto a physical page that belongs to someone else).
fn note_frames(head: &[u8; NOTE_HEAD_BYTES], text_len: usize) -> bool {
    let Ok(h) = VmcoreinfoNoteHead::read_from_bytes(head) else {
        return false;
    };
    let descsz = usize::try_from(h.nhdr.n_descsz.get()).unwrap_or(usize::MAX);
    h.nhdr.n_namesz.get() == NOTE_NAMESZ
        && h.nhdr.n_type.get() == 0
        && h.name == NOTE_NAME
        && descsz == text_len
        && descsz <= VMCOREINFO_BYTES
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::phys::{Flat, PhysRange, Region, RegionMap};

    /// An x86-64 6.1 VMCOREINFO (Debian cloud kernel) with physical KASLR below
    /// the link address.
    const LINUX_6_1: &str = "\
OSRELEASE=6.1.0-28-cloud-amd64
BUILD-ID=4b3c0a1e9f2d7c6b5a4938271605f4e3d2c1b0a9
PAGESIZE=4096
SYMBOL(init_uts_ns)=ffffffffa7613680
OFFSET(uts_namespace.name)=0
SYMBOL(node_online_map)=ffffffffa770c5c8
SYMBOL(swapper_pg_dir)=ffffffffa760a000
SYMBOL(_stext)=ffffffffa5a00000
SYMBOL(vmap_area_list)=ffffffffa765e3d0
SYMBOL(mem_section)=ffff8f2d7ffd0000
LENGTH(mem_section)=2048
SIZE(mem_section)=16
OFFSET(mem_section.section_mem_map)=0
NUMBER(SECTION_SIZE_BITS)=27
NUMBER(MAX_PHYSMEM_BITS)=46
SIZE(page)=64
SIZE(pglist_data)=174336
SIZE(zone)=1600
SIZE(free_area)=88
SIZE(list_head)=16
SIZE(nodemask_t)=128
OFFSET(page.flags)=0
OFFSET(page._refcount)=52
OFFSET(page.mapping)=24
OFFSET(page.lru)=8
OFFSET(page._mapcount)=48
OFFSET(page.private)=40
OFFSET(page.compound_head)=8
OFFSET(pglist_data.node_zones)=0
OFFSET(pglist_data.nr_zones)=173568
OFFSET(pglist_data.node_start_pfn)=173576
OFFSET(pglist_data.node_spanned_pages)=173592
OFFSET(pglist_data.node_id)=173600
OFFSET(zone.free_area)=192
OFFSET(zone.vm_stat)=1408
OFFSET(zone.spanned_pages)=96
OFFSET(free_area.free_list)=0
OFFSET(list_head.next)=0
OFFSET(list_head.prev)=8
OFFSET(vmap_area.va_start)=0
OFFSET(vmap_area.list)=40
LENGTH(zone.free_area)=11
SYMBOL(prb)=ffffffffa761c9d0
SYMBOL(printk_rb_static)=ffffffffa761ca40
SYMBOL(clear_seq)=ffffffffa7ae5f40
SIZE(printk_ringbuffer)=80
OFFSET(printk_ringbuffer.desc_ring)=0
LENGTH(free_area.free_list)=6
NUMBER(NR_FREE_PAGES)=0
NUMBER(PG_lru)=4
NUMBER(PG_private)=13
NUMBER(PG_swapcache)=10
NUMBER(PG_swapbacked)=19
NUMBER(PG_slab)=9
NUMBER(PG_hwpoison)=23
NUMBER(PG_head_mask)=65536
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129
NUMBER(HUGETLB_PAGE_DTOR)=2
NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257
SYMBOL(kallsyms_names)=ffffffffa6ed1e28
SYMBOL(kallsyms_num_syms)=ffffffffa6ed1e20
SYMBOL(kallsyms_token_table)=ffffffffa70a3f98
SYMBOL(kallsyms_token_index)=ffffffffa70a4338
SYMBOL(kallsyms_offsets)=ffffffffa6e18c30
SYMBOL(kallsyms_relative_base)=ffffffffa6ed1e18
NUMBER(phys_base)=-1040187392
SYMBOL(init_top_pgt)=ffffffffa760a000
NUMBER(pgtable_l5_enabled)=0
SYMBOL(node_data)=ffffffffa770a9e0
LENGTH(node_data)=1024
KERNELOFFSET=24a00000
NUMBER(KERNEL_IMAGE_SIZE)=1073741824
NUMBER(sme_mask)=0
";

    /// An x86-64 6.12 VMCOREINFO with 5-level paging, kallsyms symbols, a raw
    /// `0x` NUMBER, and the CRASHTIME a crash appends.
    const LINUX_6_12: &str = "\
OSRELEASE=6.12.9+bpo-amd64
BUILD-ID=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c
PAGESIZE=4096
SYMBOL(init_uts_ns)=ffffffff8bc1a6a0
OFFSET(uts_namespace.name)=0
SYMBOL(node_online_map)=ffffffff8bd2d5e8
SYMBOL(swapper_pg_dir)=ffffffff8bc0e000
SYMBOL(_stext)=ffffffff89e00000
NUMBER(VMALLOC_START)=0xff4b9a8000000000
SYMBOL(vmemmap)=ffd4000000000000
SYMBOL(mem_section)=ff40d5c27ffd1000
LENGTH(mem_section)=8192
SIZE(mem_section)=16
OFFSET(mem_section.section_mem_map)=0
NUMBER(SECTION_SIZE_BITS)=27
NUMBER(MAX_PHYSMEM_BITS)=52
SIZE(page)=64
OFFSET(page.flags)=0
OFFSET(page._refcount)=52
OFFSET(page.compound_head)=8
LENGTH(zone.free_area)=11
NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-134217728
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456
SYMBOL(kallsyms_names)=ffffffff8b0d7c48
SYMBOL(kallsyms_num_syms)=ffffffff8b0d7c40
SYMBOL(kallsyms_token_table)=ffffffff8b2a4d18
SYMBOL(kallsyms_token_index)=ffffffff8b2a50b8
SYMBOL(kallsyms_offsets)=ffffffff8b014d40
SYMBOL(kallsyms_relative_base)=ffffffff8b0d7c38
NUMBER(phys_base)=3154116608
SYMBOL(init_top_pgt)=ffffffff8bc0e000
NUMBER(pgtable_l5_enabled)=1
SYMBOL(node_data)=ffffffff8bd2b9e0
LENGTH(node_data)=1024
KERNELOFFSET=8a00000
NUMBER(KERNEL_IMAGE_SIZE)=1073741824
NUMBER(sme_mask)=0
CRASHTIME=1736937242
";

    /// What the kernel's rodata holds: format strings, not a copy.
    const RODATA: &[u8] = b"OSRELEASE=%s\n\0BUILD-ID=%20phN\n\0PAGESIZE=%ld\n\0SYMBOL(%s)=%lx\n\0";

    /// `vmcoreinfo_note` as `append_elf_note()` and `final_note()` write it.
    fn note(text: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&11u32.to_le_bytes());
        v.extend_from_slice(&(text.len() as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&NOTE_NAME);
        v.extend_from_slice(text);
        v.resize(v.len().next_multiple_of(4), 0);
        v.extend_from_slice(&[0; 12]);
        v
    }

    /// `size` bytes of non-zero filler with `parts` written at their offsets.
    fn image(size: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
        let mut v: Vec<u8> = (0..size).map(|i| (i % 251) as u8 | 0x80).collect();
        for &(at, bytes) in parts {
            v[at..at + bytes.len()].copy_from_slice(bytes);
        }
        v
    }

    /// `text` NUL-terminated, as in the zeroed `vmcoreinfo_data` page.
    fn data(text: &str) -> Vec<u8> {
        let mut v = text.as_bytes().to_vec();
        v.push(0);
        v
    }

    #[test]
    fn parses_6_1() {
        let info = VmcoreInfo::parse(LINUX_6_1.as_bytes()).unwrap();
        assert_eq!(info.osrelease(), "6.1.0-28-cloud-amd64");
        assert_eq!(info.page_size(), 4096);
        assert_eq!(info.kernel_offset(), Some(0x24a0_0000));
        assert_eq!(info.phys_base(), Some(-1_040_187_392));
        assert_eq!(info.init_top_pgt(), Some(0xffff_ffff_a760_a000));
        assert_eq!(info.swapper_pg_dir(), info.init_top_pgt());
        assert_eq!(info.pgtable_l5_enabled(), Some(false));
        assert_eq!(info.kallsyms().num_syms, Some(0xffff_ffff_a6ed_1e20));
        assert_eq!(info.kallsyms().relative_base, Some(0xffff_ffff_a6ed_1e18));
        assert_eq!(info.kallsyms().addresses, None);
        assert!(info.is_complete());
        assert_eq!(info.text(), LINUX_6_1);
        assert_eq!(info.get("OSRELEASE"), Some("6.1.0-28-cloud-amd64"));
        assert_eq!(
            info.get("BUILD-ID"),
            Some("4b3c0a1e9f2d7c6b5a4938271605f4e3d2c1b0a9")
        );
        assert_eq!(info.get("SYMBOL(init_uts_ns)"), Some("ffffffffa7613680"));
        assert_eq!(info.get("SYMBOL(map_idr)"), None);
        assert_eq!(info.symbol("init_uts_ns"), Some(0xffff_ffff_a761_3680));
        assert_eq!(info.symbol("mem_section"), Some(0xffff_8f2d_7ffd_0000));
        assert_eq!(info.symbol("map_idr"), None);
        assert_eq!(info.offset("page._refcount"), Some(52));
        assert_eq!(info.offset("uts_namespace.name"), Some(0));
        assert_eq!(info.size("pglist_data"), Some(174_336));
        assert_eq!(info.length("mem_section"), Some(2048));
        assert_eq!(info.number("SECTION_SIZE_BITS"), Some(27));
        assert_eq!(info.number("PAGE_BUDDY_MAPCOUNT_VALUE"), Some(-129));
        assert_eq!(info.number("phys_base"), info.phys_base());
        // `number` does not look at SYMBOL lines and vice versa.
        assert_eq!(info.number("init_uts_ns"), None);
        assert_eq!(info.symbol("phys_base"), None);
        assert_eq!(info.entries().count(), LINUX_6_1.lines().count());
        assert_eq!(
            info.entries().next(),
            Some(("OSRELEASE", "6.1.0-28-cloud-amd64"))
        );
    }

    #[test]
    fn parses_6_12() {
        let info = VmcoreInfo::parse(LINUX_6_12.as_bytes()).unwrap();
        assert_eq!(info.osrelease(), "6.12.9+bpo-amd64");
        assert_eq!(info.kernel_offset(), Some(0x8a0_0000));
        assert_eq!(info.phys_base(), Some(3_154_116_608));
        assert_eq!(info.pgtable_l5_enabled(), Some(true));
        assert_eq!(info.init_top_pgt(), Some(0xffff_ffff_8bc0_e000));
        let k = info.kallsyms();
        assert_eq!(k.names, Some(0xffff_ffff_8b0d_7c48));
        assert_eq!(k.num_syms, Some(0xffff_ffff_8b0d_7c40));
        assert_eq!(k.token_table, Some(0xffff_ffff_8b2a_4d18));
        assert_eq!(k.token_index, Some(0xffff_ffff_8b2a_50b8));
        assert_eq!(k.offsets, Some(0xffff_ffff_8b01_4d40));
        assert_eq!(k.relative_base, Some(0xffff_ffff_8b0d_7c38));
        assert_eq!(
            (k.markers, k.addresses, k.seqs_of_names),
            (None, None, None)
        );
        // Printed as `0x%lx`: the same 64 bits.
        assert_eq!(
            info.number("VMALLOC_START"),
            Some(0xff4b_9a80_0000_0000_u64 as i64)
        );
        assert_eq!(info.number("PAGE_SLAB_MAPCOUNT_VALUE"), Some(-134_217_728));
        assert_eq!(info.get("CRASHTIME"), Some("1736937242"));
    }

    #[test]
    fn parse_is_tolerant() {
        // No final newline, lines without `=`, empty lines, an empty key, unknown
        // keys, CRLF kept as part of the value, and text after a NUL ignored.
        let text = b"junk\n\nOSRELEASE=6.1.0\n=x\nCONFIG_FOO=y\nWEIRD=a=b\r\nPAGESIZE=16384\nSYMBOL(x)=1\0KERNELOFFSET=zz";
        let info = VmcoreInfo::parse(text).unwrap();
        assert_eq!(info.osrelease(), "6.1.0");
        assert_eq!(info.page_size(), 16384);
        assert_eq!(info.get("CONFIG_FOO"), Some("y"));
        assert_eq!(info.get("WEIRD"), Some("a=b\r"));
        assert_eq!(info.get(""), None);
        assert_eq!(info.symbol("x"), Some(1));
        assert_eq!(info.kernel_offset(), None);
        assert!(info.is_complete());
        assert_eq!(info.entries().count(), 5);

        let minimal = VmcoreInfo::parse(b"OSRELEASE=5.15.0\nPAGESIZE=4096").unwrap();
        assert_eq!(minimal.page_size(), 4096);
        assert!(!minimal.is_complete());
        assert_eq!(minimal.kernel_offset(), None);
        assert_eq!(minimal.phys_base(), None);
        assert_eq!(minimal.pgtable_l5_enabled(), None);
    }

    #[test]
    fn kallsyms_without_base_relative() {
        let info = VmcoreInfo::parse(
            b"OSRELEASE=5.19.0\nPAGESIZE=4096\nSYMBOL(kallsyms_addresses)=ffffffff82000000\n",
        )
        .unwrap();
        assert_eq!(info.kallsyms().addresses, Some(0xffff_ffff_8200_0000));
        assert_eq!(info.kallsyms().offsets, None);
        let none = VmcoreInfo::parse(b"OSRELEASE=5.15.0\nPAGESIZE=4096\n").unwrap();
        assert_eq!(none.kallsyms(), &KallsymsSymbols::default());
    }

    #[test]
    fn first_line_wins() {
        let info = VmcoreInfo::parse(
            b"OSRELEASE=a\nOSRELEASE=b\nPAGESIZE=4096\nKERNELOFFSET=1\nKERNELOFFSET=2\n",
        )
        .unwrap();
        assert_eq!(info.osrelease(), "a");
        assert_eq!(info.get("OSRELEASE"), Some("a"));
        assert_eq!(info.kernel_offset(), Some(1));
        // A later duplicate must still be well formed.
        assert_eq!(
            VmcoreInfo::parse(b"OSRELEASE=a\nPAGESIZE=4096\nPAGESIZE=x\n"),
            Err(Error::malformed(
                "VMCOREINFO PAGESIZE",
                Location::Offset(26)
            ))
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            VmcoreInfo::parse(b"OSRELEASE=6.1\xff\nPAGESIZE=4096\n"),
            Err(Error::malformed("VMCOREINFO", Location::Offset(13)))
        );
        assert_eq!(
            VmcoreInfo::parse(b"PAGESIZE=4096\nSYMBOL(x)=1\n"),
            Err(Error::NotFound {
                what: "VMCOREINFO OSRELEASE"
            })
        );
        assert_eq!(
            VmcoreInfo::parse(b""),
            Err(Error::NotFound {
                what: "VMCOREINFO OSRELEASE"
            })
        );
        assert_eq!(
            VmcoreInfo::parse(b"OSRELEASE=6.1\n"),
            Err(Error::NotFound {
                what: "VMCOREINFO PAGESIZE"
            })
        );
        assert_eq!(
            VmcoreInfo::parse(RODATA),
            Err(Error::malformed(
                "VMCOREINFO OSRELEASE",
                Location::Offset(0)
            ))
        );
        assert_eq!(
            VmcoreInfo::parse(b"PAGESIZE=4096\nOSRELEASE=\n"),
            Err(Error::malformed(
                "VMCOREINFO OSRELEASE",
                Location::Offset(14)
            ))
        );
        let long = std::format!("OSRELEASE={}\nPAGESIZE=4096\n", "x".repeat(65));
        assert!(VmcoreInfo::parse(long.as_bytes()).is_err());
        for bad in [
            "0",
            "3000",
            "-4096",
            "+4096",
            "0x1000",
            "",
            "99999999999999999999",
        ] {
            let text = std::format!("OSRELEASE=6.1\nPAGESIZE={bad}\n");
            assert_eq!(
                VmcoreInfo::parse(text.as_bytes()),
                Err(Error::malformed(
                    "VMCOREINFO PAGESIZE",
                    Location::Offset(14)
                )),
                "{bad}"
            );
        }
        let bad_hex = b"OSRELEASE=6.1\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffffg000\n";
        assert_eq!(
            VmcoreInfo::parse(bad_hex),
            Err(Error::malformed(
                "VMCOREINFO SYMBOL(init_top_pgt)",
                Location::Offset(28)
            ))
        );
        let cases: [(&[u8], &str); 6] = [
            (b"KERNELOFFSET=0x1000", "VMCOREINFO KERNELOFFSET"),
            (b"KERNELOFFSET=10000000000000000", "VMCOREINFO KERNELOFFSET"),
            (b"NUMBER(phys_base)=--1", "VMCOREINFO NUMBER(phys_base)"),
            (
                b"NUMBER(pgtable_l5_enabled)=2",
                "VMCOREINFO NUMBER(pgtable_l5_enabled)",
            ),
            (
                b"SYMBOL(kallsyms_names)=",
                "VMCOREINFO SYMBOL(kallsyms_names)",
            ),
            (
                b"SYMBOL(swapper_pg_dir)= 1",
                "VMCOREINFO SYMBOL(swapper_pg_dir)",
            ),
        ];
        for (line, what) in cases {
            let mut text = b"OSRELEASE=6.1\nPAGESIZE=4096\n".to_vec();
            text.extend_from_slice(line);
            assert_eq!(
                VmcoreInfo::parse(&text),
                Err(Error::malformed(what, Location::Offset(28)))
            );
        }
        // Unknown keys are text: a bad value there is not an error.
        let info =
            VmcoreInfo::parse(b"OSRELEASE=6.1\nPAGESIZE=4096\nSYMBOL(map_idr)=zz\n").unwrap();
        assert_eq!(info.symbol("map_idr"), None);
        assert_eq!(info.get("SYMBOL(map_idr)"), Some("zz"));
    }

    #[test]
    fn parse_length_limit() {
        let mut text = b"OSRELEASE=6.1\nPAGESIZE=4096\n".to_vec();
        text.resize(VMCOREINFO_BYTES, b'\n');
        assert!(VmcoreInfo::parse(&text).is_ok());
        text.push(b'\n');
        assert_eq!(
            VmcoreInfo::parse(&text),
            Err(Error::limit("VMCOREINFO", Location::Offset(4096), 4096))
        );
        // A NUL within the limit ends the text: what follows does not count.
        text[100] = 0;
        text.extend_from_slice(&[b'x'; 10_000]);
        assert!(VmcoreInfo::parse(&text).is_ok());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_number("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_number("9223372036854775808"), None);
        assert_eq!(parse_number("-9223372036854775809"), None);
        assert_eq!(parse_number("0xffffffffffffffff"), Some(-1));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("-"), None);
        assert_eq!(parse_number("+1"), None);
        assert_eq!(parse_hex("FFFFffff00000000"), Some(0xffff_ffff_0000_0000));
        assert_eq!(parse_hex("00000000000000000001"), Some(1));
        assert_eq!(parse_hex("1ffffffffffffffff"), None);
        assert_eq!(parse_dec("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_dec("18446744073709551616"), None);
        assert_eq!(parse_dec("１"), None);
    }

    #[test]
    fn note_desc() {
        let n = note(LINUX_6_12.as_bytes());
        let desc = &n[NOTE_HEAD_BYTES..NOTE_HEAD_BYTES + LINUX_6_12.len()];
        let info = VmcoreInfo::from_note_desc(desc).unwrap();
        assert_eq!(info.text(), LINUX_6_12);
        assert!(note_frames(
            n[..NOTE_HEAD_BYTES].try_into().unwrap(),
            desc.len()
        ));
        assert!(!note_frames(
            n[..NOTE_HEAD_BYTES].try_into().unwrap(),
            desc.len() + 1
        ));
    }

    #[test]
    fn note_framing_checks_every_field() {
        let good = note(b"x");
        let head: [u8; NOTE_HEAD_BYTES] = good[..NOTE_HEAD_BYTES].try_into().unwrap();
        assert!(note_frames(&head, 1));
        for (byte, value) in [(0, 10), (4, 0), (8, 1), (12, b'v'), (22, 1), (23, 1)] {
            let mut bad = head;
            bad[byte] = value;
            assert!(!note_frames(&bad, 1), "byte {byte}");
        }
        let mut big = head;
        big[4..8].copy_from_slice(&4097u32.to_le_bytes());
        assert!(!note_frames(&big, 4097));
        big[4..8].copy_from_slice(&4096u32.to_le_bytes());
        assert!(note_frames(&big, 4096));
        // A desc longer than its text: the text was cut off.
        assert!(!note_frames(&big, 1));
    }

    #[test]
    fn note_copy_cut_off_by_a_foreign_page_loses_to_the_kernels_note() {
        // A user-space copy of /proc/kcore's VMCOREINFO note: header and the
        // first lines on one page, the rest of its buffer on a physical page
        // elsewhere; what follows here is someone else's data.
        let full = note(LINUX_6_12.as_bytes());
        let mut cut = full[..NOTE_HEAD_BYTES + 200].to_vec();
        cut.extend_from_slice(&[0u8; 16]);
        let page = data(LINUX_6_1);
        let kernel_note = note(LINUX_6_1.as_bytes());
        let img = image(
            0x40000,
            &[
                (0x0ff0 - 200, &cut),
                (0x8000, &page),
                (0x20000, &kernel_note),
            ],
        );
        let found = find_vmcoreinfo(&Flat::new(Pa(0), &img[..])).unwrap();
        assert_eq!((found.pa, found.framing), (Pa(0x20018), Framing::Note));
        assert!(found.info.phys_base().is_some());
    }

    #[test]
    fn scan_prefers_note_over_page_over_bare() {
        let bare = data(LINUX_6_1);
        let page = data(LINUX_6_1);
        let n = note(LINUX_6_12.as_bytes());
        let img = image(
            0x40000,
            &[
                (0x1234, RODATA),
                (0x5008, &bare),
                (0x10000, &page),
                (0x30000, &n),
            ],
        );
        let mem = Flat::new(Pa(0x100_0000), &img[..]);
        let found = find_vmcoreinfo(&mem).unwrap();
        assert_eq!(found.framing, Framing::Note);
        assert_eq!(found.pa, Pa(0x103_0018));
        assert_eq!(found.info.osrelease(), "6.12.9+bpo-amd64");

        // Without the note, the page-aligned copy beats the earlier bare one.
        let img = image(
            0x40000,
            &[(0x1234, RODATA), (0x5008, &bare), (0x10000, &page)],
        );
        let found = find_vmcoreinfo(&Flat::new(Pa(0), &img[..])).unwrap();
        assert_eq!(
            (found.pa, found.framing),
            (Pa(0x10000), Framing::PageAligned)
        );

        // A bare copy is better than nothing; the format strings never count.
        let img = image(0x40000, &[(0x1234, RODATA), (0x5008, &bare)]);
        let found = find_vmcoreinfo(&Flat::new(Pa(0), &img[..])).unwrap();
        assert_eq!((found.pa, found.framing), (Pa(0x5008), Framing::Bare));

        let img = image(0x40000, &[(0x1234, RODATA)]);
        assert_eq!(
            find_vmcoreinfo(&Flat::new(Pa(0), &img[..])),
            Err(Error::NotFound { what: "VMCOREINFO" })
        );
    }

    #[test]
    fn scan_ignores_incomplete_and_misframed_copies() {
        // A note whose descsz is shorter than its text is not note-framed.
        let mut short = note(LINUX_6_1.as_bytes());
        short[4..8].copy_from_slice(&100u32.to_le_bytes());
        // A copy with no SYMBOL line is not complete.
        let partial = data("OSRELEASE=6.1.0\nPAGESIZE=4096\n");
        let page = data(LINUX_6_12);
        let img = image(
            0x20000,
            &[(0x1000, &short), (0x3000, &partial), (0x8000, &page)],
        );
        let found = find_vmcoreinfo(&Flat::new(Pa(0), &img[..])).unwrap();
        assert_eq!(
            (found.pa, found.framing),
            (Pa(0x8000), Framing::PageAligned)
        );
    }

    #[test]
    fn scan_skips_holes() {
        let n = note(LINUX_6_1.as_bytes());
        let page = data(LINUX_6_12);
        let bytes = image(0x30000, &[(0x2000, &page), (0x21000, &n)]);
        let regions = [
            Region {
                pa: Pa(0x1000),
                len: 0x10000,
                offset: 0,
            },
            Region {
                pa: Pa(0x1_0000_0000),
                len: 0x20000,
                offset: 0x10000,
            },
        ];
        let mem = RegionMap::new(&bytes[..], &regions[..]).unwrap();
        let found = find_vmcoreinfo(&mem).unwrap();
        assert_eq!(found.framing, Framing::Note);
        assert_eq!(found.pa, Pa(0x1_0001_1018));
        assert_eq!(found.info.osrelease(), "6.1.0-28-cloud-amd64");

        // Only the first region.
        let found = find_vmcoreinfo_in(&mem, Pa(0), Pa(0x1_0000_0000)).unwrap();
        assert_eq!(
            (found.pa, found.framing),
            (Pa(0x3000), Framing::PageAligned)
        );
    }

    #[test]
    fn scan_finds_copies_across_chunk_boundaries() {
        for at in [
            SCAN_CHUNK - 10,
            SCAN_CHUNK - 9,
            SCAN_CHUNK - 4,
            SCAN_CHUNK - 1,
            SCAN_CHUNK - 600,
        ] {
            let text = data(LINUX_6_1);
            let img = image(3 * SCAN_CHUNK, &[(at, &text)]);
            let mem = Flat::new(Pa(0), &img[..]);
            let mut scan = Scanner::<_, SCAN_CHUNK>::new(&mem, MAX_CANDIDATES);
            scan.run(Pa(0), Pa(u64::MAX));
            assert_eq!(scan.examined, 1, "at {at:#x}");
            let found = scan.finish().unwrap();
            assert_eq!(found.pa, Pa(at as u64));
            assert_eq!(found.info.text(), LINUX_6_1);
        }
    }

    #[test]
    fn scan_joins_adjacent_regions() {
        // The store is out of order, the physical range is not: a copy across two
        // touching regions is read whole.
        let text = data(LINUX_6_12);
        let mut bytes = image(0x2000, &[]);
        bytes[0x2000 - 700..0x2000].copy_from_slice(&text[..700]);
        bytes[..text.len() - 700].copy_from_slice(&text[700..]);
        let regions = [
            Region {
                pa: Pa(0x8000),
                len: 0x1000,
                offset: 0x1000,
            },
            Region {
                pa: Pa(0x9000),
                len: 0x1000,
                offset: 0,
            },
        ];
        let mem = RegionMap::new(&bytes[..], &regions[..]).unwrap();
        let found = find_vmcoreinfo(&mem).unwrap();
        assert_eq!(found.pa, Pa(0x9000 - 700));
        assert_eq!(found.info.text(), LINUX_6_12);
    }

    #[test]
    fn scan_copy_truncated_by_end_of_memory() {
        // Memory ends in the middle of `KERNELOFFSET=24a00000`: the partial line
        // is dropped, and the rest is still a complete copy.
        let cut = LINUX_6_1.find("KERNELOFFSET=").unwrap() + "KERNELOFFSET=24".len();
        let img = image(0x3000, &[(0x3000 - cut, &LINUX_6_1.as_bytes()[..cut])]);
        let found = find_vmcoreinfo(&Flat::new(Pa(0), &img[..])).unwrap();
        assert_eq!(found.framing, Framing::Bare);
        assert_eq!(found.info.kernel_offset(), None);
        assert_eq!(found.info.init_top_pgt(), Some(0xffff_ffff_a760_a000));
        assert!(found.info.text().ends_with("LENGTH(node_data)=1024\n"));

        // Cut inside the first line: nothing left.
        let img = image(0x3000, &[(0x3000 - 12, b"OSRELEASE=6.")]);
        assert_eq!(
            find_vmcoreinfo(&Flat::new(Pa(0), &img[..])),
            Err(Error::NotFound { what: "VMCOREINFO" })
        );
    }

    #[test]
    fn scan_budget_stops_a_flood() {
        // A guest full of `OSRELEASE=`: the scan stops after the budget.
        let mut img = Vec::new();
        while img.len() < 0x10_0000 {
            img.extend_from_slice(b"OSRELEASE=");
        }
        let mem = Flat::new(Pa(0), &img[..]);
        assert_eq!(
            find_vmcoreinfo(&mem),
            Err(Error::limit(
                "VMCOREINFO candidates",
                Pa(10 * MAX_CANDIDATES as u64),
                MAX_CANDIDATES as u64
            ))
        );

        // A real copy before the flood is still returned.
        let text = data(LINUX_6_1);
        img[..text.len()].copy_from_slice(&text);
        let found = find_vmcoreinfo(&Flat::new(Pa(0), &img[..])).unwrap();
        assert_eq!((found.pa, found.framing), (Pa(0), Framing::PageAligned));

        // A few garbage hits and nothing else: not found.
        let img = image(
            0x10000,
            &[(0x100, b"OSRELEASE=x"), (0x900, b"OSRELEASE=\xff")],
        );
        assert_eq!(
            find_vmcoreinfo(&Flat::new(Pa(0), &img[..])),
            Err(Error::NotFound { what: "VMCOREINFO" })
        );
    }

    /// A source that lists memory it cannot read.
    struct Broken;

    impl PhysRead for Broken {
        fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()> {
            Err(Error::Unmapped {
                pa,
                len: buf.len() as u64,
            })
        }

        fn next_range(&self, from: Pa) -> Option<PhysRange> {
            (from.get() < 0x30000).then_some(PhysRange {
                start: from,
                len: 0x30000 - from.get(),
            })
        }
    }

    #[test]
    fn scan_reports_failed_reads_and_empty_sources() {
        assert_eq!(
            find_vmcoreinfo(&Broken),
            Err(Error::Unmapped {
                pa: Pa(0),
                len: SCAN_CHUNK as u64
            })
        );
        let empty = Flat::new(Pa(0), &[0u8; 0][..]);
        assert_eq!(
            find_vmcoreinfo(&empty),
            Err(Error::NotFound { what: "VMCOREINFO" })
        );
        // A source at the top of the address space.
        let text = data(LINUX_6_1);
        let top = Flat::new(Pa(u64::MAX - 0x2000), image(0x2000, &[(0x10, &text)]));
        let found = find_vmcoreinfo(&top).unwrap();
        assert_eq!(found.pa, Pa(u64::MAX - 0x2000 + 0x10));
    }

    fn planted_image() -> impl proptest::strategy::Strategy<Value = (Vec<u8>, u64)> {
        use proptest::prelude::*;
        let pieces = prop_oneof![
            Just(b"OSRELEASE=".to_vec()),
            Just(RODATA.to_vec()),
            Just(data(LINUX_6_1)),
            Just(LINUX_6_12.as_bytes()[..300].to_vec()),
            Just(note(b"OSRELEASE=6.1\nPAGESIZE=4096\nSYMBOL(a)=1\n")),
            Just(NOTE_NAME.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ];
        (
            proptest::collection::vec(any::<u8>(), 0..12_000),
            proptest::collection::vec((any::<proptest::sample::Index>(), pieces), 0..12),
            prop_oneof![
                Just(0u64),
                Just(0x1000),
                Just(0x123),
                Just(u64::MAX - 0x4000)
            ],
        )
            .prop_map(|(mut bytes, planted, base)| {
                for (at, piece) in planted {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = at.index(bytes.len());
                    let n = piece.len().min(bytes.len() - at);
                    bytes[at..at + n].copy_from_slice(&piece[..n]);
                }
                (bytes, base)
            })
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000)) {
            let _ = VmcoreInfo::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(&[
                        "OSRELEASE", "PAGESIZE", "KERNELOFFSET", "NUMBER(phys_base)",
                        "SYMBOL(init_top_pgt)", "NUMBER(pgtable_l5_enabled)",
                        "SYMBOL(kallsyms_names)", "SYMBOL(x)", "OFFSET(a.b)", "", "=",
                    ][..]),
                    "[-0-9a-fx%s=()\n]{0,20}",
                ),
                0..40,
            ),
        ) {
            let mut text = std::string::String::new();
            for (k, v) in &lines {
                text.push_str(k);
                text.push('=');
                text.push_str(v);
                text.push('\n');
            }
            if let Ok(info) = VmcoreInfo::parse(text.as_bytes()) {
                proptest::prop_assert!(info.page_size().is_power_of_two());
                proptest::prop_assert!(!info.osrelease().is_empty());
                proptest::prop_assert_eq!(info.get("OSRELEASE"), Some(info.osrelease()));
                proptest::prop_assert_eq!(info.text(), &text[..]);
                let _ = (info.symbol("x"), info.offset("a.b"), info.number("phys_base"));
            }
        }

        /// The scan never panics, and its answer does not depend on where chunk
        /// boundaries fall.
        #[test]
        fn scan_never_panics((bytes, base) in planted_image()) {
            let mem = Flat::new(Pa(base), &bytes[..]);
            let big = find_vmcoreinfo(&mem);
            let mut small = Scanner::<_, 24>::new(&mem, MAX_CANDIDATES);
            small.run(Pa(0), Pa(u64::MAX));
            // Every hit is examined exactly once (no note-framed copy stopped
            // the small scan early, or it would have stopped the big one too).
            if !matches!(big, Ok(Found { framing: Framing::Note, .. })) {
                let hits = if mem.next_range(Pa(0)).is_some() {
                    memchr::memmem::find_iter(&bytes, NEEDLE).count()
                } else {
                    0
                };
                proptest::prop_assert_eq!(small.examined as usize, hits);
            }
            proptest::prop_assert_eq!(small.finish(), big);
        }

        /// Holes and region boundaries anywhere.
        #[test]
        fn scan_never_panics_with_holes(
            (bytes, _) in planted_image(),
            cuts in proptest::collection::vec(0usize..12_000, 0..8),
        ) {
            let mut cuts = cuts;
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            cuts.dedup();
            let regions: Vec<Region> = cuts
                .windows(2)
                .enumerate()
                .filter(|&(i, w)| i % 3 != 2 && w[0] < w[1] && w[1] <= bytes.len())
                .map(|(i, w)| Region {
                    pa: Pa((w[0] + i * 0x100) as u64),
                    len: (w[1] - w[0]) as u64,
                    offset: w[0] as u64,
                })
                .collect();
            let mem = RegionMap::new(&bytes[..], &regions[..]).unwrap();
            let big = find_vmcoreinfo(&mem);
            let mut small = Scanner::<_, 24>::new(&mem, MAX_CANDIDATES);
            small.run(Pa(0), Pa(u64::MAX));
            proptest::prop_assert_eq!(small.finish(), big);
        }
    }
}
