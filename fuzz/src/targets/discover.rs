//! Discovery end to end over a small physical image: `Kernel::discover`
//! (page tables from VMCOREINFO, kallsyms and the symbols it needs, the
//! checked direct map, the kernel's BTF turned into layouts, the possible
//! CPUs), then the map, program and BTF walks of the discovered kernel.
//!
//! Checks: a discovered kernel has 4 or 5 levels, a canonical, PUD-aligned
//! `page_offset_base` in the kernel half, 1..=8192 CPU ids and a non-empty,
//! increasing list of possible CPUs below them; each symbol it found is
//! what a kallsyms lookup finds; the walks yield increasing ids, each object
//! what a lookup by id finds, then stay ended.

use bpfmem::kernel::{Kernel, VmcoreinfoOrigin, MAX_CPUS, WANTED};
use bpfmem::DiscoverOptions;
use bpfmem_core::paging::{is_canonical, PUD_SIZE};
use bpfmem_core::vmcoreinfo::VmcoreInfo;
use bpfmem_core::{Flat, Pa};

use crate::mem::drive;
use crate::wire_struct;

/// The most objects a walk may yield here.
const MAX_WALK: u64 = 4096;

wire_struct! {
    /// The payload is the VMCOREINFO text (`text_len` bytes), then physical
    /// memory from `mem_base`.
    pub struct Input {
        pub text_len: u16,
        pub mem_base: u64,
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub discovered: bool,
    pub maps: u64,
    pub progs: u64,
    pub btfs: u64,
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let (text, mem) = payload.split_at(usize::from(input.text_len).min(payload.len()));
    let Ok(info) = VmcoreInfo::parse(text) else {
        return seen;
    };
    let mem = Flat::new(Pa(input.mem_base), mem);
    let Ok(k) = Kernel::discover(
        mem,
        info,
        VmcoreinfoOrigin::Caller,
        &DiscoverOptions::default(),
    ) else {
        return seen;
    };
    seen.discovered = true;
    let levels = k.paging_levels();
    assert!(levels == 4 || levels == 5);
    let pob = k.page_offset_base();
    assert!(is_canonical(pob, levels) && pob.get() >> 63 == 1 && pob.page_offset(PUD_SIZE) == 0);
    let nr = k.nr_cpu_ids();
    assert!((1..=MAX_CPUS).contains(&nr));
    let cpus = k.possible_cpus();
    assert!(
        !cpus.is_empty() && cpus.windows(2).all(|w| w[0] < w[1]) && cpus.iter().all(|&c| c < nr)
    );
    let n = k.offsets().xa_node.nr_slots;
    assert!(n.is_power_of_two() && (2..=64).contains(&n));
    let syms = k.symbols();
    for name in WANTED {
        if let Some(at) = syms.get(name) {
            assert_eq!(k.symbol(name), Ok(Some(at)), "symbol {name}");
        }
    }

    let mut last = None;
    let mut it = k.maps();
    let (n, _) = drive(
        "Kernel::maps",
        MAX_WALK,
        || it.next(),
        |_, m| {
            assert!(last.is_none_or(|l| m.id > l));
            last = Some(m.id);
            assert_eq!(k.map(m.id).as_ref(), Ok(&Some(*m)));
        },
    );
    seen.maps = n;
    let mut last = None;
    let mut it = k.progs();
    let (n, _) = drive(
        "Kernel::progs",
        MAX_WALK,
        || it.next(),
        |_, p| {
            assert!(last.is_none_or(|l| p.id > l));
            last = Some(p.id);
            assert_eq!(k.prog(p.id).as_ref(), Ok(&Some(*p)));
        },
    );
    seen.progs = n;
    let mut last = None;
    let mut it = k.btfs();
    let (n, _) = drive(
        "Kernel::btfs",
        MAX_WALK,
        || it.next(),
        |_, b| {
            assert!(last.is_none_or(|l| b.id > l));
            last = Some(b.id);
            assert_eq!(k.btf(b.id).as_ref(), Ok(&Some(*b)));
        },
    );
    seen.btfs = n;
    seen
}
