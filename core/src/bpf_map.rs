//! `struct bpf_map` (include/linux/bpf.h) read into a plain [`MapInfo`].
//!
//! Member offsets come from BTF ([`BpfMapOffsets`], [`BtfOffsets`]): the
//! structure is reordered between releases (6.1 vs 6.12), so nothing here is fixed.

use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::offsets::{BpfMapOffsets, BtfOffsets};
use crate::uapi::{MapType, BPF_OBJ_NAME_LEN};
use crate::virt::KernelRead;

/// What the kernel knows about one map, as `bpf_map_info` reports it, plus where
/// the map lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub id: u32,
    pub map_type: MapType,
    /// NUL-padded, as in the kernel.
    pub name: [u8; BPF_OBJ_NAME_LEN],
    pub map_flags: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_extra: u64,
    /// Id of the map's BTF object, 0 without one.
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    /// Address of the `struct bpf_map` (the start of the containing map type's
    /// struct: `bpf_array`, `bpf_htab`, ... all embed it first).
    pub kva: Kva,
}

impl MapInfo {
    /// The name up to its first NUL, if it is UTF-8.
    pub fn name(&self) -> &str {
        crate::uapi::obj_name(&self.name)
    }
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed("bpf_map", base))
}

/// `bpf_map_info`'s view of the `struct bpf_map` at `kva`. `btf_off` is used to
/// follow `map->btf` to its id.
pub fn read_map<K: KernelRead + ?Sized>(
    k: &K,
    kva: Kva,
    off: &BpfMapOffsets,
    btf_off: &BtfOffsets,
) -> Result<MapInfo> {
    let u32_at = |o: u32| -> Result<u32> { k.read_kva_u32(field(kva, o)?) };
    let mut name = [0u8; BPF_OBJ_NAME_LEN];
    k.read_kva(field(kva, off.name)?, &mut name)?;
    let btf = k.read_kva_u64(field(kva, off.btf)?)?;
    let btf_id = if btf == 0 {
        0
    } else {
        k.read_kva_u32(field(Kva(btf), btf_off.id)?)?
    };
    Ok(MapInfo {
        id: u32_at(off.id)?,
        map_type: MapType(u32_at(off.map_type)?),
        name,
        map_flags: u32_at(off.map_flags)?,
        key_size: u32_at(off.key_size)?,
        value_size: u32_at(off.value_size)?,
        max_entries: u32_at(off.max_entries)?,
        map_extra: k.read_kva_u64(field(kva, off.map_extra)?)?,
        btf_id,
        btf_key_type_id: u32_at(off.btf_key_type_id)?,
        btf_value_type_id: u32_at(off.btf_value_type_id)?,
        btf_vmlinux_value_type_id: u32_at(off.btf_vmlinux_value_type_id)?,
        kva,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virt::FlatKernel;

    #[test]
    fn reads_fields_and_follows_btf() {
        let off = BpfMapOffsets {
            map_type: 24,
            key_size: 28,
            value_size: 32,
            max_entries: 36,
            map_extra: 40,
            map_flags: 48,
            id: 56,
            btf: 64,
            btf_key_type_id: 52,
            btf_value_type_id: 60,
            btf_vmlinux_value_type_id: 72,
            name: 80,
            size: 128,
        };
        let btf_off = BtfOffsets {
            id: 8,
            ..Default::default()
        };
        let base = Kva(0xffff_8880_0000_0000);
        let mut mem = std::vec![0u8; 256];
        let put = |mem: &mut std::vec::Vec<u8>, at: usize, v: &[u8]| {
            mem[at..at + v.len()].copy_from_slice(v)
        };
        put(&mut mem, 24, &1u32.to_le_bytes());
        put(&mut mem, 28, &4u32.to_le_bytes());
        put(&mut mem, 32, &8u32.to_le_bytes());
        put(&mut mem, 36, &1024u32.to_le_bytes());
        put(&mut mem, 40, &7u64.to_le_bytes());
        put(&mut mem, 48, &1u32.to_le_bytes());
        put(&mut mem, 56, &42u32.to_le_bytes());
        put(&mut mem, 64, &(base.0 + 192).to_le_bytes());
        put(&mut mem, 52, &3u32.to_le_bytes());
        put(&mut mem, 60, &5u32.to_le_bytes());
        put(&mut mem, 80, b"hash\0");
        put(&mut mem, 200, &9u32.to_le_bytes());
        let k = FlatKernel { base, bytes: mem };
        let m = read_map(&k, base, &off, &btf_off).unwrap();
        assert_eq!(m.id, 42);
        assert_eq!(m.map_type, MapType::HASH);
        assert_eq!(m.name(), "hash");
        assert_eq!((m.key_size, m.value_size, m.max_entries), (4, 8, 1024));
        assert_eq!((m.map_flags, m.map_extra), (1, 7));
        assert_eq!(
            (m.btf_id, m.btf_key_type_id, m.btf_value_type_id),
            (9, 3, 5)
        );
    }

    #[test]
    fn unreadable_map_is_an_error() {
        let k = FlatKernel {
            base: Kva(0x1000),
            bytes: [0u8; 16],
        };
        let off = BpfMapOffsets {
            name: 64,
            ..Default::default()
        };
        assert!(read_map(&k, Kva(0x1000), &off, &BtfOffsets::default()).is_err());
        assert!(read_map(&k, Kva(u64::MAX - 4), &off, &BtfOffsets::default()).is_err());
    }
}
