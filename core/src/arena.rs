//! `BPF_MAP_TYPE_ARENA` (kernel/bpf/arena.c, v6.9+): a sparse region shared
//! between BPF programs and one user mapping, read here page by page.
//!
//! Facts from arena.c as of v6.12 (the maple-tree version; later releases
//! differ only where noted):
//! - `GUARD_SZ` is `1 << 16` (the reach of an instruction's s16 `off`; from
//!   v6.13 rounded up to `PAGE_SIZE << 1`, the same on 4 KiB pages) and
//!   `arena_map_alloc()` reserves `KERN_VM_SZ = SZ_4G + GUARD_SZ` with
//!   `get_vm_area()`, whose `vm_struct.size` adds a guard page
//!   (mm/vmalloc.c `__get_vm_area_node()`).
//! - `bpf_arena_get_kern_vm_start()` is `kern_vm->addr + GUARD_SZ / 2`, and user
//!   page `pgoff` lives in the kernel at `kern_vm_start + (u32)(user_vm_start +
//!   pgoff * PAGE_SIZE)` (`arena_alloc_pages()`, `arena_vm_fault()`).
//! - `arena_map_alloc()` wants `key_size == 0`, `value_size == 0`,
//!   `max_entries != 0`, `BPF_F_MMAPABLE`, `max_entries * PAGE_SIZE <= SZ_4G`, and
//!   a `map_extra` that is page-aligned and whose range does not cross a 4 GiB
//!   boundary. A non-zero `map_extra` fixes `user_vm_start` and `user_vm_end =
//!   user_vm_start + max_entries * PAGE_SIZE` for good; with zero, both stay
//!   zero until the first `mmap()` sets them to that VMA, of any size up to 4
//!   GiB that does not cross a 4 GiB boundary (`arena_get_unmapped_area()`,
//!   `arena_map_mmap()`): the kernel does not tie it to `max_entries`.
//! - Pages are allocated at `pgoff < (user_vm_end - user_vm_start) / PAGE_SIZE`
//!   only (`page_cnt_max` in `arena_alloc_pages()`, the VMA in
//!   `arena_vm_fault()`), so that is the range [`ArenaPages`] walks.
//! - Nothing is mapped until a program allocates or user space faults a page:
//!   an untouched page has no kernel mapping at all, and is absent here, not a
//!   page of zeros.

use core::iter::FusedIterator;

use crate::addr::Kva;
use crate::bpf_map::MapInfo;
use crate::error::{Error, Result};
use crate::offsets::Offsets;
use crate::paging::PAGE_SIZE;
use crate::uapi::{MapType, BPF_F_MMAPABLE};
use crate::virt::KernelRead;

/// `GUARD_SZ` on x86-64.
pub const GUARD_SZ: u64 = 1 << 16;
/// `SZ_4G`: the most an arena (or its user mapping) spans.
pub const ARENA_MAX_SIZE: u64 = 1 << 32;
/// `KERN_VM_SZ`: the kernel reservation behind every arena.
pub const KERN_VM_SZ: u64 = ARENA_MAX_SIZE + GUARD_SZ;
/// Pages an arena can have: 4 GiB / 4 KiB.
pub const ARENA_MAX_PAGES: u64 = ARENA_MAX_SIZE / PAGE_SIZE;

/// `bpf_arena_get_kern_vm_start()` for a `kern_vm->addr`.
pub const fn bpf_arena_get_kern_vm_start(kern_vm_addr: Kva) -> Option<Kva> {
    kern_vm_addr.checked_add(GUARD_SZ / 2)
}

/// The kernel address of user page `pgoff`: `kern_vm_start + (u32)(user_vm_start
/// + pgoff * PAGE_SIZE)`.
pub const fn arena_page_kva(kern_vm_start: Kva, user_vm_start: u64, pgoff: u64) -> Option<Kva> {
    let uaddr32 = user_vm_start.wrapping_add(pgoff.wrapping_mul(PAGE_SIZE)) as u32;
    kern_vm_start.checked_add(uaddr32 as u64)
}

/// Whether `[start, start + len)` stays within one 4 GiB-aligned block, as the
/// kernel keeps every arena range (`len` > 0).
const fn within_4g(start: u64, len: u64) -> bool {
    match start.checked_add(len.wrapping_sub(1)) {
        Some(last) => start >> 32 == last >> 32,
        None => false,
    }
}

/// One page of an arena that has a kernel mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaPage {
    /// Page number from the start of the user mapping.
    pub pgoff: u64,
    /// `user_vm_start + pgoff * PAGE_SIZE`: the address user space and BPF
    /// programs use for it.
    pub user_addr: u64,
    /// Where the kernel maps it.
    pub kva: Kva,
}

/// A checked `struct bpf_arena`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arena {
    /// The `struct bpf_arena`.
    kva: Kva,
    max_entries: u32,
    user_vm_start: u64,
    user_vm_end: u64,
    /// `struct vm_struct *kern_vm`.
    kern_vm: Kva,
    kern_vm_start: Kva,
}

fn field(base: Kva, off: u32, what: &'static str) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed(what, base))
}

/// Probe results that mean "no page here": a page-table entry below the PGD
/// that is not present. Anything else (level 0: outside a flat source, or a
/// failed physical read) is a real error.
const fn is_absent(e: &Error) -> bool {
    matches!(e, Error::NotMapped { level: 1..=5, .. })
}

impl Arena {
    /// The arena whose `struct bpf_map` is `map`, checked against
    /// `arena_map_alloc()` and `arena_map_mmap()`. [`Error::Unsupported`] if the
    /// kernel has no `struct bpf_arena` (before v6.9).
    pub fn new<K: KernelRead + ?Sized>(k: &K, map: &MapInfo, off: &Offsets) -> Result<Arena> {
        if map.map_type != MapType::ARENA {
            return Err(Error::unsupported("bpf_arena map type", map.kva));
        }
        let a = off
            .bpf_arena
            .ok_or(Error::unsupported("bpf_arena", map.kva))?;
        let kva = map
            .kva
            .checked_sub(u64::from(a.map))
            .ok_or(Error::malformed("bpf_arena", map.kva))?;
        let bad = |what| Err(Error::malformed(what, map.kva));
        if map.key_size != 0 {
            return bad("bpf_map.key_size");
        }
        if map.value_size != 0 {
            return bad("bpf_map.value_size");
        }
        let vm_range = u64::from(map.max_entries).saturating_mul(PAGE_SIZE);
        if map.max_entries == 0 || vm_range > ARENA_MAX_SIZE {
            return bad("bpf_map.max_entries");
        }
        if map.map_flags & BPF_F_MMAPABLE == 0 {
            return bad("bpf_map.map_flags");
        }
        if map.map_extra % PAGE_SIZE != 0 || !within_4g(map.map_extra, vm_range) {
            return bad("bpf_map.map_extra");
        }

        let at = field(kva, a.user_vm_start, "bpf_arena")?;
        let user_vm_start = k.read_kva_u64(at)?;
        let user_vm_end = k.read_kva_u64(field(kva, a.user_vm_end, "bpf_arena")?)?;
        let user_ok = if user_vm_start == 0 {
            // Not mmap()ed yet (a non-zero map_extra would have set it).
            user_vm_end == 0 && map.map_extra == 0
        } else {
            let len = user_vm_end.wrapping_sub(user_vm_start);
            user_vm_end > user_vm_start
                && user_vm_start % PAGE_SIZE == 0
                && len % PAGE_SIZE == 0
                && len <= ARENA_MAX_SIZE
                && within_4g(user_vm_start, len)
                && (map.map_extra == 0 || (user_vm_start == map.map_extra && len == vm_range))
        };
        if !user_ok {
            return Err(Error::malformed("bpf_arena.user_vm_start", at));
        }

        let at = field(kva, a.kern_vm, "bpf_arena")?;
        let kern_vm = k.read_ptr(at)?;
        if kern_vm.get() == 0 {
            return Err(Error::malformed("bpf_arena.kern_vm", at));
        }
        let vm = &off.vm_struct;
        let addr = k.read_ptr(field(kern_vm, vm.addr, "vm_struct")?)?;
        let vm_size = k.read_kva_u64(field(kern_vm, vm.vm_size, "vm_struct")?)?;
        let kern_vm_start = bpf_arena_get_kern_vm_start(addr)
            .filter(|_| addr.get() != 0 && addr.page_offset(PAGE_SIZE) == 0)
            .filter(|s| s.checked_add(ARENA_MAX_SIZE).is_some())
            .ok_or(Error::malformed("vm_struct.addr", kern_vm))?;
        if vm_size < KERN_VM_SZ {
            return Err(Error::malformed("vm_struct.size", kern_vm));
        }
        Ok(Arena {
            kva,
            max_entries: map.max_entries,
            user_vm_start,
            user_vm_end,
            kern_vm,
            kern_vm_start,
        })
    }

    /// Address of the `struct bpf_arena`.
    pub const fn kva(&self) -> Kva {
        self.kva
    }

    /// `map.max_entries`: the pages asked for at creation.
    pub const fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// `arena->user_vm_start` (0 before the first `mmap()` without `map_extra`).
    pub const fn user_vm_start(&self) -> u64 {
        self.user_vm_start
    }

    /// `arena->user_vm_end`.
    pub const fn user_vm_end(&self) -> u64 {
        self.user_vm_end
    }

    /// `arena->kern_vm`.
    pub const fn kern_vm(&self) -> Kva {
        self.kern_vm
    }

    /// `bpf_arena_get_kern_vm_start()`.
    pub const fn kern_vm_start(&self) -> Kva {
        self.kern_vm_start
    }

    /// Pages the user range spans, `page_cnt_max` of `arena_alloc_pages()`: the
    /// page numbers that can be present (at most [`ARENA_MAX_PAGES`]).
    pub const fn nr_pages(&self) -> u64 {
        // Checked in new(): end >= start, a multiple of the page size apart.
        self.user_vm_end.wrapping_sub(self.user_vm_start) / PAGE_SIZE
    }

    /// The user and kernel addresses of page `pgoff`, without reading memory.
    pub fn locate(&self, pgoff: u64) -> Result<ArenaPage> {
        if pgoff >= self.nr_pages() {
            return Err(Error::NotFound {
                what: "arena page offset",
            });
        }
        // pgoff < 2^20, and new() keeps the range inside one 4 GiB block.
        let user_addr = pgoff
            .checked_mul(PAGE_SIZE)
            .and_then(|off| self.user_vm_start.checked_add(off))
            .ok_or(Error::malformed("bpf_arena.user_vm_start", self.kva))?;
        let kva = arena_page_kva(self.kern_vm_start, self.user_vm_start, pgoff)
            .ok_or(Error::malformed("vm_struct.addr", self.kern_vm))?;
        Ok(ArenaPage {
            pgoff,
            user_addr,
            kva,
        })
    }

    /// Page `pgoff` if the kernel maps it, found by reading its first byte:
    /// a page-table entry that is not present means `None`, any other failure
    /// is an error.
    pub fn page<K: KernelRead + ?Sized>(&self, k: &K, pgoff: u64) -> Result<Option<ArenaPage>> {
        let page = self.locate(pgoff)?;
        match k.read_kva_u8(page.kva) {
            Ok(_) => Ok(Some(page)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Copy page `pgoff` into `buf`; `None` (and `buf` unspecified) if the
    /// kernel does not map it.
    pub fn read_page<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        pgoff: u64,
        buf: &mut [u8; PAGE_SIZE as usize],
    ) -> Result<Option<ArenaPage>> {
        let page = self.locate(pgoff)?;
        // Page-aligned and one page long: a single translation decides.
        match k.read_kva(page.kva, buf) {
            Ok(()) => Ok(Some(page)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The present pages in `pgoff` order, visiting at most [`Self::nr_pages`]
    /// page numbers unless [`ArenaPages::budget`] says fewer.
    pub fn pages<'a, K: KernelRead + ?Sized>(&self, k: &'a K) -> ArenaPages<'a, K> {
        ArenaPages {
            k,
            arena: *self,
            next: 0,
            budget: self.nr_pages(),
            done: false,
        }
    }
}

/// The walk of [`Arena::pages`]: the pages that are present, stopped for good
/// by the first error.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ArenaPages<'a, K: ?Sized> {
    k: &'a K,
    arena: Arena,
    /// Next page number to probe; also the number probed so far.
    next: u64,
    budget: u64,
    done: bool,
}

impl<K: KernelRead + ?Sized> ArenaPages<'_, K> {
    /// Probe at most `pages` page numbers, present or not; needing more is
    /// [`Error::Limit`].
    pub fn budget(mut self, pages: u64) -> Self {
        self.budget = pages;
        self
    }

    /// The next present page, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<ArenaPage>> {
        if self.done {
            return Ok(None);
        }
        let r = self.step();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn step(&mut self) -> Result<Option<ArenaPage>> {
        while self.next < self.arena.nr_pages() {
            if self.next >= self.budget {
                return Err(Error::limit("arena page", self.arena.kva, self.budget));
            }
            let pgoff = self.next;
            self.next = pgoff.saturating_add(1);
            if let Some(page) = self.arena.page(self.k, pgoff)? {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

impl<K: KernelRead + ?Sized> Iterator for ArenaPages<'_, K> {
    type Item = Result<ArenaPage>;

    fn next(&mut self) -> Option<Self::Item> {
        ArenaPages::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for ArenaPages<'_, K> {}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::offsets::{BpfArenaOffsets, VmStructOffsets};
    use crate::uapi::BPF_OBJ_NAME_LEN;
    use crate::virt::FlatKernel;

    /// `struct bpf_arena` and `struct vm_struct` of the Debian 6.12 kernel.
    fn offsets() -> Offsets {
        Offsets {
            bpf_arena: Some(BpfArenaOffsets {
                map: 0,
                user_vm_start: 248,
                user_vm_end: 256,
                kern_vm: 264,
                size: 336,
            }),
            vm_struct: VmStructOffsets {
                addr: 8,
                vm_size: 16,
                pages: 32,
                nr_pages: 44,
                size: 72,
            },
            ..Offsets::default()
        }
    }

    /// `struct bpf_arena` at `ARENA`, its `vm_struct` at `ARENA + 0x200`.
    const ARENA: Kva = Kva(0xffff_8880_0300_0000);
    /// `kern_vm->addr`, as `get_vm_area()` hands it out.
    const KERN_VM_ADDR: Kva = Kva(0xffff_c900_4000_0000);
    const USER_VM_START: u64 = 0x7f7d_2620_0000;

    fn map_info(max_entries: u32, map_extra: u64) -> MapInfo {
        MapInfo {
            id: 9,
            map_type: MapType::ARENA,
            name: [0; BPF_OBJ_NAME_LEN],
            map_flags: BPF_F_MMAPABLE,
            key_size: 0,
            value_size: 0,
            max_entries,
            map_extra,
            btf_id: 0,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_vmlinux_value_type_id: 0,
            kva: ARENA,
        }
    }

    /// Kernel memory with a flat region for the structs and, above it, arena
    /// pages: present pages read as their contents, the rest of the 4 GiB
    /// reservation as a missing PTE (level 1), everything else as unmapped at
    /// level 0 (out of the source).
    struct ArenaKernel {
        flat: FlatKernel<Vec<u8>>,
        kern_vm_start: Kva,
        pages: BTreeMap<u64, [u8; 4096]>,
        reads: Cell<u64>,
    }

    impl ArenaKernel {
        fn new(user_vm_start: u64, user_vm_end: u64, vm_size: u64) -> Self {
            let off = offsets();
            let a = off.bpf_arena.unwrap();
            let mut bytes = std::vec![0u8; 0x400];
            let mut put = |at: u32, v: u64| {
                bytes[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes())
            };
            put(a.user_vm_start, user_vm_start);
            put(a.user_vm_end, user_vm_end);
            put(a.kern_vm, ARENA.get() + 0x200);
            put(0x200 + off.vm_struct.addr, KERN_VM_ADDR.get());
            put(0x200 + off.vm_struct.vm_size, vm_size);
            ArenaKernel {
                flat: FlatKernel { base: ARENA, bytes },
                kern_vm_start: KERN_VM_ADDR.checked_add(GUARD_SZ / 2).unwrap(),
                pages: BTreeMap::new(),
                reads: Cell::new(0),
            }
        }

        fn standard(user_vm_start: u64, max_entries: u32) -> Self {
            let end = user_vm_start + u64::from(max_entries) * PAGE_SIZE;
            Self::new(user_vm_start, end, KERN_VM_SZ + PAGE_SIZE)
        }

        /// Map user page `pgoff` the way `arena_alloc_pages()` does.
        fn populate(&mut self, user_vm_start: u64, pgoff: u64, fill: u8) {
            let kva = arena_page_kva(self.kern_vm_start, user_vm_start, pgoff).unwrap();
            let mut page = [fill; 4096];
            page[..8].copy_from_slice(&pgoff.to_le_bytes());
            self.pages.insert(kva.get(), page);
        }
    }

    impl KernelRead for ArenaKernel {
        fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
            self.reads.set(self.reads.get() + 1);
            let lo = self.kern_vm_start.get() - GUARD_SZ / 2;
            if kva.get() < lo || kva.get() >= lo + KERN_VM_SZ {
                return self.flat.read_kva(kva, buf);
            }
            let page = kva.align_down(4096);
            let off = kva.page_offset(4096) as usize;
            match self.pages.get(&page.get()) {
                Some(p) if off + buf.len() <= 4096 => {
                    buf.copy_from_slice(&p[off..off + buf.len()]);
                    Ok(())
                }
                Some(_) => Err(Error::NotMapped { kva, level: 1 }),
                None => Err(Error::NotMapped { kva, level: 1 }),
            }
        }
    }

    fn walk<K: KernelRead>(a: &Arena, k: &K) -> Result<Vec<u64>> {
        a.pages(k).map(|p| p.map(|p| p.pgoff)).collect()
    }

    #[test]
    fn guard_and_kernel_address_follow_arena_c() {
        assert_eq!(GUARD_SZ / 2, 0x8000);
        assert_eq!(ARENA_MAX_PAGES, 1 << 20);
        // The example in the comment at the top of kernel/bpf/arena.c.
        let kern_vm_start = Kva(0xffff_c900_01e6_9000);
        assert_eq!(
            arena_page_kva(kern_vm_start, 0x7f7d_2620_0000, 0),
            Some(Kva(0xffff_c900_2806_9000))
        );
        assert_eq!(
            arena_page_kva(kern_vm_start, 0x7f7d_2620_0000, 3),
            Some(Kva(0xffff_c900_2806_c000))
        );
        assert_eq!(arena_page_kva(Kva(u64::MAX - 10), 0x1000, 0), None);
        assert!(within_4g(0x1_0000_0000, 1 << 32));
        assert!(!within_4g(0x1_0000_1000, 1 << 32));
        assert!(!within_4g(u64::MAX - 4095, 8192));
    }

    #[test]
    fn pages_0_3_7_of_16_present() {
        let mut k = ArenaKernel::standard(USER_VM_START, 16);
        for pgoff in [0, 3, 7] {
            k.populate(USER_VM_START, pgoff, pgoff as u8 + 1);
        }
        let a = Arena::new(&k, &map_info(16, 0), &offsets()).unwrap();
        assert_eq!(a.nr_pages(), 16);
        assert_eq!(a.kern_vm_start(), KERN_VM_ADDR.checked_add(0x8000).unwrap());
        let pages: Vec<_> = a.pages(&k).collect::<Result<_>>().unwrap();
        assert_eq!(
            pages.iter().map(|p| p.pgoff).collect::<Vec<_>>(),
            std::vec![0, 3, 7]
        );
        for p in &pages {
            assert_eq!(p.user_addr, USER_VM_START + p.pgoff * 4096);
            assert_eq!(
                p.kva,
                a.kern_vm_start()
                    .checked_add(u64::from(p.user_addr as u32))
                    .unwrap()
            );
            let mut buf = [0u8; 4096];
            assert_eq!(a.read_page(&k, p.pgoff, &mut buf), Ok(Some(*p)));
            assert_eq!(buf[..8], p.pgoff.to_le_bytes());
            assert!(buf[8..].iter().all(|&b| b == p.pgoff as u8 + 1));
        }
        // Untouched pages are absent, not zeros.
        let mut buf = [0u8; 4096];
        assert_eq!(a.read_page(&k, 1, &mut buf), Ok(None));
        assert_eq!(a.page(&k, 15), Ok(None));
        assert!(matches!(
            a.read_page(&k, 16, &mut buf),
            Err(Error::NotFound { .. })
        ));
        // One probe per page number.
        k.reads.set(0);
        assert_eq!(walk(&a, &k).unwrap().len(), 3);
        assert_eq!(k.reads.get(), 16);
    }

    #[test]
    fn map_extra_fixes_the_user_range() {
        let start = 0x1_0000_0000;
        let mut k = ArenaKernel::standard(start, 8);
        k.populate(start, 5, 9);
        let a = Arena::new(&k, &map_info(8, start), &offsets()).unwrap();
        assert_eq!(walk(&a, &k), Ok(std::vec![5]));
        assert_eq!(
            a.locate(5).unwrap().kva,
            a.kern_vm_start().checked_add(0x5000).unwrap()
        );
        // The range must be exactly what map_extra and max_entries say.
        let k = ArenaKernel::standard(start + 4096, 8);
        assert!(matches!(
            Arena::new(&k, &map_info(8, start), &offsets()),
            Err(Error::Malformed {
                what: "bpf_arena.user_vm_start",
                ..
            })
        ));
    }

    #[test]
    fn user_range_inconsistent_with_the_map_is_malformed() {
        let user = |start: u64, end: u64, max_entries: u32, map_extra: u64| {
            let k = ArenaKernel::new(start, end, KERN_VM_SZ + PAGE_SIZE);
            Arena::new(&k, &map_info(max_entries, map_extra), &offsets()).map(|a| a.nr_pages())
        };
        let s = USER_VM_START;
        // Without map_extra the first mmap() picks the size: fine either way.
        assert_eq!(user(s, s + 4 * PAGE_SIZE, 16, 0), Ok(4));
        assert_eq!(user(s, s + 32 * PAGE_SIZE, 16, 0), Ok(32));
        // Not mmap()ed yet: nothing can be present.
        assert_eq!(user(0, 0, 16, 0), Ok(0));
        let malformed = |r: Result<u64>| matches!(r, Err(Error::Malformed { .. }));
        assert!(malformed(user(s, s + 17 * PAGE_SIZE, 16, s)));
        assert!(malformed(user(s, s + 15 * PAGE_SIZE, 16, s)));
        assert!(malformed(user(0, 0, 16, s)));
        assert!(malformed(user(0, 4096, 16, 0)));
        assert!(malformed(user(s, s, 16, 0)));
        assert!(malformed(user(s + 4096, s, 16, 0)));
        assert!(malformed(user(s + 1, s + 1 + 4096, 16, 0)));
        assert!(malformed(user(s, s + 4097, 16, 0)));
        // Above 4 GiB, or across a 4 GiB boundary.
        assert!(malformed(user(1 << 32, (2 << 32) + 4096, 16, 0)));
        assert!(malformed(user((1 << 32) - 4096, (1 << 32) + 4096, 16, 0)));
        assert!(malformed(user(u64::MAX - 4095, u64::MAX, 16, 0)));
        // A whole 4 GiB block is the largest arena.
        assert_eq!(user(1 << 32, 2 << 32, 1 << 20, 0), Ok(1 << 20));
        // Attributes arena_map_alloc() refuses.
        let k = ArenaKernel::standard(s, 16);
        let ok = map_info(16, 0);
        for (what, m) in [
            ("bpf_map.key_size", MapInfo { key_size: 4, ..ok }),
            (
                "bpf_map.value_size",
                MapInfo {
                    value_size: 8,
                    ..ok
                },
            ),
            (
                "bpf_map.max_entries",
                MapInfo {
                    max_entries: 0,
                    ..ok
                },
            ),
            (
                "bpf_map.max_entries",
                MapInfo {
                    max_entries: (1 << 20) + 1,
                    ..ok
                },
            ),
            ("bpf_map.map_flags", MapInfo { map_flags: 0, ..ok }),
            (
                "bpf_map.map_extra",
                MapInfo {
                    map_extra: s + 1,
                    ..ok
                },
            ),
            (
                "bpf_map.map_extra",
                MapInfo {
                    map_extra: (1 << 32) - 4096,
                    ..ok
                },
            ),
        ] {
            assert_eq!(
                Arena::new(&k, &m, &offsets()),
                Err(Error::malformed(what, ARENA)),
                "{what}"
            );
        }
    }

    #[test]
    fn kern_vm_pointer_outside_memory_or_wrong_is_an_error() {
        let a = offsets().bpf_arena.unwrap();
        let mut k = ArenaKernel::standard(USER_VM_START, 16);
        let at = a.kern_vm as usize;
        k.flat.bytes[at..at + 8].copy_from_slice(&0xffff_8880_dead_0000u64.to_le_bytes());
        assert!(matches!(
            Arena::new(&k, &map_info(16, 0), &offsets()),
            Err(Error::NotMapped { level: 0, .. })
        ));
        k.flat.bytes[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            Arena::new(&k, &map_info(16, 0), &offsets()),
            Err(Error::Malformed {
                what: "bpf_arena.kern_vm",
                ..
            })
        ));
        // A vm_struct too small for the 4 GiB reservation.
        let k = ArenaKernel::new(USER_VM_START, USER_VM_START + 16 * 4096, 1 << 20);
        assert!(matches!(
            Arena::new(&k, &map_info(16, 0), &offsets()),
            Err(Error::Malformed {
                what: "vm_struct.size",
                ..
            })
        ));
        // An area address that is not page-aligned, or too close to the top.
        for addr in [KERN_VM_ADDR.get() + 8, 0, u64::MAX - 4095] {
            let mut k = ArenaKernel::standard(USER_VM_START, 16);
            let at = 0x200 + offsets().vm_struct.addr as usize;
            k.flat.bytes[at..at + 8].copy_from_slice(&addr.to_le_bytes());
            assert!(matches!(
                Arena::new(&k, &map_info(16, 0), &offsets()),
                Err(Error::Malformed {
                    what: "vm_struct.addr",
                    ..
                })
            ));
        }
        // Kernels without arenas.
        let k = ArenaKernel::standard(USER_VM_START, 16);
        let none = Offsets {
            bpf_arena: None,
            ..offsets()
        };
        assert!(matches!(
            Arena::new(&k, &map_info(16, 0), &none),
            Err(Error::Unsupported {
                what: "bpf_arena",
                ..
            })
        ));
        let array = MapInfo {
            map_type: MapType::ARRAY,
            ..map_info(16, 0)
        };
        assert!(matches!(
            Arena::new(&k, &array, &offsets()),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn budget_limits_pages_visited() {
        let mut k = ArenaKernel::standard(USER_VM_START, 16);
        for pgoff in [0, 3, 7] {
            k.populate(USER_VM_START, pgoff, 1);
        }
        let a = Arena::new(&k, &map_info(16, 0), &offsets()).unwrap();
        // Pages 0..4 fit a budget of 4 and yield 0 and 3; the fifth probe does not.
        let mut it = a.pages(&k).budget(4);
        assert_eq!(it.next().unwrap().map(|p| p.pgoff), Some(0));
        assert_eq!(it.next().unwrap().map(|p| p.pgoff), Some(3));
        k.reads.set(0);
        assert!(matches!(
            it.next(),
            Err(Error::Limit {
                what: "arena page",
                limit: 4,
                ..
            })
        ));
        assert_eq!(k.reads.get(), 0);
        assert_eq!(it.next(), Ok(None));
        assert_eq!(walk(&a, &k).map(|v| v.len()), Ok(3));
        assert_eq!(a.pages(&k).budget(16).count(), 3);
        assert!(a.pages(&k).budget(0).next().is_err());
    }

    #[test]
    fn a_failed_read_other_than_a_missing_pte_ends_the_walk() {
        /// Answers level 0 (outside the source) for page 2 of the arena.
        struct Broken(ArenaKernel, Kva);
        impl KernelRead for Broken {
            fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
                if kva == self.1 {
                    return Err(Error::NotMapped { kva, level: 0 });
                }
                self.0.read_kva(kva, buf)
            }
        }
        let mut k = ArenaKernel::standard(USER_VM_START, 16);
        k.populate(USER_VM_START, 0, 1);
        k.populate(USER_VM_START, 5, 1);
        let a = Arena::new(&k, &map_info(16, 0), &offsets()).unwrap();
        let k = Broken(k, a.locate(2).unwrap().kva);
        let mut it = a.pages(&k);
        assert_eq!(it.next().unwrap().map(|p| p.pgoff), Some(0));
        assert!(matches!(it.next(), Err(Error::NotMapped { level: 0, .. })));
        assert_eq!(it.next(), Ok(None));
        let mut buf = [0u8; 4096];
        assert!(a.read_page(&k, 2, &mut buf).is_err());
    }

    proptest! {
        /// Any set of populated pages walks back exactly, in order, with one
        /// probe per page number.
        #[test]
        fn walks_equal_the_model(
            max_entries in 1u32..300,
            present in proptest::collection::btree_set(0u64..300, 0..40),
            low32 in 0u64..0x8000,
        ) {
            let start = 0x7f00_0000_0000 + low32 * 4096;
            let mut k = ArenaKernel::standard(start, max_entries);
            let want: Vec<u64> = present.into_iter().filter(|&p| p < u64::from(max_entries)).collect();
            for &p in &want {
                k.populate(start, p, 3);
            }
            let a = Arena::new(&k, &map_info(max_entries, 0), &offsets()).unwrap();
            k.reads.set(0);
            prop_assert_eq!(walk(&a, &k), Ok(want));
            prop_assert_eq!(k.reads.get(), u64::from(max_entries));
        }

        /// Whatever the struct bytes say, nothing panics and the walk's probes
        /// stay within its budget.
        #[test]
        fn corruption_never_panics(
            hits in proptest::collection::vec((0usize..0x260, any::<u8>()), 0..16),
            max_entries in 1u32..64,
            map_extra in prop_oneof![Just(0u64), Just(USER_VM_START), any::<u64>()],
            budget in 0u64..80,
        ) {
            let mut k = ArenaKernel::standard(USER_VM_START, max_entries);
            k.populate(USER_VM_START, 1, 1);
            for (at, b) in hits {
                k.flat.bytes[at] = b;
            }
            if let Ok(a) = Arena::new(&k, &map_info(max_entries, map_extra), &offsets()) {
                prop_assert!(a.nr_pages() <= ARENA_MAX_PAGES);
                k.reads.set(0);
                let n = a.pages(&k).budget(budget).take(100).count();
                prop_assert!(n as u64 <= budget + 1);
                prop_assert!(k.reads.get() <= budget);
            }
        }
    }
}
