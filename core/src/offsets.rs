//! Layouts that vary by kernel version, as plain numbers. The std side fills them
//! from the kernel's own BTF (`bpfmem::btf`); core never hard-codes them.
//!
//! Every offset is in bytes from the start of its structure; every `size` is the
//! structure's `sizeof`.

/// `struct xarray` (include/linux/xarray.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XarrayOffsets {
    pub xa_head: u32,
}

/// `struct xa_node` (include/linux/xarray.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XaNodeOffsets {
    pub shift: u32,
    pub offset: u32,
    pub count: u32,
    pub parent: u32,
    pub slots: u32,
    /// Number of elements of `slots` (XA_CHUNK_SIZE, 64 on x86-64).
    pub nr_slots: u32,
    pub size: u32,
}

/// `struct idr` (include/linux/idr.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdrOffsets {
    pub idr_rt: u32,
    pub idr_base: u32,
}

/// `struct bpf_map` (include/linux/bpf.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfMapOffsets {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub map_extra: u32,
    pub id: u32,
    pub name: u32,
    /// `struct btf *btf`.
    pub btf: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub size: u32,
}

/// `struct btf` (kernel/bpf/btf.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BtfOffsets {
    pub id: u32,
    pub data_size: u32,
    pub name: u32,
}

/// Everything the walkers need to know about one kernel's structure layouts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Offsets {
    pub xarray: XarrayOffsets,
    pub xa_node: XaNodeOffsets,
    pub idr: IdrOffsets,
    pub bpf_map: BpfMapOffsets,
    pub btf: BtfOffsets,
}
