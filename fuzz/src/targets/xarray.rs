//! XArray and IDR walks over a hostile image: `xa_for_each`, `xa_load`,
//! `idr_for_each`, `idr_find`.
//!
//! Checks: walks yield at most `max_entries` entries, in strictly increasing
//! index order, then stay ended; they read at most 5 words per node budgeted
//! (shift, parent, offset, slots, slots again on the way up); every entry a
//! walk yields is what `xa_load` finds at its index (and `idr_find` at its
//! id); ids are at most `INT_MAX`; a load reads a bounded number of words.

use bpfmem_core::xarray::{
    idr_find, idr_for_each, xa_for_each, xa_load, Entry, XaLimits, IDR_MAX_ID, XA_MAX_DEPTH,
};
use bpfmem_core::Kva;

use crate::layouts::OffsetsWire;
use crate::mem::{drive, Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// Defaults of the budget fields (XOR masks): `XaLimits::default()`.
pub const DEFAULT_MAX_NODES: u32 = 1 << 20;
pub const DEFAULT_MAX_ENTRIES: u32 = 1 << 24;

wire_struct! {
    /// `xa` and `idr` are XORed with the first run's address; the budgets
    /// with their defaults. `probes` are indexes for `xa_load`, `ids` for
    /// `idr_find`.
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub xa: u64,
        pub idr: u64,
        pub max_nodes: u32,
        pub max_entries: u32,
        pub probes: [u64; 3],
        pub ids: [u32; 2],
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub entries: u64,
    pub ids: u64,
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let off = input.off.decode();
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let base = input.layout.base[0] ^ DEFAULT_BASES[0];
    let xa = Kva(input.xa ^ base);
    let idr = Kva(input.idr ^ base);
    let limits = XaLimits {
        max_nodes: u64::from(input.max_nodes ^ DEFAULT_MAX_NODES),
        max_entries: u64::from(input.max_entries ^ DEFAULT_MAX_ENTRIES),
    };
    let mut seen = Seen::default();
    let load_reads = 4 * XA_MAX_DEPTH as u64 + 64 + 1;

    let mut found: Vec<(u64, Entry)> = Vec::new();
    k.reset_reads();
    let mut it = xa_for_each(&k, xa, &off, limits);
    let (n, _) = drive(
        "xa_for_each",
        limits.max_entries,
        || it.next(),
        |_, &(i, e)| {
            if let Some(&(last, _)) = found.last() {
                assert!(i > last, "xa_for_each: index {i} after {last}");
            }
            found.push((i, e));
        },
    );
    assert!(Iterator::next(&mut it).is_none());
    assert!(
        k.reads() <= 5 * limits.max_nodes.saturating_add(1) + 1,
        "xa_for_each read {} words with a budget of {} nodes",
        k.reads(),
        limits.max_nodes
    );
    seen.entries = n;
    for &(i, e) in &found {
        k.reset_reads();
        assert_eq!(
            xa_load(&k, xa, i, &off),
            Ok(Some(e)),
            "xa_load({i}) after the walk found it"
        );
        assert!(k.reads() <= load_reads);
    }
    for &i in &input.probes {
        k.reset_reads();
        let got = xa_load(&k, xa, i, &off);
        assert!(k.reads() <= load_reads, "xa_load read {} words", k.reads());
        if let Ok(Some(e)) = got {
            // The walk passes over nothing a load finds, unless it stopped early.
            if let Ok(pos) = found.binary_search_by_key(&i, |&(j, _)| j) {
                assert_eq!(found[pos].1, e);
            }
        }
    }

    let mut ids: Vec<(u32, Kva)> = Vec::new();
    k.reset_reads();
    let mut it = idr_for_each(&k, idr, &off, limits);
    let (n, _) = drive(
        "idr_for_each",
        limits.max_entries,
        || it.next(),
        |_, &(id, p)| {
            assert!(u64::from(id) <= IDR_MAX_ID);
            if let Some(&(last, _)) = ids.last() {
                assert!(id > last, "idr_for_each: id {id} after {last}");
            }
            ids.push((id, p));
        },
    );
    assert!(Iterator::next(&mut it).is_none());
    assert!(k.reads() <= 5 * limits.max_nodes.saturating_add(1) + 2);
    seen.ids = n;
    for &(id, p) in &ids {
        assert_eq!(
            idr_find(&k, idr, u64::from(id), &off),
            Ok(Some(p)),
            "idr_find({id})"
        );
    }
    for &id in &input.ids {
        k.reset_reads();
        let _ = idr_find(&k, idr, u64::from(id), &off);
        assert!(k.reads() <= load_reads + 1);
    }
    seen
}
