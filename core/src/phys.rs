//! Physical memory sources.
//!
//! [`PhysRead`] is the one interface every walker reads through. It copies into
//! the caller's buffer and never hands out borrowed slices: guest memory may change
//! underneath us, and a copy is the only thing we can check and then trust.

use zerocopy::{FromBytes, IntoBytes};

use crate::addr::Pa;
use crate::error::{Error, Result};

/// A contiguous range of physical memory a source has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First address.
    pub start: Pa,
    /// Length in bytes (never zero).
    pub len: u64,
}

/// Read access to a machine's physical memory.
pub trait PhysRead {
    /// Fill `buf` with the bytes at `pa..pa + buf.len()`, or fail if any of them
    /// is missing (`buf` is then unspecified). An empty read always succeeds.
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()>;

    /// The first range of memory this source has that ends after `from`, clipped
    /// to start at `from` or later. Lets scanners skip holes. Sources that cannot
    /// tell return `None`, and scanners then find nothing in them.
    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        let _ = from;
        None
    }

    /// A hint that `pa` will be read soon: a source that can start fetching it
    /// into the CPU's caches does (a walk over scattered kernel objects is
    /// bound by memory latency, not bandwidth). Never fails, reads nothing.
    fn prefetch(&self, pa: Pa) {
        let _ = pa;
    }

    /// Read one byte.
    fn read_u8(&self, pa: Pa) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_phys(pa, &mut b)?;
        Ok(b[0])
    }

    /// Read a little-endian `u16`.
    fn read_u16(&self, pa: Pa) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_phys(pa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Read a little-endian `u32`.
    fn read_u32(&self, pa: Pa) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_phys(pa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Read a little-endian `u64`.
    fn read_u64(&self, pa: Pa) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_phys(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a fixed-layout structure.
    fn read_obj<T: FromBytes + IntoBytes>(&self, pa: Pa) -> Result<T>
    where
        Self: Sized,
    {
        let mut obj = T::new_zeroed();
        self.read_phys(pa, obj.as_mut_bytes())?;
        Ok(obj)
    }
}

/// Write access to a machine's physical memory, for embedders that own it (a VMM).
pub trait PhysWrite: PhysRead {
    /// Write all of `buf` at `pa`, or fail without writing anything.
    fn write_phys(&self, pa: Pa, buf: &[u8]) -> Result<()>;
}

impl<T: PhysRead + ?Sized> PhysRead for &T {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()> {
        (**self).read_phys(pa, buf)
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        (**self).next_range(from)
    }

    fn prefetch(&self, pa: Pa) {
        (**self).prefetch(pa)
    }
}

/// Length of `buf` as a `u64` (lossless on every target we build for).
fn len64(buf: &[u8]) -> u64 {
    buf.len() as u64
}

/// Physical memory that is one flat run of bytes starting at `base`.
#[derive(Clone, Copy, Debug)]
pub struct Flat<B> {
    base: Pa,
    bytes: B,
}

impl<B: AsRef<[u8]>> Flat<B> {
    /// `bytes` holds physical memory from `base` on.
    pub fn new(base: Pa, bytes: B) -> Self {
        Flat { base, bytes }
    }

    /// The backing bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}

impl<B: AsRef<[u8]>> PhysRead for Flat<B> {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let unmapped = Error::Unmapped {
            pa,
            len: len64(buf),
        };
        let start = pa.offset_from(self.base).ok_or(unmapped)?;
        let start = usize::try_from(start).map_err(|_| unmapped)?;
        let end = start.checked_add(buf.len()).ok_or(unmapped)?;
        let src = self.bytes.as_ref().get(start..end).ok_or(unmapped)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        single_range_after(self.base, len64(self.bytes.as_ref()), from)
    }
}

/// The part of `[start, start + len)` at or after `from`, if any.
fn single_range_after(start: Pa, len: u64, from: Pa) -> Option<PhysRange> {
    let end = start.get().checked_add(len)?;
    let first = start.max(from);
    let len = end.checked_sub(first.get())?;
    (len > 0).then_some(PhysRange { start: first, len })
}

/// One run of physical memory inside a larger byte store (a file's segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Physical address of the first byte.
    pub pa: Pa,
    /// Length in bytes.
    pub len: u64,
    /// Offset of the first byte in the byte store.
    pub offset: u64,
}

impl Region {
    fn end(&self) -> Option<u64> {
        self.pa.get().checked_add(self.len)
    }
}

/// Physical memory made of several runs with holes between them, each backed by
/// part of one byte store: an ELF core's `PT_LOAD` segments, a guest's RAM banks.
#[derive(Clone, Debug)]
pub struct RegionMap<B, R> {
    bytes: B,
    regions: R,
}

impl<B: AsRef<[u8]>, R: AsRef<[Region]>> RegionMap<B, R> {
    /// Checks that `regions` are sorted by address, do not overlap, and lie inside
    /// `bytes`. Empty regions are allowed and ignored.
    pub fn new(bytes: B, regions: R) -> Result<Self> {
        let store = len64(bytes.as_ref());
        let mut prev_end = 0u64;
        for r in regions.as_ref() {
            let bad = Error::malformed("memory region list", r.pa);
            let end = r.end().ok_or(bad)?;
            let store_end = r.offset.checked_add(r.len).ok_or(bad)?;
            if r.pa.get() < prev_end || store_end > store {
                return Err(bad);
            }
            prev_end = end;
        }
        Ok(RegionMap { bytes, regions })
    }

    /// The regions, sorted by address.
    pub fn regions(&self) -> &[Region] {
        self.regions.as_ref()
    }

    /// The backing byte store.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Where in the byte store the byte at `pa` is, if the map has it.
    pub fn store_offset(&self, pa: Pa) -> Option<u64> {
        let r = self.region_at(pa)?;
        r.offset.checked_add(pa.offset_from(r.pa)?)
    }

    /// The region holding `pa`, if any.
    fn region_at(&self, pa: Pa) -> Option<&Region> {
        let regions = self.regions.as_ref();
        let i = regions.partition_point(|r| r.pa <= pa).checked_sub(1)?;
        let r = regions.get(i)?;
        (pa.get() < r.end()?).then_some(r)
    }
}

impl<B: AsRef<[u8]>, R: AsRef<[Region]>> RegionMap<B, R> {
    /// Fill `buf` from `pa` on, region by region: `copy(offset, piece)` gets
    /// each piece of `buf` and the store offset its bytes come from. Fails,
    /// before `copy` sees any byte that is missing, with [`Error::Unmapped`].
    /// Lets a file-backed store read large ranges another way than through
    /// the mapping (`pread`, say).
    pub fn read_pieces(
        &self,
        pa: Pa,
        buf: &mut [u8],
        mut copy: impl FnMut(u64, &mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let store_len = len64(self.bytes.as_ref());
        let mut cur = pa;
        let mut rest = buf;
        while !rest.is_empty() {
            let unmapped = Error::Unmapped {
                pa: cur,
                len: len64(rest),
            };
            let r = self.region_at(cur).ok_or(unmapped)?;
            // Inside the region by `region_at`, inside the store by `new`.
            let skip = cur.offset_from(r.pa).ok_or(unmapped)?;
            let avail = r.len.checked_sub(skip).ok_or(unmapped)?;
            let n = usize::try_from(avail.min(len64(rest))).map_err(|_| unmapped)?;
            let off = r.offset.checked_add(skip).ok_or(unmapped)?;
            if off.checked_add(n as u64).is_none_or(|end| end > store_len) {
                return Err(unmapped);
            }
            let (head, tail) = rest.split_at_mut(n);
            copy(off, head)?;
            rest = tail;
            cur = cur.checked_add(n as u64).ok_or(unmapped)?;
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]>, R: AsRef<[Region]>> PhysRead for RegionMap<B, R> {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()> {
        let store = self.bytes.as_ref();
        // The common case first: one region holds all of it.
        if let Some(src) = self.region_at(pa).and_then(|r| {
            let skip = pa.offset_from(r.pa)?;
            let end = skip.checked_add(len64(buf))?;
            (end <= r.len).then_some(())?;
            let off = usize::try_from(r.offset.checked_add(skip)?).ok()?;
            store.get(off..off.checked_add(buf.len())?)
        }) {
            buf.copy_from_slice(src);
            return Ok(());
        }
        self.read_pieces(pa, buf, |off, piece| {
            let unmapped = Error::Unmapped {
                pa,
                len: len64(piece),
            };
            let off = usize::try_from(off).map_err(|_| unmapped)?;
            let src = store
                .get(off..off.checked_add(piece.len()).ok_or(unmapped)?)
                .ok_or(unmapped)?;
            piece.copy_from_slice(src);
            Ok(())
        })
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        let regions = self.regions.as_ref();
        let first = regions.partition_point(|r| r.end().is_some_and(|e| e <= from.get()));
        regions
            .get(first..)?
            .iter()
            .find_map(|r| single_range_after(r.pa, r.len, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ([u8; 32], [Region; 2]) {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        // pa 0x1000..0x1010 -> bytes[0..16]; pa 0x1010..0x1018 -> bytes[24..32];
        // a hole in the store (16..24) and none in the address space.
        let regions = [
            Region {
                pa: Pa(0x1000),
                len: 16,
                offset: 0,
            },
            Region {
                pa: Pa(0x1010),
                len: 8,
                offset: 24,
            },
        ];
        (bytes, regions)
    }

    #[test]
    fn flat_reads_and_bounds() {
        let mem = Flat::new(Pa(0x100), [1u8, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(mem.read_u32(Pa(0x100)).unwrap(), 0x0403_0201);
        assert_eq!(mem.read_u64(Pa(0x101)).unwrap(), 0x0908_0706_0504_0302);
        assert_eq!(
            mem.read_u64(Pa(0x102)),
            Err(Error::Unmapped {
                pa: Pa(0x102),
                len: 8
            })
        );
        assert!(mem.read_u8(Pa(0xff)).is_err());
        assert!(mem.read_u8(Pa(u64::MAX)).is_err());
        assert_eq!(
            mem.next_range(Pa(0)),
            Some(PhysRange {
                start: Pa(0x100),
                len: 9
            })
        );
        assert_eq!(mem.next_range(Pa(0x109)), None);
    }

    #[test]
    fn regions_read_across_adjacent_regions() {
        let (bytes, regions) = sample();
        let mem = RegionMap::new(&bytes[..], &regions[..]).unwrap();
        let mut buf = [0u8; 4];
        mem.read_phys(Pa(0x100e), &mut buf).unwrap();
        assert_eq!(buf, [14, 15, 24, 25]);
        assert_eq!(
            mem.read_phys(Pa(0x1016), &mut buf),
            Err(Error::Unmapped {
                pa: Pa(0x1018),
                len: 2
            })
        );
    }

    #[test]
    fn regions_with_holes() {
        let bytes = [7u8; 16];
        let regions = [
            Region {
                pa: Pa(0),
                len: 8,
                offset: 0,
            },
            Region {
                pa: Pa(0x100),
                len: 8,
                offset: 8,
            },
        ];
        let mem = RegionMap::new(&bytes[..], &regions[..]).unwrap();
        assert_eq!(mem.read_u8(Pa(7)).unwrap(), 7);
        assert_eq!(
            mem.read_u8(Pa(8)),
            Err(Error::Unmapped { pa: Pa(8), len: 1 })
        );
        assert_eq!(mem.read_u64(Pa(0x100)).unwrap(), 0x0707_0707_0707_0707);
        assert_eq!(
            mem.next_range(Pa(8)),
            Some(PhysRange {
                start: Pa(0x100),
                len: 8
            })
        );
        assert_eq!(
            mem.next_range(Pa(4)),
            Some(PhysRange {
                start: Pa(4),
                len: 4
            })
        );
        assert_eq!(mem.next_range(Pa(0x108)), None);
    }

    #[test]
    fn regions_rejects_bad_lists() {
        let bytes = [0u8; 16];
        let overlap = [
            Region {
                pa: Pa(0),
                len: 8,
                offset: 0,
            },
            Region {
                pa: Pa(4),
                len: 4,
                offset: 8,
            },
        ];
        assert!(RegionMap::new(&bytes[..], &overlap[..]).is_err());
        let outside = [Region {
            pa: Pa(0),
            len: 17,
            offset: 0,
        }];
        assert!(RegionMap::new(&bytes[..], &outside[..]).is_err());
        let wraps = [Region {
            pa: Pa(u64::MAX),
            len: 2,
            offset: 0,
        }];
        assert!(RegionMap::new(&bytes[..], &wraps[..]).is_err());
    }

    #[test]
    fn read_obj_reads_a_struct() {
        #[derive(FromBytes, IntoBytes, zerocopy::Immutable, Debug, PartialEq)]
        #[repr(C)]
        struct Pair {
            a: u32,
            b: u32,
        }
        let mem = Flat::new(Pa(0), [1u8, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(mem.read_obj::<Pair>(Pa(0)).unwrap(), Pair { a: 1, b: 2 });
    }

    proptest::proptest! {
        /// Any read through a region map equals the same read from a flat copy of
        /// the address space, or fails exactly where the flat copy has a hole.
        #[test]
        fn regions_agree_with_flat(
            cuts in proptest::collection::vec(0u64..64, 0..6),
            pa in 0u64..80,
            len in 0usize..40,
        ) {
            let mut bytes = [0u8; 64];
            for (i, b) in bytes.iter_mut().enumerate() { *b = i as u8 ^ 0x5a; }
            let mut cuts: std::vec::Vec<u64> = cuts;
            cuts.push(0);
            cuts.push(64);
            cuts.sort_unstable();
            cuts.dedup();
            // Every other run between cuts is a hole.
            let mut regions = std::vec::Vec::new();
            for (i, w) in cuts.windows(2).enumerate() {
                if i % 2 == 0 {
                    regions.push(Region { pa: Pa(w[0] + 0x1000), len: w[1] - w[0], offset: w[0] });
                }
            }
            let mem = RegionMap::new(&bytes[..], &regions[..]).unwrap();
            let mut buf = std::vec![0u8; len];
            let got = mem.read_phys(Pa(0x1000 + pa), &mut buf);
            let backed = |a: u64| regions.iter().any(|r| a >= r.pa.0 && a < r.pa.0 + r.len);
            let all = (0..len as u64).all(|i| backed(0x1000 + pa + i));
            proptest::prop_assert_eq!(got.is_ok(), all);
            if all && len > 0 {
                let want = &bytes[pa as usize..pa as usize + len];
                proptest::prop_assert_eq!(&buf[..], want);
            }
        }
    }
}
