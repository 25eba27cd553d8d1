//! The one error type of the core crate: small, `Copy`, and carrying where it
//! happened. `Display` prints addresses and kinds, never guest bytes.

use core::fmt;

use crate::addr::{Kva, Pa};

/// Where an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A guest physical address.
    Pa(Pa),
    /// A kernel virtual address.
    Kva(Kva),
    /// A byte offset inside a buffer the caller handed over (a note, a text block).
    Offset(u64),
    /// Nowhere in particular (a search that found nothing, say).
    None,
}

impl From<Pa> for Location {
    fn from(pa: Pa) -> Self {
        Location::Pa(pa)
    }
}

impl From<Kva> for Location {
    fn from(kva: Kva) -> Self {
        Location::Kva(kva)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Pa(pa) => write!(f, "{pa}"),
            Location::Kva(kva) => write!(f, "{kva}"),
            Location::Offset(off) => write!(f, "offset {off:#x}"),
            Location::None => f.write_str("no address"),
        }
    }
}

/// Everything that can go wrong while reading kernel state out of memory.
///
/// `what` names the structure or datum being read, in the kernel's words
/// (`"xa_node"`, `"VMCOREINFO"`, `"bpf_map"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A physical read of `len` bytes at `pa` hit memory the source does not have.
    Unmapped { pa: Pa, len: u64 },
    /// A physical write was refused (read-only source, or outside its memory).
    WriteFailed { pa: Pa, len: u64 },
    /// A kernel virtual address does not translate: non-canonical, or a page-table
    /// entry at `level` (5 = PGD under LA57 ... 1 = PTE) is not present.
    NotMapped { kva: Kva, level: u8 },
    /// A kernel virtual address that no x86-64 CPU could use.
    NonCanonical { kva: Kva },
    /// Data read from memory does not make sense as `what`.
    Malformed { what: &'static str, at: Location },
    /// A walk over guest data hit its budget (`limit` nodes, bytes, entries...).
    Limit {
        what: &'static str,
        at: Location,
        limit: u64,
    },
    /// The data is well formed but uses a layout or feature this crate does not read.
    Unsupported { what: &'static str, at: Location },
    /// Something searched for is not there (a symbol, a text block, a key).
    NotFound { what: &'static str },
}

/// `Result` with the core [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// A [`Error::Malformed`] at `at`.
    pub fn malformed(what: &'static str, at: impl Into<Location>) -> Self {
        Error::Malformed {
            what,
            at: at.into(),
        }
    }

    /// A [`Error::Limit`] at `at`.
    pub fn limit(what: &'static str, at: impl Into<Location>, limit: u64) -> Self {
        Error::Limit {
            what,
            at: at.into(),
            limit,
        }
    }

    /// A [`Error::Unsupported`] at `at`.
    pub fn unsupported(what: &'static str, at: impl Into<Location>) -> Self {
        Error::Unsupported {
            what,
            at: at.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Unmapped { pa, len } => {
                write!(
                    f,
                    "read of {len} bytes at {pa} is outside the memory source"
                )
            }
            Error::NotMapped { kva, level } => {
                write!(
                    f,
                    "{kva} is not mapped (level-{level} page-table entry not present)"
                )
            }
            Error::NonCanonical { kva } => write!(f, "{kva} is not canonical"),
            Error::WriteFailed { pa, len } => write!(f, "write of {len} bytes at {pa} refused"),
            Error::Malformed { what, at } => write!(f, "malformed {what} at {at}"),
            Error::Limit { what, at, limit } => {
                write!(f, "{what} at {at} exceeds the limit of {limit}")
            }
            Error::Unsupported { what, at } => write!(f, "unsupported {what} at {at}"),
            Error::NotFound { what } => write!(f, "{what} not found"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn display_names_kind_and_address() {
        let e = Error::malformed("xa_node", Kva(0xffff_8880_0000_1000));
        assert_eq!(e.to_string(), "malformed xa_node at kva 0xffff888000001000");
        let e = Error::Unmapped {
            pa: Pa(0x2000_0000),
            len: 8,
        };
        assert_eq!(
            e.to_string(),
            "read of 8 bytes at pa 0x20000000 is outside the memory source"
        );
        let e = Error::limit("hash chain", Location::None, 64);
        assert_eq!(
            e.to_string(),
            "hash chain at no address exceeds the limit of 64"
        );
    }
}
