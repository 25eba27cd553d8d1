//! x86-64 kernel address translation: the page-table walk the MMU does, the two
//! linear maps every x86-64 kernel has (the direct map of physical memory and the
//! kernel image mapping) as fast paths, and [`KernelMem`], a [`KernelRead`] over
//! physical memory that caches recent page walks.
//!
//! Layouts come from arch/x86/include/asm/pgtable_types.h, pgtable_64_types.h,
//! page_types.h and page_64_types.h; they hold unchanged from v4.14 (5-level
//! paging) through v6.12.
//!
//! Levels are numbered as in [`Error::NotMapped`]: 1 = PTE, 2 = PMD, 3 = PUD,
//! 4 = PGD under 4-level paging or P4D under 5-level, 5 = PGD under 5-level.
//!
//! The fast paths trust their configuration (`page_offset_base`, `phys_base`)
//! instead of the page tables; [`Translator::walk`] always walks, so callers can
//! cross-check one against the other.

use core::cell::Cell;

use crate::addr::{Kva, Pa};
use crate::error::{Error, Location, Result};
use crate::phys::PhysRead;
use crate::virt::KernelRead;

/// `PAGE_SIZE` (page_types.h): a base page is 4 KiB.
pub const PAGE_SIZE: u64 = 0x1000;
/// `PMD_SIZE`: a PMD entry with `_PAGE_PSE` maps 2 MiB.
pub const PMD_SIZE: u64 = 0x20_0000;
/// `PUD_SIZE`: a PUD entry with `_PAGE_PSE` maps 1 GiB.
pub const PUD_SIZE: u64 = 0x4000_0000;

/// `PMD_SHIFT` (pgtable_64_types.h).
pub const PMD_SHIFT: u32 = 21;
/// `PUD_SHIFT` (pgtable_64_types.h).
pub const PUD_SHIFT: u32 = 30;
/// `P4D_SHIFT` (pgtable_64_types.h); under 4-level paging the P4D folds into the PGD.
pub const P4D_SHIFT: u32 = 39;
/// `PGDIR_SHIFT` under 4-level paging (pgtable_64_types.h).
pub const PGDIR_SHIFT_L4: u32 = 39;
/// `PGDIR_SHIFT` under 5-level paging (`pgdir_shift` when `pgtable_l5_enabled()`).
pub const PGDIR_SHIFT_L5: u32 = 48;
/// `PTRS_PER_PGD` = `PTRS_PER_P4D` = ... = 512: every table is one page of
/// 8-byte entries.
pub const PTRS_PER_TABLE: u64 = 512;

/// `_PAGE_PRESENT` (`_PAGE_BIT_PRESENT` = 0, pgtable_types.h). We follow the
/// CPU, not `pte_present()`, which also accepts `_PAGE_PROTNONE`: kernel mappings
/// are never PROT_NONE.
pub const PAGE_PRESENT: u64 = 0x1;
/// `_PAGE_PSE` (`_PAGE_BIT_PSE` = 7, pgtable_types.h): in a PUD or PMD entry, the
/// entry maps a 1 GiB or 2 MiB page instead of pointing at a table. In a PTE the
/// same bit is `_PAGE_PAT`; in a PGD or P4D entry it is reserved.
pub const PAGE_PSE: u64 = 0x80;
/// `_PAGE_NX` (`_PAGE_BIT_NX` = 63, pgtable_types.h): no-execute, ignored here.
pub const PAGE_NX: u64 = 0x8000_0000_0000_0000;

/// `1 << __PHYSICAL_MASK_SHIFT` (52, page_64_types.h): no page table can name a
/// physical address at or above this.
pub const PHYS_LIMIT: u64 = 0x0010_0000_0000_0000;
/// `PTE_PFN_MASK` (pgtable_types.h) = `PHYSICAL_PAGE_MASK` (page_types.h):
/// bits 12..51 of an entry that points at a table or a 4 KiB page. Bits 52..62
/// are software bits and protection keys.
pub const PTE_PFN_MASK: u64 = 0x000f_ffff_ffff_f000;
/// `PHYSICAL_PMD_PAGE_MASK` (page_types.h): bits 21..51 of a 2 MiB entry. Bit 12
/// there is `_PAGE_PAT_LARGE`, not an address bit.
pub const PHYSICAL_PMD_PAGE_MASK: u64 = 0x000f_ffff_ffe0_0000;
/// `PHYSICAL_PUD_PAGE_MASK` (page_types.h): bits 30..51 of a 1 GiB entry.
pub const PHYSICAL_PUD_PAGE_MASK: u64 = 0x000f_ffff_c000_0000;

/// `__START_KERNEL_map` (page_64_types.h): where the kernel image is mapped,
/// linearly from physical `phys_base` on.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// `KERNEL_IMAGE_SIZE` (page_64_types.h) with `CONFIG_RANDOMIZE_BASE`, which
/// distribution kernels set; without it the image mapping is 512 MiB and module
/// space (where BPF JIT images live) starts right after it, so pass the smaller
/// size to [`Translator::with_kernel_image`].
pub const KERNEL_IMAGE_SIZE: u64 = 0x4000_0000;

/// Virtual address bits the paging mode translates, `__VIRTUAL_MASK_SHIFT + 1`
/// (page_64_types.h): 48 with 4 levels, 57 with 5. `None` for other level counts.
pub const fn va_bits(levels: u8) -> Option<u32> {
    match levels {
        4 => Some(48),
        5 => Some(57),
        _ => None,
    }
}

/// `1 << MAX_PHYSMEM_BITS` (arch/x86/include/asm/sparsemem.h: 46 with 4 levels,
/// 52 with 5): the most physical memory the direct map can cover.
pub const fn max_physmem(levels: u8) -> Option<u64> {
    match levels {
        4 => Some(0x4000_0000_0000),
        5 => Some(PHYS_LIMIT),
        _ => None,
    }
}

/// Whether `kva` is canonical under `levels`-level paging: bits 63..47 (4-level)
/// or 63..56 (5-level) all equal, as `__canonical_address()` (asm/page.h) checks.
/// False for any other level count.
pub const fn is_canonical(kva: Kva, levels: u8) -> bool {
    let Some(bits) = va_bits(levels) else {
        return false;
    };
    let unused = 64u32.wrapping_sub(bits);
    let v = kva.get();
    // Sign-extend from the top translated bit; canonical iff nothing changes.
    let extended = (v.wrapping_shl(unused) as i64).wrapping_shr(unused) as u64;
    extended == v
}

/// Shift of the address bits an entry at `level` translates: 12 + 9 * (level - 1)
/// (`PAGE_SHIFT`, `PMD_SHIFT`, `PUD_SHIFT`, `P4D_SHIFT`/`PGDIR_SHIFT`).
pub const fn level_shift(level: u8) -> Option<u32> {
    match level {
        1 => Some(12),
        2 => Some(PMD_SHIFT),
        3 => Some(PUD_SHIFT),
        4 => Some(P4D_SHIFT),
        5 => Some(PGDIR_SHIFT_L5),
        _ => None,
    }
}

/// Index of `kva`'s entry in a table at `level` (1..=5).
pub const fn table_index(kva: Kva, level: u8) -> Option<u64> {
    match level_shift(level) {
        Some(shift) => Some(kva.get().wrapping_shr(shift) & (PTRS_PER_TABLE - 1)),
        None => None,
    }
}

/// `pgd_index()`: the top-level index, shift 39 with 4 levels or 48 with 5.
pub const fn pgd_index(kva: Kva, levels: u8) -> Option<u64> {
    match va_bits(levels) {
        Some(_) => table_index(kva, levels),
        None => None,
    }
}

/// `p4d_index()` under 5-level paging (shift 39).
pub const fn p4d_index(kva: Kva) -> u64 {
    kva.get().wrapping_shr(P4D_SHIFT) & (PTRS_PER_TABLE - 1)
}

/// `pud_index()` (shift 30).
pub const fn pud_index(kva: Kva) -> u64 {
    kva.get().wrapping_shr(PUD_SHIFT) & (PTRS_PER_TABLE - 1)
}

/// `pmd_index()` (shift 21).
pub const fn pmd_index(kva: Kva) -> u64 {
    kva.get().wrapping_shr(PMD_SHIFT) & (PTRS_PER_TABLE - 1)
}

/// `pte_index()` (shift 12).
pub const fn pte_index(kva: Kva) -> u64 {
    kva.get().wrapping_shr(12) & (PTRS_PER_TABLE - 1)
}

/// What one page-table entry says, decoded without reading memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `_PAGE_PRESENT` is clear: nothing is mapped through this entry.
    NotPresent,
    /// The entry points at the next-level table.
    Table(Pa),
    /// The entry maps `size` bytes (4 KiB, 2 MiB or 1 GiB) at `pa`, aligned to `size`.
    Page { pa: Pa, size: u64 },
    /// `_PAGE_PSE` in a PGD or P4D entry, a reserved bit the CPU faults on; or a
    /// level that does not exist.
    Reserved,
}

/// Decode the entry `entry` found in a table at `level` (1 = PTE ... 5 = PGD).
pub const fn decode_entry(entry: u64, level: u8) -> Entry {
    if entry & PAGE_PRESENT == 0 {
        return Entry::NotPresent;
    }
    let pse = entry & PAGE_PSE != 0;
    match level {
        1 => Entry::Page {
            pa: Pa(entry & PTE_PFN_MASK),
            size: PAGE_SIZE,
        },
        2 if pse => Entry::Page {
            pa: Pa(entry & PHYSICAL_PMD_PAGE_MASK),
            size: PMD_SIZE,
        },
        3 if pse => Entry::Page {
            pa: Pa(entry & PHYSICAL_PUD_PAGE_MASK),
            size: PUD_SIZE,
        },
        2 | 3 => Entry::Table(Pa(entry & PTE_PFN_MASK)),
        4 | 5 if !pse => Entry::Table(Pa(entry & PTE_PFN_MASK)),
        _ => Entry::Reserved,
    }
}

/// The kernel's name for a table at `level` under `levels`-level paging.
const fn table_name(levels: u8, level: u8) -> &'static str {
    match (levels, level) {
        (_, 1) => "pte",
        (_, 2) => "pmd",
        (_, 3) => "pud",
        (5, 4) => "p4d",
        _ => "pgd",
    }
}

/// How a translation was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The direct map: `pa = kva - page_offset_base` (`__pa()` for the direct map).
    DirectMap,
    /// The kernel image: `pa = kva - __START_KERNEL_map + phys_base`.
    KernelImage,
    /// A page-table walk.
    Walk,
}

/// A run of virtual addresses mapped linearly onto physical memory: one page
/// (4 KiB, 2 MiB or 1 GiB) found by a walk, or the part of a linear map that has
/// physical addresses. `pa + len` never exceeds [`PHYS_LIMIT`], and every
/// address in it is canonical and in one half, so `kva + len` never exceeds
/// 2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First virtual address.
    pub kva: Kva,
    /// Where `kva` lands.
    pub pa: Pa,
    /// Length in bytes; zero only in an empty cache slot.
    pub len: u64,
    /// How it was found.
    pub via: Via,
}

impl Mapping {
    const EMPTY: Mapping = Mapping {
        kva: Kva(0),
        pa: Pa(0),
        len: 0,
        via: Via::Walk,
    };

    /// Whether `kva` lies in the mapping: one subtraction and a comparison.
    #[inline]
    const fn covers(&self, kva: Kva) -> bool {
        kva.get().wrapping_sub(self.kva.get()) < self.len
    }

    /// The part of a linear map of `len` bytes from `kva` onto `pa` that a
    /// fast path may answer for: physical addresses in `[0, PHYS_LIMIT)`,
    /// virtual addresses canonical under `levels`-level paging and in one
    /// half, the first one that has any (so never past 2^64, nor across the
    /// non-canonical hole). Empty if there is none.
    const fn linear(kva: Kva, pa: Pa, len: u64, via: Via, levels: u8) -> Mapping {
        let (mut kva, mut pa, mut len) = (kva.get(), pa.get(), len);
        let Some(bits) = va_bits(levels) else {
            return Mapping::EMPTY;
        };
        // The lower half is [0, half), the upper [upper, 2^64). No operation
        // below wraps: each is guarded by the comparison before it.
        let half = 1u64.wrapping_shl(bits.wrapping_sub(1));
        let upper = half.wrapping_neg();
        if kva >= half && kva < upper {
            // Starts in the hole: skip to the upper half.
            let skip = upper.wrapping_sub(kva);
            let Some(skipped) = pa.checked_add(skip) else {
                return Mapping::EMPTY;
            };
            if len <= skip {
                return Mapping::EMPTY;
            }
            (kva, pa, len) = (upper, skipped, len.wrapping_sub(skip));
        }
        // Bytes to the end of the half: half - kva below, 2^64 - kva above.
        let room = if kva < half {
            half.wrapping_sub(kva)
        } else {
            kva.wrapping_neg()
        };
        if room < len {
            len = room;
        }
        match PHYS_LIMIT.checked_sub(pa) {
            Some(room) if room < len => len = room,
            Some(_) => {}
            None => return Mapping::EMPTY,
        }
        Mapping {
            kva: Kva(kva),
            pa: Pa(pa),
            len,
            via,
        }
    }

    /// Where `kva` lands and how many bytes from there on stay in this mapping,
    /// or `None` if `kva` is outside it.
    pub const fn lookup(&self, kva: Kva) -> Option<(Pa, u64)> {
        let Some(off) = kva.offset_from(self.kva) else {
            return None;
        };
        let Some(left) = self.len.checked_sub(off) else {
            return None;
        };
        if left == 0 {
            return None;
        }
        match self.pa.checked_add(off) {
            Some(pa) => Some((pa, left)),
            None => None,
        }
    }
}

/// How to turn kernel virtual addresses into physical ones: the paging mode, the
/// top-level page table, and the linear maps that may skip the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translator {
    /// 4 or 5.
    levels: u8,
    /// Physical address of `init_top_pgt` (a.k.a. `swapper_pg_dir`).
    pgd: Pa,
    /// `page_offset_base`, if the direct-map fast path is on.
    direct_map: Option<Kva>,
    /// Bytes of physical memory the direct-map fast path covers.
    direct_map_size: u64,
    /// `phys_base`, if the kernel-image fast path is on.
    phys_base: Option<i64>,
    /// Bytes from `__START_KERNEL_map` the kernel-image fast path covers.
    kernel_image_size: u64,
    /// What the direct-map fast path answers for (`Mapping::linear`),
    /// computed once; empty if off.
    direct: Mapping,
    /// The same for the kernel image.
    image: Mapping,
}

impl Translator {
    /// Walk `levels`-level page tables (4 or 5) rooted at `pgd`, with no fast paths.
    pub const fn new(levels: u8, pgd: Pa) -> Result<Self> {
        if va_bits(levels).is_none() {
            return Err(Error::Unsupported {
                what: "number of page-table levels",
                at: Location::None,
            });
        }
        if pgd.page_offset(PAGE_SIZE) != 0 || pgd.get() >= PHYS_LIMIT {
            return Err(Error::Malformed {
                what: "top-level page table address",
                at: Location::Pa(pgd),
            });
        }
        Ok(Translator {
            levels,
            pgd,
            direct_map: None,
            direct_map_size: 0,
            phys_base: None,
            kernel_image_size: 0,
            direct: Mapping::EMPTY,
            image: Mapping::EMPTY,
        })
    }

    /// The kernel's own translator: the top-level table is `init_top_pgt`, whose
    /// virtual address lies in the kernel image, so its physical address is
    /// `init_top_pgt - __START_KERNEL_map + phys_base` (`__pa_symbol()`). The
    /// kernel-image fast path is on, for [`KERNEL_IMAGE_SIZE`] bytes; the
    /// direct map is not (add it with [`Translator::with_direct_map`] once
    /// `page_offset_base` has been read).
    pub fn for_kernel(levels: u8, phys_base: i64, init_top_pgt_kva: u64) -> Result<Self> {
        let bad = Error::malformed("init_top_pgt", Kva(init_top_pgt_kva));
        let off = init_top_pgt_kva
            .checked_sub(START_KERNEL_MAP)
            .filter(|&off| off < KERNEL_IMAGE_SIZE)
            .ok_or(bad)?;
        let pgd = off.checked_add_signed(phys_base).ok_or(bad)?;
        Ok(Self::new(levels, Pa(pgd))?.with_kernel_image(phys_base, KERNEL_IMAGE_SIZE))
    }

    /// Translate `[page_offset_base, page_offset_base + size)` as
    /// `kva - page_offset_base` without walking (`__va()` in reverse). `size` is
    /// the physical memory the direct map covers; [`max_physmem`] is always safe.
    pub const fn with_direct_map(mut self, page_offset_base: Kva, size: u64) -> Self {
        self.direct_map = Some(page_offset_base);
        self.direct_map_size = size;
        self.direct = Mapping::linear(page_offset_base, Pa(0), size, Via::DirectMap, self.levels);
        self
    }

    /// Translate `[__START_KERNEL_map, __START_KERNEL_map + size)` as
    /// `kva - __START_KERNEL_map + phys_base` without walking.
    pub const fn with_kernel_image(mut self, phys_base: i64, size: u64) -> Self {
        self.phys_base = Some(phys_base);
        self.kernel_image_size = size;
        // Offsets `o` with a physical address satisfy 0 <= o + phys_base: below
        // a negative phys_base's load address there is none.
        let first = if phys_base < 0 {
            phys_base.unsigned_abs()
        } else {
            0
        };
        self.image = match (
            Kva(START_KERNEL_MAP).checked_add(first),
            size.checked_sub(first),
        ) {
            (Some(kva), Some(len)) => {
                // phys_base + first: phys_base, or 0 when it is negative.
                let pa = Pa(first.wrapping_add_signed(phys_base));
                Mapping::linear(kva, pa, len, Via::KernelImage, self.levels)
            }
            _ => Mapping::EMPTY,
        };
        self
    }

    /// Number of page-table levels, 4 or 5.
    pub const fn levels(&self) -> u8 {
        self.levels
    }

    /// Physical address of the top-level page table.
    pub const fn pgd(&self) -> Pa {
        self.pgd
    }

    /// `page_offset_base` and the size of the direct-map fast path, if on.
    pub const fn direct_map(&self) -> Option<(Kva, u64)> {
        match self.direct_map {
            Some(base) => Some((base, self.direct_map_size)),
            None => None,
        }
    }

    /// `phys_base` and the size of the kernel-image fast path, if on.
    pub const fn kernel_image(&self) -> Option<(i64, u64)> {
        match self.phys_base {
            Some(phys_base) => Some((phys_base, self.kernel_image_size)),
            None => None,
        }
    }

    /// Translate `kva` to a physical address and the number of bytes from there
    /// that stay in the same page or linear map. Non-canonical addresses fail
    /// with [`Error::NonCanonical`]; then the fast paths apply, else the walk.
    pub fn translate<M: PhysRead + ?Sized>(&self, mem: &M, kva: Kva) -> Result<(Pa, u64)> {
        lookup(self.mapping(mem, kva)?, kva)
    }

    /// Like [`Translator::translate`] but always walks the page tables.
    pub fn walk<M: PhysRead + ?Sized>(&self, mem: &M, kva: Kva) -> Result<(Pa, u64)> {
        lookup(self.walk_mapping(mem, kva)?, kva)
    }

    /// The whole mapping `kva` lies in, by fast path or walk.
    pub fn mapping<M: PhysRead + ?Sized>(&self, mem: &M, kva: Kva) -> Result<Mapping> {
        match self.fast_path(kva) {
            Some(m) => Ok(m),
            None => self.walk_mapping(mem, kva),
        }
    }

    /// The linear map `kva` lies in, if a fast path covers it. Reads nothing.
    /// `None` for non-canonical addresses and for addresses whose linear-map
    /// physical address would be negative or beyond [`PHYS_LIMIT`]. The
    /// mapping holds canonical addresses of one half only, so a read through
    /// it never wraps past 2^64 or runs into the non-canonical hole, whatever
    /// `page_offset_base` and the sizes say.
    pub fn fast_path(&self, kva: Kva) -> Option<Mapping> {
        // The kernel image first. Both hold canonical addresses only.
        if self.image.covers(kva) {
            Some(self.image)
        } else if self.direct.covers(kva) {
            Some(self.direct)
        } else {
            None
        }
    }

    /// `fast_path(kva)?.lookup(kva)`, on the hot path of [`KernelMem`].
    #[inline]
    fn fast_lookup(&self, kva: Kva) -> Option<(Pa, u64)> {
        match self.image.lookup(kva) {
            Some(hit) => Some(hit),
            None => self.direct.lookup(kva),
        }
    }

    /// The page `kva` lies in, found by walking the page tables: at most
    /// `levels` (<= 5) reads, one per level, so even tables that point back at
    /// themselves end the walk. A not-present entry fails with
    /// [`Error::NotMapped`] naming its level; an entry pointing outside `mem`
    /// fails with the read's [`Error::Unmapped`].
    pub fn walk_mapping<M: PhysRead + ?Sized>(&self, mem: &M, kva: Kva) -> Result<Mapping> {
        self.walk_mapping_table(mem, kva).map(|(m, _)| m)
    }

    /// [`Translator::walk_mapping`], and the PTE table the walk ended in when
    /// it went down to a 4 KiB page.
    pub fn walk_mapping_table<M: PhysRead + ?Sized>(
        &self,
        mem: &M,
        kva: Kva,
    ) -> Result<(Mapping, Option<Pa>)> {
        if !is_canonical(kva, self.levels) {
            return Err(Error::NonCanonical { kva });
        }
        let mut table = self.pgd;
        for level in (1..=self.levels).rev() {
            let index = table_index(kva, level).ok_or(Error::NotMapped { kva, level })?;
            // Tables are page-aligned and below PHYS_LIMIT, so this cannot overflow.
            let slot = table
                .checked_add(index.wrapping_mul(8))
                .ok_or(Error::Unmapped { pa: table, len: 8 })?;
            match decode_entry(mem.read_u64(slot)?, level) {
                Entry::NotPresent => return Err(Error::NotMapped { kva, level }),
                Entry::Table(next) => table = next,
                Entry::Page { pa, size } => {
                    let pte_table = (level == 1).then_some(table);
                    return Ok((
                        Mapping {
                            kva: kva.align_down(size),
                            pa,
                            len: size,
                            via: Via::Walk,
                        },
                        pte_table,
                    ));
                }
                Entry::Reserved => {
                    return Err(Error::malformed(table_name(self.levels, level), slot))
                }
            }
        }
        // A level-1 entry always decodes to a page or not-present.
        Err(Error::malformed("pte", kva))
    }
}

/// `m.lookup(kva)` for a mapping just found for `kva`, which always contains it.
fn lookup(m: Mapping, kva: Kva) -> Result<(Pa, u64)> {
    m.lookup(kva).ok_or(Error::NotMapped { kva, level: 0 })
}

/// Counters of a [`KernelMem`], for tests and benchmarks. Every translation of
/// a canonical address counts once, in `translations` or in `cache_hits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Translations not answered from the cache (successful or not): by a
    /// fast path, which never uses the cache, or by a walk.
    pub translations: u64,
    /// Of those, the ones no fast path covered, so the page tables were walked
    /// (in one read if the PTE table of the address's 2 MiB was remembered).
    pub walks: u64,
    /// Translations answered from the cache of walked pages.
    pub cache_hits: u64,
}

/// Slots for walked pages larger than a base page (2 MiB and 1 GiB), fully
/// associative: each holds a whole page.
const BIG_SLOTS: usize = 8;

/// Slots for 4 KiB pages, direct-mapped by page number: a walk over up to
/// 16 MiB of vmalloc'd objects (a 100k-entry hash table's 6.4 MiB of
/// elements, visited in hash order) keeps its pages here. 128 KiB of state.
const PAGE_SLOTS: usize = 4096;
const _: () = assert!(PAGE_SLOTS.is_power_of_two());

/// Remembered last-level tables (PTE pages), direct-mapped by 2 MiB region:
/// translating a new 4 KiB page next to one seen before costs one read, like
/// the paging-structure caches of a CPU.
const TABLE_SLOTS: usize = 32;
const _: () = assert!(TABLE_SLOTS.is_power_of_two());

/// A PTE table and the 2 MiB of address space it maps; `region` 0 is empty
/// (no kernel address is that low).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PteTable {
    region: u64,
    table: Pa,
}

const NO_TABLE: PteTable = PteTable {
    region: 0,
    table: Pa(0),
};

/// A kernel's virtual address space over its physical memory: [`KernelRead`]
/// through a [`Translator`], with caches of recently walked pages and page
/// tables so a walk over a structure costs about one page walk per page, not
/// per read. The fast paths come first and are never cached, so
/// [`KernelMem::translate`] always answers as [`Translator::translate`] does,
/// whatever was translated before.
///
/// The caches assume the page tables do not change while they are used; over
/// a live source, call [`KernelMem::flush_cache`] between snapshots.
#[derive(Clone, Debug)]
pub struct KernelMem<M> {
    mem: M,
    tr: Translator,
    big: Cell<[Mapping; BIG_SLOTS]>,
    /// The big slot that answered or was filled last, tried first.
    last: Cell<usize>,
    /// The big slot the next miss fills (round robin).
    next: Cell<usize>,
    pages: [Cell<Mapping>; PAGE_SLOTS],
    tables: [Cell<PteTable>; TABLE_SLOTS],
    stats: Cell<Stats>,
}

impl<M: PhysRead> KernelMem<M> {
    /// Read kernel virtual memory from `mem` through `tr`.
    pub fn new(mem: M, tr: Translator) -> Self {
        KernelMem {
            mem,
            tr,
            big: Cell::new([Mapping::EMPTY; BIG_SLOTS]),
            last: Cell::new(0),
            next: Cell::new(0),
            pages: core::array::from_fn(|_| Cell::new(Mapping::EMPTY)),
            tables: core::array::from_fn(|_| Cell::new(NO_TABLE)),
            stats: Cell::new(Stats::default()),
        }
    }

    /// The physical memory source.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// The translator.
    pub fn translator(&self) -> &Translator {
        &self.tr
    }

    /// Give the physical memory source back.
    pub fn into_inner(self) -> M {
        self.mem
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats.get()
    }

    /// Forget every cached translation and table (the counters stay).
    pub fn flush_cache(&self) {
        self.big.set([Mapping::EMPTY; BIG_SLOTS]);
        for p in &self.pages {
            p.set(Mapping::EMPTY);
        }
        for t in &self.tables {
            t.set(NO_TABLE);
        }
    }

    fn page_slot(&self, kva: Kva) -> Option<&Cell<Mapping>> {
        let i = usize::try_from(kva.get().wrapping_shr(12) & (PAGE_SLOTS as u64).wrapping_sub(1))
            .ok()?;
        self.pages.get(i)
    }

    fn table_slot(&self, kva: Kva) -> Option<&Cell<PteTable>> {
        let i = usize::try_from(
            kva.get().wrapping_shr(PMD_SHIFT) & (TABLE_SLOTS as u64).wrapping_sub(1),
        )
        .ok()?;
        self.tables.get(i)
    }

    /// A cached walk's answer for `kva`, if any.
    fn cached(&self, kva: Kva) -> Option<(Pa, u64)> {
        if let Some(hit) = self.page_slot(kva).and_then(|s| s.get().lookup(kva)) {
            return Some(hit);
        }
        let slots: &Cell<[Mapping]> = &self.big;
        let slots = slots.as_slice_of_cells();
        slots
            .get(self.last.get())
            .and_then(|s| s.get().lookup(kva))
            .or_else(|| {
                slots.iter().enumerate().find_map(|(i, s)| {
                    let hit = s.get().lookup(kva)?;
                    self.last.set(i);
                    Some(hit)
                })
            })
    }

    /// Cache a page a walk found.
    fn remember(&self, m: Mapping) {
        if m.len == PAGE_SIZE {
            if let Some(s) = self.page_slot(m.kva) {
                s.set(m);
            }
            return;
        }
        let slots: &Cell<[Mapping]> = &self.big;
        let slots = slots.as_slice_of_cells();
        let slot = self.next.get();
        if let Some(s) = slots.get(slot) {
            s.set(m);
        }
        self.last.set(slot);
        self.next
            .set(slot.checked_add(1).filter(|&n| n < BIG_SLOTS).unwrap_or(0));
    }

    /// The page walk, shortened to one read when the PTE table of `kva`'s
    /// 2 MiB region is known.
    fn walk(&self, kva: Kva) -> Result<Mapping> {
        let region = kva.align_down(PMD_SIZE).get();
        if let Some(t) = self.table_slot(kva).map(Cell::get) {
            if t.region == region && region != 0 {
                let slot =
                    t.table
                        .checked_add(pte_index(kva).wrapping_mul(8))
                        .ok_or(Error::Unmapped {
                            pa: t.table,
                            len: 8,
                        })?;
                return match decode_entry(self.mem.read_u64(slot)?, 1) {
                    Entry::Page { pa, size } => Ok(Mapping {
                        kva: kva.align_down(size),
                        pa,
                        len: size,
                        via: Via::Walk,
                    }),
                    _ => Err(Error::NotMapped { kva, level: 1 }),
                };
            }
        }
        let (m, table) = self.tr.walk_mapping_table(&self.mem, kva)?;
        if let (Some(table), Some(s)) = (table, self.table_slot(kva)) {
            s.set(PteTable { region, table });
        }
        Ok(m)
    }

    /// [`Translator::translate`], with the page walks cached. The fast paths
    /// (arithmetic, no reads) are tried first, as the translator tries them:
    /// a cached walk answers only where the translator would walk, so the
    /// answer never depends on what was translated before.
    pub fn translate(&self, kva: Kva) -> Result<(Pa, u64)> {
        let mut stats = self.stats.get();
        if let Some(hit) = self.tr.fast_lookup(kva) {
            stats.translations = stats.translations.wrapping_add(1);
            self.stats.set(stats);
            return Ok(hit);
        }
        // Walked pages are canonical, so a non-canonical kva misses here.
        if let Some(hit) = self.cached(kva) {
            stats.cache_hits = stats.cache_hits.wrapping_add(1);
            self.stats.set(stats);
            return Ok(hit);
        }
        if !is_canonical(kva, self.tr.levels) {
            return Err(Error::NonCanonical { kva });
        }
        stats.translations = stats.translations.wrapping_add(1);
        stats.walks = stats.walks.wrapping_add(1);
        self.stats.set(stats);
        let m = self.walk(kva)?;
        self.remember(m);
        lookup(m, kva)
    }
}

impl<M: PhysRead> KernelRead for KernelMem<M> {
    fn prefetch_kva(&self, kva: Kva) {
        // Translating now fills the cache for the read that follows, so the
        // walk is not extra work; an address that does not translate is left
        // for that read to report.
        if let Ok((pa, _)) = self.translate(kva) {
            self.mem.prefetch(pa);
        }
    }

    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        let mut cur = kva;
        let mut rest = buf;
        // Every pass copies at least one byte (a mapping never has 0 bytes left),
        // so this ends; in practice it makes one pass per page or mapping.
        while !rest.is_empty() {
            let (pa, left) = self.translate(cur)?;
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
            let (head, tail) = rest
                .split_at_mut_checked(n)
                .filter(|(head, _)| !head.is_empty())
                .ok_or(Error::NotMapped { kva: cur, level: 0 })?;
            self.mem.read_phys(pa, head)?;
            rest = tail;
            if rest.is_empty() {
                break;
            }
            cur = cur
                .checked_add(head.len() as u64)
                .ok_or(Error::unsupported(
                    "read past the top of the address space",
                    kva,
                ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::phys::Flat;

    /// Present, writable, accessed, dirty, global: bits a real entry has and
    /// translation ignores.
    const FLAGS: u64 = PAGE_PRESENT | 0x2 | 0x20 | 0x40 | 0x100;
    /// `_PAGE_PAT_LARGE` (bit 12) in a 2 MiB or 1 GiB entry.
    const PAT_LARGE: u64 = 0x1000;

    /// Page tables in flat physical memory from pa 0: the top table is at
    /// 0x1000 and more tables are allocated upward from 0x2000.
    struct Tables {
        levels: u8,
        bytes: Vec<u8>,
        next: u64,
    }

    const PGD: u64 = 0x1000;

    impl Tables {
        fn new(levels: u8, pages: usize) -> Self {
            Tables {
                levels,
                bytes: vec![0; pages * 0x1000],
                next: 0x2000,
            }
        }

        fn tr(&self) -> Translator {
            Translator::new(self.levels, Pa(PGD)).unwrap()
        }

        fn mem(&self) -> Flat<&[u8]> {
            Flat::new(Pa(0), &self.bytes[..])
        }

        fn get(&self, pa: u64) -> u64 {
            u64::from_le_bytes(self.bytes[pa as usize..][..8].try_into().unwrap())
        }

        fn set(&mut self, pa: u64, v: u64) {
            self.bytes[pa as usize..][..8].copy_from_slice(&v.to_le_bytes());
        }

        fn write(&mut self, pa: u64, data: &[u8]) {
            self.bytes[pa as usize..][..data.len()].copy_from_slice(data);
        }

        fn alloc(&mut self) -> u64 {
            let p = self.next;
            self.next += 0x1000;
            assert!(self.next as usize <= self.bytes.len(), "test memory full");
            p
        }

        /// Address of `kva`'s entry at `level`, creating the tables above it.
        fn slot(&mut self, kva: u64, level: u8) -> u64 {
            let mut table = PGD;
            for l in (level + 1..=self.levels).rev() {
                let slot = table + table_index(Kva(kva), l).unwrap() * 8;
                let e = self.get(slot);
                table = if e & PAGE_PRESENT == 0 {
                    let t = self.alloc();
                    self.set(slot, t | FLAGS);
                    t
                } else {
                    e & PTE_PFN_MASK
                };
            }
            table + table_index(Kva(kva), level).unwrap() * 8
        }

        /// Map the level-`level` page at `kva` (4 KiB, 2 MiB, 1 GiB) onto `pa`.
        fn map(&mut self, kva: u64, pa: u64, level: u8) {
            let pse = if level > 1 { PAGE_PSE } else { 0 };
            let slot = self.slot(kva, level);
            self.set(slot, pa | FLAGS | pse | PAGE_NX);
        }

        fn clear_present(&mut self, kva: u64, level: u8) {
            let slot = self.slot(kva, level);
            let e = self.get(slot);
            self.set(slot, e & !PAGE_PRESENT);
        }
    }

    /// A canonical address with non-zero indexes at every level.
    fn sample_kva(levels: u8) -> u64 {
        if levels == 5 {
            0xffd2_3456_789a_b000
        } else {
            0xffff_d234_5678_9000
        }
    }

    #[test]
    fn entry_bits() {
        assert_eq!(decode_entry(0, 1), Entry::NotPresent);
        assert_eq!(decode_entry(!PAGE_PRESENT, 3), Entry::NotPresent);
        // NX and the software/pkey bits 52..62 are not address bits.
        let e = 0xfff0_0001_2345_6000 | FLAGS;
        for level in [2, 3, 4, 5] {
            assert_eq!(decode_entry(e, level), Entry::Table(Pa(0x1_2345_6000)));
        }
        // In a PTE, bit 7 is _PAGE_PAT, not a size.
        assert_eq!(
            decode_entry(e | PAGE_PSE, 1),
            Entry::Page {
                pa: Pa(0x1_2345_6000),
                size: PAGE_SIZE
            }
        );
        assert_eq!(
            decode_entry(0x8000_0000_4020_0000 | PAT_LARGE | PAGE_PSE | FLAGS, 2),
            Entry::Page {
                pa: Pa(0x4020_0000),
                size: PMD_SIZE
            }
        );
        assert_eq!(
            decode_entry(0x0000_0001_c000_0000 | PAT_LARGE | PAGE_PSE | FLAGS, 3),
            Entry::Page {
                pa: Pa(0x1_c000_0000),
                size: PUD_SIZE
            }
        );
        assert_eq!(decode_entry(e | PAGE_PSE, 4), Entry::Reserved);
        assert_eq!(decode_entry(e | PAGE_PSE, 5), Entry::Reserved);
        assert_eq!(decode_entry(e, 0), Entry::Reserved);
        assert_eq!(decode_entry(e, 6), Entry::Reserved);
    }

    #[test]
    fn indexes_per_level() {
        // page_offset_base defaults: PGD slot 273 in both modes.
        let l4 = Kva(0xffff_8880_0000_0000);
        let l5 = Kva(0xff11_0000_0000_0000);
        assert_eq!(pgd_index(l4, 4), Some(0x111));
        assert_eq!(pgd_index(l5, 5), Some(0x111));
        assert_eq!(p4d_index(l5), 0);
        assert_eq!(pgd_index(l4, 3), None);
        // __START_KERNEL_map: level3_kernel_pgt[510] under init_top_pgt[511].
        let k = Kva(START_KERNEL_MAP);
        assert_eq!(pgd_index(k, 4), Some(511));
        assert_eq!(p4d_index(k), 511);
        assert_eq!(pud_index(k), 510);
        assert_eq!(pmd_index(k), 0);
        let v = Kva((0x80 << 39) | (0x40 << 30) | (0x40 << 21) | (0x85 << 12) | 0x123);
        assert_eq!(
            [pte_index(v), pmd_index(v), pud_index(v), p4d_index(v)],
            [0x85, 0x40, 0x40, 0x80]
        );
        for level in 1..=5 {
            assert_eq!(
                table_index(v, level),
                Some((v.0 >> level_shift(level).unwrap()) & 511)
            );
        }
        assert_eq!(table_index(v, 0), None);
        assert_eq!(table_index(v, 6), None);
    }

    #[test]
    fn canonical_addresses() {
        // (address, canonical with 4 levels, canonical with 5 levels)
        let cases = [
            (0, true, true),
            (u64::MAX, true, true),
            (0x0000_7fff_ffff_ffff, true, true),
            (0x0000_8000_0000_0000, false, true),
            (0xffff_7fff_ffff_ffff, false, true),
            (0xffff_8000_0000_0000, true, true),
            (0x00ff_ffff_ffff_ffff, false, true),
            (0x0100_0000_0000_0000, false, false),
            (0xff00_0000_0000_0000, false, true),
            (0xfeff_ffff_ffff_ffff, false, false),
            (0x8000_0000_0000_0000, false, false),
        ];
        for (a, l4, l5) in cases {
            assert_eq!(is_canonical(Kva(a), 4), l4, "{a:#x} 4-level");
            assert_eq!(is_canonical(Kva(a), 5), l5, "{a:#x} 5-level");
            assert!(!is_canonical(Kva(a), 3));
        }
    }

    #[test]
    fn non_canonical_addresses_fail_in_both_modes() {
        for (levels, bad) in [(4, 0xff00_0000_0000_0000u64), (5, 0xfe00_0000_0000_0000)] {
            let t = Tables::new(levels, 4);
            let tr = t.tr().with_direct_map(Kva(0xfe00_0000_0000_0000), u64::MAX);
            let kva = Kva(bad);
            assert_eq!(
                tr.translate(&t.mem(), kva),
                Err(Error::NonCanonical { kva })
            );
            assert_eq!(tr.walk(&t.mem(), kva), Err(Error::NonCanonical { kva }));
            let km = KernelMem::new(t.mem(), tr);
            assert_eq!(km.read_kva_u64(kva), Err(Error::NonCanonical { kva }));
            assert_eq!(km.stats(), Stats::default());
        }
    }

    #[test]
    fn walks_4k_2m_1g_pages_in_both_modes() {
        for levels in [4, 5] {
            let base = sample_kva(levels);
            let mut t = Tables::new(levels, 32);
            t.map(base, 0x5_6789_a000, 1);
            let huge2m = (base & !(PUD_SIZE - 1)) + 0x3000_0000 + 0x4_0000_0000;
            t.map(huge2m, 0x4020_0000 | PAT_LARGE, 2);
            let huge1g = base + 0x40_0000_0000;
            let huge1g = huge1g & !(PUD_SIZE - 1);
            t.map(huge1g, 0x8000_0000 | PAT_LARGE, 3);
            let tr = t.tr();
            let mem = t.mem();
            let cases = [
                (base + 0x123, 0x5_6789_a123, 0x1000 - 0x123, PAGE_SIZE),
                (
                    huge2m + 0x1_2345,
                    0x4021_2345,
                    PMD_SIZE - 0x1_2345,
                    PMD_SIZE,
                ),
                (
                    huge1g + 0x1234_5678,
                    0x9234_5678,
                    PUD_SIZE - 0x1234_5678,
                    PUD_SIZE,
                ),
            ];
            for (kva, pa, left, size) in cases {
                let kva = Kva(kva);
                assert_eq!(tr.walk(&mem, kva), Ok((Pa(pa), left)), "{kva} {levels}");
                assert_eq!(tr.translate(&mem, kva), Ok((Pa(pa), left)));
                let m = tr.walk_mapping(&mem, kva).unwrap();
                assert_eq!(m.kva, kva.align_down(size));
                assert_eq!(m.len, size);
                assert_eq!(m.via, Via::Walk);
            }
        }
    }

    #[test]
    fn not_present_at_each_level_names_the_level() {
        for levels in [4u8, 5] {
            for level in 1..=levels {
                let kva = sample_kva(levels);
                let mut t = Tables::new(levels, 16);
                t.map(kva, 0x10_0000, 1);
                assert!(t.tr().walk(&t.mem(), Kva(kva)).is_ok());
                t.clear_present(kva, level);
                assert_eq!(
                    t.tr().translate(&t.mem(), Kva(kva + 8)),
                    Err(Error::NotMapped {
                        kva: Kva(kva + 8),
                        level
                    }),
                    "{levels}-level, level {level}"
                );
            }
        }
    }

    #[test]
    fn pse_in_a_top_level_entry_is_malformed() {
        for levels in [4u8, 5] {
            let kva = sample_kva(levels);
            let mut t = Tables::new(levels, 16);
            t.map(kva, 0x10_0000, 1);
            let slot = t.slot(kva, levels);
            let e = t.get(slot);
            t.set(slot, e | PAGE_PSE);
            assert_eq!(
                t.tr().walk(&t.mem(), Kva(kva)),
                Err(Error::malformed("pgd", Pa(slot)))
            );
            if levels == 5 {
                t.set(slot, e);
                let slot = t.slot(kva, 4);
                let e = t.get(slot);
                t.set(slot, e | PAGE_PSE);
                assert_eq!(
                    t.tr().walk(&t.mem(), Kva(kva)),
                    Err(Error::malformed("p4d", Pa(slot)))
                );
            }
        }
    }

    #[test]
    fn table_outside_the_source_is_unmapped() {
        let kva = sample_kva(4);
        let mut t = Tables::new(4, 16);
        t.map(kva, 0x10_0000, 1);
        // Point the PMD entry at a PTE table far beyond the 64 KiB of memory.
        let slot = t.slot(kva, 2);
        t.set(slot, 0x10_0000_0000 | FLAGS);
        let pte = 0x10_0000_0000 + pte_index(Kva(kva)) * 8;
        assert_eq!(
            t.tr().translate(&t.mem(), Kva(kva)),
            Err(Error::Unmapped {
                pa: Pa(pte),
                len: 8
            })
        );
        // A page outside the source translates, and reading it fails.
        t.set(slot, 0x7fe0_0000 | FLAGS | PAGE_PSE);
        let km = KernelMem::new(t.mem(), t.tr());
        assert_eq!(km.translate(Kva(kva)), Ok((Pa(0x7ff8_9000), 0x7_7000)));
        assert_eq!(
            km.read_kva_u64(Kva(kva)),
            Err(Error::Unmapped {
                pa: Pa(0x7ff8_9000),
                len: 8
            })
        );
    }

    #[test]
    fn constructor_checks() {
        assert!(matches!(
            Translator::new(3, Pa(0x1000)),
            Err(Error::Unsupported { .. })
        ));
        assert!(Translator::new(4, Pa(0x1008)).is_err());
        assert!(Translator::new(5, Pa(PHYS_LIMIT)).is_err());
        // init_top_pgt must lie in the kernel image.
        assert!(Translator::for_kernel(4, 0, 0xffff_8880_0000_1000).is_err());
        assert!(Translator::for_kernel(4, 0, START_KERNEL_MAP + KERNEL_IMAGE_SIZE).is_err());
        // ... and land at a physical address.
        assert!(Translator::for_kernel(4, -0x200_0000, START_KERNEL_MAP + 0x1000).is_err());
        assert!(Translator::for_kernel(4, i64::MAX, START_KERNEL_MAP + 0x1000).is_err());
        let tr = Translator::for_kernel(5, 0x3a00_0000, START_KERNEL_MAP + 0x260_c000).unwrap();
        assert_eq!(tr.pgd(), Pa(0x3c60_c000));
        assert_eq!(tr.levels(), 5);
        assert_eq!(tr.kernel_image(), Some((0x3a00_0000, KERNEL_IMAGE_SIZE)));
        assert_eq!(tr.direct_map(), None);
    }

    /// The kernel's page-table layout in miniature: the direct map covers
    /// physical [0, 4 GiB) (4 KiB pages for the first 2 MiB, 2 MiB pages up to
    /// 1 GiB, then 1 GiB pages) and the kernel image is mapped with 2 MiB pages
    /// from `__START_KERNEL_map` onto `phys_base` for 64 MiB. Returns the tables,
    /// `Translator::for_kernel` plus the direct map, and `page_offset_base`.
    fn kernel_like(levels: u8, phys_base: i64) -> (Tables, Translator, u64) {
        let page_offset_base = if levels == 5 {
            0xff11_0000_0000_0000
        } else {
            0xffff_8880_0000_0000
        };
        let mut t = Tables::new(levels, 16);
        for i in 0..512 {
            t.map(page_offset_base + i * PAGE_SIZE, i * PAGE_SIZE, 1);
        }
        for i in 1..512 {
            t.map(page_offset_base + i * PMD_SIZE, i * PMD_SIZE, 2);
        }
        for i in 1..4 {
            t.map(page_offset_base + i * PUD_SIZE, i * PUD_SIZE, 3);
        }
        for i in 0..32u64 {
            let off = i * PMD_SIZE;
            if let Some(pa) = off.checked_add_signed(phys_base) {
                t.map(START_KERNEL_MAP + off, pa, 2);
            }
        }
        // The real init_top_pgt lies in the image, above phys_base; the test
        // tables live low, so for_kernel can only find them if phys_base is too.
        let tr = match (START_KERNEL_MAP + PGD).checked_add_signed(-phys_base) {
            Some(init_top_pgt) if phys_base <= PGD as i64 => {
                Translator::for_kernel(levels, phys_base, init_top_pgt).unwrap()
            }
            _ => t.tr().with_kernel_image(phys_base, KERNEL_IMAGE_SIZE),
        };
        let tr = tr.with_direct_map(Kva(page_offset_base), max_physmem(levels).unwrap());
        assert_eq!(tr.pgd(), Pa(PGD));
        (t, tr, page_offset_base)
    }

    #[test]
    fn fast_paths_equal_the_walk() {
        for levels in [4, 5] {
            for phys_base in [0, 0x3a00_0000, -0xe0_0000] {
                let (t, tr, pob) = kernel_like(levels, phys_base);
                let mem = t.mem();
                let direct = [0, 0x1234, 0x1f_fff8, 0x20_0000, 0x3fff_ffff, 0x4000_0000]
                    .map(|o| (pob + o, Via::DirectMap));
                let image = [0x100_0000, 0x123_4567, 0x3ff_fff8]
                    .map(|o| (START_KERNEL_MAP + o, Via::KernelImage));
                for (kva, via) in direct.into_iter().chain(image) {
                    let kva = Kva(kva);
                    let fast = tr.fast_path(kva).unwrap();
                    assert_eq!(fast.via, via);
                    let (pa, left) = tr.translate(&mem, kva).unwrap();
                    let (walk_pa, walk_left) = tr.walk(&mem, kva).unwrap();
                    assert_eq!(pa, walk_pa, "{kva} {levels} {phys_base}");
                    assert!(left >= walk_left);
                }
            }
        }
    }

    #[test]
    fn negative_phys_base() {
        // The kernel linked for 16 MiB but loaded at 2 MiB.
        let phys_base = -0xe0_0000;
        let (t, tr, _) = kernel_like(4, phys_base);
        let mem = t.mem();
        let text = Kva(START_KERNEL_MAP + 0x100_0000);
        assert_eq!(tr.translate(&mem, text), Ok((Pa(0x20_0000), 0x3f00_0000)));
        assert_eq!(tr.walk(&mem, text), Ok((Pa(0x20_0000), 0x20_0000)));
        assert_eq!(
            tr.fast_path(text),
            Some(Mapping {
                kva: Kva(START_KERNEL_MAP + 0xe0_0000),
                pa: Pa(0),
                len: KERNEL_IMAGE_SIZE - 0xe0_0000,
                via: Via::KernelImage
            })
        );
        // Below the load address there is no physical address: the fast path
        // steps aside and the walk finds nothing mapped.
        let low = Kva(START_KERNEL_MAP + 0x10_0000);
        assert_eq!(tr.fast_path(low), None);
        assert_eq!(
            tr.translate(&mem, low),
            Err(Error::NotMapped { kva: low, level: 2 })
        );
    }

    #[test]
    fn read_across_pages_mapped_apart() {
        // The vmalloc case: consecutive virtual pages on non-adjacent physical
        // pages, in reverse order.
        let vmalloc = 0xffff_c900_0004_0000;
        let mut t = Tables::new(4, 16);
        t.map(vmalloc, 0xc000, 1);
        t.map(vmalloc + 0x1000, 0xa000, 1);
        t.write(0xcff8, &[1, 2, 3, 4, 5, 6, 7, 8]);
        t.write(0xa000, &[9, 10, 11, 12, 13, 14, 15, 16]);
        t.write(0xb000, &[0xee; 8]);
        let km = KernelMem::new(t.mem(), t.tr());
        let mut buf = [0u8; 16];
        km.read_kva(Kva(vmalloc + 0xff8), &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(
            km.stats(),
            Stats {
                translations: 2,
                walks: 2,
                cache_hits: 0
            }
        );
        km.read_kva(Kva(vmalloc + 0xff8), &mut buf).unwrap();
        assert_eq!(km.stats().cache_hits, 2);
        // A read running into an unmapped third page fails there.
        assert_eq!(
            km.read_kva(Kva(vmalloc + 0x1ff8), &mut buf),
            Err(Error::NotMapped {
                kva: Kva(vmalloc + 0x2000),
                level: 1
            })
        );
        assert_eq!(km.read_kva(Kva(vmalloc), &mut []), Ok(()));
    }

    #[test]
    fn one_translation_per_page() {
        let kva = sample_kva(5);
        let huge = (kva & !(PMD_SIZE - 1)) + PMD_SIZE;
        let mut t = Tables::new(5, 16);
        t.map(kva, 0xe000, 1);
        t.map(huge, 0x20_0000, 2);
        let km = KernelMem::new(t.mem(), t.tr());
        for off in (0..0x1000).step_by(8) {
            km.read_kva_u64(Kva(kva + off)).unwrap();
        }
        assert_eq!(
            km.stats(),
            Stats {
                translations: 1,
                walks: 1,
                cache_hits: 511
            }
        );
        // A 2 MiB page takes one translation for all its 4 KiB pages.
        for off in (0..PMD_SIZE).step_by(0x1000) {
            assert_eq!(
                km.translate(Kva(huge + off)),
                Ok((Pa(0x20_0000 + off), PMD_SIZE - off))
            );
        }
        assert_eq!(km.stats().translations, 2);
        km.flush_cache();
        km.read_kva_u64(Kva(kva)).unwrap();
        assert_eq!(km.stats().translations, 3);
        // More distinct pages than page slots: still correct; pages whose
        // slots collide (i and i + PAGE_SLOTS) are translated again. Tables
        // sit below DATA, the pages above it.
        const DATA: u64 = 0x10_0000;
        let pages = PAGE_SLOTS as u64 + 44;
        let mut t = Tables::new(4, (DATA / 0x1000 + pages) as usize);
        for i in 0..pages {
            t.map(0xffff_c900_0000_0000 + i * 0x1000, DATA + i * 0x1000, 1);
            t.write(DATA + i * 0x1000, &[i as u8]);
        }
        let km = KernelMem::new(t.mem(), t.tr());
        for _ in 0..2 {
            for i in 0..pages {
                assert_eq!(
                    km.read_kva_u8(Kva(0xffff_c900_0000_0000 + i * 0x1000)),
                    Ok(i as u8)
                );
            }
        }
        assert_eq!(km.stats().translations, pages + 2 * 44);
    }

    /// Counts physical reads.
    struct Counting<M> {
        mem: M,
        reads: Cell<u64>,
    }

    impl<M: PhysRead> PhysRead for Counting<M> {
        fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<()> {
            self.reads.set(self.reads.get() + 1);
            self.mem.read_phys(pa, buf)
        }
    }

    #[test]
    fn pages_next_to_a_walked_one_cost_one_table_read() {
        for levels in [4u8, 5] {
            let base = sample_kva(levels) & !(PMD_SIZE - 1);
            let mut t = Tables::new(levels, 24);
            for i in 0..8 {
                t.map(base + i * 0x1000, 0x1_0000 + i * 0x1000, 1);
            }
            // A page in another 2 MiB region, to show the table is per region.
            t.map(base + PMD_SIZE, 0x1_0000, 1);
            let mem = Counting {
                mem: t.mem(),
                reads: Cell::new(0),
            };
            let km = KernelMem::new(&mem, t.tr());
            km.translate(Kva(base)).unwrap();
            assert_eq!(mem.reads.get(), u64::from(levels), "{levels}-level walk");
            for i in 1..8 {
                assert_eq!(
                    km.translate(Kva(base + i * 0x1000)),
                    Ok((Pa(0x1_0000 + i * 0x1000), 0x1000))
                );
            }
            assert_eq!(mem.reads.get(), u64::from(levels) + 7);
            km.translate(Kva(base + PMD_SIZE)).unwrap();
            assert_eq!(mem.reads.get(), 2 * u64::from(levels) + 7);
            // Not present at the PTE, through the remembered table too.
            assert_eq!(
                km.translate(Kva(base + 9 * 0x1000)),
                Err(Error::NotMapped {
                    kva: Kva(base + 9 * 0x1000),
                    level: 1
                })
            );
            assert_eq!(km.stats().walks, 10);
            km.flush_cache();
            km.translate(Kva(base + 0x1000)).unwrap();
            assert_eq!(mem.reads.get(), 3 * u64::from(levels) + 8);
        }
    }

    #[test]
    fn direct_map_reads_take_one_translation_each_and_no_walk() {
        let (mut t, tr, pob) = kernel_like(4, 0);
        t.write(0x8ff8, &0x1122_3344_5566_7788u64.to_le_bytes());
        t.write(0x9000, &0x99aa_bbcc_ddee_ff00u64.to_le_bytes());
        let km = KernelMem::new(t.mem(), tr);
        // Three pages in one piece: the direct map is one mapping.
        let mut buf = [0u8; 0x3000];
        km.read_kva(Kva(pob + 0x8000), &mut buf).unwrap();
        assert_eq!(&buf[0xff8..0x1008], &t.bytes[0x8ff8..0x9008]);
        assert_eq!(
            km.read_kva_u64(Kva(pob + 0x8ff8)),
            Ok(0x1122_3344_5566_7788)
        );
        assert_eq!(
            km.read_kva_u64(Kva(pob + 0x9000)),
            Ok(0x99aa_bbcc_ddee_ff00)
        );
        // Fast paths are arithmetic: never walked, never cached.
        assert_eq!(
            km.stats(),
            Stats {
                translations: 3,
                walks: 0,
                cache_hits: 0
            }
        );
    }

    /// Regression for fuzz/regressions/page_walk/kernel-mem-cache-answers-over-
    /// the-kernel-image-fast-path: `KernelMem` asked its cache before the fast
    /// paths, so a mapping cached for one address answered for addresses where
    /// the translator takes another path.
    #[test]
    fn kernel_mem_cache_answers_over_the_kernel_image_fast_path() {
        // The kernel loaded 14 MiB below where it was linked (a negative
        // phys_base): the image's first 14 MiB have no physical address, and
        // a walk there finds a 1 GiB page that also covers the image.
        let mut t = Tables::new(4, 16);
        t.map(START_KERNEL_MAP, 0x4000_0000, 3);
        let tr = t.tr().with_kernel_image(-0xe0_0000, KERNEL_IMAGE_SIZE);
        let mem = t.mem();
        let below = Kva(START_KERNEL_MAP + 0x10_0000);
        let text = Kva(START_KERNEL_MAP + 0x100_0000);
        assert_eq!(
            tr.translate(&mem, below),
            Ok((Pa(0x4010_0000), 0x3ff0_0000))
        );
        assert_eq!(tr.translate(&mem, text), Ok((Pa(0x20_0000), 0x3f00_0000)));
        for first in [below, text] {
            let km = KernelMem::new(mem, tr);
            let seq = [first, below, text, below, text];
            for kva in seq {
                assert_eq!(km.translate(kva), tr.translate(&mem, kva), "{first}, {kva}");
            }
            // The walked page was cached; the image was not.
            let belows = seq.iter().filter(|&&k| k == below).count() as u64;
            assert_eq!(
                km.stats(),
                Stats {
                    translations: 1 + (5 - belows),
                    walks: 1,
                    cache_hits: belows - 1
                }
            );
        }
        // Overlapping fast paths: the direct map (placed over the image here)
        // answers below it, the image wherever it applies, in any order.
        let tr = tr.with_direct_map(Kva(START_KERNEL_MAP - PUD_SIZE), 1 << 46);
        let direct = Kva(START_KERNEL_MAP - 0x1000);
        assert_eq!(
            tr.translate(&mem, direct),
            Ok((Pa(0x3fff_f000), 0x8000_1000))
        );
        for first in [direct, below, text] {
            let km = KernelMem::new(mem, tr);
            for kva in [first, direct, below, text] {
                assert_eq!(km.translate(kva), tr.translate(&mem, kva), "{first}, {kva}");
            }
            assert_eq!(km.stats().walks, 0);
        }
    }

    #[test]
    fn read_past_the_top_of_the_address_space_fails() {
        // The last 8 bytes of the address space land at pa 0x1ff8; the next 8
        // would be at virtual address 2^64.
        let t = Tables::new(4, 4);
        let tr = t.tr().with_kernel_image(-0x7fff_e000, 0x8000_0000);
        let km = KernelMem::new(t.mem(), tr);
        assert_eq!(km.translate(Kva(u64::MAX - 7)), Ok((Pa(0x1ff8), 8)));
        let mut buf = [0u8; 16];
        assert!(matches!(
            km.read_kva(Kva(u64::MAX - 7), &mut buf),
            Err(Error::Unsupported { .. })
        ));
    }

    /// Regression for fuzz/regressions/page_walk/read-past-the-top-of-the-
    /// address-space-through-the-direct-map: a direct map running past 2^64
    /// (discovery accepts any canonical, PUD-aligned `page_offset_base` in the
    /// kernel half) reported more bytes left than the address space has.
    #[test]
    fn read_past_the_top_of_the_address_space_through_the_direct_map() {
        // 256 GiB below the top, and 64 TiB of physical memory.
        let base = 0xffff_ffc0_0000_0000;
        let tr = Translator::new(4, Pa(PGD))
            .unwrap()
            .with_direct_map(Kva(base), max_physmem(4).unwrap());
        let top = Kva(u64::MAX - 7);
        assert_eq!(
            tr.fast_path(top).map(|m| (m.kva, m.len)),
            Some((Kva(base), 1 << 38))
        );
        // Physical memory goes on past where 2^64 lands.
        let bytes: Vec<u8> = (0..0x2000u32).map(|i| i as u8).collect();
        let mem = Flat::new(Pa((1 << 38) - 0x1000), &bytes[..]);
        assert_eq!(tr.translate(&mem, top), Ok((Pa((1 << 38) - 8), 8)));
        let km = KernelMem::new(mem, tr);
        assert_eq!(km.translate(top), Ok((Pa((1 << 38) - 8), 8)));
        assert_eq!(km.read_kva_u64(top), Ok(0xfffe_fdfc_fbfa_f9f8));
        let mut buf = [0u8; 16];
        assert_eq!(
            km.read_kva(top, &mut buf),
            Err(Error::unsupported(
                "read past the top of the address space",
                top
            ))
        );
    }

    #[test]
    fn read_into_the_non_canonical_hole_through_a_linear_map_fails() {
        // A direct map in the lower half, running past its end (2^47 with 4
        // levels): it stops there, as a walk would.
        let base = 0x7fff_c000_0000;
        let tr = Translator::new(4, Pa(PGD))
            .unwrap()
            .with_direct_map(Kva(base), 1 << 46);
        let last = Kva(0x7fff_ffff_fff8);
        assert_eq!(tr.fast_path(last).map(|m| m.len), Some(PUD_SIZE));
        let bytes = vec![0u8; 0x2000];
        let mem = Flat::new(Pa(PUD_SIZE - 0x1000), &bytes[..]);
        let km = KernelMem::new(mem, tr);
        assert_eq!(km.translate(last), Ok((Pa(PUD_SIZE - 8), 8)));
        let mut buf = [0u8; 16];
        let hole = Kva(0x8000_0000_0000);
        assert_eq!(
            km.read_kva(last, &mut buf),
            Err(Error::NonCanonical { kva: hole })
        );
    }

    /// Entry kinds for hostile tables: mostly pointers into the four table
    /// pages with random flags (present, PSE) and junk in the high bits.
    fn entry() -> impl Strategy<Value = u64> {
        prop_oneof![
            1 => any::<u64>(),
            4 => (0u64..4, 0u64..0x1000, 0u64..0x1000)
                .prop_map(|(page, low, high)| (page << 12) | low | (high << 52)),
            1 => (0u64..0x1_0000_0000, 0u64..0x1000)
                .prop_map(|(pfn, low)| (pfn << 12) | low),
        ]
    }

    /// The slots hostile tables fill; addresses are built from them.
    const SLOTS: [u64; 4] = [0, 1, 273, 511];

    fn hostile(levels: u8, entries: &[u64]) -> (Vec<u8>, Translator) {
        let mut bytes = vec![0u8; 4 * 0x1000];
        for (i, e) in entries.iter().enumerate() {
            let at = (i / SLOTS.len()) * 0x1000 + SLOTS[i % SLOTS.len()] as usize * 8;
            bytes[at..at + 8].copy_from_slice(&e.to_le_bytes());
        }
        (bytes, Translator::new(levels, Pa(0)).unwrap())
    }

    fn hostile_kva(levels: u8, idx: &[usize], off: u64, canonical: bool) -> Kva {
        let mut v = off & 0xfff;
        for level in 1..=levels {
            v |= SLOTS[idx[level as usize - 1]] << level_shift(level).unwrap();
        }
        if canonical {
            let unused = 64 - va_bits(levels).unwrap();
            v = (((v << unused) as i64) >> unused) as u64;
        }
        Kva(v)
    }

    proptest! {
        /// Over random page tables, translation never panics; without fast paths
        /// it is the walk, and with them it is the walk wherever no fast path
        /// applies; what it finds ends in the address's canonical half.
        /// `KernelMem` translates as the translator whatever it translated
        /// before, and its reads agree with reading the translated physical
        /// address.
        #[test]
        fn translate_agrees_with_walk_on_hostile_tables(
            five in any::<bool>(),
            entries in proptest::collection::vec(entry(), 16),
            idx in proptest::collection::vec(0usize..4, 5),
            prior_idx in proptest::collection::vec(0usize..4, 5),
            off in any::<u64>(),
            canonical in any::<bool>(),
            random_kva in proptest::option::weighted(0.1, any::<u64>()),
            pob in prop_oneof![Just(0xffff_8880_0000_0000u64), Just(0xff11_0000_0000_0000), any::<u64>()],
            dm_size in prop_oneof![Just(1u64 << 46), any::<u64>()],
            phys_base in any::<i64>(),
            image_size in prop_oneof![Just(KERNEL_IMAGE_SIZE), any::<u64>()],
        ) {
            let levels = if five { 5 } else { 4 };
            let (bytes, plain) = hostile(levels, &entries);
            let mem = Flat::new(Pa(0), &bytes[..]);
            let kva = random_kva.map_or_else(|| hostile_kva(levels, &idx, off, canonical), Kva);
            let walked = plain.walk(&mem, kva);
            prop_assert_eq!(plain.translate(&mem, kva), walked);
            if let Ok((pa, left)) = walked {
                prop_assert!(left >= 1 && pa.0.checked_add(left).is_some_and(|e| e <= PHYS_LIMIT));
                prop_assert_eq!(pa.page_offset(PAGE_SIZE), kva.page_offset(PAGE_SIZE));
            }

            let fast = plain.with_direct_map(Kva(pob), dm_size).with_kernel_image(phys_base, image_size);
            let got = fast.translate(&mem, kva);
            if let Ok((pa, left)) = got {
                prop_assert!(left >= 1 && pa.0.checked_add(left).is_some_and(|e| e <= PHYS_LIMIT));
                let last = kva.checked_add(left - 1);
                prop_assert!(last.is_some_and(|l| is_canonical(l, levels)), "{} + {:#x}", kva, left);
            }
            if fast.fast_path(kva).is_none() {
                prop_assert_eq!(got, walked);
            }

            // A translation before, of an address that may share pages or
            // tables with kva, changes nothing.
            let km = KernelMem::new(mem, fast);
            let prior = hostile_kva(levels, &prior_idx, off, canonical);
            prop_assert_eq!(km.translate(prior), fast.translate(&mem, prior));
            prop_assert_eq!(km.translate(kva), got);
            let km = KernelMem::new(mem, fast);
            let mut buf = [0u8; 16];
            let read = km.read_kva(kva, &mut buf);
            if let Ok((pa, left)) = got {
                if left >= 16 {
                    let mut want = [0u8; 16];
                    let direct = mem.read_phys(pa, &mut want);
                    prop_assert_eq!(read, direct);
                    if direct.is_ok() {
                        prop_assert_eq!(buf, want);
                    }
                }
            } else {
                prop_assert_eq!(read, got.map(|_| ()));
            }
        }

        /// In kernel-shaped page tables, the direct-map and kernel-image fast
        /// paths land where the page walk does.
        #[test]
        fn fast_paths_agree_with_walk(
            five in any::<bool>(),
            phys_base_2m in -8i64..64,
            direct_off in 0u64..0x1_0000_0000,
            image_off in 0x100_0000u64..0x400_0000,
        ) {
            let levels = if five { 5 } else { 4 };
            let (t, tr, pob) = kernel_like(levels, phys_base_2m * PMD_SIZE as i64);
            let mem = t.mem();
            for kva in [Kva(pob + direct_off), Kva(START_KERNEL_MAP + image_off)] {
                prop_assert!(tr.fast_path(kva).is_some());
                let (pa, left) = tr.translate(&mem, kva).unwrap();
                let (walk_pa, walk_left) = tr.walk(&mem, kva).unwrap();
                prop_assert_eq!(pa, walk_pa);
                prop_assert!(left >= walk_left);
            }
        }
    }
}
