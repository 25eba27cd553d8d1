//! Errors from opening memory sources: which file, where in it, and what is wrong.
//!
//! `Display` is one line, `PATH: offset 0xOFF: what`, and never prints file
//! contents.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use bpfmem_core::Pa;

/// Opening a memory source failed.
#[derive(Debug)]
pub struct SourceError {
    path: PathBuf,
    offset: Option<u64>,
    kind: SourceErrorKind,
}

/// What went wrong while opening a memory source.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceErrorKind {
    /// The operating system refused `op` ("cannot open", "cannot map", ...).
    Io { op: &'static str, error: io::Error },
    /// The file holds no bytes (and cannot be mapped).
    Empty,
    /// The path is not a regular file.
    NotAFile,
    /// The file does not start with the ELF magic.
    NotElf,
    /// `part` does not fit in the file, which holds `file_len` bytes.
    Truncated { part: FilePart, file_len: u64 },
    /// A header field holds a value that no valid file has.
    BadHeader {
        field: &'static str,
        value: u64,
        expected: &'static str,
    },
    /// A header field holds a valid value that this crate does not read.
    Unsupported {
        field: &'static str,
        value: u64,
        /// The constant's name, when it is a known one (`"EM_AARCH64"`).
        name: Option<&'static str>,
        supported: &'static str,
    },
    /// Program header `index` describes an impossible segment.
    BadSegment { index: u16, what: &'static str },
    /// A note's `part` (`len` bytes) runs past the end of its `PT_NOTE` segment,
    /// which ends at file offset `segment_end`.
    BadNote {
        part: &'static str,
        len: u64,
        segment_end: u64,
    },
    /// `what` (`value`) is larger than this crate's hard limit.
    Limit {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// The memory regions are out of order, overlap, or wrap around.
    BadRegions(bpfmem_core::Error),
}

/// A part of a file that must lie inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilePart {
    /// The 64-byte `Elf64_Ehdr`.
    ElfHeader,
    /// The program header table: `count` entries of `entsize` bytes.
    ProgramHeaders { count: u16, entsize: u16 },
    /// The file data of program header `index`, of type `p_type`, `len` bytes.
    Segment { index: u16, p_type: u32, len: u64 },
    /// A memory region the caller described: `len` bytes of physical memory at `pa`.
    Region { pa: Pa, len: u64 },
}

impl SourceError {
    /// An error about the file at `path`, at byte `offset` of it if known.
    pub fn new(path: impl Into<PathBuf>, offset: Option<u64>, kind: SourceErrorKind) -> Self {
        SourceError {
            path: path.into(),
            offset,
            kind,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The byte offset in the file the error is about, if it is about one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// What went wrong.
    pub fn kind(&self) -> &SourceErrorKind {
        &self.kind
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if let Some(off) = self.offset {
            write!(f, "offset {off:#x}: ")?;
        }
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            SourceErrorKind::Io { error, .. } => Some(error),
            SourceErrorKind::BadRegions(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for SourceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceErrorKind::Io { op, error } => write!(f, "{op}: {error}"),
            SourceErrorKind::Empty => f.write_str("the file is empty"),
            SourceErrorKind::NotAFile => f.write_str("not a regular file"),
            SourceErrorKind::NotElf => f.write_str("not an ELF file (no \\x7fELF magic)"),
            SourceErrorKind::Truncated { part, file_len } => write!(
                f,
                "{part} runs past the end of the file ({file_len:#x} bytes)"
            ),
            SourceErrorKind::BadHeader {
                field,
                value,
                expected,
            } => write!(f, "{field} is {value:#x}, expected {expected}"),
            SourceErrorKind::Unsupported {
                field,
                value,
                name,
                supported,
            } => {
                write!(f, "unsupported {field} {value}")?;
                if let Some(name) = name {
                    write!(f, " ({name})")?;
                }
                write!(f, ": {supported}")
            }
            SourceErrorKind::BadSegment { index, what } => {
                write!(f, "program header {index}: {what}")
            }
            SourceErrorKind::BadNote {
                part,
                len,
                segment_end,
            } => write!(
                f,
                "{part} ({len:#x} bytes) runs past the end of its PT_NOTE segment \
                 (which ends at offset {segment_end:#x})"
            ),
            SourceErrorKind::Limit { what, value, limit } => {
                write!(f, "{what} ({value:#x}) exceeds the limit of {limit:#x}")
            }
            SourceErrorKind::BadRegions(error) => write!(f, "bad memory regions: {error}"),
        }
    }
}

impl fmt::Display for FilePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FilePart::ElfHeader => f.write_str("ELF header (64 bytes)"),
            FilePart::ProgramHeaders { count, entsize } => write!(
                f,
                "program header table ({count} entries x {entsize} bytes)"
            ),
            FilePart::Segment { index, p_type, len } => {
                match p_type_name(p_type) {
                    Some(name) => write!(f, "{name} segment {index}")?,
                    None => write!(f, "segment {index} (p_type {p_type:#x})")?,
                }
                write!(f, " ({len:#x} bytes)")
            }
            FilePart::Region { pa, len } => {
                write!(f, "memory region at {pa} ({len:#x} bytes)")
            }
        }
    }
}

fn p_type_name(p_type: u32) -> Option<&'static str> {
    match p_type {
        1 => Some("PT_LOAD"),
        4 => Some("PT_NOTE"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_file_and_offset() {
        let e = SourceError::new(
            "dump.elf",
            Some(0x40),
            SourceErrorKind::Truncated {
                part: FilePart::ProgramHeaders {
                    count: 12,
                    entsize: 56,
                },
                file_len: 0x100,
            },
        );
        assert_eq!(
            e.to_string(),
            "dump.elf: offset 0x40: program header table (12 entries x 56 bytes) \
             runs past the end of the file (0x100 bytes)"
        );
        let e = SourceError::new("ram.bin", None, SourceErrorKind::Empty);
        assert_eq!(e.to_string(), "ram.bin: the file is empty");
    }

    #[test]
    fn unsupported_names_the_constant() {
        let e = SourceError::new(
            "arm.core",
            Some(0x12),
            SourceErrorKind::Unsupported {
                field: "e_machine",
                value: 183,
                name: Some("EM_AARCH64"),
                supported: "only EM_X86_64 (62) is read",
            },
        );
        assert_eq!(
            e.to_string(),
            "arm.core: offset 0x12: unsupported e_machine 183 (EM_AARCH64): \
             only EM_X86_64 (62) is read"
        );
    }

    #[test]
    fn source_chains_io_and_core_errors() {
        use std::error::Error as _;
        let io = SourceError::new(
            "x",
            None,
            SourceErrorKind::Io {
                op: "cannot open",
                error: io::Error::from(io::ErrorKind::NotFound),
            },
        );
        assert!(io.source().is_some());
        assert!(io.to_string().starts_with("x: cannot open: "));
        let core = SourceError::new(
            "x",
            Some(0),
            SourceErrorKind::BadRegions(bpfmem_core::Error::malformed(
                "memory region list",
                Pa(0x1000),
            )),
        );
        assert_eq!(
            core.source().map(|s| s.to_string()).as_deref(),
            Some("malformed memory region list at pa 0x1000")
        );
        assert_eq!(
            core.to_string(),
            "x: offset 0x0: bad memory regions: malformed memory region list at pa 0x1000"
        );
        let plain = SourceError::new("x", Some(0), SourceErrorKind::NotElf);
        assert!(plain.source().is_none());
    }
}
