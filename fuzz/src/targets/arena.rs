//! `BPF_MAP_TYPE_ARENA`: `Arena::new`, the present-page walk, `page`,
//! `read_page` and `locate`, over memory where unmapped arena pages read as
//! not-present PTEs (`NotMapped { level: 1 }`) and the rest as outside the
//! source (level 0).
//!
//! Checks: a checked arena spans at most 2^20 pages and its kernel start is
//! `kern_vm->addr + GUARD_SZ / 2`; the walk yields present pages in
//! increasing order, below `nr_pages`, each what `locate` and `page` say,
//! at most `budget` probes' worth (a limit error when the budget runs out),
//! then stays ended; every page sits at `kern_vm_start + (u32)(user_vm_start +
//! pgoff * PAGE_SIZE)`; `read_page` reads what the image holds.

use bpfmem_core::arena::{Arena, ARENA_MAX_PAGES, ARENA_MAX_SIZE, GUARD_SZ};
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::paging::PAGE_SIZE;
use bpfmem_core::uapi::{MapType, BPF_F_MMAPABLE};
use bpfmem_core::{Error, Kva};

use crate::layouts::{map_info, MapWire, OffsetsWire};
use crate::mem::{drive, Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// The most page numbers the target lets a walk probe.
pub const MAX_BUDGET: u32 = 4096;
/// vmalloc space on 4-level x86-64 (`VMALLOC_START` .. `VMALLOC_END`).
pub const VMALLOC: (u64, u64) = (0xffff_c900_0000_0000, 0xffff_e900_0000_0000);

/// The map an all-zero `MapWire` means: an arena of 16 pages, no `map_extra`.
pub fn default_map() -> MapInfo {
    MapInfo {
        map_flags: BPF_F_MMAPABLE,
        ..map_info(MapType::ARENA, 0, 0, 16, DEFAULT_BASES[0])
    }
}

wire_struct! {
    /// `holes`: 0 vmalloc space reads as not-present PTEs and the rest as
    /// outside the source; 1 everything as not-present PTEs; 2 everything as
    /// outside; 3 everything as a not-present PMD. `budget` is XORed with
    /// [`MAX_BUDGET`] (and capped by it); `probes` are page numbers.
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub map: MapWire,
        pub holes: u8,
        pub budget: u32,
        pub probes: [u64; 3],
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub pages: u64,
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let off = input.off.decode();
    let holes = match input.holes % 4 {
        0 => Holes {
            start: VMALLOC.0,
            end: VMALLOC.1,
            level_inside: 1,
            level_outside: 0,
        },
        1 => Holes {
            level_outside: 1,
            ..Holes::NONE
        },
        2 => Holes::NONE,
        _ => Holes {
            level_outside: 2,
            ..Holes::NONE
        },
    };
    let k = Mem::new(&input.layout, payload, holes);
    let map = input.map.decode(&default_map());
    let mut seen = Seen::default();
    let Ok(a) = Arena::new(&k, &map, &off) else {
        return seen;
    };
    let nr = a.nr_pages();
    assert!(nr <= ARENA_MAX_PAGES);
    assert!(a.user_vm_end() >= a.user_vm_start());
    assert!(a.user_vm_end() - a.user_vm_start() <= ARENA_MAX_SIZE);
    assert_eq!(a.user_vm_start() % PAGE_SIZE, 0);
    assert_eq!(a.max_entries(), map.max_entries);
    let addr = k
        .peek_u64(
            a.kern_vm()
                .checked_add(u64::from(off.vm_struct.addr))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(Some(a.kern_vm_start()), Kva(addr).checked_add(GUARD_SZ / 2));
    let expect = |pgoff: u64| {
        let user = a.user_vm_start() + pgoff * PAGE_SIZE;
        (user, a.kern_vm_start().checked_add(u64::from(user as u32)))
    };

    let budget = (input.budget ^ MAX_BUDGET).min(MAX_BUDGET);
    let mut last = None;
    k.reset_reads();
    let mut it = a.pages(&k).budget(u64::from(budget));
    let (n, end) = drive(
        "ArenaPages",
        nr.min(u64::from(budget)),
        || it.next(),
        |_, p| {
            assert!(last.is_none_or(|l| p.pgoff > l));
            last = Some(p.pgoff);
            assert!(p.pgoff < nr);
            assert_eq!(a.locate(p.pgoff).as_ref(), Ok(p));
            let (user, kva) = expect(p.pgoff);
            assert_eq!((p.user_addr, Some(p.kva)), (user, kva));
        },
    );
    assert!(Iterator::next(&mut it).is_none());
    assert!(k.reads() <= nr.min(u64::from(budget)) + 1);
    seen.pages = n;
    match end {
        Some(Error::Limit { .. }) => assert!(nr > u64::from(budget)),
        Some(Error::NotMapped { level, .. }) => assert_eq!(level, 0),
        Some(e) => assert!(!matches!(e, Error::NotMapped { .. }), "{e:?}"),
        None => {}
    }

    for &pgoff in &input.probes {
        let pgoff = pgoff % (nr + 2);
        let located = a.locate(pgoff);
        assert_eq!(located.is_ok(), pgoff < nr);
        if let Ok(p) = located {
            let (user, kva) = expect(pgoff);
            assert_eq!((p.user_addr, Some(p.kva)), (user, kva));
            let mut buf = [0u8; PAGE_SIZE as usize];
            let read = a.read_page(&k, pgoff, &mut buf);
            let present = a.page(&k, pgoff);
            if let Ok(Some(q)) = read {
                assert_eq!(q, p);
                let mut direct = [0u8; PAGE_SIZE as usize];
                k.peek(p.kva, &mut direct).unwrap();
                assert_eq!(buf, direct);
                assert_eq!(present, Ok(Some(p)));
            }
            if let Ok(Some(q)) = present {
                assert_eq!(q, p);
            }
        }
    }
    seen
}
