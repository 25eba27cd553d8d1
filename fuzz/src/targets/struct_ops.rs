//! `BPF_MAP_TYPE_STRUCT_OPS`: `StructOps::new`, `read_value` windows,
//! `read_common`, `value_btf_id`.
//!
//! Checks: a value reads as zeros in state INIT; otherwise it is `*uvalue`
//! with `refcnt` and `state` patched in, exactly where the layout says; any
//! window reads iff it fits `value_size`, and equals that part of the whole
//! value; `read_common` agrees with what `read_value` reports.

use bpfmem_core::array::window_fits;
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::struct_ops::{StructOps, BPF_STRUCT_OPS_STATE_INIT};
use bpfmem_core::uapi::MapType;
use bpfmem_core::Kva;

use crate::layouts::{map_info, MapWire, OffsetsWire};
use crate::mem::{Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// The largest whole value the target reads.
pub const MAX_VALUE: u32 = 1 << 14;

/// The map an all-zero `MapWire` means: one 256-byte value.
pub fn default_map() -> MapInfo {
    MapInfo {
        btf_vmlinux_value_type_id: 1234,
        ..map_info(MapType::STRUCT_OPS, 4, 256, 1, DEFAULT_BASES[0])
    }
}

wire_struct! {
    /// `windows` are `(offset, len)`.
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub map: MapWire,
        pub windows: [(u32, u16); 3],
    }
}

pub fn run(input: &Input, payload: &[u8]) -> bool {
    let off = input.off.decode();
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let map = input.map.decode(&default_map());
    let Ok(s) = StructOps::new(&map, &off) else {
        return false;
    };
    let so = off
        .bpf_struct_ops_map
        .expect("StructOps::new needs the layout");
    assert_eq!(map.map_type, MapType::STRUCT_OPS);
    assert!(map.key_size == 4 && map.max_entries == 1 && map.value_size >= so.value_data);
    assert_eq!(s.value_size(), map.value_size);
    let _ = s.value_btf_id(&k);
    let common = s.read_common(&k);

    let size = map.value_size;
    let mut whole = None;
    if size <= MAX_VALUE {
        let mut v = vec![0u8; size as usize];
        if let Ok(c) = s.read_value(&k, 0, &mut v) {
            assert_eq!(common.as_ref(), Ok(&c));
            if c.state == BPF_STRUCT_OPS_STATE_INIT {
                assert!(v.iter().all(|&b| b == 0));
                assert_eq!(c.refcnt, 0);
            } else {
                // *uvalue, with the two fields patched in (state, then refcnt,
                // as lookup writes them).
                let at = map.kva.checked_sub(u64::from(so.map)).unwrap();
                let uvalue = k
                    .peek_u64(at.checked_add(u64::from(so.uvalue)).unwrap())
                    .unwrap();
                let mut want = vec![0u8; size as usize];
                k.peek(Kva(uvalue), &mut want).unwrap();
                for (field, v) in [(so.value_state, c.state), (so.value_refcnt, c.refcnt)] {
                    for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                        if let Some(slot) = want.get_mut(field as usize + i) {
                            *slot = b;
                        }
                    }
                }
                assert_eq!(v, want);
            }
            whole = Some(v);
        }
    }
    for &(offset, len) in &input.windows {
        let len = usize::from(len);
        let mut buf = vec![0u8; len];
        let r = s.read_value(&k, offset, &mut buf);
        if !window_fits(size, offset, len as u64) {
            assert!(r.is_err());
            continue;
        }
        if let (Ok(_), Some(v)) = (&r, &whole) {
            assert_eq!(buf[..], v[offset as usize..offset as usize + len]);
        }
        if whole.is_some() && len > 0 {
            assert!(r.is_ok(), "a window failed where the whole value read");
        }
    }
    whole.is_some()
}
