//! `/dev/mem`: host physical memory by offset (drivers/char/mem.c), with the RAM
//! ranges from `/proc/iomem` ("System RAM" lines).
//!
//! Most distribution kernels (Debian's included) set `CONFIG_STRICT_DEVMEM`: on
//! x86 `devmem_is_allowed()` (arch/x86/mm/init.c) then refuses every RAM page
//! above the first megabyte, and reads fail with `EPERM`. [`DevMem::open`]
//! probes for that and says so, rather than failing on the first real read.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bpfmem_core::phys::PhysRange;
use bpfmem_core::{Error, Pa, PhysRead};

use crate::error::{SourceError, SourceErrorKind};

/// The largest `/proc/iomem` read.
const MAX_IOMEM: u64 = 1 << 20;

/// Physical memory through `/dev/mem`.
pub struct DevMem {
    path: PathBuf,
    file: File,
    /// "System RAM" ranges, sorted.
    ram: Vec<PhysRange>,
}

/// The top-level "System RAM" ranges of `/proc/iomem` text (`start-end : name`,
/// inclusive, hex). Nested lines (indented) are parts of their parent.
pub fn parse_iomem(text: &str) -> Vec<PhysRange> {
    let mut ram: Vec<PhysRange> = text
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let (range, name) = l.split_once(" : ")?;
            if name.trim() != "System RAM" {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = u64::from_str_radix(a.trim(), 16).ok()?;
            let end = u64::from_str_radix(b.trim(), 16).ok()?;
            let len = end.checked_sub(start)?.checked_add(1)?;
            Some(PhysRange {
                start: Pa(start),
                len,
            })
        })
        .collect();
    ram.sort_unstable_by_key(|r| r.start);
    ram
}

impl DevMem {
    /// `/dev/mem` with the RAM layout of `/proc/iomem`.
    pub fn open_host() -> Result<Self, SourceError> {
        let iomem = std::fs::read("/proc/iomem").map_err(|error| {
            let kind = SourceErrorKind::Io {
                op: "cannot read",
                error,
            };
            SourceError::new(Path::new("/proc/iomem"), None, kind)
        })?;
        if iomem.len() as u64 > MAX_IOMEM {
            let kind = SourceErrorKind::Limit {
                what: "/proc/iomem size",
                value: iomem.len() as u64,
                limit: MAX_IOMEM,
            };
            return Err(SourceError::new(Path::new("/proc/iomem"), None, kind));
        }
        let ram = parse_iomem(&String::from_utf8_lossy(&iomem));
        Self::open("/dev/mem", ram)
    }

    /// A `/dev/mem`-like file at `path` holding the RAM ranges `ram`.
    pub fn open(path: impl AsRef<Path>, ram: Vec<PhysRange>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|error| {
            let kind = SourceErrorKind::Io {
                op: "cannot open",
                error,
            };
            SourceError::new(path, None, kind)
        })?;
        // All zero ranges: /proc/iomem hides addresses from non-root readers.
        if ram.is_empty() || ram.iter().all(|r| r.start == Pa(0)) {
            let kind = SourceErrorKind::BadHeader {
                field: "/proc/iomem System RAM",
                value: 0,
                expected: "RAM ranges (they read as 0 without root)",
            };
            return Err(SourceError::new(path, None, kind));
        }
        let mem = DevMem {
            path: path.to_path_buf(),
            file,
            ram,
        };
        // A RAM byte above the first megabyte, which STRICT_DEVMEM refuses.
        if let Some(probe) = mem.ram.iter().find_map(|r| {
            let end = r.start.get().checked_add(r.len)?;
            let pa = r.start.get().max(1 << 20);
            (pa < end).then_some(pa)
        }) {
            let mut b = [0u8; 1];
            if let Err(error) = mem.file.read_exact_at(&mut b, probe) {
                let kind = SourceErrorKind::Io {
                    op: "cannot read RAM through it (a kernel with CONFIG_STRICT_DEVMEM \
                         allows only the first megabyte; use /proc/kcore)",
                    error,
                };
                return Err(SourceError::new(path, Some(probe), kind));
            }
        }
        Ok(mem)
    }

    /// The device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The RAM ranges in use.
    pub fn ram(&self) -> &[PhysRange] {
        &self.ram
    }
}

impl PhysRead for DevMem {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> bpfmem_core::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len() as u64;
        let unmapped = Error::Unmapped { pa, len };
        let inside = self.ram.iter().any(|r| {
            pa.offset_from(r.start)
                .is_some_and(|skip| r.len.checked_sub(skip).is_some_and(|left| left >= len))
        });
        if !inside {
            return Err(unmapped);
        }
        self.file.read_exact_at(buf, pa.get()).map_err(|_| unmapped)
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        self.ram.iter().find_map(|r| {
            let end = r.start.checked_add(r.len)?;
            if end <= from {
                return None;
            }
            let start = r.start.max(from);
            Some(PhysRange {
                start,
                len: end.offset_from(start)?,
            })
        })
    }
}

impl fmt::Debug for DevMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevMem")
            .field("path", &self.path)
            .field("ram", &self.ram)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iomem_system_ram_lines() {
        let text = "00000000-00000fff : Reserved\n\
                    00001000-0009fbff : System RAM\n\
                    000a0000-000bffff : PCI Bus 0000:00\n\
                    00100000-1ffdffff : System RAM\n  \
                    0d000000-0de02ffe : Kernel code\n\
                    fffc0000-ffffffff : Reserved\n";
        assert_eq!(
            parse_iomem(text),
            vec![
                PhysRange {
                    start: Pa(0x1000),
                    len: 0x9ec00
                },
                PhysRange {
                    start: Pa(0x10_0000),
                    len: 0x1fee_0000
                },
            ]
        );
        assert!(parse_iomem("garbage\nzz-yy : System RAM\n").is_empty());
    }

    #[test]
    fn a_plain_file_stands_in_for_dev_mem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mem");
        std::fs::write(&path, vec![7u8; 0x20_0000]).unwrap();
        let ram = vec![PhysRange {
            start: Pa(0x1000),
            len: 0x1f_f000,
        }];
        let m = DevMem::open(&path, ram).unwrap();
        assert_eq!(m.read_u8(Pa(0x1f_ffff)), Ok(7));
        assert!(m.read_u16(Pa(0x1f_ffff)).is_err());
        assert!(m.read_u8(Pa(0)).is_err());
        assert!(DevMem::open(&path, vec![]).is_err());
    }
}
