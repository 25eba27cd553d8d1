//! BPF hash tables: `Htab::new`, the bucket walk, `detect_pcpu_ptr_at`, and
//! the key and value reads.
//!
//! Checks: a checked table has the kernel's `n_buckets` and `elem_size`; the
//! walk yields each element at most once, bucket by bucket, each in the
//! bucket its hash selects, at most `max_elems` of them, reading at most one
//! head per bucket and three words per element, then stays ended; keys and
//! values sit where the layout puts them, per-CPU pointers are 8-aligned and
//! not NULL; reads are refused past `key_size`/`value_size` and otherwise
//! read what the image holds; detection answers at once for maps where both
//! kernels agree.

use std::collections::HashSet;

use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::htab::{
    detect_pcpu_ptr_at, htab_elem_size, htab_n_buckets, round_up_8, Htab, HtabLimits, PcpuPtrAt,
};
use bpfmem_core::percpu::PerCpu;
use bpfmem_core::uapi::MapType;
use bpfmem_core::{Error, Kva};

use crate::layouts::{map_info, MapWire, OffsetsWire};
use crate::mem::{drive, Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// The most elements the target lets a walk yield.
pub const MAX_ELEMS: u64 = 1 << 14;
/// The most buckets the target lets a walk visit (the library's default is
/// 2^27, all of which an image of that size would hold).
pub const MAX_BUCKETS: u64 = 1 << 16;
/// Where `__per_cpu_offset` is by default: the second run.
pub const DEFAULT_PER_CPU_OFFSET: u64 = DEFAULT_BASES[1];

/// The map an all-zero `MapWire` means: a HASH of 16 4-byte keys and 8-byte values.
pub fn default_map() -> MapInfo {
    map_info(MapType::HASH, 4, 8, 16, DEFAULT_BASES[0])
}

wire_struct! {
    /// `limits`: (max_buckets, max_chain, max_elems), each XORed with its
    /// cap (and capped); `max_chain`/`max_elems` of `u32::MAX` mean the
    /// library's default. `pcpu_at`: 0 as `new` decided, 1 `KeySize`, 2
    /// `KeySizeRoundUp`, 3 what detection says. `cpus`: a mask of CPUs for
    /// detection (XOR 0b11).
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub map: MapWire,
        pub per_cpu_offset: u64,
        pub nr_cpu_ids: u8,
        pub cpus: u8,
        pub pcpu_at: u8,
        pub limits: (u32, u32, u32),
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub elems: u64,
    pub detected: Option<PcpuPtrAt>,
    pub read: u64,
}

fn cap(v: u32, c: u64) -> Option<u64> {
    (v != u32::MAX).then_some(u64::from(v).min(c))
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let off = input.off.decode();
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let map = input.map.decode(&default_map());
    let pcpu = PerCpu::new(
        Kva(input.per_cpu_offset ^ DEFAULT_PER_CPU_OFFSET),
        u32::from(input.nr_cpu_ids ^ 2),
    );
    let cpus: Vec<u32> = (0..8)
        .filter(|c| (input.cpus ^ 3) & (1 << c) != 0)
        .collect();
    let mut seen = Seen::default();
    let Ok(mut h) = Htab::new(&k, &map, &off) else {
        return seen;
    };
    let percpu = matches!(
        map.map_type,
        MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
    );
    assert!(percpu || matches!(map.map_type, MapType::HASH | MapType::LRU_HASH));
    assert_eq!(h.is_percpu(), percpu);
    assert_eq!(Some(h.n_buckets()), htab_n_buckets(map.max_entries));
    assert_eq!(
        u64::from(h.elem_size()),
        htab_elem_size(off.htab_elem.size, map.key_size, map.value_size, percpu)
    );
    assert!(h.buckets().get() != 0 && h.buckets().get() % 8 == 0);
    if !percpu || map.key_size % 8 == 0 {
        assert_eq!(h.pcpu_ptr_at(), Some(PcpuPtrAt::KeySizeRoundUp));
    }

    let detected = detect_pcpu_ptr_at(&k, &h, &pcpu, &cpus);
    if !percpu || map.key_size % 8 == 0 {
        assert_eq!(detected, Ok(Some(PcpuPtrAt::KeySizeRoundUp)));
    }
    seen.detected = detected.ok().flatten();
    match input.pcpu_at % 4 {
        1 => h.set_pcpu_ptr_at(PcpuPtrAt::KeySize),
        2 => h.set_pcpu_ptr_at(PcpuPtrAt::KeySizeRoundUp),
        3 => {
            if let Some(at) = seen.detected {
                h.set_pcpu_ptr_at(at);
            }
        }
        _ => {}
    }

    let (b, c, e) = input.limits;
    let limits = HtabLimits {
        max_buckets: u64::from(b ^ MAX_BUCKETS as u32).min(MAX_BUCKETS),
        max_chain: cap(c, MAX_ELEMS),
        max_elems: Some(cap(e, MAX_ELEMS).unwrap_or(MAX_ELEMS)),
        nr_cpus: pcpu.nr_cpu_ids(),
    };
    let budget = limits.max_elems.unwrap();
    let mask = h.n_buckets() - 1;
    let mut elems = HashSet::new();
    // An element seen again, and in which bucket: only a chain that loops
    // repeats one, and then the walk must end in the cycle error.
    let mut again = None;
    let mut last_bucket = 0u32;
    let mut found = Vec::new();
    k.reset_reads();
    let mut it = h.iter(&k, limits);
    let (n, end) = drive(
        "HtabIter",
        budget,
        || it.next(),
        |_, e| {
            if !elems.insert(e.elem) && again.is_none() {
                again = Some((e.elem, e.bucket));
            }
            assert!(
                e.bucket >= last_bucket,
                "bucket {} after {last_bucket}",
                e.bucket
            );
            last_bucket = e.bucket;
            assert_eq!(e.hash & mask, e.bucket);
            assert_eq!(
                e.key,
                e.elem.checked_add(u64::from(off.htab_elem.key)).unwrap()
            );
            if percpu {
                assert!(e.value.get() != 0 && e.value.get() % 8 == 0);
            } else {
                assert_eq!(Some(e.value), e.key.checked_add(round_up_8(map.key_size)));
            }
            found.push(*e);
        },
    );
    assert!(Iterator::next(&mut it).is_none());
    if let Some((elem, bucket)) = again {
        assert!(
            matches!(
                end,
                Some(Error::Malformed {
                    what: "htab chain (cycle)",
                    ..
                })
            ),
            "element {elem} yielded twice, then {end:?}"
        );
        assert_eq!(last_bucket, bucket, "the walk left the looping chain");
    }
    seen.elems = n;
    if u64::from(h.n_buckets()) > limits.max_buckets {
        assert!(n == 0 && matches!(end, Some(Error::Limit { .. })));
    }
    // A head per bucket, three words per element and per call.
    let buckets = u64::from(h.n_buckets()) + 1;
    assert!(
        k.reads() <= buckets + 3 * (n + 1),
        "{} reads for {n} elements in {buckets} buckets",
        k.reads()
    );

    for e in found.iter().take(8) {
        let ks = map.key_size.min(4096) as usize;
        let mut key = vec![0u8; ks];
        if h.read_key(&k, e, &mut key).is_ok() {
            let mut direct = vec![0u8; ks];
            k.peek(e.key, &mut direct).unwrap();
            assert_eq!(key, direct);
            seen.read += 1;
        }
        let mut long = vec![0u8; map.key_size as usize + 1];
        assert!(map.key_size as usize >= 4096 || h.read_key(&k, e, &mut long).is_err());
        let vs = map.value_size.min(4096) as usize;
        let mut value = vec![0u8; vs];
        if percpu {
            assert!(h.read_value(&k, e, &mut value).is_err());
            for &cpu in cpus.iter().take(2) {
                let r = h.read_percpu_value(&k, e, &pcpu, cpu, &mut value);
                if cpu >= pcpu.nr_cpu_ids() {
                    assert!(r.is_err());
                }
                if r.is_ok() {
                    let at = pcpu.per_cpu_ptr(&k, e.value, cpu).unwrap();
                    let mut direct = vec![0u8; vs];
                    k.peek(at, &mut direct).unwrap();
                    assert_eq!(value, direct);
                    seen.read += 1;
                }
            }
        } else {
            assert!(h.read_percpu_value(&k, e, &pcpu, 0, &mut value).is_err());
            if h.read_value(&k, e, &mut value).is_ok() {
                let mut direct = vec![0u8; vs];
                k.peek(e.value, &mut direct).unwrap();
                assert_eq!(value, direct);
                seen.read += 1;
            }
        }
    }
    seen
}
