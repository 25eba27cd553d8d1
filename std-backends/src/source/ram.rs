//! Raw guest-RAM files: QEMU `memory-backend-file` (`mem-path=FILE`), VMM
//! snapshot memory files. No headers: the caller says where each part of the
//! file sits in physical memory.
//!
//! The file may be the RAM of a guest that is running: reads then see the guest's
//! memory as it changes, possibly torn across a read.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bpfmem_core::phys::PhysRange;
use bpfmem_core::{Error, Pa, PhysRead, PhysWrite, Region, RegionMap};
use memmap2::Mmap;

use crate::error::{SourceError, SourceErrorKind};

/// A raw guest-RAM file, mapped, read as physical memory.
pub struct RamFile {
    path: PathBuf,
    file: File,
    mem: RegionMap<Mmap, Vec<Region>>,
    /// The file opened for writing, when [`RamFile::open_writable`] opened it.
    writer: Option<File>,
}

impl RamFile {
    /// The whole file is one run of physical memory starting at `base`: file
    /// offset `o` is physical address `base + o`. With `base` = `Pa(0)` this is
    /// QEMU's `memory-backend-file` for a guest of up to about 3 GiB.
    pub fn open(path: impl AsRef<Path>, base: Pa) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let (file, map) = super::map_file(path)?;
        let region = Region {
            pa: base,
            len: map.len() as u64,
            offset: 0,
        };
        Self::with_map(path, file, map, vec![region])
    }

    /// The file holds several banks of physical memory, in any order. For an
    /// x86 guest with more than about 3 GiB, QEMU's backend file holds low RAM
    /// (pa 0 up to the PCI hole) and then the rest at pa 4 GiB:
    /// `[Region { pa: Pa(0), len: low, offset: 0 },
    ///   Region { pa: Pa(1 << 32), len: high, offset: low }]`.
    /// The regions must lie inside the file and not overlap in physical memory.
    pub fn open_with_regions(
        path: impl AsRef<Path>,
        mut regions: Vec<Region>,
    ) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let (file, map) = super::map_file(path)?;
        regions.sort_unstable_by_key(|r| r.pa);
        Self::with_map(path, file, map, regions)
    }

    /// [`RamFile::open`], and writable through [`PhysWrite`]: the memory of a
    /// guest its VMM lets us change. Writes go through the file (`pwrite(2)`),
    /// so a guest that maps the same file shared sees them at once.
    pub fn open_writable(path: impl AsRef<Path>, base: Pa) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let file = OpenOptions::new().read(true).write(true).open(path);
        let file = file.map_err(|error| {
            let kind = SourceErrorKind::Io {
                op: "cannot open for writing",
                error,
            };
            SourceError::new(path, None, kind)
        })?;
        let mut ram = Self::open(path, base)?;
        ram.writer = Some(file);
        Ok(ram)
    }

    fn with_map(
        path: &Path,
        file: File,
        map: Mmap,
        regions: Vec<Region>,
    ) -> Result<Self, SourceError> {
        Ok(RamFile {
            path: path.to_path_buf(),
            file,
            mem: super::region_map(path, map, regions)?,
            writer: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The length of the file in bytes, as mapped.
    pub fn len(&self) -> u64 {
        self.mem.bytes().len() as u64
    }

    /// Always false: an empty file cannot be opened.
    pub fn is_empty(&self) -> bool {
        self.mem.bytes().is_empty()
    }

    /// The physical memory the file holds, sorted by address.
    pub fn regions(&self) -> &[Region] {
        self.mem.regions()
    }
}

impl PhysRead for RamFile {
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

impl PhysWrite for RamFile {
    /// All of `buf` lands inside one region of the file, or nothing is written.
    fn write_phys(&self, pa: Pa, buf: &[u8]) -> bpfmem_core::Result<()> {
        let refused = Error::WriteFailed {
            pa,
            len: buf.len() as u64,
        };
        let file = self.writer.as_ref().ok_or(refused)?;
        if buf.is_empty() {
            return Ok(());
        }
        let end = pa
            .checked_add((buf.len() as u64).saturating_sub(1))
            .ok_or(refused)?;
        let region = self
            .regions()
            .iter()
            .find(|r| r.pa <= pa && end.offset_from(r.pa).is_some_and(|o| o < r.len))
            .ok_or(refused)?;
        let offset = pa
            .offset_from(region.pa)
            .and_then(|o| o.checked_add(region.offset))
            .ok_or(refused)?;
        file.write_all_at(buf, offset).map_err(|_| refused)
    }
}

impl fmt::Debug for RamFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamFile")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("regions", &self.regions())
            .field("writable", &self.writer.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfmem_core::Error;

    fn ram(len: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest.ram");
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn writes_land_in_the_file_and_are_read_back() {
        let (_dir, path) = ram(0x3000);
        let ro = RamFile::open(&path, Pa(0x10_0000)).unwrap();
        assert!(matches!(
            ro.write_phys(Pa(0x10_0000), &[1]),
            Err(Error::WriteFailed { .. })
        ));
        let rw = RamFile::open_writable(&path, Pa(0x10_0000)).unwrap();
        rw.write_phys(Pa(0x10_0ffe), &[0xaa, 0xbb, 0xcc, 0xdd])
            .unwrap();
        assert_eq!(rw.read_u32(Pa(0x10_0ffe)).unwrap(), 0xddcc_bbaa);
        // The read-only mapping of the same file sees it too.
        assert_eq!(ro.read_u32(Pa(0x10_0ffe)).unwrap(), 0xddcc_bbaa);
        // Nothing is written unless all of it fits.
        assert!(rw.write_phys(Pa(0x10_2ffe), &[9, 9, 9, 9]).is_err());
        assert_eq!(rw.read_u16(Pa(0x10_2ffe)).unwrap(), {
            let b = [(0x2ffe % 251) as u8, (0x2fff % 251) as u8];
            u16::from_le_bytes(b)
        });
        assert!(rw.write_phys(Pa(0xf_ffff), &[1, 2]).is_err());
        assert!(rw.write_phys(Pa(u64::MAX), &[1, 2]).is_err());
        assert_eq!(rw.write_phys(Pa(0), &[]), Ok(()));
    }

    #[test]
    fn reads_at_base() {
        let (_dir, path) = ram(0x3000);
        let mem = RamFile::open(&path, Pa(0x10_0000)).unwrap();
        assert_eq!(mem.len(), 0x3000);
        assert!(!mem.is_empty());
        assert_eq!(mem.path(), path);
        assert_eq!(mem.read_u8(Pa(0x10_0000)).unwrap(), 0);
        assert_eq!(
            mem.read_u8(Pa(0x10_0000 + 0x1234)).unwrap(),
            (0x1234 % 251) as u8
        );
        assert_eq!(
            mem.read_u8(Pa(0xf_ffff)),
            Err(Error::Unmapped {
                pa: Pa(0xf_ffff),
                len: 1
            })
        );
        assert!(mem.read_u16(Pa(0x10_2fff)).is_err());
        assert_eq!(
            mem.next_range(Pa(0)),
            Some(PhysRange {
                start: Pa(0x10_0000),
                len: 0x3000
            })
        );
        assert_eq!(mem.next_range(Pa(0x10_3000)), None);
    }

    #[test]
    fn low_and_high_banks() {
        // Low RAM at pa 0, high RAM at 4 GiB stored right after it.
        let (_dir, path) = ram(0x3000);
        let high = Region {
            pa: Pa(1 << 32),
            len: 0x1000,
            offset: 0x2000,
        };
        let low = Region {
            pa: Pa(0),
            len: 0x2000,
            offset: 0,
        };
        let mem = RamFile::open_with_regions(&path, vec![high, low]).unwrap();
        assert_eq!(mem.regions(), &[low, high]);
        assert_eq!(mem.read_u8(Pa(0x1fff)).unwrap(), (0x1fff % 251) as u8);
        assert!(mem.read_u8(Pa(0x2000)).is_err());
        assert_eq!(mem.read_u8(Pa(1 << 32)).unwrap(), (0x2000 % 251) as u8);
        assert_eq!(
            mem.next_range(Pa(0x2000)),
            Some(PhysRange {
                start: Pa(1 << 32),
                len: 0x1000
            })
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        let (_dir, path) = ram(0);
        let err = RamFile::open(&path, Pa(0)).unwrap_err();
        assert!(matches!(err.kind(), SourceErrorKind::Empty));
        let msg = err.to_string();
        assert!(
            msg.contains("guest.ram: offset 0x0: the file is empty"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = RamFile::open(dir.path().join("nope.ram"), Pa(0)).unwrap_err();
        assert!(matches!(err.kind(), SourceErrorKind::Io { .. }));
        assert!(err.to_string().contains("nope.ram: cannot open: "));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn directory_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = RamFile::open(dir.path(), Pa(0)).unwrap_err();
        assert!(matches!(err.kind(), SourceErrorKind::NotAFile), "{err}");
    }

    #[test]
    fn region_past_the_file() {
        let (_dir, path) = ram(0x1000);
        let r = Region {
            pa: Pa(1 << 32),
            len: 0x1000,
            offset: 0x800,
        };
        let err = RamFile::open_with_regions(&path, vec![r]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: offset 0x800: memory region at pa 0x100000000 (0x1000 bytes) runs past \
                 the end of the file (0x1000 bytes)",
                path.display()
            )
        );
    }

    #[test]
    fn overlapping_regions() {
        let (_dir, path) = ram(0x1000);
        let a = Region {
            pa: Pa(0),
            len: 0x800,
            offset: 0,
        };
        let b = Region {
            pa: Pa(0x400),
            len: 0x800,
            offset: 0x400,
        };
        let err = RamFile::open_with_regions(&path, vec![a, b]).unwrap_err();
        assert!(matches!(err.kind(), SourceErrorKind::BadRegions(_)));
        let msg = err.to_string();
        assert!(
            msg.contains("guest.ram: offset 0x400: bad memory regions: malformed memory region list at pa 0x400"),
            "{msg}"
        );
    }

    #[test]
    fn base_plus_length_wraps() {
        let (_dir, path) = ram(0x1000);
        let err = RamFile::open(&path, Pa(u64::MAX - 0x10)).unwrap_err();
        assert!(matches!(err.kind(), SourceErrorKind::BadRegions(_)));
        assert!(err.to_string().contains("guest.ram: offset 0x0: "), "{err}");
    }
}
