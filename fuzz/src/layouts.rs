//! Structure layouts for the targets: the [`Offsets`] that `offsets_from_btf`
//! gives for the test bed's Debian 6.1 and 6.12 kernels, which an input may
//! bend a little (a few fields set, optional parts dropped), and the map
//! attributes an input describes.

use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::offsets::{
    BpfArenaOffsets, BpfArrayOffsets, BpfHtabOffsets, BpfMapOffsets, BpfProgAuxOffsets,
    BpfProgOffsets, BpfStructOpsMapOffsets, BtfOffsets, BucketOffsets, HtabElemOffsets, IdrOffsets,
    VmStructOffsets, XaNodeOffsets, XarrayOffsets,
};
use bpfmem_core::uapi::{MapType, BPF_OBJ_NAME_LEN};
use bpfmem_core::{Kva, Offsets};

use crate::wire_struct;

fn common(o: &mut Offsets) {
    o.xarray = XarrayOffsets { xa_head: 8 };
    o.xa_node = XaNodeOffsets {
        shift: 0,
        offset: 1,
        count: 2,
        parent: 8,
        slots: 40,
        nr_slots: 64,
        size: 576,
    };
    o.idr = IdrOffsets {
        idr_rt: 0,
        idr_base: 16,
    };
    o.bucket = BucketOffsets { head: 0, size: 16 };
    o.htab_elem = HtabElemOffsets {
        hash_node: 0,
        hash: 40,
        key: 48,
        ptr_to_pptr: Some(16),
        size: 48,
    };
    o.bpf_prog = BpfProgOffsets {
        r#type: 4,
        len: 12,
        jited_len: 16,
        tag: 20,
        aux: 56,
        size: 72,
    };
}

/// `offsets_from_btf` of Debian's 6.12.95+deb12-cloud-amd64.
pub fn v6_12() -> Offsets {
    let mut o = Offsets::default();
    common(&mut o);
    o.bpf_map = BpfMapOffsets {
        map_type: 24,
        key_size: 28,
        value_size: 32,
        max_entries: 36,
        map_flags: 48,
        map_extra: 40,
        id: 52,
        name: 96,
        btf: 80,
        btf_key_type_id: 68,
        btf_value_type_id: 72,
        btf_vmlinux_value_type_id: 76,
        size: 248,
    };
    o.btf = BtfOffsets {
        id: 88,
        data: 0,
        data_size: 80,
        name: 160,
        base_btf: 144,
        kernel_btf: 216,
    };
    o.bpf_array = BpfArrayOffsets {
        map: 0,
        elem_size: 248,
        index_mask: 252,
        value: 264,
        ptrs: 264,
        pptrs: 264,
        size: 264,
    };
    o.bpf_htab = BpfHtabOffsets {
        map: 0,
        buckets: 376,
        elems: 384,
        n_buckets: 760,
        elem_size: 764,
        size: 896,
    };
    o.vm_struct = VmStructOffsets {
        addr: 8,
        vm_size: 16,
        pages: 32,
        nr_pages: 44,
        size: 72,
    };
    o.bpf_arena = Some(BpfArenaOffsets {
        map: 0,
        kern_vm: 264,
        user_vm_start: 248,
        user_vm_end: 256,
        size: 336,
    });
    o.bpf_struct_ops_map = Some(BpfStructOpsMapOffsets {
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
    });
    o.bpf_prog_aux = BpfProgAuxOffsets {
        used_map_cnt: 8,
        id: 32,
        func_cnt: 36,
        func: 216,
        used_maps: 872,
        prog: 920,
        load_time: 936,
        name: 968,
        btf: 1016,
        size: 1128,
    };
    o
}

/// `offsets_from_btf` of Debian's 6.1.0-50-cloud-amd64.
pub fn v6_1() -> Offsets {
    let mut o = Offsets::default();
    common(&mut o);
    o.bpf_map = BpfMapOffsets {
        map_type: 24,
        key_size: 28,
        value_size: 32,
        max_entries: 36,
        map_flags: 48,
        map_extra: 40,
        id: 68,
        name: 104,
        btf: 88,
        btf_key_type_id: 76,
        btf_value_type_id: 80,
        btf_vmlinux_value_type_id: 84,
        size: 256,
    };
    o.btf = BtfOffsets {
        id: 88,
        data: 0,
        data_size: 80,
        name: 144,
        base_btf: 128,
        kernel_btf: 200,
    };
    o.bpf_array = BpfArrayOffsets {
        map: 0,
        elem_size: 256,
        index_mask: 260,
        value: 272,
        ptrs: 272,
        pptrs: 272,
        size: 320,
    };
    o.bpf_htab = BpfHtabOffsets {
        map: 0,
        buckets: 352,
        elems: 360,
        n_buckets: 696,
        elem_size: 700,
        size: 832,
    };
    o.vm_struct = VmStructOffsets {
        addr: 8,
        vm_size: 16,
        pages: 32,
        nr_pages: 44,
        size: 64,
    };
    o.bpf_arena = None;
    o.bpf_struct_ops_map = Some(BpfStructOpsMapOffsets {
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
    });
    o.bpf_prog_aux = BpfProgAuxOffsets {
        used_map_cnt: 8,
        id: 32,
        func_cnt: 36,
        func: 160,
        used_maps: 816,
        prog: 864,
        load_time: 880,
        name: 912,
        btf: 944,
        size: 1040,
    };
    o
}

/// The `u32` offsets an input may set, by number.
fn field(o: &mut Offsets, i: usize) -> Option<&mut u32> {
    Some(match i {
        0 => &mut o.xarray.xa_head,
        1 => &mut o.xa_node.shift,
        2 => &mut o.xa_node.offset,
        3 => &mut o.xa_node.parent,
        4 => &mut o.xa_node.slots,
        5 => &mut o.xa_node.nr_slots,
        6 => &mut o.xa_node.size,
        7 => &mut o.idr.idr_rt,
        8 => &mut o.idr.idr_base,
        9 => &mut o.bpf_map.map_type,
        10 => &mut o.bpf_map.key_size,
        11 => &mut o.bpf_map.value_size,
        12 => &mut o.bpf_map.max_entries,
        13 => &mut o.bpf_map.map_flags,
        14 => &mut o.bpf_map.map_extra,
        15 => &mut o.bpf_map.id,
        16 => &mut o.bpf_map.name,
        17 => &mut o.bpf_map.btf,
        18 => &mut o.btf.id,
        19 => &mut o.btf.data,
        20 => &mut o.btf.data_size,
        21 => &mut o.btf.name,
        22 => &mut o.btf.base_btf,
        23 => &mut o.btf.kernel_btf,
        24 => &mut o.bpf_array.map,
        25 => &mut o.bpf_array.elem_size,
        26 => &mut o.bpf_array.index_mask,
        27 => &mut o.bpf_array.value,
        28 => &mut o.bpf_array.pptrs,
        29 => &mut o.bpf_htab.map,
        30 => &mut o.bpf_htab.buckets,
        31 => &mut o.bpf_htab.elems,
        32 => &mut o.bpf_htab.n_buckets,
        33 => &mut o.bpf_htab.elem_size,
        34 => &mut o.bpf_htab.size,
        35 => &mut o.bucket.head,
        36 => &mut o.bucket.size,
        37 => &mut o.htab_elem.hash_node,
        38 => &mut o.htab_elem.hash,
        39 => &mut o.htab_elem.key,
        40 => &mut o.htab_elem.size,
        41 => o.htab_elem.ptr_to_pptr.as_mut()?,
        42 => &mut o.vm_struct.addr,
        43 => &mut o.vm_struct.vm_size,
        44 => &mut o.bpf_arena.as_mut()?.map,
        45 => &mut o.bpf_arena.as_mut()?.kern_vm,
        46 => &mut o.bpf_arena.as_mut()?.user_vm_start,
        47 => &mut o.bpf_arena.as_mut()?.user_vm_end,
        48 => &mut o.bpf_struct_ops_map.as_mut()?.map,
        49 => &mut o.bpf_struct_ops_map.as_mut()?.uvalue,
        50 => &mut o.bpf_struct_ops_map.as_mut()?.kvalue,
        51 => &mut o.bpf_struct_ops_map.as_mut()?.value_data,
        52 => &mut o.bpf_struct_ops_map.as_mut()?.value_refcnt,
        53 => &mut o.bpf_struct_ops_map.as_mut()?.value_state,
        54 => o.bpf_struct_ops_map.as_mut()?.map_refcnt.as_mut()?,
        55 => o.bpf_struct_ops_map.as_mut()?.map_usercnt.as_mut()?,
        56 => o.bpf_struct_ops_map.as_mut()?.btf.as_mut()?,
        57 => &mut o.bpf_prog.r#type,
        58 => &mut o.bpf_prog.len,
        59 => &mut o.bpf_prog.jited_len,
        60 => &mut o.bpf_prog.tag,
        61 => &mut o.bpf_prog.aux,
        62 => &mut o.bpf_prog_aux.used_map_cnt,
        63 => &mut o.bpf_prog_aux.id,
        64 => &mut o.bpf_prog_aux.func_cnt,
        65 => &mut o.bpf_prog_aux.func,
        66 => &mut o.bpf_prog_aux.used_maps,
        67 => &mut o.bpf_prog_aux.prog,
        68 => &mut o.bpf_prog_aux.load_time,
        69 => &mut o.bpf_prog_aux.name,
        70 => &mut o.bpf_prog_aux.btf,
        71 => &mut o.bpf_map.btf_key_type_id,
        72 => &mut o.bpf_map.btf_value_type_id,
        73 => &mut o.bpf_map.btf_vmlinux_value_type_id,
        _ => return None,
    })
}

const FIELDS: usize = 74;

wire_struct! {
    /// Which kernel's layouts (bit 0 of `profile`: 6.1, else 6.12), optional
    /// parts to drop (`drop` bits: 0 `htab_elem.ptr_to_pptr`, 1
    /// `bpf_arena`, 2 `bpf_struct_ops_map`, 3 its `map_refcnt`, 4 its
    /// `map_usercnt`, 5 its `btf`), and up to three fields to set: `(n, v)`
    /// sets field `n - 1` (mod the field count) to `v`; `n == 0` does nothing.
    pub struct OffsetsWire {
        pub profile: u8,
        pub drop: u8,
        pub set: [(u8, u32); 3],
    }
}

impl OffsetsWire {
    pub fn v6_1() -> Self {
        OffsetsWire {
            profile: 1,
            ..Default::default()
        }
    }

    pub fn decode(&self) -> Offsets {
        let mut o = if self.profile & 1 == 1 {
            v6_1()
        } else {
            v6_12()
        };
        let d = self.drop;
        if d & 1 != 0 {
            o.htab_elem.ptr_to_pptr = None;
        }
        if d & 2 != 0 {
            o.bpf_arena = None;
        }
        if let Some(so) = o.bpf_struct_ops_map.as_mut() {
            if d & 8 != 0 {
                so.map_refcnt = None;
            }
            if d & 16 != 0 {
                so.map_usercnt = None;
            }
            if d & 32 != 0 {
                so.btf = None;
            }
        }
        if d & 4 != 0 {
            o.bpf_struct_ops_map = None;
        }
        for &(n, v) in &self.set {
            if n != 0 {
                if let Some(f) = field(&mut o, (usize::from(n) - 1) % FIELDS) {
                    *f = v;
                }
            }
        }
        o
    }
}

wire_struct! {
    /// A `struct bpf_map` as [`read_map`](bpfmem_core::bpf_map::read_map)
    /// returns it, each field XORed with the target's default.
    pub struct MapWire {
        pub map_type: u32,
        pub map_flags: u32,
        pub key_size: u32,
        pub value_size: u32,
        pub max_entries: u32,
        pub map_extra: u64,
        pub btf_vmlinux_value_type_id: u32,
        pub kva: u64,
    }
}

impl MapWire {
    /// The wire form of `m` for a target whose default is `d`.
    pub fn new(m: &MapInfo, d: &MapInfo) -> Self {
        MapWire {
            map_type: m.map_type.0 ^ d.map_type.0,
            map_flags: m.map_flags ^ d.map_flags,
            key_size: m.key_size ^ d.key_size,
            value_size: m.value_size ^ d.value_size,
            max_entries: m.max_entries ^ d.max_entries,
            map_extra: m.map_extra ^ d.map_extra,
            btf_vmlinux_value_type_id: m.btf_vmlinux_value_type_id ^ d.btf_vmlinux_value_type_id,
            kva: m.kva.get() ^ d.kva.get(),
        }
    }

    pub fn decode(&self, d: &MapInfo) -> MapInfo {
        MapInfo {
            map_type: MapType(self.map_type ^ d.map_type.0),
            map_flags: self.map_flags ^ d.map_flags,
            key_size: self.key_size ^ d.key_size,
            value_size: self.value_size ^ d.value_size,
            max_entries: self.max_entries ^ d.max_entries,
            map_extra: self.map_extra ^ d.map_extra,
            btf_vmlinux_value_type_id: self.btf_vmlinux_value_type_id ^ d.btf_vmlinux_value_type_id,
            kva: Kva(self.kva ^ d.kva.get()),
            ..*d
        }
    }
}

/// A map of `map_type` at `kva`.
pub fn map_info(
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    kva: u64,
) -> MapInfo {
    MapInfo {
        id: 1,
        map_type,
        name: [0; BPF_OBJ_NAME_LEN],
        map_flags: 0,
        key_size,
        value_size,
        max_entries,
        map_extra: 0,
        btf_id: 0,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        btf_vmlinux_value_type_id: 0,
        kva: Kva(kva),
    }
}
