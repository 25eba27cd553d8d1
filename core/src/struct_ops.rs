//! `BPF_MAP_TYPE_STRUCT_OPS` (kernel/bpf/bpf_struct_ops.c): the value
//! `bpf_struct_ops_map_sys_lookup_elem()` hands to user space, read from
//! `struct bpf_struct_ops_map`.
//!
//! The map keeps two copies of `struct bpf_struct_ops_value`: `uvalue`, what
//! user space last wrote (program ids in place of function pointers), and the
//! embedded `kvalue` the kernel runs. Lookup, in v6.1 and v6.12 alike:
//! 1. reads `kvalue`'s `state`; `BPF_STRUCT_OPS_STATE_INIT` (never updated)
//!    means a value of zeros;
//! 2. otherwise copies `value_size` bytes of `*uvalue`, then overwrites
//!    `state` with the one just read and `refcnt` with: `kvalue.refcnt` in
//!    v6.1; `max(map->refcnt - map->usercnt, 0)` from v6.4 ("bpf: Retire the
//!    struct_ops map kvalue->refcnt"), still so in v6.12.
//!
//! `refcnt` and `state` are members of `bpf_struct_ops_value` itself through
//! v6.8 (the `BPF_STRUCT_OPS_COMMON_VALUE` macro) and of its member `struct
//! bpf_struct_ops_common_value common` from v6.9; [`BpfStructOpsMapOffsets`]
//! has their offsets either way. The value's type is
//! `map->btf_vmlinux_value_type_id` ([`MapInfo::btf_vmlinux_value_type_id`]) in
//! vmlinux's BTF or, from v6.9, in the BTF `st_map->btf` ([`StructOps::value_btf_id`]).

use crate::addr::Kva;
use crate::array::window_fits;
use crate::bpf_map::MapInfo;
use crate::error::{Error, Result};
use crate::offsets::{BpfStructOpsMapOffsets, Offsets};
use crate::uapi::MapType;
use crate::virt::KernelRead;

/// `BPF_STRUCT_OPS_STATE_INIT`: created, never updated.
pub const BPF_STRUCT_OPS_STATE_INIT: u32 = 0;
/// `BPF_STRUCT_OPS_STATE_INUSE`: registered with its subsystem.
pub const BPF_STRUCT_OPS_STATE_INUSE: u32 = 1;
/// `BPF_STRUCT_OPS_STATE_TOBEFREE`: deleted, waiting for its users.
pub const BPF_STRUCT_OPS_STATE_TOBEFREE: u32 = 2;
/// `BPF_STRUCT_OPS_STATE_READY` (v6.4+): updated, waiting for a link.
pub const BPF_STRUCT_OPS_STATE_READY: u32 = 3;

/// The two fields lookup fills in itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StructOpsCommon {
    pub refcnt: u32,
    /// One of the `BPF_STRUCT_OPS_STATE_*`; a newer kernel may have more.
    pub state: u32,
}

/// A checked `struct bpf_struct_ops_map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructOps {
    /// The `struct bpf_struct_ops_map`.
    kva: Kva,
    /// Its `struct bpf_map`.
    map: Kva,
    value_size: u32,
    value_type_id: u32,
    off: BpfStructOpsMapOffsets,
    /// `id` in `struct btf`.
    btf_id: u32,
}

fn field(base: Kva, off: u32, what: &'static str) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed(what, base))
}

/// Copy the little-endian `v`, a 4-byte field at `field` of the value, into
/// the part of it that `buf` (the value's bytes from `offset`) holds.
fn patch(buf: &mut [u8], offset: u32, field: u32, v: u32) {
    for (i, b) in (0u32..).zip(v.to_le_bytes()) {
        let pos = u64::from(field)
            .saturating_add(u64::from(i))
            .checked_sub(u64::from(offset))
            .and_then(|p| usize::try_from(p).ok());
        if let Some(slot) = pos.and_then(|p| buf.get_mut(p)) {
            *slot = b;
        }
    }
}

impl StructOps {
    /// The struct_ops map whose `struct bpf_map` is `map`, checked against
    /// `bpf_struct_ops_map_alloc_check()` (one entry, 4-byte key, a value type)
    /// and the layout. [`Error::Unsupported`] on kernels without struct_ops.
    /// Reads nothing.
    pub fn new(map: &MapInfo, off: &Offsets) -> Result<StructOps> {
        if map.map_type != MapType::STRUCT_OPS {
            return Err(Error::unsupported("bpf_struct_ops_map map type", map.kva));
        }
        let so = off
            .bpf_struct_ops_map
            .ok_or(Error::unsupported("bpf_struct_ops_map", map.kva))?;
        // refcnt and state precede data, which starts the ops struct.
        let header = |at: u32| at.checked_add(4).is_some_and(|end| end <= so.value_data);
        if !header(so.value_refcnt) || !header(so.value_state) {
            return Err(Error::unsupported("bpf_struct_ops_value", map.kva));
        }
        if so.map_refcnt.is_some() != so.map_usercnt.is_some() {
            return Err(Error::unsupported("bpf_map refcnt", map.kva));
        }
        let kva = map
            .kva
            .checked_sub(u64::from(so.map))
            .ok_or(Error::malformed("bpf_struct_ops_map", map.kva))?;
        let bad = |what| Err(Error::malformed(what, map.kva));
        if map.key_size != 4 {
            return bad("bpf_map.key_size");
        }
        if map.max_entries != 1 {
            return bad("bpf_map.max_entries");
        }
        if map.btf_vmlinux_value_type_id == 0 {
            return bad("bpf_map.btf_vmlinux_value_type_id");
        }
        // value_size is the size of the bpf_struct_ops_<name> type, which
        // embeds the common header and then the ops struct.
        if map.value_size < so.value_data {
            return bad("bpf_map.value_size");
        }
        Ok(StructOps {
            kva,
            map: map.kva,
            value_size: map.value_size,
            value_type_id: map.btf_vmlinux_value_type_id,
            off: so,
            btf_id: off.btf.id,
        })
    }

    /// Address of the `struct bpf_struct_ops_map`.
    pub const fn kva(&self) -> Kva {
        self.kva
    }

    /// `map.value_size`: the size of the value type.
    pub const fn value_size(&self) -> u32 {
        self.value_size
    }

    /// `map->btf_vmlinux_value_type_id`: the `struct bpf_struct_ops_<name>`
    /// that types the value.
    pub const fn btf_vmlinux_value_type_id(&self) -> u32 {
        self.value_type_id
    }

    /// The id of the BTF object holding the value type, `st_map->btf` (v6.9+,
    /// a module's BTF for a module's struct_ops); `None` before v6.9, where it
    /// is always vmlinux's.
    pub fn value_btf_id<K: KernelRead + ?Sized>(&self, k: &K) -> Result<Option<u32>> {
        let Some(at) = self.off.btf else {
            return Ok(None);
        };
        let at = field(self.kva, at, "bpf_struct_ops_map")?;
        let btf = k.read_ptr(at)?;
        if btf.get() == 0 {
            return Err(Error::malformed("bpf_struct_ops_map.btf", at));
        }
        k.read_kva_u32(field(btf, self.btf_id, "btf")?).map(Some)
    }

    fn kvalue(&self, member: u32) -> Result<Kva> {
        field(self.kva, self.off.kvalue, "bpf_struct_ops_map")
            .and_then(|kv| field(kv, member, "bpf_struct_ops_value"))
    }

    /// `state` as lookup reads it: `smp_load_acquire(&kvalue->common.state)`.
    fn state<K: KernelRead + ?Sized>(&self, k: &K) -> Result<u32> {
        k.read_kva_u32(self.kvalue(self.off.value_state)?)
    }

    /// `refcnt` as lookup reports it.
    fn refcnt<K: KernelRead + ?Sized>(&self, k: &K) -> Result<u32> {
        match (self.off.map_refcnt, self.off.map_usercnt) {
            (Some(refcnt), Some(usercnt)) => {
                let refcnt = k.read_kva_u64(field(self.map, refcnt, "bpf_map")?)? as i64;
                let usercnt = k.read_kva_u64(field(self.map, usercnt, "bpf_map")?)? as i64;
                // refcount_set(&refcnt, max_t(s64, refcnt, 0)) stores an int.
                Ok(refcnt.wrapping_sub(usercnt).max(0) as u32)
            }
            _ => k.read_kva_u32(self.kvalue(self.off.value_refcnt)?),
        }
    }

    /// `refcnt` and `state` as lookup reports them (both 0 in state INIT).
    pub fn read_common<K: KernelRead + ?Sized>(&self, k: &K) -> Result<StructOpsCommon> {
        let state = self.state(k)?;
        if state == BPF_STRUCT_OPS_STATE_INIT {
            return Ok(StructOpsCommon::default());
        }
        Ok(StructOpsCommon {
            refcnt: self.refcnt(k)?,
            state,
        })
    }

    /// Bytes `offset..offset + buf.len()` of the value lookup returns, and the
    /// `refcnt` and `state` it put there.
    pub fn read_value<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<StructOpsCommon> {
        let fits = u64::try_from(buf.len()).is_ok_and(|n| window_fits(self.value_size, offset, n));
        if !fits {
            return Err(Error::limit(
                "bpf_struct_ops value window",
                self.kva,
                u64::from(self.value_size),
            ));
        }
        let state = self.state(k)?;
        if state == BPF_STRUCT_OPS_STATE_INIT {
            buf.fill(0);
            return Ok(StructOpsCommon::default());
        }
        let at = field(self.kva, self.off.uvalue, "bpf_struct_ops_map")?;
        let uvalue = k.read_ptr(at)?;
        if uvalue.get() == 0 {
            return Err(Error::malformed("bpf_struct_ops_map.uvalue", at));
        }
        k.read_kva(field(uvalue, offset, "bpf_struct_ops_value")?, buf)?;
        let common = StructOpsCommon {
            refcnt: self.refcnt(k)?,
            state,
        };
        patch(buf, offset, self.off.value_state, common.state);
        patch(buf, offset, self.off.value_refcnt, common.refcnt);
        Ok(common)
    }
}

/// `bpf_struct_ops_map_sys_lookup_elem()` of the struct_ops map `map`: bytes
/// `offset..offset + buf.len()` of its value, and the `refcnt` and `state` in it.
pub fn read_struct_ops_value<K: KernelRead + ?Sized>(
    k: &K,
    map: &MapInfo,
    off: &Offsets,
    offset: u32,
    buf: &mut [u8],
) -> Result<StructOpsCommon> {
    StructOps::new(map, off)?.read_value(k, offset, buf)
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::offsets::BtfOffsets;
    use crate::uapi::BPF_OBJ_NAME_LEN;
    use crate::virt::FlatKernel;

    /// `struct bpf_struct_ops_map` of the Debian 6.1 and 6.12 kernels (pahole on
    /// their BTF); `bpf_map.refcnt`/`usercnt` at 144/152 in 6.12.
    fn offsets(v6_12: bool) -> Offsets {
        let so = if v6_12 {
            BpfStructOpsMapOffsets {
                map: 0,
                st_ops: None,
                st_ops_desc: Some(264),
                uvalue: 400,
                kvalue: 448,
                value_data: 64,
                value_refcnt: 0,
                value_state: 4,
                map_refcnt: Some(144),
                map_usercnt: Some(152),
                btf: Some(392),
                size: 512,
            }
        } else {
            BpfStructOpsMapOffsets {
                map: 0,
                st_ops: Some(272),
                st_ops_desc: None,
                uvalue: 328,
                kvalue: 384,
                value_data: 64,
                value_refcnt: 0,
                value_state: 4,
                map_refcnt: None,
                map_usercnt: None,
                btf: None,
                size: 448,
            }
        };
        Offsets {
            bpf_struct_ops_map: Some(so),
            btf: BtfOffsets {
                id: 96,
                data_size: 88,
                name: 168,
                ..BtfOffsets::default()
            },
            ..Offsets::default()
        }
    }

    const BASE: Kva = Kva(0xffff_8880_0500_0000);
    /// `uvalue` and the `struct btf`, in the same flat region.
    const UVALUE: u64 = 0x1000;
    const BTF: u64 = 0x2000;
    /// `bpf_struct_ops_tcp_congestion_ops`-sized.
    const VALUE_SIZE: u32 = 256;

    fn map_info() -> MapInfo {
        MapInfo {
            id: 11,
            map_type: MapType::STRUCT_OPS,
            name: [0; BPF_OBJ_NAME_LEN],
            map_flags: 0,
            key_size: 4,
            value_size: VALUE_SIZE,
            max_entries: 1,
            map_extra: 0,
            btf_id: 0,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_vmlinux_value_type_id: 1234,
            kva: BASE,
        }
    }

    fn uvalue_byte(i: u32) -> u8 {
        (i as u8).wrapping_mul(13).wrapping_add(5)
    }

    /// A struct_ops map in `state`: `uvalue` holds `uvalue_byte(i)` (so its own
    /// refcnt/state bytes are junk to be overwritten), `kvalue` holds
    /// `refcnt = 7`, and `map.refcnt - map.usercnt = 3`.
    fn image(v6_12: bool, state: u32) -> FlatKernel<Vec<u8>> {
        let so = offsets(v6_12).bpf_struct_ops_map.unwrap();
        let mut b = std::vec![0u8; 0x3000];
        let mut put = |at: u64, v: &[u8]| b[at as usize..at as usize + v.len()].copy_from_slice(v);
        put(u64::from(so.uvalue), &(BASE.get() + UVALUE).to_le_bytes());
        let kv = u64::from(so.kvalue);
        put(kv + u64::from(so.value_refcnt), &7u32.to_le_bytes());
        put(kv + u64::from(so.value_state), &state.to_le_bytes());
        for i in 0..VALUE_SIZE {
            put(UVALUE + u64::from(i), &[uvalue_byte(i)]);
        }
        put(144, &5u64.to_le_bytes());
        put(152, &2u64.to_le_bytes());
        if let Some(btf) = so.btf {
            put(u64::from(btf), &(BASE.get() + BTF).to_le_bytes());
            put(BTF + 96, &42u32.to_le_bytes());
        }
        FlatKernel {
            base: BASE,
            bytes: b,
        }
    }

    /// The value lookup returns, built by the kernel's recipe.
    fn model(v6_12: bool, state: u32) -> Vec<u8> {
        if state == BPF_STRUCT_OPS_STATE_INIT {
            return std::vec![0; VALUE_SIZE as usize];
        }
        let mut v: Vec<u8> = (0..VALUE_SIZE).map(uvalue_byte).collect();
        let refcnt: u32 = if v6_12 { 3 } else { 7 };
        v[0..4].copy_from_slice(&refcnt.to_le_bytes());
        v[4..8].copy_from_slice(&state.to_le_bytes());
        v
    }

    #[test]
    fn value_has_state_and_refcnt_patched_in_both_versions() {
        for v6_12 in [false, true] {
            let state = if v6_12 {
                BPF_STRUCT_OPS_STATE_READY
            } else {
                BPF_STRUCT_OPS_STATE_INUSE
            };
            let k = image(v6_12, state);
            let off = offsets(v6_12);
            let mut buf = std::vec![0u8; VALUE_SIZE as usize];
            let common = read_struct_ops_value(&k, &map_info(), &off, 0, &mut buf).unwrap();
            let refcnt = if v6_12 { 3 } else { 7 };
            assert_eq!(common, StructOpsCommon { refcnt, state });
            assert_eq!(buf, model(v6_12, state), "v6_12 {v6_12}");
            let s = StructOps::new(&map_info(), &off).unwrap();
            assert_eq!(s.read_common(&k), Ok(common));
            assert_eq!(s.btf_vmlinux_value_type_id(), 1234);
            assert_eq!(s.value_btf_id(&k), Ok(if v6_12 { Some(42) } else { None }));
        }
    }

    #[test]
    fn init_state_reads_as_zeros() {
        let k = image(true, BPF_STRUCT_OPS_STATE_INIT);
        let mut buf = [0xaau8; 16];
        let common = read_struct_ops_value(&k, &map_info(), &offsets(true), 100, &mut buf);
        assert_eq!(common, Ok(StructOpsCommon::default()));
        assert_eq!(buf, [0; 16]);
    }

    #[test]
    fn map_refcnt_below_usercnt_reports_zero() {
        let mut k = image(true, BPF_STRUCT_OPS_STATE_INUSE);
        k.bytes[144..152].copy_from_slice(&1u64.to_le_bytes());
        k.bytes[152..160].copy_from_slice(&9u64.to_le_bytes());
        let s = StructOps::new(&map_info(), &offsets(true)).unwrap();
        assert_eq!(s.read_common(&k).unwrap().refcnt, 0);
    }

    #[test]
    fn windows_are_bounded_by_value_size() {
        let k = image(false, BPF_STRUCT_OPS_STATE_INUSE);
        let off = offsets(false);
        let want = model(false, BPF_STRUCT_OPS_STATE_INUSE);
        // A window over part of refcnt and state only.
        let mut buf = [0u8; 5];
        read_struct_ops_value(&k, &map_info(), &off, 2, &mut buf).unwrap();
        assert_eq!(buf[..], want[2..7]);
        let mut buf = [0u8; 1];
        read_struct_ops_value(&k, &map_info(), &off, VALUE_SIZE - 1, &mut buf).unwrap();
        assert_eq!(buf[0], want[VALUE_SIZE as usize - 1]);
        assert!(matches!(
            read_struct_ops_value(&k, &map_info(), &off, VALUE_SIZE, &mut buf),
            Err(Error::Limit { limit: 256, .. })
        ));
        let mut big = std::vec![0u8; VALUE_SIZE as usize + 1];
        assert!(read_struct_ops_value(&k, &map_info(), &off, 0, &mut big).is_err());
        assert!(read_struct_ops_value(&k, &map_info(), &off, u32::MAX, &mut buf).is_err());
        assert!(read_struct_ops_value(&k, &map_info(), &off, VALUE_SIZE, &mut []).is_ok());
    }

    #[test]
    fn bad_maps_and_layouts_are_refused() {
        let off = offsets(true);
        let m = map_info();
        for (what, bad) in [
            ("bpf_map.key_size", MapInfo { key_size: 8, ..m }),
            (
                "bpf_map.max_entries",
                MapInfo {
                    max_entries: 2,
                    ..m
                },
            ),
            (
                "bpf_map.btf_vmlinux_value_type_id",
                MapInfo {
                    btf_vmlinux_value_type_id: 0,
                    ..m
                },
            ),
            (
                "bpf_map.value_size",
                MapInfo {
                    value_size: 63,
                    ..m
                },
            ),
        ] {
            assert_eq!(
                StructOps::new(&bad, &off),
                Err(Error::malformed(what, BASE)),
                "{what}"
            );
        }
        let hash = MapInfo {
            map_type: MapType::HASH,
            ..m
        };
        assert!(matches!(
            StructOps::new(&hash, &off),
            Err(Error::Unsupported { .. })
        ));
        let none = Offsets {
            bpf_struct_ops_map: None,
            ..off
        };
        assert!(matches!(
            StructOps::new(&m, &none),
            Err(Error::Unsupported {
                what: "bpf_struct_ops_map",
                ..
            })
        ));
        let so = off.bpf_struct_ops_map.unwrap();
        for broken in [
            BpfStructOpsMapOffsets {
                value_state: 62,
                ..so
            },
            BpfStructOpsMapOffsets {
                value_refcnt: u32::MAX,
                ..so
            },
            BpfStructOpsMapOffsets {
                map_usercnt: None,
                ..so
            },
        ] {
            let o = Offsets {
                bpf_struct_ops_map: Some(broken),
                ..off
            };
            assert!(matches!(
                StructOps::new(&m, &o),
                Err(Error::Unsupported { .. })
            ));
        }
    }

    #[test]
    fn uvalue_null_or_outside_memory_is_an_error() {
        let so = offsets(true).bpf_struct_ops_map.unwrap();
        let at = so.uvalue as usize;
        let mut k = image(true, BPF_STRUCT_OPS_STATE_INUSE);
        let mut buf = [0u8; 8];
        k.bytes[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            read_struct_ops_value(&k, &map_info(), &offsets(true), 0, &mut buf),
            Err(Error::malformed(
                "bpf_struct_ops_map.uvalue",
                BASE.checked_add(400).unwrap()
            ))
        );
        k.bytes[at..at + 8].copy_from_slice(&0xffff_8880_dead_0000u64.to_le_bytes());
        assert!(matches!(
            read_struct_ops_value(&k, &map_info(), &offsets(true), 0, &mut buf),
            Err(Error::NotMapped { .. })
        ));
        // uvalue near the top: the window's address overflows.
        k.bytes[at..at + 8].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        assert!(read_struct_ops_value(&k, &map_info(), &offsets(true), 8, &mut buf).is_err());
    }

    proptest! {
        /// Any window equals the same bytes of the model value.
        #[test]
        fn windows_equal_the_model(
            v6_12 in any::<bool>(),
            state in 0u32..5,
            offset in 0u32..=VALUE_SIZE,
            len in 0usize..=VALUE_SIZE as usize,
        ) {
            let k = image(v6_12, state);
            let mut buf = std::vec![0u8; len];
            let got = read_struct_ops_value(&k, &map_info(), &offsets(v6_12), offset, &mut buf);
            let end = offset as usize + len;
            if end <= VALUE_SIZE as usize {
                prop_assert!(got.is_ok());
                prop_assert_eq!(&buf[..], &model(v6_12, state)[offset as usize..end]);
            } else {
                prop_assert!(got.is_err());
            }
        }

        /// Corrupt maps never panic.
        #[test]
        fn corruption_never_panics(
            v6_12 in any::<bool>(),
            hits in proptest::collection::vec((0usize..0x3000, any::<u8>()), 0..32),
            offset in any::<u32>(),
            len in 0usize..300,
        ) {
            let mut k = image(v6_12, BPF_STRUCT_OPS_STATE_INUSE);
            for (at, b) in hits {
                k.bytes[at] = b;
            }
            let s = StructOps::new(&map_info(), &offsets(v6_12)).unwrap();
            let mut buf = std::vec![0u8; len];
            let _ = s.read_value(&k, offset, &mut buf);
            let _ = s.read_common(&k);
            let _ = s.value_btf_id(&k);
        }
    }
}
