//! ELF core files: QEMU `dump-guest-memory` and kdump `/proc/vmcore`.
//!
//! Both are ELF64 `ET_CORE` files whose `PT_LOAD` segments carry physical memory
//! at `p_paddr`, and whose `PT_NOTE` segments carry per-CPU register notes and,
//! usually, a `VMCOREINFO` note:
//! - QEMU (`dump/dump.c`, `dump-guest-memory` with `paging: false`): one
//!   `PT_NOTE` with a `CORE`/`NT_PRSTATUS` and a `QEMU` note per CPU, plus the
//!   guest's `VMCOREINFO` note when it exposed one (`-device vmcoreinfo` and the
//!   `qemu_fw_cfg` module); then one `PT_LOAD` per RAM block, `p_paddr` = guest
//!   physical address.
//! - kdump (headers from kexec-tools, or `crash_prepare_elf64_headers()` in
//!   `kernel/crash_core.c` for kexec_file_load on 6.x; notes merged by
//!   `fs/proc/vmcore.c`): one `PT_NOTE`; first a `PT_LOAD` for the kernel text
//!   mapping (`p_vaddr` in `__START_KERNEL_map`) whose physical range repeats
//!   part of a RAM segment; then one `PT_LOAD` per RAM range.
//!
//! Overlapping physical ranges are resolved first-come, in program header order:
//! a segment is clipped to the parts no earlier segment covered, and dropped if
//! nothing is left.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::FusedIterator;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};

use bpfmem_core::phys::PhysRange;
use bpfmem_core::{Pa, PhysRead, Region, RegionMap};
use memmap2::Mmap;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{FilePart, SourceError, SourceErrorKind};

/// `Elf64_Ehdr` (`include/uapi/linux/elf.h`), little-endian fields.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
struct Elf64Ehdr {
    e_ident: [u8; 16],
    e_type: U16,
    e_machine: U16,
    e_version: U32,
    e_entry: U64,
    e_phoff: U64,
    e_shoff: U64,
    e_flags: U32,
    e_ehsize: U16,
    e_phentsize: U16,
    e_phnum: U16,
    e_shentsize: U16,
    e_shnum: U16,
    e_shstrndx: U16,
}

/// `Elf64_Phdr`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
struct Elf64Phdr {
    p_type: U32,
    p_flags: U32,
    p_offset: U64,
    p_vaddr: U64,
    p_paddr: U64,
    p_filesz: U64,
    p_memsz: U64,
    p_align: U64,
}

/// `Elf64_Nhdr`, followed by the name and the descriptor, each padded to 4 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
struct Elf64Nhdr {
    n_namesz: U32,
    n_descsz: U32,
    n_type: U32,
}

const ELFMAG: [u8; 4] = *b"\x7fELF";
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const EI_VERSION: usize = 6;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_CORE: u16 = 4;
const EM_X86_64: u16 = 62;
const PN_XNUM: u16 = 0xffff;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_PRSTATUS: u32 = 1;

const EHDR_SIZE: u64 = size_of::<Elf64Ehdr>() as u64;
const PHDR_SIZE: u64 = size_of::<Elf64Phdr>() as u64;
const NHDR_SIZE: u64 = size_of::<Elf64Nhdr>() as u64;

/// At most this many bytes of `PT_NOTE` data are copied out of a core. A note
/// set is a few hundred bytes per CPU plus a few KiB of VMCOREINFO: 16 MiB holds
/// QEMU's notes for more than 8192 CPUs.
const MAX_NOTE_BYTES: u64 = 16 << 20;

/// An ELF core file, mapped, read as physical memory.
pub struct ElfCore {
    path: PathBuf,
    file: std::fs::File,
    mem: RegionMap<Mmap, Vec<Region>>,
    clipped: Vec<Region>,
    /// The `PT_NOTE` segments' bytes, copied out at open and checked there.
    note_bytes: Vec<u8>,
    note_segments: Vec<NoteSegment>,
}

/// One `PT_NOTE` segment inside `ElfCore::note_bytes`.
#[derive(Clone, Copy, Debug)]
pub(super) struct NoteSegment {
    /// Where the segment starts in the file.
    file_offset: u64,
    /// Where it starts in `note_bytes`.
    start: usize,
    len: usize,
}

/// One ELF note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// The name, without its trailing NUL (`b"CORE"`, `b"VMCOREINFO"`).
    pub name: &'a [u8],
    /// The type, in the name's own numbering (`NT_PRSTATUS` = 1 for `CORE`).
    pub n_type: u32,
    /// The descriptor, without padding.
    pub desc: &'a [u8],
    /// File offset of the note's `Elf64_Nhdr`.
    pub offset: u64,
}

/// What to do with `PT_LOAD` segments that run past the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Truncation {
    Refuse,
    Clip,
}

/// An error before the file's path is attached.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) offset: u64,
    pub(super) kind: SourceErrorKind,
}

pub(super) type Parsed<T> = Result<T, Fail>;

impl ElfCore {
    /// Map the core at `path` and check its headers and notes. A `PT_LOAD`
    /// segment that runs past the end of the file is an error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        Self::open_with(path.as_ref(), Truncation::Refuse)
    }

    /// Like [`open`](Self::open), but a `PT_LOAD` segment that runs past the end
    /// of the file (a kdump written to a full disk) is clipped to what the file
    /// holds, and the missing part is recorded in [`clipped`](Self::clipped).
    /// `PT_NOTE` segments must still be whole.
    pub fn open_truncated(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        Self::open_with(path.as_ref(), Truncation::Clip)
    }

    fn open_with(path: &Path, truncation: Truncation) -> Result<Self, SourceError> {
        let (file, map) = super::map_file(path)?;
        let layout = Layout::parse(&map, map.len() as u64, truncation)
            .map_err(|f| SourceError::new(path, Some(f.offset), f.kind))?;
        let mem = super::region_map(path, map, layout.regions)?;
        Ok(ElfCore {
            path: path.to_path_buf(),
            file,
            mem,
            clipped: layout.clipped,
            note_bytes: layout.note_bytes,
            note_segments: layout.note_segments,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The physical memory the file holds, sorted by address, after overlaps
    /// were resolved. `offset` is the file offset of each region's first byte.
    pub fn regions(&self) -> &[Region] {
        self.mem.regions()
    }

    /// The parts of `PT_LOAD` segments that lay past the end of a truncated file
    /// (only [`open_truncated`](Self::open_truncated) accepts those): physical
    /// address and length as the segment described them, and the file offset
    /// where they would have been.
    pub fn clipped(&self) -> &[Region] {
        &self.clipped
    }

    /// All notes of all `PT_NOTE` segments, in file order.
    pub fn notes(&self) -> Notes<'_> {
        Notes {
            bytes: &self.note_bytes,
            segments: &self.note_segments,
            seg: 0,
            pos: 0,
        }
    }

    /// The descriptor of the first note named `VMCOREINFO`: the kernel's
    /// `KEY=value` lines.
    pub fn vmcoreinfo_note(&self) -> Option<&[u8]> {
        self.notes()
            .find(|n| n.name == b"VMCOREINFO")
            .map(|n| n.desc)
    }

    /// The number of `CORE`/`NT_PRSTATUS` notes: one per CPU in both QEMU and
    /// kdump cores.
    pub fn cpu_count(&self) -> usize {
        self.notes()
            .filter(|n| n.name == b"CORE" && n.n_type == NT_PRSTATUS)
            .count()
    }
}

impl PhysRead for ElfCore {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> bpfmem_core::Result<()> {
        super::read_file_regions(&self.file, &self.mem, pa, buf)
    }

    fn prefetch(&self, pa: Pa) {
        super::prefetch_mapped(&self.mem, pa)
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        self.mem.next_range(from)
    }
}

impl fmt::Debug for ElfCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElfCore")
            .field("path", &self.path)
            .field("regions", &self.regions().len())
            .field("clipped", &self.clipped.len())
            .field("note_bytes", &self.note_bytes.len())
            .finish()
    }
}

/// The notes of an [`ElfCore`]; see [`ElfCore::notes`].
#[derive(Clone, Debug)]
pub struct Notes<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) segments: &'a [NoteSegment],
    pub(super) seg: usize,
    pub(super) pos: usize,
}

impl<'a> Iterator for Notes<'a> {
    type Item = Note<'a>;

    fn next(&mut self) -> Option<Note<'a>> {
        loop {
            let s = self.segments.get(self.seg)?;
            let data = self.bytes.get(s.start..s.start.checked_add(s.len)?)?;
            match note_at(data, s.file_offset, self.pos) {
                Ok(Some((note, next))) => {
                    self.pos = next;
                    return Some(note);
                }
                Ok(None) => {
                    self.seg = self.seg.checked_add(1)?;
                    self.pos = 0;
                }
                // Checked at open, so this does not happen; stop for good if it does.
                Err(_) => {
                    self.seg = self.segments.len();
                    return None;
                }
            }
        }
    }
}

impl FusedIterator for Notes<'_> {}

/// The note at `pos` of `seg`, the bytes of a `PT_NOTE` segment that starts at
/// file offset `file_offset`, and the position of the next note; `None` at the
/// end of the segment's notes. The one note parser: open checks with it, and
/// [`Notes`] iterates with it.
fn note_at(seg: &[u8], file_offset: u64, pos: usize) -> Parsed<Option<(Note<'_>, usize)>> {
    let offset = file_offset.saturating_add(pos as u64);
    let segment_end = file_offset.saturating_add(seg.len() as u64);
    let fail = |part, len| Fail {
        offset,
        kind: SourceErrorKind::BadNote {
            part,
            len,
            segment_end,
        },
    };
    let rest = seg.get(pos..).unwrap_or_default();
    let Ok((nhdr, after)) = Elf64Nhdr::read_from_prefix(rest) else {
        // A tail shorter than a note header is fine if it is padding.
        return if rest.iter().all(|&b| b == 0) {
            Ok(None)
        } else {
            Err(fail("note header", NHDR_SIZE))
        };
    };
    let namesz = nhdr.n_namesz.get();
    let descsz = nhdr.n_descsz.get();
    // fs/proc/vmcore.c (update_note_header_size_elf64(), since v3.11) ends a
    // segment's notes at the first n_namesz == 0: what follows is padding.
    if namesz == 0 {
        return Ok(None);
    }
    let name_len = usize::try_from(namesz).map_err(|_| fail("note name", namesz.into()))?;
    let desc_len = usize::try_from(descsz).map_err(|_| fail("note descriptor", descsz.into()))?;
    let name = after
        .get(..name_len)
        .ok_or_else(|| fail("note name", namesz.into()))?;
    // Padding after the last name or descriptor may be cut off by the segment end.
    let after_name = after
        .get(pad4(name_len).min(after.len())..)
        .unwrap_or_default();
    let desc = after_name
        .get(..desc_len)
        .ok_or_else(|| fail("note descriptor", descsz.into()))?;
    let next = size_of::<Elf64Nhdr>()
        .checked_add(after.len().saturating_sub(after_name.len()))
        .and_then(|n| n.checked_add(pad4(desc_len).min(after_name.len())))
        .and_then(|n| n.checked_add(pos))
        .ok_or_else(|| fail("note", NHDR_SIZE))?;
    let note = Note {
        name: name.strip_suffix(&[0]).unwrap_or(name),
        n_type: nhdr.n_type.get(),
        desc,
        offset,
    };
    Ok(Some((note, next)))
}

/// `len` rounded up to a multiple of 4, saturating; callers clamp it to what the
/// segment holds.
fn pad4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// What the headers of a core say, checked against the file.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) regions: Vec<Region>,
    pub(super) clipped: Vec<Region>,
    pub(super) note_bytes: Vec<u8>,
    pub(super) note_segments: Vec<NoteSegment>,
}

impl Layout {
    /// Read the headers of the core whose first bytes are `bytes` (all of it,
    /// for a mapped file; enough for the headers and notes, for a file read
    /// piecewise) and which is `file_len` bytes long. Everything is copied out of
    /// `bytes` before it is checked.
    pub(super) fn parse(bytes: &[u8], file_len: u64, truncation: Truncation) -> Parsed<Layout> {
        let ehdr = read_ehdr(bytes)?;
        let (phoff, table) = phdr_table(bytes, &ehdr)?;

        let mut layout = Layout {
            regions: Vec::new(),
            clipped: Vec::new(),
            note_bytes: Vec::new(),
            note_segments: Vec::new(),
        };
        // Physical ranges claimed so far, merged: start -> end.
        let mut claimed = BTreeMap::new();
        let mut note_total = 0u64;
        for (i, raw) in table.chunks_exact(size_of::<Elf64Phdr>()).enumerate() {
            // `phdr_table` checked e_phnum <= 0xfffe, so neither fallback is taken.
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            let at = (i as u64)
                .checked_mul(PHDR_SIZE)
                .and_then(|o| o.checked_add(phoff))
                .unwrap_or(phoff);
            let Ok(ph) = Elf64Phdr::read_from_bytes(raw) else {
                continue;
            };
            let p_type = ph.p_type.get();
            let filesz = ph.p_filesz.get();
            if (p_type != PT_LOAD && p_type != PT_NOTE) || filesz == 0 {
                continue;
            }
            let bad = |what| Fail {
                offset: at,
                kind: SourceErrorKind::BadSegment { index, what },
            };
            let p_offset = ph.p_offset.get();
            let file_end = p_offset
                .checked_add(filesz)
                .ok_or_else(|| bad("p_offset + p_filesz overflows"))?;
            let truncated = Fail {
                offset: p_offset,
                kind: SourceErrorKind::Truncated {
                    part: FilePart::Segment {
                        index,
                        p_type,
                        len: filesz,
                    },
                    file_len,
                },
            };

            if p_type == PT_NOTE {
                note_total = note_total.saturating_add(filesz);
                if note_total > MAX_NOTE_BYTES {
                    return Err(Fail {
                        offset: at,
                        kind: SourceErrorKind::Limit {
                            what: "PT_NOTE data",
                            value: note_total,
                            limit: MAX_NOTE_BYTES,
                        },
                    });
                }
                if file_end > file_len {
                    return Err(truncated);
                }
                let data = usize::try_from(p_offset)
                    .ok()
                    .zip(usize::try_from(file_end).ok())
                    .and_then(|(s, e)| bytes.get(s..e))
                    .ok_or(truncated)?;
                layout.note_segments.push(NoteSegment {
                    file_offset: p_offset,
                    start: layout.note_bytes.len(),
                    len: data.len(),
                });
                layout.note_bytes.extend_from_slice(data);
                continue;
            }

            // PT_LOAD: bytes between p_filesz and p_memsz are not in the file,
            // so they are absent, not zero.
            if filesz > ph.p_memsz.get() {
                return Err(bad("p_filesz is larger than p_memsz"));
            }
            let pa = ph.p_paddr.get();
            // /proc/kcore (fs/proc/kcore.c) marks segments with no physical
            // address (vmalloc, modules, vmemmap) with p_paddr = -1.
            if pa == u64::MAX {
                continue;
            }
            pa.checked_add(filesz)
                .ok_or_else(|| bad("p_paddr + p_filesz overflows"))?;
            let mut kept = filesz;
            if file_end > file_len {
                if truncation == Truncation::Refuse {
                    return Err(truncated);
                }
                kept = file_len.saturating_sub(p_offset);
                let lost = filesz.saturating_sub(kept);
                layout.clipped.push(Region {
                    pa: Pa(pa.saturating_add(kept)),
                    len: lost,
                    offset: p_offset.saturating_add(kept),
                });
            }
            if kept == 0 {
                continue;
            }
            // Cannot saturate: kept <= filesz, and pa + filesz was checked.
            let end = pa.saturating_add(kept);
            let regions = &mut layout.regions;
            claim(&mut claimed, pa, end, |start, stop| {
                let skip = start.checked_sub(pa)?;
                regions.push(Region {
                    pa: Pa(start),
                    len: stop.checked_sub(start)?,
                    offset: p_offset.checked_add(skip)?,
                });
                Some(())
            })
            .ok_or_else(|| bad("segment arithmetic overflows"))?;
        }
        layout.regions.sort_unstable_by_key(|r| r.pa);

        for s in &layout.note_segments {
            let data = s
                .start
                .checked_add(s.len)
                .and_then(|e| layout.note_bytes.get(s.start..e))
                .unwrap_or_default();
            let mut pos = 0;
            while let Some((_, next)) = note_at(data, s.file_offset, pos)? {
                pos = next;
            }
        }
        Ok(layout)
    }
}

/// Claim `[start, end)` of the physical address space: call `emit` for each
/// part of it that no earlier claim covered, and record it as covered.
/// `claimed` holds disjoint covered ranges (start -> end), merged as they grow,
/// so every range is visited once before it is merged away. `None` if `emit`
/// fails.
fn claim(
    claimed: &mut BTreeMap<u64, u64>,
    start: u64,
    end: u64,
    mut emit: impl FnMut(u64, u64) -> Option<()>,
) -> Option<()> {
    let (mut lo, mut hi) = (start, end);
    // The part of [start, end) not yet looked at is [start, todo).
    let mut todo = end;
    // Covered ranges that overlap or touch [start, end), from the top down.
    while let Some((&a, &b)) = claimed.range(..=end).next_back() {
        if b < start {
            break;
        }
        if b < todo {
            emit(b, todo)?;
        }
        todo = todo.min(a).max(start);
        lo = lo.min(a);
        hi = hi.max(b);
        claimed.remove(&a);
    }
    if todo > start {
        emit(start, todo)?;
    }
    claimed.insert(lo, hi);
    Some(())
}

/// The ELF header, checked: ELF64, little-endian, `ET_CORE`, x86-64.
fn read_ehdr(bytes: &[u8]) -> Parsed<Elf64Ehdr> {
    let file_len = bytes.len() as u64;
    let truncated = || Fail {
        offset: 0,
        kind: SourceErrorKind::Truncated {
            part: FilePart::ElfHeader,
            file_len,
        },
    };
    if !bytes.starts_with(&ELFMAG) {
        return Err(if ELFMAG.starts_with(bytes) {
            truncated()
        } else {
            Fail {
                offset: 0,
                kind: SourceErrorKind::NotElf,
            }
        });
    }
    let (ehdr, _) = Elf64Ehdr::read_from_prefix(bytes).map_err(|_| truncated())?;
    let ident = |i: usize| ehdr.e_ident.get(i).copied().unwrap_or(0);
    let unsupported = |offset: usize, field, value: u64, name, supported| Fail {
        offset: offset as u64,
        kind: SourceErrorKind::Unsupported {
            field,
            value,
            name,
            supported,
        },
    };
    let class = ident(EI_CLASS);
    if class != ELFCLASS64 {
        let name = (class == 1).then_some("ELFCLASS32");
        let only = "only ELFCLASS64 (2) is read";
        return Err(unsupported(EI_CLASS, "EI_CLASS", class.into(), name, only));
    }
    let data = ident(EI_DATA);
    if data != ELFDATA2LSB {
        let name = (data == 2).then_some("ELFDATA2MSB");
        let only = "only ELFDATA2LSB (1) is read";
        return Err(unsupported(EI_DATA, "EI_DATA", data.into(), name, only));
    }
    let version = ident(EI_VERSION);
    if version != EV_CURRENT {
        return Err(Fail {
            offset: EI_VERSION as u64,
            kind: SourceErrorKind::BadHeader {
                field: "EI_VERSION",
                value: version.into(),
                expected: "1 (EV_CURRENT)",
            },
        });
    }
    let e_type = ehdr.e_type.get();
    if e_type != ET_CORE {
        let name = match e_type {
            0 => Some("ET_NONE"),
            1 => Some("ET_REL"),
            2 => Some("ET_EXEC"),
            3 => Some("ET_DYN"),
            _ => None,
        };
        let off = offset_of!(Elf64Ehdr, e_type);
        let only = "only core files, ET_CORE (4), are read";
        return Err(unsupported(off, "e_type", e_type.into(), name, only));
    }
    let e_machine = ehdr.e_machine.get();
    if e_machine != EM_X86_64 {
        let off = offset_of!(Elf64Ehdr, e_machine);
        let only = "only EM_X86_64 (62) is read";
        let name = em_name(e_machine);
        return Err(unsupported(off, "e_machine", e_machine.into(), name, only));
    }
    Ok(ehdr)
}

/// The program header table: its file offset and bytes.
fn phdr_table<'a>(bytes: &'a [u8], ehdr: &Elf64Ehdr) -> Parsed<(u64, &'a [u8])> {
    let bad = |offset: usize, field, value: u64, expected| Fail {
        offset: offset as u64,
        kind: SourceErrorKind::BadHeader {
            field,
            value,
            expected,
        },
    };
    let entsize = ehdr.e_phentsize.get();
    if u64::from(entsize) != PHDR_SIZE {
        let off = offset_of!(Elf64Ehdr, e_phentsize);
        let want = "56 (sizeof(Elf64_Phdr))";
        return Err(bad(off, "e_phentsize", entsize.into(), want));
    }
    let count = ehdr.e_phnum.get();
    let phnum_at = offset_of!(Elf64Ehdr, e_phnum);
    if count == PN_XNUM {
        return Err(Fail {
            offset: phnum_at as u64,
            kind: SourceErrorKind::Unsupported {
                field: "e_phnum",
                value: count.into(),
                name: Some("PN_XNUM"),
                supported: "the real count in section header 0 is not read",
            },
        });
    }
    if count == 0 {
        let want = "at least 1 (a core without program headers holds no memory)";
        return Err(bad(phnum_at, "e_phnum", 0, want));
    }
    let phoff = ehdr.e_phoff.get();
    if phoff < EHDR_SIZE {
        let off = offset_of!(Elf64Ehdr, e_phoff);
        return Err(bad(
            off,
            "e_phoff",
            phoff,
            "at least 0x40 (past the ELF header)",
        ));
    }
    let truncated = Fail {
        offset: phoff,
        kind: SourceErrorKind::Truncated {
            part: FilePart::ProgramHeaders { count, entsize },
            file_len: bytes.len() as u64,
        },
    };
    let table = u64::from(count)
        .checked_mul(PHDR_SIZE)
        .and_then(|size| phoff.checked_add(size))
        .and_then(|end| Some((usize::try_from(phoff).ok()?, usize::try_from(end).ok()?)))
        .and_then(|(start, end)| bytes.get(start..end));
    match table {
        Some(table) => Ok((phoff, table)),
        None => Err(truncated),
    }
}

/// For a core read piecewise: how many of its first bytes hold what
/// [`Layout::parse`] reads (ELF header, program headers, `PT_NOTE` data), given
/// `prefix`, its first bytes read so far. `Ok(None)` when the program header
/// table itself is not in `prefix` yet: read up to [`phdrs_end`] first.
pub(super) fn headers_end(prefix: &[u8]) -> Parsed<Option<u64>> {
    let ehdr = read_ehdr(prefix)?;
    let Ok((_, table)) = phdr_table(prefix, &ehdr) else {
        return Ok(None);
    };
    let mut end = phdrs_end(prefix)?;
    let mut notes = 0u64;
    for raw in table.chunks_exact(size_of::<Elf64Phdr>()) {
        let Ok(ph) = Elf64Phdr::read_from_bytes(raw) else {
            continue;
        };
        if ph.p_type.get() != PT_NOTE {
            continue;
        }
        notes = notes.saturating_add(ph.p_filesz.get());
        end = end.max(ph.p_offset.get().saturating_add(ph.p_filesz.get()));
    }
    if notes > MAX_NOTE_BYTES {
        return Err(Fail {
            offset: ehdr.e_phoff.get(),
            kind: SourceErrorKind::Limit {
                what: "PT_NOTE data",
                value: notes,
                limit: MAX_NOTE_BYTES,
            },
        });
    }
    Ok(Some(end))
}

/// Where the program header table ends, from the ELF header in `prefix`.
pub(super) fn phdrs_end(prefix: &[u8]) -> Parsed<u64> {
    let ehdr = read_ehdr(prefix)?;
    Ok(u64::from(ehdr.e_phnum.get())
        .saturating_mul(PHDR_SIZE)
        .saturating_add(ehdr.e_phoff.get()))
}

/// The `EM_*` name of an ELF machine number, for the ones a Linux core may have.
fn em_name(e_machine: u16) -> Option<&'static str> {
    Some(match e_machine {
        0 => "EM_NONE",
        3 => "EM_386",
        8 => "EM_MIPS",
        20 => "EM_PPC",
        21 => "EM_PPC64",
        22 => "EM_S390",
        40 => "EM_ARM",
        42 => "EM_SH",
        43 => "EM_SPARCV9",
        62 => "EM_X86_64",
        183 => "EM_AARCH64",
        243 => "EM_RISCV",
        258 => "EM_LOONGARCH",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfmem_core::Error;
    use std::io::Write;

    /// One segment for [`build`]: data goes into the file, `p_memsz` defaults
    /// to its length.
    struct Seg {
        p_type: u32,
        p_paddr: u64,
        p_vaddr: u64,
        data: Vec<u8>,
        p_memsz: Option<u64>,
    }

    fn load(pa: u64, data: Vec<u8>) -> Seg {
        Seg {
            p_type: PT_LOAD,
            p_paddr: pa,
            p_vaddr: 0,
            data,
            p_memsz: None,
        }
    }

    fn note_seg(data: Vec<u8>) -> Seg {
        Seg {
            p_type: PT_NOTE,
            p_paddr: 0,
            p_vaddr: 0,
            data,
            p_memsz: Some(0),
        }
    }

    /// Recognisable bytes: `tag` plus the offset modulo a prime, so a read from
    /// the wrong segment or the wrong offset in it shows.
    fn pattern(tag: u8, off: u64) -> u8 {
        tag.wrapping_add((off % 251) as u8)
    }

    fn fill(tag: u8, len: u64) -> Vec<u8> {
        (0..len).map(|i| pattern(tag, i)).collect()
    }

    /// An ELF note, name NUL-terminated, name and desc padded to 4.
    fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut name = name.to_vec();
        name.push(0);
        let nhdr = Elf64Nhdr {
            n_namesz: U32::new(name.len() as u32),
            n_descsz: U32::new(desc.len() as u32),
            n_type: U32::new(n_type),
        };
        let mut out = nhdr.as_bytes().to_vec();
        for part in [&name[..], desc] {
            out.extend_from_slice(part);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        out
    }

    /// An x86-64 ELF64 core: header, program headers at 0x40, then each
    /// segment's data 16-aligned. Returns the bytes and each segment's offset.
    fn build(segs: &[Seg]) -> (Vec<u8>, Vec<u64>) {
        let mut e_ident = [0u8; 16];
        e_ident[..4].copy_from_slice(&ELFMAG);
        e_ident[EI_CLASS] = ELFCLASS64;
        e_ident[EI_DATA] = ELFDATA2LSB;
        e_ident[EI_VERSION] = EV_CURRENT;
        let ehdr = Elf64Ehdr {
            e_ident,
            e_type: U16::new(ET_CORE),
            e_machine: U16::new(EM_X86_64),
            e_version: U32::new(1),
            e_entry: U64::new(0),
            e_phoff: U64::new(EHDR_SIZE),
            e_shoff: U64::new(0),
            e_flags: U32::new(0),
            e_ehsize: U16::new(EHDR_SIZE as u16),
            e_phentsize: U16::new(PHDR_SIZE as u16),
            e_phnum: U16::new(segs.len() as u16),
            e_shentsize: U16::new(0),
            e_shnum: U16::new(0),
            e_shstrndx: U16::new(0),
        };
        let mut offsets = Vec::new();
        let mut off = EHDR_SIZE + PHDR_SIZE * segs.len() as u64;
        for s in segs {
            off = off.next_multiple_of(16);
            offsets.push(off);
            off += s.data.len() as u64;
        }
        let mut out = ehdr.as_bytes().to_vec();
        for (s, &o) in segs.iter().zip(&offsets) {
            let ph = Elf64Phdr {
                p_type: U32::new(s.p_type),
                p_flags: U32::new(0),
                p_offset: U64::new(o),
                p_vaddr: U64::new(s.p_vaddr),
                p_paddr: U64::new(s.p_paddr),
                p_filesz: U64::new(s.data.len() as u64),
                p_memsz: U64::new(s.p_memsz.unwrap_or(s.data.len() as u64)),
                p_align: U64::new(0),
            };
            out.extend_from_slice(ph.as_bytes());
        }
        for (s, &o) in segs.iter().zip(&offsets) {
            out.resize(o as usize, 0);
            out.extend_from_slice(&s.data);
        }
        (out, offsets)
    }

    const VMCOREINFO: &[u8] = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\n";
    const TEXT_PA: u64 = 0x10800;

    fn sample_notes(vmcoreinfo: bool) -> Vec<u8> {
        let mut notes = Vec::new();
        for cpu in 0..2u8 {
            notes.extend(note(b"CORE", NT_PRSTATUS, &[cpu; 336]));
            notes.extend(note(b"QEMU", 0, &[0x51; 0x1b8]));
        }
        if vmcoreinfo {
            notes.extend(note(b"VMCOREINFO", 0, VMCOREINFO));
        }
        notes
    }

    /// A kdump-like core: notes, then the kernel text segment (tag 0xa0), then
    /// RAM at pa 0 (tag 0x10, p_memsz twice p_filesz) and at pa 0x10000 (tag
    /// 0x20, holding the text range), then a segment half covered by RAM (tag
    /// 0x30) and one wholly covered (tag 0x40).
    fn sample_segs(vmcoreinfo: bool) -> Vec<Seg> {
        let mut text = load(TEXT_PA, fill(0xa0, 0x400));
        text.p_vaddr = 0xffff_ffff_8100_0000;
        let mut ram0 = load(0, fill(0x10, 0x1000));
        ram0.p_memsz = Some(0x2000);
        vec![
            note_seg(sample_notes(vmcoreinfo)),
            text,
            ram0,
            load(0x10000, fill(0x20, 0x2000)),
            load(0x11800, fill(0x30, 0x1000)),
            load(0x100, fill(0x40, 0x100)),
        ]
    }

    fn sample() -> (Vec<u8>, Vec<u64>) {
        build(&sample_segs(true))
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        path
    }

    fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<ElfCore, SourceError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "core.elf", bytes);
        let core = ElfCore::open(&path);
        (dir, core)
    }

    #[test]
    fn overlapping_segments_resolve_first_come() {
        let (bytes, off) = sample();
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        let want = [
            Region {
                pa: Pa(0),
                len: 0x1000,
                offset: off[2],
            },
            Region {
                pa: Pa(0x10000),
                len: 0x800,
                offset: off[3],
            },
            Region {
                pa: Pa(TEXT_PA),
                len: 0x400,
                offset: off[1],
            },
            Region {
                pa: Pa(0x10c00),
                len: 0x1400,
                offset: off[3] + 0xc00,
            },
            Region {
                pa: Pa(0x12000),
                len: 0x800,
                offset: off[4] + 0x800,
            },
        ];
        assert_eq!(core.regions(), &want);
        assert!(core.clipped().is_empty());
    }

    #[test]
    fn reads_come_from_the_winning_segment() {
        let (bytes, _) = sample();
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        let byte = |pa| core.read_u8(Pa(pa)).unwrap();
        assert_eq!(byte(0), pattern(0x10, 0));
        assert_eq!(byte(0x150), pattern(0x10, 0x150)); // not the covered tag 0x40
        assert_eq!(byte(0xfff), pattern(0x10, 0xfff));
        assert_eq!(byte(0x10000), pattern(0x20, 0));
        assert_eq!(byte(TEXT_PA), pattern(0xa0, 0));
        assert_eq!(byte(0x10bff), pattern(0xa0, 0x3ff));
        assert_eq!(byte(0x10c00), pattern(0x20, 0xc00));
        assert_eq!(byte(0x11fff), pattern(0x20, 0x1fff));
        assert_eq!(byte(0x12000), pattern(0x30, 0x800));
        assert_eq!(byte(0x127ff), pattern(0x30, 0xfff));
        // Across the RAM/text boundary.
        let mut buf = [0u8; 4];
        core.read_phys(Pa(TEXT_PA - 2), &mut buf).unwrap();
        let want = [
            pattern(0x20, 0x7fe),
            pattern(0x20, 0x7ff),
            pattern(0xa0, 0),
            pattern(0xa0, 1),
        ];
        assert_eq!(buf, want);
        // A whole run across three regions.
        let mut big = vec![0u8; 0x2800];
        core.read_phys(Pa(0x10000), &mut big).unwrap();
        assert_eq!(big[0xc00], pattern(0x20, 0xc00));
    }

    #[test]
    fn memsz_past_filesz_and_holes_are_absent() {
        let (bytes, _) = sample();
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        assert_eq!(
            core.read_u8(Pa(0x1000)),
            Err(Error::Unmapped {
                pa: Pa(0x1000),
                len: 1
            })
        );
        assert!(core.read_u8(Pa(0x8000)).is_err());
        assert!(core.read_u8(Pa(0x12800)).is_err());
        let mut buf = [0u8; 2];
        assert_eq!(
            core.read_phys(Pa(0xfff), &mut buf),
            Err(Error::Unmapped {
                pa: Pa(0x1000),
                len: 1
            })
        );
    }

    #[test]
    fn next_range_skips_holes() {
        let (bytes, _) = sample();
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        let range = |start, len| {
            Some(PhysRange {
                start: Pa(start),
                len,
            })
        };
        assert_eq!(core.next_range(Pa(0)), range(0, 0x1000));
        assert_eq!(core.next_range(Pa(0x1000)), range(0x10000, 0x800));
        assert_eq!(core.next_range(Pa(0x10900)), range(0x10900, 0x300));
        assert_eq!(core.next_range(Pa(0x127ff)), range(0x127ff, 1));
        assert_eq!(core.next_range(Pa(0x12800)), None);
    }

    #[test]
    fn notes_and_vmcoreinfo() {
        let (bytes, off) = sample();
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        let notes: Vec<_> = core.notes().collect();
        assert_eq!(notes.len(), 5);
        let names: Vec<&[u8]> = notes.iter().map(|n| n.name).collect();
        assert_eq!(
            names,
            [&b"CORE"[..], b"QEMU", b"CORE", b"QEMU", b"VMCOREINFO"]
        );
        assert_eq!(notes[0].offset, off[0]);
        assert_eq!(notes[0].n_type, NT_PRSTATUS);
        assert_eq!(notes[0].desc, &[0u8; 336]);
        assert_eq!(notes[2].desc, &[1u8; 336]);
        assert_eq!(notes[1].offset, off[0] + 12 + 8 + 336);
        assert_eq!(core.cpu_count(), 2);
        assert_eq!(core.vmcoreinfo_note(), Some(VMCOREINFO));
        assert_eq!(core.path().file_name().unwrap(), "core.elf");
    }

    #[test]
    fn no_vmcoreinfo_note() {
        let (bytes, _) = build(&sample_segs(false));
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        assert_eq!(core.vmcoreinfo_note(), None);
        assert_eq!(core.cpu_count(), 2);
    }

    #[test]
    fn notes_from_every_segment_and_padding_ends_a_segment() {
        // kdump style: zero padding after the notes of a segment; a second
        // PT_NOTE segment; a tail shorter than a note header.
        let mut first = note(b"CORE", NT_PRSTATUS, &[7; 8]);
        first.extend([0u8; 40]);
        let mut second = note(b"VMCOREINFO", 0, b"A=1\n");
        second.extend([0u8; 5]);
        let (bytes, off) = build(&[note_seg(first), note_seg(second), load(0, fill(1, 0x100))]);
        let (_dir, core) = open_bytes(&bytes);
        let core = core.unwrap();
        let offsets: Vec<u64> = core.notes().map(|n| n.offset).collect();
        assert_eq!(offsets, [off[0], off[1]]);
        assert_eq!(core.vmcoreinfo_note(), Some(&b"A=1\n"[..]));
        assert_eq!(core.cpu_count(), 1);
    }

    #[test]
    fn last_note_may_lack_final_padding() {
        let mut n = note(b"VMCOREINFO", 0, b"AB");
        n.truncate(n.len() - 2);
        let (bytes, _) = build(&[note_seg(n), load(0, fill(1, 0x10))]);
        let (_dir, core) = open_bytes(&bytes);
        assert_eq!(core.unwrap().vmcoreinfo_note(), Some(&b"AB"[..]));
    }

    #[test]
    fn truncated_core_is_refused_or_clipped() {
        let (mut bytes, off) = sample();
        // Cut the file 0x300 bytes into the RAM segment at pa 0x10000, which
        // also cuts off the two segments after it.
        bytes.truncate(off[3] as usize + 0x300);
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "short.elf", &bytes);
        let err = ElfCore::open(&path).unwrap_err();
        assert_eq!(err.offset(), Some(off[3]));
        assert!(matches!(err.kind(), SourceErrorKind::Truncated { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: offset {:#x}: PT_LOAD segment 3 (0x2000 bytes) runs past the end \
                 of the file ({:#x} bytes)",
                path.display(),
                off[3],
                bytes.len()
            )
        );

        let core = ElfCore::open_truncated(&path).unwrap();
        assert_eq!(
            core.clipped(),
            &[
                Region {
                    pa: Pa(0x10300),
                    len: 0x1d00,
                    offset: off[3] + 0x300
                },
                Region {
                    pa: Pa(0x11800),
                    len: 0x1000,
                    offset: off[4]
                },
                // Lost from the file, though RAM at pa 0 covers it.
                Region {
                    pa: Pa(0x100),
                    len: 0x100,
                    offset: off[5]
                },
            ]
        );
        assert_eq!(core.read_u8(Pa(0x102ff)).unwrap(), pattern(0x20, 0x2ff));
        assert!(core.read_u8(Pa(0x10300)).is_err());
        // The text segment came first and is whole.
        assert_eq!(core.read_u8(Pa(TEXT_PA)).unwrap(), pattern(0xa0, 0));
        assert_eq!(core.read_u8(Pa(0x150)).unwrap(), pattern(0x10, 0x150));
        assert_eq!(core.cpu_count(), 2);
    }

    /// Open `bytes` as `hostile.elf` and check the error names the file, the
    /// offset and `needle`, on one line.
    #[track_caller]
    fn assert_fails(bytes: &[u8], offset: u64, needle: &str) -> SourceError {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "hostile.elf", bytes);
        let err = ElfCore::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("hostile.elf: "), "{msg}");
        assert!(msg.contains(&format!(": offset {offset:#x}: ")), "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(err.offset(), Some(offset));
        // The truncated mode fails the same way on anything but PT_LOAD data.
        let again = ElfCore::open_truncated(&path).unwrap_err();
        assert_eq!(again.to_string(), msg);
        err
    }

    fn set(bytes: &mut [u8], at: usize, val: &[u8]) {
        bytes[at..at + val.len()].copy_from_slice(val);
    }

    fn phdr_at(i: usize) -> usize {
        EHDR_SIZE as usize + i * PHDR_SIZE as usize
    }

    #[test]
    fn empty_file() {
        let err = assert_fails(&[], 0, "the file is empty");
        assert!(matches!(err.kind(), SourceErrorKind::Empty));
    }

    #[test]
    fn garbage_is_not_elf() {
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let err = assert_fails(&garbage, 0, "not an ELF file");
        assert!(matches!(err.kind(), SourceErrorKind::NotElf));
        assert_fails(b"MZ", 0, "not an ELF file");
    }

    #[test]
    fn short_elf_header() {
        let (bytes, _) = sample();
        assert_fails(
            &bytes[..3],
            0,
            "ELF header (64 bytes) runs past the end of the file (0x3 bytes)",
        );
        assert_fails(
            &bytes[..63],
            0,
            "ELF header (64 bytes) runs past the end of the file (0x3f bytes)",
        );
    }

    #[test]
    fn elf32_is_unsupported() {
        let (mut bytes, _) = sample();
        bytes[EI_CLASS] = 1;
        assert_fails(&bytes, 4, "unsupported EI_CLASS 1 (ELFCLASS32)");
    }

    #[test]
    fn big_endian_is_unsupported() {
        let (mut bytes, _) = sample();
        bytes[EI_DATA] = 2;
        assert_fails(&bytes, 5, "unsupported EI_DATA 2 (ELFDATA2MSB)");
    }

    #[test]
    fn bad_ident_version() {
        let (mut bytes, _) = sample();
        bytes[EI_VERSION] = 0;
        assert_fails(&bytes, 6, "EI_VERSION is 0x0, expected 1");
    }

    #[test]
    fn executable_is_not_a_core() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x10, &2u16.to_le_bytes());
        assert_fails(&bytes, 0x10, "unsupported e_type 2 (ET_EXEC)");
    }

    #[test]
    fn aarch64_core_names_the_machine() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x12, &183u16.to_le_bytes());
        assert_fails(
            &bytes,
            0x12,
            "unsupported e_machine 183 (EM_AARCH64): only EM_X86_64",
        );
        set(&mut bytes, 0x12, &0x1234u16.to_le_bytes());
        assert_fails(&bytes, 0x12, "unsupported e_machine 4660: only EM_X86_64");
    }

    #[test]
    fn bad_phentsize() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x36, &32u16.to_le_bytes());
        assert_fails(&bytes, 0x36, "e_phentsize is 0x20, expected 56");
    }

    #[test]
    fn pn_xnum_is_unsupported() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x38, &PN_XNUM.to_le_bytes());
        assert_fails(&bytes, 0x38, "unsupported e_phnum 65535 (PN_XNUM)");
    }

    #[test]
    fn no_program_headers() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x38, &0u16.to_le_bytes());
        assert_fails(&bytes, 0x38, "e_phnum is 0x0, expected at least 1");
    }

    #[test]
    fn phoff_inside_elf_header() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x20, &8u64.to_le_bytes());
        assert_fails(&bytes, 0x20, "e_phoff is 0x8, expected at least 0x40");
    }

    #[test]
    fn absurd_phnum_runs_past_the_file() {
        let (mut bytes, _) = sample();
        set(&mut bytes, 0x38, &60000u16.to_le_bytes());
        let needle = format!(
            "program header table (60000 entries x 56 bytes) runs past the end of the file ({:#x} bytes)",
            bytes.len()
        );
        assert_fails(&bytes, 0x40, &needle);
    }

    #[test]
    fn phdr_table_past_eof() {
        let (bytes, _) = sample();
        assert_fails(
            &bytes[..0x40 + 100],
            0x40,
            "program header table (6 entries x 56 bytes)",
        );
    }

    #[test]
    fn phoff_overflows() {
        let (mut bytes, _) = sample();
        let phoff = u64::MAX - 8;
        set(&mut bytes, 0x20, &phoff.to_le_bytes());
        assert_fails(
            &bytes,
            phoff,
            "program header table (6 entries x 56 bytes) runs past",
        );
    }

    #[test]
    fn load_segment_past_eof() {
        let (mut bytes, off) = sample();
        // Segment 2 claims a huge p_filesz.
        set(&mut bytes, phdr_at(2) + 32, &(1u64 << 40).to_le_bytes());
        set(&mut bytes, phdr_at(2) + 40, &(1u64 << 40).to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "hostile.elf", &bytes);
        let err = ElfCore::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!(
            "hostile.elf: offset {:#x}: PT_LOAD segment 2 (0x10000000000 bytes) runs past",
            off[2]
        )));
        // Clipped, everything in the file is kept.
        let core = ElfCore::open_truncated(&path).unwrap();
        assert_eq!(core.clipped().len(), 1);
        assert_eq!(core.clipped()[0].pa, Pa(bytes.len() as u64 - off[2]));
        assert_eq!(core.read_u8(Pa(0)).unwrap(), pattern(0x10, 0));
    }

    #[test]
    fn load_segment_offset_overflows() {
        let (mut bytes, _) = sample();
        set(&mut bytes, phdr_at(2) + 8, &(u64::MAX - 4).to_le_bytes());
        assert_fails(
            &bytes,
            phdr_at(2) as u64,
            "program header 2: p_offset + p_filesz overflows",
        );
    }

    #[test]
    fn load_segment_paddr_overflows() {
        let (mut bytes, _) = sample();
        set(&mut bytes, phdr_at(2) + 24, &(u64::MAX - 4).to_le_bytes());
        assert_fails(
            &bytes,
            phdr_at(2) as u64,
            "program header 2: p_paddr + p_filesz overflows",
        );
    }

    #[test]
    fn load_filesz_larger_than_memsz() {
        let (mut bytes, _) = sample();
        set(&mut bytes, phdr_at(3) + 40, &0x10u64.to_le_bytes());
        assert_fails(
            &bytes,
            phdr_at(3) as u64,
            "program header 3: p_filesz is larger than p_memsz",
        );
    }

    #[test]
    fn note_segment_past_eof() {
        let (mut bytes, off) = sample();
        set(&mut bytes, phdr_at(0) + 32, &0x100_0000u64.to_le_bytes());
        assert_fails(
            &bytes,
            off[0],
            "PT_NOTE segment 0 (0x1000000 bytes) runs past the end of the file",
        );
    }

    #[test]
    fn note_data_over_the_limit() {
        let (mut bytes, _) = sample();
        set(
            &mut bytes,
            phdr_at(0) + 32,
            &(MAX_NOTE_BYTES + 1).to_le_bytes(),
        );
        assert_fails(
            &bytes,
            phdr_at(0) as u64,
            "PT_NOTE data (0x1000001) exceeds the limit of 0x1000000",
        );
    }

    /// File offset of the sample's VMCOREINFO note header.
    fn vmcoreinfo_note_at(off: &[u64]) -> usize {
        let notes = sample_notes(true);
        off[0] as usize + notes.len() - note(b"VMCOREINFO", 0, VMCOREINFO).len()
    }

    #[test]
    fn note_desc_runs_past_its_segment() {
        let (mut bytes, off) = sample();
        let at = vmcoreinfo_note_at(&off);
        set(&mut bytes, at + 4, &0x1000u32.to_le_bytes());
        let end = off[0] + sample_notes(true).len() as u64;
        let needle = format!(
            "note descriptor (0x1000 bytes) runs past the end of its PT_NOTE segment \
             (which ends at offset {end:#x})"
        );
        assert_fails(&bytes, at as u64, &needle);
    }

    #[test]
    fn note_namesz_overflows() {
        let (mut bytes, off) = sample();
        let at = vmcoreinfo_note_at(&off);
        set(&mut bytes, at, &u32::MAX.to_le_bytes());
        assert_fails(
            &bytes,
            at as u64,
            "note name (0xffffffff bytes) runs past the end",
        );
        set(&mut bytes, at, &11u32.to_le_bytes());
        set(&mut bytes, at + 4, &u32::MAX.to_le_bytes());
        assert_fails(
            &bytes,
            at as u64,
            "note descriptor (0xffffffff bytes) runs past the end",
        );
    }

    #[test]
    fn note_header_cut_by_segment_end() {
        let mut notes = note(b"CORE", NT_PRSTATUS, &[1; 8]);
        notes.extend([5, 0, 0, 0, 1, 0]);
        let (bytes, off) = build(&[note_seg(notes), load(0, fill(1, 0x10))]);
        let at = off[0] + 12 + 8 + 8;
        assert_fails(
            &bytes,
            at,
            "note header (0xc bytes) runs past the end of its PT_NOTE segment",
        );
    }

    /// Every single-byte corruption of the headers and notes either opens or
    /// fails cleanly; none panics.
    #[test]
    fn corrupted_headers_never_panic() {
        let (bytes, off) = sample();
        let end = off[1] as usize;
        let mut copy = bytes.clone();
        for i in 0..end {
            for v in [0x00, 0xff, 0x80, bytes[i] ^ 1] {
                copy[i] = v;
                for t in [Truncation::Refuse, Truncation::Clip] {
                    if let Ok(layout) = Layout::parse(&copy, copy.len() as u64, t) {
                        let map = RegionMap::new(&copy[..], &layout.regions[..]);
                        assert!(map.is_ok(), "byte {i:#x} = {v:#x}");
                    }
                }
            }
            copy[i] = bytes[i];
        }
    }

    #[test]
    fn claim_merges_and_emits_gaps() {
        let mut claimed = BTreeMap::new();
        let mut got = Vec::new();
        let run = |claimed: &mut BTreeMap<u64, u64>, s, e| {
            let mut out = Vec::new();
            claim(claimed, s, e, |a, b| {
                out.push((a, b));
                Some(())
            })
            .unwrap();
            out.sort();
            out
        };
        got.push(run(&mut claimed, 10, 20));
        got.push(run(&mut claimed, 30, 40));
        got.push(run(&mut claimed, 0, 50));
        got.push(run(&mut claimed, 5, 45));
        got.push(run(&mut claimed, 50, 60));
        assert_eq!(
            got,
            [
                vec![(10, 20)],
                vec![(30, 40)],
                vec![(0, 10), (20, 30), (40, 50)],
                vec![],
                vec![(50, 60)],
            ]
        );
        assert_eq!(claimed.into_iter().collect::<Vec<_>>(), [(0, 60)]);
    }
}
