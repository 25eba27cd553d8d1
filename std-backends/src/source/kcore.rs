//! `/proc/kcore`: the running kernel's memory as an ELF core (fs/proc/kcore.c).
//!
//! It cannot be memory-mapped, so headers and notes are read once with
//! `pread(2)` and memory is read piecewise. Its `PT_LOAD` segments are by
//! virtual address; those of RAM (`KCORE_RAM`) and the kernel text
//! (`KCORE_TEXT`) carry their physical address in `p_paddr` (v4.x on), the rest
//! (vmalloc, modules, vmemmap) `p_paddr = -1` and are left out: this is a
//! physical memory source, and the walkers translate themselves. Since v4.19
//! (commit 23c85094fe18) kcore also carries the kernel's VMCOREINFO note.
//!
//! Reading it needs `CAP_SYS_RAWIO` (root) and a kernel built with
//! `CONFIG_PROC_KCORE`; under lockdown (integrity mode and up) it is refused.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bpfmem_core::phys::PhysRange;
use bpfmem_core::{Error, Pa, PhysRead, Region};

use super::elf::{headers_end, phdrs_end, Layout, NoteSegment, Notes, Truncation};
use crate::error::{SourceError, SourceErrorKind};

/// The most header and note bytes read at open: the ELF header, up to 0xfffe
/// program headers and [`super::elf`]'s note limit fit well inside.
const MAX_HEADERS: u64 = 32 << 20;

/// `/proc/kcore` (or a file in its format), read as physical memory.
pub struct Kcore {
    path: PathBuf,
    file: File,
    /// RAM and kernel text by physical address, sorted, disjoint.
    regions: Vec<Region>,
    note_bytes: Vec<u8>,
    note_segments: Vec<NoteSegment>,
}

impl Kcore {
    /// `/proc/kcore`.
    pub fn open_proc() -> Result<Self, SourceError> {
        Self::open("/proc/kcore")
    }

    /// Open a kcore-format file and read its headers and notes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let io = |op, error| SourceError::new(path, None, SourceErrorKind::Io { op, error });
        let file = File::open(path).map_err(|e| io("cannot open", e))?;
        let meta = file.metadata().map_err(|e| io("cannot stat", e))?;
        // kcore's size is the end of its last segment; 0 means "unknown".
        let file_len = match meta.len() {
            0 => u64::MAX,
            n => n,
        };
        let fail = |f: super::elf::Fail| SourceError::new(path, Some(f.offset), f.kind);

        let mut prefix = read_prefix(&file, path, 64)?;
        let want = phdrs_end(&prefix).map_err(fail)?;
        prefix = read_prefix(&file, path, want)?;
        let want = headers_end(&prefix)
            .map_err(fail)?
            .ok_or_else(|| limit(path, want))?;
        prefix = read_prefix(&file, path, want)?;
        let layout = Layout::parse(&prefix, file_len, Truncation::Refuse).map_err(fail)?;
        Ok(Kcore {
            path: path.to_path_buf(),
            file,
            regions: layout.regions,
            note_bytes: layout.note_bytes,
            note_segments: layout.note_segments,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The physical memory it shows, sorted by address.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// All notes, in file order.
    pub fn notes(&self) -> Notes<'_> {
        Notes {
            bytes: &self.note_bytes,
            segments: &self.note_segments,
            seg: 0,
            pos: 0,
        }
    }

    /// The VMCOREINFO note's descriptor, if kcore has one (v4.19+).
    pub fn vmcoreinfo_note(&self) -> Option<&[u8]> {
        self.notes()
            .find(|n| n.name == b"VMCOREINFO")
            .map(|n| n.desc)
    }

    fn region_at(&self, pa: Pa) -> Option<&Region> {
        let i = self
            .regions
            .partition_point(|r| r.pa <= pa)
            .checked_sub(1)?;
        let r = self.regions.get(i)?;
        (pa.offset_from(r.pa)? < r.len).then_some(r)
    }
}

fn limit(path: &Path, value: u64) -> SourceError {
    let kind = SourceErrorKind::Limit {
        what: "ELF headers and notes",
        value,
        limit: MAX_HEADERS,
    };
    SourceError::new(path, None, kind)
}

/// The first `len` bytes of `file` (fewer if it is shorter).
fn read_prefix(file: &File, path: &Path, len: u64) -> Result<Vec<u8>, SourceError> {
    if len > MAX_HEADERS {
        return Err(limit(path, len));
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut got = 0usize;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        match file.read_at(rest, got as u64) {
            Ok(0) => break,
            Ok(n) => got = got.saturating_add(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                let kind = SourceErrorKind::Io {
                    op: "cannot read",
                    error,
                };
                return Err(SourceError::new(path, Some(got as u64), kind));
            }
        }
    }
    buf.truncate(got);
    Ok(buf)
}

impl PhysRead for Kcore {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> bpfmem_core::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len() as u64;
        let unmapped = Error::Unmapped { pa, len };
        let r = self.region_at(pa).ok_or(unmapped)?;
        let skip = pa.offset_from(r.pa).ok_or(unmapped)?;
        if r.len.checked_sub(skip).is_none_or(|left| left < len) {
            return Err(unmapped);
        }
        let offset = r.offset.checked_add(skip).ok_or(unmapped)?;
        self.file.read_exact_at(buf, offset).map_err(|_| unmapped)
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        self.regions.iter().find_map(|r| {
            let end = r.pa.checked_add(r.len)?;
            if end <= from {
                return None;
            }
            let start = r.pa.max(from);
            Some(PhysRange {
                start,
                len: end.offset_from(start)?,
            })
        })
    }
}

impl fmt::Debug for Kcore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kcore")
            .field("path", &self.path)
            .field("regions", &self.regions.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_u16(b: &mut Vec<u8>, v: u16) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    fn push_u32(b: &mut Vec<u8>, v: u32) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    fn push_u64(b: &mut Vec<u8>, v: u64) {
        b.extend_from_slice(&v.to_le_bytes());
    }

    /// A file laid out like /proc/kcore: a VMCOREINFO note, the kernel text
    /// (vaddr in the image mapping, p_paddr its physical address), a vmalloc
    /// segment (p_paddr -1) and a RAM segment (direct map, p_paddr set).
    fn kcore_file() -> (tempfile::TempDir, PathBuf) {
        let text = b"OSRELEASE=6.12.0\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff82000000\n";
        let mut note = Vec::new();
        push_u32(&mut note, 11);
        push_u32(&mut note, text.len() as u32);
        push_u32(&mut note, 0);
        note.extend_from_slice(b"VMCOREINFO\0\0");
        note.extend_from_slice(text);
        while note.len() % 4 != 0 {
            note.push(0);
        }
        let phnum = 4u16;
        let notes_at = 64 + 56 * u64::from(phnum);
        let data_at = 0x1000u64;
        let mut b = Vec::new();
        b.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        push_u16(&mut b, 4); // ET_CORE
        push_u16(&mut b, 62); // EM_X86_64
        push_u32(&mut b, 1);
        push_u64(&mut b, 0);
        push_u64(&mut b, 64); // e_phoff
        push_u64(&mut b, 0);
        push_u32(&mut b, 0);
        for v in [64u16, 56, phnum, 0, 0, 0] {
            push_u16(&mut b, v);
        }
        // (type, offset, vaddr, paddr, size)
        let segs = [
            (4u32, notes_at, 0u64, 0u64, note.len() as u64),
            (1, data_at, 0xffff_ffff_8100_0000, 0x100_0000, 0x1000),
            (1, data_at + 0x1000, 0xffff_c900_0000_0000, u64::MAX, 0x1000),
            (1, data_at + 0x2000, 0xffff_8880_0000_2000, 0x2000, 0x2000),
        ];
        for (t, off, vaddr, paddr, size) in segs {
            push_u32(&mut b, t);
            push_u32(&mut b, 7);
            push_u64(&mut b, off);
            push_u64(&mut b, vaddr);
            push_u64(&mut b, paddr);
            push_u64(&mut b, size);
            push_u64(&mut b, size);
            push_u64(&mut b, 0x1000);
        }
        b.extend_from_slice(&note);
        b.resize(data_at as usize, 0);
        b.extend((0..0x1000u32).map(|i| (i % 7) as u8));
        b.extend(std::iter::repeat_n(0xee, 0x1000));
        b.extend((0..0x2000u32).map(|i| (i % 13) as u8));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kcore");
        std::fs::write(&path, b).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_ram_and_text_by_physical_address_and_the_note() {
        let (_dir, path) = kcore_file();
        let k = Kcore::open(&path).unwrap();
        assert_eq!(k.regions().len(), 2, "{:?}", k.regions());
        assert!(k
            .vmcoreinfo_note()
            .unwrap()
            .starts_with(b"OSRELEASE=6.12.0"));
        assert_eq!(k.read_u8(Pa(0x100_0000 + 9)), Ok(2));
        assert_eq!(k.read_u8(Pa(0x2000 + 14)), Ok(1));
        // The vmalloc segment has no physical address: it is not memory here.
        assert!(k.read_u8(Pa(0)).is_err());
        assert!(k.read_u16(Pa(0x3fff)).is_err());
        assert_eq!(
            k.next_range(Pa(0)),
            Some(PhysRange {
                start: Pa(0x2000),
                len: 0x2000
            })
        );
    }

    #[test]
    fn short_and_garbage_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kcore");
        std::fs::write(&path, b"\x7fELF").unwrap();
        assert!(Kcore::open(&path).is_err());
        std::fs::write(&path, vec![0x41u8; 4096]).unwrap();
        let e = Kcore::open(&path).unwrap_err().to_string();
        assert!(e.contains("kcore"), "{e}");
        assert!(Kcore::open(dir.path().join("missing")).is_err());
    }
}
