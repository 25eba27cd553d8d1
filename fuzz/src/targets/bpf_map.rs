//! `read_map`: a `struct bpf_map` read into `MapInfo`.
//!
//! Checks: what it returns is what the image holds at the offsets (re-read
//! independently), `name()` is a prefix of the NUL-padded name, and the map
//! type's name and `Display` are total.

use bpfmem_core::bpf_map::read_map;
use bpfmem_core::Kva;

use crate::layouts::OffsetsWire;
use crate::mem::{Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

wire_struct! {
    /// `kvas` are XORed with the first run's address.
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub kvas: [u64; 2],
    }
}

pub fn run(input: &Input, payload: &[u8]) -> u32 {
    let off = input.off.decode();
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let base = input.layout.base[0] ^ DEFAULT_BASES[0];
    let mut ok = 0;
    for &raw in &input.kvas {
        let kva = Kva(raw ^ base);
        let Ok(m) = read_map(&k, kva, &off.bpf_map, &off.btf) else {
            continue;
        };
        ok += 1;
        let o = &off.bpf_map;
        let at = |f: u32| kva.checked_add(u64::from(f)).expect("read_map read it");
        let u32_at = |f: u32| k.peek_u32(at(f)).expect("read_map read it");
        assert_eq!(m.kva, kva);
        assert_eq!(m.id, u32_at(o.id));
        assert_eq!(m.map_type.0, u32_at(o.map_type));
        assert_eq!(m.key_size, u32_at(o.key_size));
        assert_eq!(m.value_size, u32_at(o.value_size));
        assert_eq!(m.max_entries, u32_at(o.max_entries));
        assert_eq!(m.map_flags, u32_at(o.map_flags));
        assert_eq!(m.map_extra, k.peek_u64(at(o.map_extra)).unwrap());
        assert_eq!(m.btf_key_type_id, u32_at(o.btf_key_type_id));
        assert_eq!(m.btf_value_type_id, u32_at(o.btf_value_type_id));
        assert_eq!(
            m.btf_vmlinux_value_type_id,
            u32_at(o.btf_vmlinux_value_type_id)
        );
        let btf = k.peek_u64(at(o.btf)).unwrap();
        if btf == 0 {
            assert_eq!(m.btf_id, 0);
        } else {
            let id_at = Kva(btf).checked_add(u64::from(off.btf.id)).unwrap();
            assert_eq!(m.btf_id, k.peek_u32(id_at).unwrap());
        }
        let mut name = [0u8; 16];
        k.peek(at(o.name), &mut name).unwrap();
        assert_eq!(m.name, name);
        assert!(name.starts_with(m.name().as_bytes()));
        let _ = (
            m.map_type.name(),
            m.map_type.is_percpu(),
            m.map_type.to_string(),
        );
    }
    ok
}
