//! Physical memory sources: ELF cores and raw guest-RAM files (memory-mapped,
//! never read whole into RAM), `/proc/kcore` and `/dev/mem` (read with
//! `pread(2)`). Every read copies bytes out through
//! [`PhysRead`](bpfmem_core::PhysRead).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo
    )
)]

#[cfg(feature = "devmem")]
pub mod devmem;
#[cfg(feature = "core-file")]
pub mod elf;
#[cfg(feature = "kcore")]
pub mod kcore;
#[cfg(feature = "ram-file")]
pub mod ram;

#[cfg(feature = "devmem")]
pub use devmem::DevMem;
#[cfg(feature = "core-file")]
pub use elf::{ElfCore, Note, Notes};
#[cfg(feature = "kcore")]
pub use kcore::Kcore;
#[cfg(feature = "ram-file")]
pub use ram::RamFile;

use std::fs::File;
use std::path::Path;

use bpfmem_core::error::Location;
use bpfmem_core::{Region, RegionMap};
use memmap2::{Mmap, MmapOptions};

use crate::error::{FilePart, SourceError, SourceErrorKind};

/// Map all of the regular file at `path` read-only.
fn map_file(path: &Path) -> Result<(File, Mmap), SourceError> {
    let io = |op, error| SourceError::new(path, None, SourceErrorKind::Io { op, error });
    let file = File::open(path).map_err(|e| io("cannot open", e))?;
    let meta = file.metadata().map_err(|e| io("cannot stat", e))?;
    if !meta.is_file() {
        return Err(SourceError::new(path, None, SourceErrorKind::NotAFile));
    }
    // mmap(2) cannot map zero bytes, and an empty file holds no memory: say so.
    if meta.len() == 0 {
        return Err(SourceError::new(path, Some(0), SourceErrorKind::Empty));
    }
    let len = usize::try_from(meta.len()).map_err(|_| {
        let kind = SourceErrorKind::Limit {
            what: "file size",
            value: meta.len(),
            limit: usize::MAX as u64,
        };
        SourceError::new(path, None, kind)
    })?;
    // SAFETY: `map` is unsafe because the mapping aliases a file that other
    // processes can write or truncate while we hold it, behind the back of Rust's
    // aliasing rules. What this crate does about it:
    // - The mapping is read-only and nothing here writes through it.
    // - No reference into it outlives one call: `read_phys` copies the bytes it is
    //   asked for into the caller's buffer, and `ElfCore::open` copies the headers
    //   and notes out before checking them. Every copied byte is then treated as
    //   hostile input, so a concurrent writer (a running QEMU guest writing its RAM
    //   file, say) can make us see torn or inconsistent data, which the walkers
    //   report as malformed, but cannot make this code index out of bounds.
    // Residual risk, plainly: a write racing a copy is still a data race that
    // Rust's memory model does not define. We accept it because the copy is a
    // `memcpy` of plain bytes into a buffer we own, no value read is assumed to
    // stay equal to a later read, and every result is checked before use.
    // And if another process shrinks the file while it is mapped, touching a
    // page past the new end raises SIGBUS and kills the process; nothing here
    // guards against that. Callers who cannot rule it out should copy the file
    // first.
    let map = unsafe { MmapOptions::new().len(len).map(&file) };
    let map = map.map_err(|e| io("cannot map", e))?;
    Ok((file, map))
}

/// Start fetching the mapped byte at `pa` into the CPU caches.
fn prefetch_mapped(mem: &RegionMap<Mmap, Vec<Region>>, pa: bpfmem_core::Pa) {
    let Some(off) = mem.store_offset(pa).and_then(|o| usize::try_from(o).ok()) else {
        return;
    };
    // In bounds: `store_offset` only answers for bytes of the store.
    let p = mem.bytes().as_ptr().wrapping_add(off);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is an SSE instruction, which every x86-64 CPU has, and
    // a prefetch never faults nor changes memory, whatever the address; `p`
    // points into our own mapping anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Reads at least this long go through `pread(2)` instead of the mapping: a
/// scan of hundreds of MiB then costs no page faults and leaves nothing
/// resident in our process.
const BULK_READ: usize = 64 << 10;

/// `read_phys` for a file-backed region map: small reads copy from the
/// mapping, bulk reads `pread` the same bytes.
fn read_file_regions(
    file: &File,
    mem: &RegionMap<Mmap, Vec<Region>>,
    pa: bpfmem_core::Pa,
    buf: &mut [u8],
) -> bpfmem_core::Result<()> {
    use bpfmem_core::PhysRead;
    use std::os::unix::fs::FileExt;
    if buf.len() < BULK_READ {
        return mem.read_phys(pa, buf);
    }
    mem.read_pieces(pa, buf, |off, piece| {
        file.read_exact_at(piece, off)
            .map_err(|_| bpfmem_core::Error::Unmapped {
                pa,
                len: piece.len() as u64,
            })
    })
}

/// A region map over `bytes`, or an error naming the first bad region.
fn region_map(
    path: &Path,
    bytes: Mmap,
    regions: Vec<Region>,
) -> Result<RegionMap<Mmap, Vec<Region>>, SourceError> {
    let file_len = bytes.len() as u64;
    // Name the region that does not fit in the file; `RegionMap::new` would
    // only give its address.
    for r in &regions {
        if r.offset.checked_add(r.len).is_none_or(|end| end > file_len) {
            let part = FilePart::Region {
                pa: r.pa,
                len: r.len,
            };
            let kind = SourceErrorKind::Truncated { part, file_len };
            return Err(SourceError::new(path, Some(r.offset), kind));
        }
    }
    // Check order and overlap on borrowed regions first, so a failure can name
    // the file offset of the region the core error points at.
    let bad = |e: bpfmem_core::Error| {
        let offset = match e {
            bpfmem_core::Error::Malformed {
                at: Location::Pa(pa),
                ..
            } => regions.iter().find(|r| r.pa == pa).map(|r| r.offset),
            _ => None,
        };
        SourceError::new(path, offset, SourceErrorKind::BadRegions(e))
    };
    RegionMap::new(&bytes[..], &regions[..]).map_err(bad)?;
    RegionMap::new(bytes, regions)
        .map_err(|e| SourceError::new(path, None, SourceErrorKind::BadRegions(e)))
}
