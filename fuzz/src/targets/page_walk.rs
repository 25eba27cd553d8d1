//! x86-64 address translation over hostile page tables: `Translator::walk`,
//! `translate` with and without the direct-map and kernel-image fast paths,
//! `Translator::for_kernel`, and `KernelMem` reads and its translation cache.
//!
//! Checks: a walk reads at most one entry per level; what it finds lies
//! below `PHYS_LIMIT` and keeps the page offset; `translate` is the walk
//! wherever no fast path applies and the fast path's mapping where one does,
//! and what it finds ends in the address's canonical half (never past 2^64);
//! `KernelMem` translates as the translator whatever it translated before,
//! reads what the translated physical addresses hold, and does a bounded
//! number of physical reads; decoded entries are aligned and in range.

use bpfmem_core::paging::{
    decode_entry, is_canonical, va_bits, Entry, KernelMem, Translator, KERNEL_IMAGE_SIZE,
    PAGE_SIZE, PHYS_LIMIT, PMD_SIZE, PUD_SIZE, START_KERNEL_MAP,
};
use bpfmem_core::{Error, Flat, KernelRead, Kva, Pa, PhysRead, Result};

use crate::mem::CountingPhys;
use crate::wire_struct;

/// `init_top_pgt` default: the second page of the image mapping.
pub const DEFAULT_INIT_TOP_PGT: u64 = START_KERNEL_MAP + 0x1000;
/// The default top-level table.
pub const DEFAULT_PGD: u64 = 0x1000;
/// `page_offset_base` without KASLR.
pub const PAGE_OFFSET_L4: u64 = 0xffff_8880_0000_0000;
pub const PAGE_OFFSET_L5: u64 = 0xff11_0000_0000_0000;
/// `1 << MAX_PHYSMEM_BITS` with 4 levels.
pub const DEFAULT_DIRECT_MAP_SIZE: u64 = 1 << 46;
/// The longest read the target makes.
pub const MAX_READ: usize = 3 * PAGE_SIZE as usize;

wire_struct! {
    /// `mode` bits: 0 five levels, 1 direct-map fast path, 2 kernel-image
    /// fast path, 3 `Translator::for_kernel` instead of `new`, 4 take the level
    /// count from `levels` as is. The other fields are XORed with their
    /// defaults. The payload is physical memory from `mem_base`.
    pub struct Input {
        pub mode: u8,
        pub levels: u8,
        pub pgd: u64,
        pub page_offset_base: u64,
        pub direct_map_size: u64,
        pub phys_base: i64,
        pub image_size: u64,
        pub init_top_pgt: u64,
        pub mem_base: u64,
        pub kvas: [u64; 4],
        pub lens: [u16; 4],
    }
}

/// What the input asks for, decoded.
pub struct Config {
    pub levels: u8,
    pub pgd: Pa,
    pub for_kernel: bool,
    pub direct_map: Option<(Kva, u64)>,
    pub kernel_image: Option<(i64, u64)>,
    pub init_top_pgt: u64,
    pub mem_base: Pa,
}

impl Input {
    pub fn decode(&self) -> Config {
        let five = self.mode & 1 != 0;
        let levels = if self.mode & 16 != 0 {
            self.levels
        } else if five {
            5
        } else {
            4
        };
        let pob = if five { PAGE_OFFSET_L5 } else { PAGE_OFFSET_L4 };
        Config {
            levels,
            pgd: Pa(self.pgd ^ DEFAULT_PGD),
            for_kernel: self.mode & 8 != 0,
            direct_map: (self.mode & 2 != 0).then_some((
                Kva(self.page_offset_base ^ pob),
                self.direct_map_size ^ DEFAULT_DIRECT_MAP_SIZE,
            )),
            kernel_image: (self.mode & 4 != 0)
                .then_some((self.phys_base, self.image_size ^ KERNEL_IMAGE_SIZE)),
            init_top_pgt: self.init_top_pgt ^ DEFAULT_INIT_TOP_PGT,
            mem_base: Pa(self.mem_base),
        }
    }

    /// The wire form of `c`, reading `kvas`.
    pub fn encode(c: &Config, kvas: [u64; 4], lens: [u16; 4]) -> Input {
        let five = c.levels == 5;
        let pob = if five { PAGE_OFFSET_L5 } else { PAGE_OFFSET_L4 };
        let mut mode = u8::from(five);
        let mut i = Input {
            levels: c.levels,
            pgd: c.pgd.get() ^ DEFAULT_PGD,
            init_top_pgt: c.init_top_pgt ^ DEFAULT_INIT_TOP_PGT,
            mem_base: c.mem_base.get(),
            kvas,
            lens,
            ..Input::default()
        };
        if let Some((base, size)) = c.direct_map {
            mode |= 2;
            i.page_offset_base = base.get() ^ pob;
            i.direct_map_size = size ^ DEFAULT_DIRECT_MAP_SIZE;
        }
        if let Some((phys_base, size)) = c.kernel_image {
            mode |= 4;
            i.phys_base = phys_base;
            i.image_size = size ^ KERNEL_IMAGE_SIZE;
        }
        if c.for_kernel {
            mode |= 8;
        }
        i.mode = mode;
        i
    }
}

/// What one run saw, for the seed generator's depth check.
#[derive(Debug, Default)]
pub struct Seen {
    pub walked: u32,
    pub read: u32,
}

fn check_found(r: &Result<(Pa, u64)>, kva: Kva, levels: u8, walk: bool) {
    if let Ok((pa, left)) = *r {
        assert!(left >= 1, "{kva}: empty mapping");
        assert!(
            pa.get().checked_add(left).is_some_and(|e| e <= PHYS_LIMIT),
            "{kva}: {pa} + {left:#x} beyond PHYS_LIMIT"
        );
        // The regression read-past-the-top-of-the-address-space-through-the-
        // direct-map: a linear map running past 2^64 (or into the hole).
        assert!(
            kva.checked_add(left - 1)
                .is_some_and(|last| is_canonical(last, levels)),
            "{kva}: {left:#x} bytes run out of the canonical half"
        );
        if walk {
            assert_eq!(pa.page_offset(PAGE_SIZE), kva.page_offset(PAGE_SIZE));
            assert!(left <= PUD_SIZE, "{kva}: a walk found more than 1 GiB");
        }
    }
}

/// Whether `e` is an error a translation or read may give.
fn translation_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Unmapped { .. }
            | Error::NotMapped { .. }
            | Error::NonCanonical { .. }
            | Error::Malformed { .. }
            | Error::Unsupported { .. }
    )
}

/// The byte at `kva` as the translator and physical memory say.
fn model_byte<M: PhysRead>(tr: &Translator, mem: &M, kva: Kva) -> Result<u8> {
    let (pa, _) = tr.translate(mem, kva)?;
    mem.read_u8(pa)
}

fn check_entries(words: &[u8]) {
    for w in words.chunks_exact(8).take(8) {
        let e = u64::from_le_bytes(w.try_into().unwrap());
        for level in 0..=6u8 {
            match decode_entry(e, level) {
                Entry::NotPresent => assert_eq!(e & 1, 0),
                Entry::Table(pa) => {
                    assert!((2..=5).contains(&level));
                    assert_eq!(pa.page_offset(PAGE_SIZE), 0);
                    assert!(pa.get() < PHYS_LIMIT);
                }
                Entry::Page { pa, size } => {
                    let want = match level {
                        1 => PAGE_SIZE,
                        2 => PMD_SIZE,
                        3 => PUD_SIZE,
                        _ => panic!("a page at level {level}"),
                    };
                    assert_eq!(size, want);
                    assert_eq!(pa.page_offset(size), 0);
                    assert!(pa.get() + size <= PHYS_LIMIT);
                }
                Entry::Reserved => assert!(!(1..=3).contains(&level)),
            }
        }
    }
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let c = input.decode();
    check_entries(payload);
    let mem = CountingPhys::new(Flat::new(c.mem_base, payload));
    let tr = if c.for_kernel {
        let phys_base = c.kernel_image.map_or(0, |(p, _)| p);
        let tr = Translator::for_kernel(c.levels, phys_base, c.init_top_pgt);
        if let Ok(tr) = &tr {
            let off = c.init_top_pgt.wrapping_sub(START_KERNEL_MAP);
            assert!(off < KERNEL_IMAGE_SIZE);
            assert_eq!(tr.pgd().get(), off.wrapping_add(phys_base as u64));
            assert_eq!(tr.kernel_image(), Some((phys_base, KERNEL_IMAGE_SIZE)));
            assert_eq!(tr.direct_map(), None);
        }
        tr
    } else {
        let tr = Translator::new(c.levels, c.pgd);
        let valid = va_bits(c.levels).is_some()
            && c.pgd.page_offset(PAGE_SIZE) == 0
            && c.pgd.get() < PHYS_LIMIT;
        assert_eq!(
            tr.is_ok(),
            valid,
            "Translator::new({}, {})",
            c.levels,
            c.pgd
        );
        tr
    };
    let Ok(tr) = tr else { return seen };
    assert!(matches!(tr.levels(), 4 | 5));
    let levels = u64::from(tr.levels());
    let plain = Translator::new(tr.levels(), tr.pgd()).expect("a translator's own pgd");
    let mut fast = tr;
    if let Some((base, size)) = c.direct_map {
        fast = fast.with_direct_map(base, size);
    }
    if let (Some((phys_base, size)), false) = (c.kernel_image, c.for_kernel) {
        fast = fast.with_kernel_image(phys_base, size);
    }
    let km = KernelMem::new(&mem, fast);

    for (&raw, &len) in input.kvas.iter().zip(&input.lens) {
        let kva = Kva(raw);
        mem.reset_reads();
        let walked = plain.walk(&mem, kva);
        assert!(mem.reads() <= levels, "a walk read {} entries", mem.reads());
        check_found(&walked, kva, tr.levels(), true);
        if let Err(e) = &walked {
            assert!(translation_error(e), "walk: {e:?}");
        } else {
            seen.walked += 1;
        }
        assert_eq!(
            is_canonical(kva, tr.levels()),
            !matches!(walked, Err(Error::NonCanonical { .. }))
        );
        let m = plain.walk_mapping(&mem, kva);
        assert_eq!(m.map(|m| m.lookup(kva)), walked.map(Some));
        assert_eq!(plain.translate(&mem, kva), walked);

        let got = fast.translate(&mem, kva);
        check_found(&got, kva, tr.levels(), false);
        match fast.fast_path(kva) {
            None => assert_eq!(got, walked),
            Some(m) => {
                assert!(is_canonical(kva, tr.levels()));
                assert_eq!(
                    got,
                    Ok(m.lookup(kva).expect("a fast path covers its address"))
                );
            }
        }

        // A KernelMem translates as the translator does, fresh or after the
        // input's earlier addresses (and this one, twice): the regression
        // kernel-mem-cache-answers-over-the-kernel-image-fast-path.
        let fresh = KernelMem::new(&mem, fast);
        assert_eq!(
            fresh.translate(kva),
            got,
            "KernelMem::translate({kva}), empty cache"
        );
        for _ in 0..2 {
            assert_eq!(
                km.translate(kva),
                got,
                "KernelMem::translate({kva}), after earlier translations"
            );
        }

        let len = usize::from(len) % (MAX_READ + 1);
        let mut buf = vec![0u8; len];
        mem.reset_reads();
        let km = KernelMem::new(&mem, fast);
        let read = km.read_kva(kva, &mut buf);
        // Per page or mapping: a translation (at most one read per level)
        // and one data read.
        let chunks = (len as u64).div_ceil(PAGE_SIZE) + 2;
        assert!(
            mem.reads() <= chunks * (levels + 1),
            "{} reads for {len} bytes",
            mem.reads()
        );
        match &read {
            Ok(()) => {
                seen.read += u32::from(len > 0);
                // Spot checks: the ends, and both sides of every page boundary.
                let mut at: Vec<usize> = Vec::new();
                if len > 0 {
                    at.extend([0, len - 1]);
                }
                let first = (PAGE_SIZE - kva.page_offset(PAGE_SIZE)) as usize;
                let mut b = first;
                while b < len {
                    at.extend([b - 1, b]);
                    b += PAGE_SIZE as usize;
                }
                if len <= 16 {
                    at = (0..len).collect();
                }
                for i in at {
                    let k = kva.checked_add(i as u64).unwrap_or_else(|| {
                        panic!("a {len}-byte read at {kva} went past the top of the address space")
                    });
                    let byte = model_byte(&fast, &mem, k);
                    assert_eq!(byte, Ok(buf[i]), "byte {i} of a read at {kva}");
                }
            }
            Err(e) => {
                assert!(translation_error(e), "read: {e:?}");
                // Small reads fail only if some byte has no translation or memory.
                if len <= 16 && is_canonical(kva, tr.levels()) {
                    let all = (0..len as u64).all(|i| {
                        kva.checked_add(i).is_some_and(|k| {
                            is_canonical(k, tr.levels()) && model_byte(&fast, &mem, k).is_ok()
                        })
                    });
                    assert!(
                        !all,
                        "a {len}-byte read at {kva} failed ({e}) though every byte translates"
                    );
                }
            }
        }
    }
    seen
}
