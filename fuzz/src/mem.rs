//! Memory models the targets read through: kernel virtual memory made of a
//! few runs of input bytes, and physical memory that counts its reads.

use std::cell::Cell;

use bpfmem_core::phys::PhysRange;
use bpfmem_core::{Error, KernelRead, Kva, Pa, PhysRead, Result};

use crate::wire_struct;

/// Where the default segments sit: the direct map, a second direct-map run,
/// vmalloc space, and a fourth run in vmalloc space.
pub const DEFAULT_BASES: [u64; 4] = [
    0xffff_8880_0100_0000,
    0xffff_8880_0200_0000,
    0xffff_c900_0010_0000,
    0xffff_c900_0020_0000,
];

/// Default segment length: the XOR mask of [`Layout::len`].
pub const DEFAULT_LEN: u32 = 0x1_0000;

wire_struct! {
    /// How the payload is cut into (at most) four runs of kernel memory:
    /// `base[i] ^ DEFAULT_BASES[i]` is where run `i` starts, `len[i] ^
    /// DEFAULT_LEN` how many payload bytes it takes (the last takes the rest).
    /// All zeros: one 64 KiB run at `DEFAULT_BASES[0]`, then the next ones.
    /// With `sparse` odd, the last run is instead a list of pages, each an
    /// 8-byte address and [`SPARSE_PAGE`] bytes (how the seed generator
    /// keeps slices of real images).
    pub struct Layout {
        pub base: [u64; 4],
        pub len: [u32; 3],
        pub sparse: u8,
    }
}

/// The size of a page in a sparse run.
pub const SPARSE_PAGE: usize = 4096;
/// The most pages of a sparse run that are used.
pub const MAX_SPARSE_PAGES: usize = 256;

impl Layout {
    /// The wire form of runs at `bases` of `lens` bytes (the last run takes
    /// the rest of the payload).
    pub fn new(bases: [u64; 4], lens: [u32; 3]) -> Layout {
        let mut l = Layout::default();
        for i in 0..4 {
            l.base[i] = bases[i] ^ DEFAULT_BASES[i];
        }
        for i in 0..3 {
            l.len[i] = lens[i] ^ DEFAULT_LEN;
        }
        l
    }

    /// Plain runs at `bases` of `lens` bytes (see [`Layout::new`]), then a
    /// list of pages (see [`Layout::sparse_payload`]).
    pub fn sparse(bases: [u64; 3], lens: [u32; 3]) -> Layout {
        let mut l = Layout::new([bases[0], bases[1], bases[2], DEFAULT_BASES[3]], lens);
        l.sparse = 1;
        l
    }

    /// The payload of a sparse layout: `runs` (the plain runs' bytes), then
    /// the pages.
    pub fn sparse_payload(runs: &[u8], pages: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut out = runs.to_vec();
        for (kva, page) in pages {
            assert_eq!(page.len(), SPARSE_PAGE);
            out.extend_from_slice(&kva.to_le_bytes());
            out.extend_from_slice(page);
        }
        out
    }

    /// One run of all the payload at `base`.
    pub fn flat(base: u64) -> Layout {
        Layout::new(
            [base, DEFAULT_BASES[1], DEFAULT_BASES[2], DEFAULT_BASES[3]],
            [u32::MAX, 0, 0],
        )
    }
}

/// How reads of addresses no run holds fail: as `Error::NotMapped` at this
/// level (0: outside the source, 1: a PTE that is not present), inside
/// `[start, end)` at `level_inside`, elsewhere at `level_outside`.
#[derive(Clone, Copy, Debug)]
pub struct Holes {
    pub start: u64,
    pub end: u64,
    pub level_inside: u8,
    pub level_outside: u8,
}

impl Holes {
    pub const NONE: Holes = Holes {
        start: 0,
        end: 0,
        level_inside: 0,
        level_outside: 0,
    };

    fn level(&self, kva: Kva) -> u8 {
        if kva.get() >= self.start && kva.get() < self.end {
            self.level_inside
        } else {
            self.level_outside
        }
    }
}

/// Kernel virtual memory: runs of bytes at addresses, holes elsewhere.
/// Counts its reads, so targets can check that walks stay within budget.
pub struct Mem<'a> {
    segs: Vec<(Kva, &'a [u8])>,
    holes: Holes,
    reads: Cell<u64>,
}

impl<'a> Mem<'a> {
    pub fn new(layout: &Layout, payload: &'a [u8], holes: Holes) -> Self {
        let mut segs = Vec::new();
        let mut rest = payload;
        for i in 0..4 {
            let n = if i < 3 {
                ((layout.len[i] ^ DEFAULT_LEN) as usize).min(rest.len())
            } else {
                rest.len()
            };
            let (head, tail) = rest.split_at(n);
            rest = tail;
            if i == 3 && layout.sparse & 1 == 1 {
                for rec in head.chunks_exact(8 + SPARSE_PAGE).take(MAX_SPARSE_PAGES) {
                    let (kva, page) = rec.split_at(8);
                    let kva = u64::from_le_bytes(kva.try_into().expect("8 bytes"));
                    segs.push((Kva(kva), page));
                }
            } else if !head.is_empty() {
                segs.push((Kva(layout.base[i] ^ DEFAULT_BASES[i]), head));
            }
        }
        Mem {
            segs,
            holes,
            reads: Cell::new(0),
        }
    }

    /// Reads so far.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    pub fn reset_reads(&self) {
        self.reads.set(0);
    }

    /// The run holding `kva` and the bytes from `kva` to its end.
    fn at(&self, kva: Kva) -> Option<&'a [u8]> {
        self.segs.iter().find_map(|&(base, bytes)| {
            let off = usize::try_from(kva.offset_from(base)?).ok()?;
            bytes.get(off..).filter(|b| !b.is_empty())
        })
    }

    /// A read that does not count (for the targets' own checks).
    pub fn peek(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        let mut cur = kva;
        let mut done = 0;
        while done < buf.len() {
            let miss = Error::NotMapped {
                kva: cur,
                level: self.holes.level(cur),
            };
            let src = self.at(cur).ok_or(miss)?;
            let n = src.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            done += n;
            if done < buf.len() {
                cur = cur.checked_add(n as u64).ok_or(miss)?;
            }
        }
        Ok(())
    }

    pub fn peek_u32(&self, kva: Kva) -> Result<u32> {
        let mut b = [0u8; 4];
        self.peek(kva, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn peek_u64(&self, kva: Kva) -> Result<u64> {
        let mut b = [0u8; 8];
        self.peek(kva, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl KernelRead for Mem<'_> {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        self.reads.set(self.reads.get() + 1);
        self.peek(kva, buf)
    }
}

/// Physical memory that counts its reads.
pub struct CountingPhys<M> {
    pub inner: M,
    reads: Cell<u64>,
}

impl<M> CountingPhys<M> {
    pub fn new(inner: M) -> Self {
        CountingPhys {
            inner,
            reads: Cell::new(0),
        }
    }

    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    pub fn reset_reads(&self) {
        self.reads.set(0);
    }
}

impl<M: PhysRead> PhysRead for CountingPhys<M> {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read_phys(pa, buf)
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        self.inner.next_range(from)
    }
}

/// Drive a walk's inherent `next()` to its end, checking what every walk of
/// this crate promises: at most `budget` items and then one more call that
/// ends it (with `None` or an error), and `Ok(None)` for good after that.
/// `each` sees every item. Returns the number of items and the error, if any.
pub fn drive<T>(
    what: &str,
    budget: u64,
    mut next: impl FnMut() -> Result<Option<T>>,
    mut each: impl FnMut(u64, &T),
) -> (u64, Option<Error>) {
    let mut n = 0u64;
    let end = loop {
        match next() {
            Ok(Some(t)) => {
                assert!(
                    n < budget,
                    "{what}: yielded more than its budget of {budget}"
                );
                each(n, &t);
                n += 1;
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    for _ in 0..2 {
        assert!(
            matches!(next(), Ok(None)),
            "{what}: not fused after {}",
            match &end {
                Some(e) => format!("error {e}"),
                None => "its end".to_string(),
            }
        );
    }
    (n, end)
}
