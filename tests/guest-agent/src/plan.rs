//! The maps the agent creates and what it puts in them: a pure function of the
//! seed, so the host can recompute any expected content.
//!
//! Map `i` of [`MAPS`] draws all its bytes from [`seeded_bytes`]`(seed, i, k, len)`
//! with `k` chosen by [`stream`]:
//! - array slot `n` holds `(n as u32).to_le_bytes()` as its key;
//! - hash keys are candidates `KEY | j` for `j = 0, 1, ...`, duplicates skipped,
//!   until the map's entry count is reached;
//! - the value of the `n`-th entry is `VALUE | n`, and for per-CPU maps the value
//!   for the CPU at position `p` of the possible-CPU list is `VALUE | (p + 1) << 32 | n`;
//! - arena page `g` is `ARENA_PAGE | g`.
//!
//! `btf_hash` carries the agent's own BTF ([`crate::btf`]) for its key and
//! value; its bytes are seeded like any other hash map's, whatever the fields
//! mean. `st_ops` is a struct_ops map whose value type comes from the kernel's
//! BTF; it is never updated, so it reads as key 0 with a value of zeros.

use std::collections::HashSet;

use bpfmem_core::uapi::{MapType, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC};

use crate::btf::{BK_SIZE, BK_TYPE_ID, BV_SIZE, BV_TYPE_ID};
use crate::manifest::{seeded_bytes, Entry, Hex};

/// Page size of the test-bed guests (x86-64).
pub const PAGE_SIZE: u64 = 4096;

/// Where the arena is mapped in the agent (`map_extra`). Page aligned, and its
/// pages do not cross a 4 GiB boundary (`arena_map_alloc()`, kernel/bpf/arena.c,
/// v6.9..v6.18). Far below the mmap area and the stack of a 47-bit address space,
/// so `MAP_FIXED_NOREPLACE` there never meets another mapping.
pub const ARENA_USER_ADDR: u64 = 0x4000_0000_0000;

/// Arena pages the agent writes; the others are never touched (a touch would
/// fault them in).
pub const ARENA_PAGES_WRITTEN: [u32; 3] = [0, 3, 7];

/// `k` streams of [`seeded_bytes`].
pub mod stream {
    /// Hash key candidates.
    pub const KEY: u64 = 1 << 63;
    /// Values.
    pub const VALUE: u64 = 0;
    /// Arena page contents.
    pub const ARENA_PAGE: u64 = 1 << 62;
}

/// Where the BTF type ids of a map come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapBtf {
    /// No BTF.
    None,
    /// Key and value types of the agent's own BTF ([`crate::btf::blob`]).
    Own {
        /// `btf_key_type_id`.
        key_type_id: u32,
        /// `btf_value_type_id`.
        value_type_id: u32,
    },
    /// A struct_ops map: the value is this struct of the kernel's BTF
    /// (`btf_vmlinux_value_type_id`), and the value size is its size; the
    /// [`MapSpec::value_size`] in the plan is a placeholder 0. `map_create()`
    /// (kernel/bpf/syscall.c, v6.1..v6.18) still wants a program BTF in
    /// `btf_fd`, so the agent's own BTF goes there, with no key or value type.
    VmlinuxValue(&'static str),
}

/// One map to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSpec {
    /// Map name.
    pub name: &'static str,
    /// Map type.
    pub map_type: MapType,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum entries (pages for an arena).
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// `map_extra`.
    pub map_extra: u64,
    /// Entries to insert (arrays: slots to set, from 0).
    pub entries: u32,
    /// BTF type ids.
    pub btf: MapBtf,
}

impl MapSpec {
    const fn new(
        name: &'static str,
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Self {
        Self {
            name,
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags: 0,
            map_extra: 0,
            entries: 0,
            btf: MapBtf::None,
        }
    }

    const fn flags(mut self, map_flags: u32) -> Self {
        self.map_flags = map_flags;
        self
    }

    const fn fill(mut self, entries: u32) -> Self {
        self.entries = entries;
        self
    }

    const fn with_btf(mut self, btf: MapBtf) -> Self {
        self.btf = btf;
        self
    }

    /// Arrays: every slot always exists.
    pub fn is_array(&self) -> bool {
        matches!(self.map_type, MapType::ARRAY | MapType::PERCPU_ARRAY)
    }
}

/// The maps, in creation order; the index is the `map_index` of their bytes.
pub const MAPS: [MapSpec; 19] = [
    MapSpec::new("arr", MapType::ARRAY, 4, 8, 64).fill(64),
    MapSpec::new("arr_v20", MapType::ARRAY, 4, 20, 100).fill(100),
    // 1000-byte elements straddle pages.
    MapSpec::new("arr_v1000", MapType::ARRAY, 4, 1000, 50).fill(50),
    MapSpec::new("pcpu_arr", MapType::PERCPU_ARRAY, 4, 12, 16).fill(16),
    MapSpec::new("hash", MapType::HASH, 4, 8, 1024).fill(500),
    MapSpec::new("hash_k12_v20", MapType::HASH, 12, 20, 256).fill(200),
    MapSpec::new("hash_nopre", MapType::HASH, 8, 16, 512)
        .flags(BPF_F_NO_PREALLOC)
        .fill(300),
    MapSpec::new("lru_hash", MapType::LRU_HASH, 4, 8, 4096).fill(200),
    MapSpec::new("pcpu_hash", MapType::PERCPU_HASH, 4, 12, 256).fill(100),
    MapSpec::new("lru_pcpu_hash", MapType::LRU_PERCPU_HASH, 8, 8, 4096).fill(100),
    MapSpec::new("hash_big", MapType::HASH, 4, 8, 131_072).fill(100_000),
    MapSpec::new("hash_empty", MapType::HASH, 4, 4, 16),
    // Two maps with one name.
    MapSpec::new("dup", MapType::ARRAY, 4, 4, 4).fill(4),
    MapSpec::new("dup", MapType::ARRAY, 4, 4, 4).fill(4),
    MapSpec {
        name: "arena",
        map_type: MapType::ARENA,
        key_size: 0,
        value_size: 0,
        max_entries: 16,
        map_flags: BPF_F_MMAPABLE,
        map_extra: ARENA_USER_ADDR,
        entries: 0,
        btf: MapBtf::None,
    },
    // The live-write target: 40 KB of values, so vmalloc'd, and 1000-byte
    // values straddle pages that are not physically adjacent.
    MapSpec::new(POKE, MapType::ARRAY, 4, 1000, 40).fill(40),
    // `struct bk` -> `struct bv`: structs, an enum, bitfields.
    MapSpec::new("btf_hash", MapType::HASH, BK_SIZE, BV_SIZE, 64)
        .fill(20)
        .with_btf(MapBtf::Own {
            key_type_id: BK_TYPE_ID,
            value_type_id: BV_TYPE_ID,
        }),
    // Value size 0: the size of the vmlinux struct, found at run time.
    MapSpec::new("st_ops", MapType::STRUCT_OPS, 4, 0, 1)
        .with_btf(MapBtf::VmlinuxValue("bpf_struct_ops_tcp_congestion_ops")),
    // Rewritten without pause after the live write (see [`CHURN`]).
    MapSpec::new(CHURN, MapType::HASH, 4, 16, 4096).fill(1000),
];

/// A hash the agent keeps rewriting, once the host's live write showed the
/// images are taken: inserts, updates and deletes of keys below
/// [`CHURN_KEYS`], each value `churn_value(key, generation)`, so a reader of the
/// running guest's RAM can tell a value torn by a concurrent update.
pub const CHURN: &str = "churn";

/// Keys the churn writes: `0..CHURN_KEYS` as little-endian `u32`.
pub const CHURN_KEYS: u32 = 2048;

/// A churn value: the generation, then a check word derived from key and
/// generation.
pub fn churn_value(key: u32, generation: u64) -> [u8; 16] {
    let mut state = u64::from(key) ^ generation.rotate_left(17) ^ 0x6368_7572_6e21;
    let check = crate::manifest::splitmix64(&mut state);
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&generation.to_le_bytes());
    v[8..].copy_from_slice(&check.to_le_bytes());
    v
}

/// Whether `value` is a whole churn value for `key` (not torn).
pub fn is_churn_value(key: u32, value: &[u8]) -> bool {
    let Ok(generation) = value
        .get(..8)
        .unwrap_or_default()
        .try_into()
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    value == churn_value(key, generation)
}

/// The map the host writes into while the guest runs; the agent watches it
/// through `bpf(2)` and reports changes (see [`crate::manifest::POKE_SEEN`]).
pub const POKE: &str = "poke";

/// The keys of map `map_index`, in insertion order.
pub fn keys(seed: u64, map_index: u32, spec: &MapSpec) -> Vec<Vec<u8>> {
    if spec.is_array() {
        return (0..spec.entries.min(spec.max_entries))
            .map(|n| n.to_le_bytes().to_vec())
            .collect();
    }
    let want = usize::try_from(spec.entries).unwrap_or(usize::MAX);
    let key_len = usize::try_from(spec.key_size).unwrap_or(0);
    if key_len == 0 {
        return Vec::new();
    }
    let mut seen = HashSet::with_capacity(want);
    let mut keys = Vec::with_capacity(want);
    // Tiny key spaces could run dry; give up after a generous number of draws.
    let max_draws = u64::from(spec.entries).saturating_mul(4).saturating_add(64);
    for j in 0..max_draws {
        if keys.len() >= want {
            break;
        }
        let key = seeded_bytes(seed, map_index, stream::KEY | j, key_len);
        if seen.insert(key.clone()) {
            keys.push(key);
        }
    }
    keys
}

/// The value of entry `n`; `cpu` is a position in the possible-CPU list for
/// per-CPU maps.
pub fn value(seed: u64, map_index: u32, spec: &MapSpec, n: u32, cpu: Option<u32>) -> Vec<u8> {
    let k = match cpu {
        None => stream::VALUE | u64::from(n),
        Some(p) => stream::VALUE | (u64::from(p) + 1) << 32 | u64::from(n),
    };
    seeded_bytes(
        seed,
        map_index,
        k,
        usize::try_from(spec.value_size).unwrap_or(0),
    )
}

/// The contents of arena page `page`.
pub fn arena_page(seed: u64, map_index: u32, page: u32) -> Vec<u8> {
    seeded_bytes(
        seed,
        map_index,
        stream::ARENA_PAGE | u64::from(page),
        PAGE_SIZE as usize,
    )
}

/// Every entry map `map_index` should hold, sorted by key bytes as in a manifest.
/// `nr_cpus` is the number of possible CPUs (used by per-CPU maps only).
///
/// A struct_ops map holds one key, 0, and `spec.value_size` bytes of zeros: a
/// map never updated is in `BPF_STRUCT_OPS_STATE_INIT`, and
/// `bpf_struct_ops_map_sys_lookup_elem()` (kernel/bpf/bpf_struct_ops.c,
/// v6.1..v6.18) returns zeros for it. Pass the spec with the value size the map
/// was created with.
pub fn expected_entries(seed: u64, map_index: u32, spec: &MapSpec, nr_cpus: u32) -> Vec<Entry> {
    if spec.map_type == MapType::STRUCT_OPS {
        let zeros = vec![0u8; usize::try_from(spec.value_size).unwrap_or(0)];
        return vec![Entry {
            key: Hex(0u32.to_le_bytes().to_vec()),
            value: Some(Hex(zeros)),
            values: None,
        }];
    }
    let mut entries: Vec<Entry> = keys(seed, map_index, spec)
        .into_iter()
        .zip(0u32..)
        .map(|(key, n)| {
            if spec.map_type.is_percpu() {
                let values = (0..nr_cpus)
                    .map(|p| Hex(value(seed, map_index, spec, n, Some(p))))
                    .collect();
                Entry {
                    key: Hex(key),
                    value: None,
                    values: Some(values),
                }
            } else {
                Entry {
                    key: Hex(key),
                    value: Some(Hex(value(seed, map_index, spec, n, None))),
                    values: None,
                }
            }
        })
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_bpf_obj_name_len() {
        for m in &MAPS {
            assert!(
                m.name.len() < bpfmem_core::uapi::BPF_OBJ_NAME_LEN,
                "{}",
                m.name
            );
            assert!(m
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'));
            assert!(m.entries <= m.max_entries, "{}", m.name);
        }
    }

    #[test]
    fn arena_range_is_legal() {
        let len = u64::from(MAPS[14].max_entries) * PAGE_SIZE;
        assert_eq!(ARENA_USER_ADDR % PAGE_SIZE, 0);
        assert_eq!(ARENA_USER_ADDR >> 32, (ARENA_USER_ADDR + len - 1) >> 32);
        assert!(ARENA_PAGES_WRITTEN
            .iter()
            .all(|&p| p < MAPS[14].max_entries));
    }

    #[test]
    fn hash_keys_are_unique_and_complete() {
        for (i, m) in MAPS.iter().enumerate() {
            let keys = keys(1, i as u32, m);
            let expect = if m.map_type == MapType::ARENA {
                0
            } else {
                m.entries as usize
            };
            assert_eq!(keys.len(), expect, "{}", m.name);
            let set: HashSet<_> = keys.iter().collect();
            assert_eq!(set.len(), keys.len());
            assert!(keys.iter().all(|k| k.len() == m.key_size as usize));
        }
    }

    #[test]
    fn maps_with_btf_come_last() {
        assert_eq!(MAPS[15].name, POKE);
        assert_eq!(MAPS[16].name, "btf_hash");
        assert_eq!(
            MAPS[16].btf,
            MapBtf::Own {
                key_type_id: BK_TYPE_ID,
                value_type_id: BV_TYPE_ID
            }
        );
        assert_eq!((MAPS[16].key_size, MAPS[16].value_size), (8, 24));
        assert_eq!(MAPS[17].name, "st_ops");
        assert!(matches!(MAPS[17].btf, MapBtf::VmlinuxValue(_)));
        assert!(MAPS[..16].iter().all(|m| m.btf == MapBtf::None));
    }

    #[test]
    fn struct_ops_reads_as_zeros() {
        let spec = MapSpec {
            value_size: 256,
            ..MAPS[17]
        };
        assert!(keys(1, 17, &spec).is_empty());
        let e = expected_entries(1, 17, &spec, 2);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, Hex(vec![0; 4]));
        assert_eq!(e[0].value, Some(Hex(vec![0; 256])));
        assert_eq!(e[0].values, None);
    }

    #[test]
    fn contents_depend_on_seed_only() {
        let m = &MAPS[8]; // pcpu_hash
        let a = expected_entries(5, 8, m, 4);
        assert_eq!(a, expected_entries(5, 8, m, 4));
        assert_ne!(a, expected_entries(6, 8, m, 4));
        assert_eq!(a.len(), 100);
        let v = a[0].values.as_ref().unwrap();
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|x| x.0.len() == 12));
        assert_ne!(v[0], v[1]);
        assert!(a.windows(2).all(|w| w[0].key < w[1].key));
        // The two `dup` maps differ.
        assert_ne!(
            expected_entries(1, 12, &MAPS[12], 1),
            expected_entries(1, 13, &MAPS[13], 1)
        );
    }
}
