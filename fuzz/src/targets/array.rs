//! `BPF_MAP_TYPE_ARRAY` and `PERCPU_ARRAY`: `Array::new`, the key walk,
//! value windows (`read_value`, `write_plan`), runs of values (`read_values`),
//! per-CPU pointers and values
//! (`pptr`, `percpu_window`, `read_percpu_value`) through `PerCpu`.
//!
//! Checks: a checked array has `elem_size = round_up(value_size, 8)` and the
//! kernel's `index_mask`; the walk yields keys 0, 1, 2... each with the
//! address `value_kva`/`pptr` gives, at most `min(max_entries, limit)` of
//! them, ending with a limit error exactly when `max_entries` is larger, then
//! stays ended; a window reads iff the key exists and the window fits the
//! value, and reads what the image holds there; `write_plan` agrees with
//! `read_value`; per-CPU offsets exist only below `nr_cpu_ids`.

use bpfmem_core::array::{array_index_mask, window_fits, Array, ArrayElem};
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::percpu::PerCpu;
use bpfmem_core::uapi::{percpu_value_size, MapType};
use bpfmem_core::{Error, Kva};

use crate::layouts::{map_info, MapWire, OffsetsWire};
use crate::mem::{drive, Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// The most keys the target walks (the library's default is 2^24).
pub const MAX_WALK: u32 = 4096;
/// Where `__per_cpu_offset` is by default: the second run.
pub const DEFAULT_PER_CPU_OFFSET: u64 = DEFAULT_BASES[1];

/// The map an all-zero `MapWire` means: an ARRAY of 16 8-byte values.
pub fn default_map() -> MapInfo {
    map_info(MapType::ARRAY, 4, 8, 16, DEFAULT_BASES[0])
}

wire_struct! {
    /// `per_cpu_offset` is XORed with its default, `nr_cpu_ids` with 2, the
    /// walk's `limit` with [`MAX_WALK`] (and capped by it). `probes` are
    /// `(key, offset, len, cpu)`.
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub map: MapWire,
        pub per_cpu_offset: u64,
        pub nr_cpu_ids: u8,
        pub limit: u32,
        pub probes: [(u32, u32, (u16, u8)); 3],
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub keys: u64,
    pub values: u32,
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let off = input.off.decode();
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let map = input.map.decode(&default_map());
    let pcpu = PerCpu::new(
        Kva(input.per_cpu_offset ^ DEFAULT_PER_CPU_OFFSET),
        u32::from(input.nr_cpu_ids ^ 2),
    );
    let mut seen = Seen::default();
    let Ok(a) = Array::new(&k, &map, &off) else {
        return seen;
    };
    let percpu = map.map_type == MapType::PERCPU_ARRAY;
    assert!(percpu || map.map_type == MapType::ARRAY);
    assert_eq!(a.is_percpu(), percpu);
    assert_eq!(Some(a.elem_size()), percpu_value_size(map.value_size));
    assert_eq!(a.index_mask(), array_index_mask(map.max_entries));
    assert_eq!(
        (a.value_size(), a.max_entries()),
        (map.value_size, map.max_entries)
    );
    assert!(map.key_size == 4 && map.max_entries > 0 && map.value_size > 0);

    let limit = (input.limit ^ MAX_WALK).min(MAX_WALK);
    let mut it = a.iter(&k).limit(u64::from(limit));
    let budget = u64::from(limit.min(map.max_entries));
    let (n, end) = drive(
        "ArrayIter",
        budget,
        || it.next(),
        |i, &(key, elem)| {
            assert_eq!(u64::from(key), i, "keys in order");
            match elem {
                ArrayElem::Value(v) => {
                    assert!(!percpu);
                    assert_eq!(a.value_kva(key), Ok(v));
                }
                ArrayElem::Pptr(p) => {
                    assert!(percpu);
                    assert_eq!(a.pptr(&k, key), Ok(p));
                    assert!(p.get() != 0 && p.get() % 8 == 0);
                }
            }
        },
    );
    assert!(Iterator::next(&mut it).is_none());
    seen.keys = n;
    if end.is_none() {
        assert_eq!(
            n,
            u64::from(map.max_entries),
            "the walk ended early without an error"
        );
    }
    if map.max_entries > limit && n == u64::from(limit) {
        assert!(matches!(end, Some(Error::Limit { .. })), "{end:?}");
    }

    for &(key, offset, (len, cpu)) in &input.probes {
        let len = usize::from(len % 4097);
        let cpu = u32::from(cpu);
        let fits = key < map.max_entries && window_fits(map.value_size, offset, len as u64);
        let mut buf = vec![0u8; len];
        let plan = a.write_plan(key, offset, len);
        let read = a.read_value(&k, key, offset, &mut buf);
        if percpu {
            assert!(plan.is_err() && read.is_err());
            let w = a.percpu_window(&k, key, &pcpu, cpu, offset, len);
            let r = a.read_percpu_value(&k, key, &pcpu, cpu, offset, &mut buf);
            if cpu >= pcpu.nr_cpu_ids() {
                assert!(w.is_err() && r.is_err());
            }
            if !fits {
                assert!(r.is_err());
            }
            match w {
                Ok(w) => {
                    assert!(fits);
                    assert_eq!(w.len, len);
                    let v = a.percpu_value_kva(&k, key, &pcpu, cpu).unwrap();
                    assert_eq!(v.checked_add(u64::from(offset)), Some(w.kva));
                    let mut direct = vec![0u8; len];
                    let d = k.peek(w.kva, &mut direct);
                    assert_eq!(r.is_ok(), d.is_ok());
                    if r.is_ok() {
                        assert_eq!(buf, direct);
                        seen.values += 1;
                    }
                }
                Err(_) => assert!(r.is_err()),
            }
        } else {
            assert!(a.pptr(&k, key).is_err());
            assert_eq!(plan.is_ok(), fits, "write_plan({key}, {offset}, {len})");
            match plan {
                Ok(w) => {
                    let v = a.value_kva(key).unwrap();
                    assert_eq!(v.checked_add(u64::from(offset)), Some(w.kva));
                    assert_eq!(w.len, len);
                    let mut direct = vec![0u8; len];
                    let d = k.peek(w.kva, &mut direct);
                    assert_eq!(read.is_ok(), d.is_ok());
                    if read.is_ok() {
                        assert_eq!(buf, direct);
                        seen.values += 1;
                    }
                }
                Err(_) => assert!(read.is_err()),
            }
        }
        let o = pcpu.offset(&k, cpu);
        if cpu >= pcpu.nr_cpu_ids() {
            assert!(matches!(o, Err(Error::Limit { .. })));
        }
        // A run of values from `key` into `len` bytes: whole values, as each
        // value reads alone.
        let run = a.read_values(&k, key, &mut buf);
        if percpu || key >= map.max_entries {
            assert!(run.is_err());
        } else if let Ok(n) = run {
            let vs = map.value_size as usize;
            let fit = (len / vs) as u64;
            let left = u64::from(map.max_entries - key);
            assert_eq!(u64::from(n), fit.min(left), "read_values({key}) into {len}");
            let mut one = vec![0u8; vs];
            for (i, got) in buf.chunks(vs).take(n as usize).enumerate() {
                a.read_value(&k, key + i as u32, 0, &mut one).unwrap();
                assert_eq!(got, &one[..], "read_values({key}) value {i}");
            }
        }
    }
    seen
}
