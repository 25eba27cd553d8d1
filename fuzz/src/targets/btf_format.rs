//! Typed keys and values from a map's own (hostile) BTF: `MapTypes` parsing,
//! `entry` for one value or one per CPU, JSON, bpftool's JSON writer, plain
//! dumps and lookups.
//!
//! Checks: the formatted tree of a key or value has at most `max_nodes`
//! nodes and at most `max_depth + 1` levels (the root at depth 0); every
//! output form is total.

use bpfmem::format::{
    plain_lookup, EntryValues, Formatted, JsonWriter, Limits, MapTypes, PlainDump,
};

use crate::wire_struct;

/// The most nodes a value may have here (the library's default is 2^20).
pub const MAX_NODES: u16 = 4096;
pub const DEFAULT_DEPTH: u8 = 64;

wire_struct! {
    /// The payload is the BTF blob (`btf_len` bytes), the key (`key_len`
    /// bytes), then the value: one, or `cpus` equal parts. `max_depth` and
    /// `max_nodes` are XORed with their defaults (nodes capped).
    pub struct Input {
        pub key_type_id: u32,
        pub value_type_id: u32,
        pub max_depth: u8,
        pub max_nodes: u16,
        pub btf_len: u32,
        pub key_len: u16,
        pub cpus: u8,
    }
}

/// Nodes and levels of a tree.
fn measure(f: &Formatted) -> (u64, u32) {
    match f {
        Formatted::Array(items) => items.iter().fold((1, 1), |(n, d), i| {
            let (a, b) = measure(i);
            (n + a, d.max(b + 1))
        }),
        Formatted::Object(members) => members.iter().fold((1, 1), |(n, d), (_, v)| {
            let (a, b) = measure(v);
            (n + a, d.max(b + 1))
        }),
        _ => (1, 1),
    }
}

pub fn run(input: &Input, payload: &[u8]) -> bool {
    let (btf, rest) = payload.split_at((input.btf_len as usize).min(payload.len()));
    let (key, value) = rest.split_at(usize::from(input.key_len).min(rest.len()));
    let limits = Limits {
        max_depth: u32::from(input.max_depth ^ DEFAULT_DEPTH),
        max_nodes: u64::from((input.max_nodes ^ MAX_NODES).min(MAX_NODES)),
    };
    let Ok(types) = MapTypes::with_limits(btf, input.key_type_id, input.value_type_id, limits)
    else {
        return false;
    };
    // Every node is paid for, and nests one level below its parent (a
    // DATASEC's object and the array in it are two: the regression
    // datasec-elements-count-one-node-for-two).
    let check = |f: &Formatted| {
        let (nodes, levels) = measure(f);
        assert!(
            nodes <= limits.max_nodes,
            "{nodes} nodes, limit {}",
            limits.max_nodes
        );
        assert!(
            u64::from(levels) <= u64::from(limits.max_depth) + 1,
            "{levels} levels, max_depth {}",
            limits.max_depth
        );
    };
    if let Ok(f) = types.key(key) {
        check(&f);
        let _ = f.to_json();
    }
    if let Ok(f) = types.value(value) {
        check(&f);
    }
    let cpus = usize::from(input.cpus % 5);
    let parts: Vec<&[u8]> = if cpus == 0 {
        Vec::new()
    } else {
        value.chunks(value.len().div_ceil(cpus).max(1)).collect()
    };
    let values = if cpus == 0 {
        EntryValues::One(value)
    } else {
        EntryValues::PerCpu(&parts)
    };
    let Ok(entry) = types.entry(key, values) else {
        return false;
    };
    let _ = entry.to_json();
    let _ = types.has_key();
    let mut w = JsonWriter::new(input.cpus & 0x80 != 0);
    w.formatted(&entry, false);
    let _ = w.finish();
    let mut dump = PlainDump::new();
    dump.push(&entry);
    let _ = dump.finish();
    let _ = plain_lookup(&entry);
    true
}
