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
    /// `void *data`: the raw BTF as loaded (header, types, strings).
    pub data: u32,
    pub data_size: u32,
    pub name: u32,
    /// `struct btf *base_btf`: set for split BTF (modules), NULL otherwise.
    pub base_btf: u32,
    /// `bool kernel_btf`: vmlinux or module BTF, not loaded by user space.
    pub kernel_btf: u32,
}

/// `struct bpf_array` (include/linux/bpf.h). `value`, `ptrs` and `pptrs` are
/// flexible arrays in an anonymous union, so they share one offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfArrayOffsets {
    pub map: u32,
    pub elem_size: u32,
    pub index_mask: u32,
    /// `char value[]`: the values of `BPF_MAP_TYPE_ARRAY`.
    pub value: u32,
    /// `void *ptrs[]`: fd arrays (prog, perf event, cgroup, array of maps).
    pub ptrs: u32,
    /// `void __percpu *pptrs[]`: `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub pptrs: u32,
    pub size: u32,
}

/// `struct bpf_htab` (kernel/bpf/hashtab.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfHtabOffsets {
    pub map: u32,
    /// `struct bucket *buckets`.
    pub buckets: u32,
    /// `void *elems`: the preallocated element area (absent with
    /// `BPF_F_NO_PREALLOC`).
    pub elems: u32,
    pub n_buckets: u32,
    pub elem_size: u32,
    pub size: u32,
}

/// `struct bucket` (kernel/bpf/hashtab.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketOffsets {
    /// `struct hlist_nulls_head head`.
    pub head: u32,
    pub size: u32,
}

/// `struct htab_elem` (kernel/bpf/hashtab.c); the key follows at `key`, then
/// the value (or, in per-CPU maps, the per-CPU pointer).
///
/// Where the per-CPU pointer sits is code, not layout, so BTF cannot say:
/// `htab_elem_get_ptr()` reads it at `key + key_size` before upstream commit
/// 11ba7ce076e5 (v6.15, CVE-2025-37807) and at `key + round_up(key_size, 8)`
/// after; stable backports carry the fix to older series (6.12.y, 6.14.y).
/// Both agree when `key_size` is a multiple of 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HtabElemOffsets {
    /// `struct hlist_nulls_node hash_node` (in an anonymous union).
    pub hash_node: u32,
    pub hash: u32,
    /// `char key[] __aligned(8)`.
    pub key: u32,
    /// `void *ptr_to_pptr` (v6.1+, in an anonymous union): points at the
    /// per-CPU pointer of non-preallocated per-CPU maps.
    pub ptr_to_pptr: Option<u32>,
    pub size: u32,
}

/// `struct bpf_arena` (kernel/bpf/arena.c, v6.9+).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfArenaOffsets {
    pub map: u32,
    /// `struct vm_struct *kern_vm`.
    pub kern_vm: u32,
    pub user_vm_start: u32,
    pub user_vm_end: u32,
    pub size: u32,
}

/// `struct vm_struct` (include/linux/vmalloc.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStructOffsets {
    pub addr: u32,
    /// The member `size` (bytes of the area, guard page included).
    pub vm_size: u32,
    /// `struct page **pages`.
    pub pages: u32,
    pub nr_pages: u32,
    pub size: u32,
}

/// `struct bpf_struct_ops_map` (kernel/bpf/bpf_struct_ops.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfStructOpsMapOffsets {
    pub map: u32,
    /// `const struct bpf_struct_ops *st_ops` (before v6.9).
    pub st_ops: Option<u32>,
    /// `struct bpf_struct_ops_desc *st_ops_desc` (v6.9+).
    pub st_ops_desc: Option<u32>,
    /// `struct bpf_struct_ops_value *uvalue`.
    pub uvalue: u32,
    /// `struct bpf_struct_ops_value kvalue` (embedded, last member).
    pub kvalue: u32,
    /// Offset of `data` inside `struct bpf_struct_ops_value`.
    pub value_data: u32,
    /// Offset of `refcnt` (`refcount_t`) inside `struct bpf_struct_ops_value`: a
    /// direct member before v6.9, `common.refcnt` from v6.9 (`struct
    /// bpf_struct_ops_common_value common`).
    pub value_refcnt: u32,
    /// Offset of `state` (`enum bpf_struct_ops_state`, 4 bytes) inside `struct
    /// bpf_struct_ops_value`, likewise `common.state` from v6.9.
    pub value_state: u32,
    /// `atomic64_t refcnt` of `struct bpf_map`, when lookup reports
    /// `max(map->refcnt - map->usercnt, 0)` as the value's refcnt (v6.4+,
    /// "bpf: Retire the struct_ops map kvalue->refcnt"); `None` when it reports
    /// `kvalue.refcnt` (v6.1). BTF cannot show code, so the resolver goes by
    /// `struct bpf_struct_ops_link`, added in the same v6.4 series.
    pub map_refcnt: Option<u32>,
    /// `atomic64_t usercnt` of `struct bpf_map`, with [`Self::map_refcnt`].
    pub map_usercnt: Option<u32>,
    /// `struct btf *btf` (v6.9+): the BTF holding the value type, vmlinux's
    /// or a module's (`bpf_map_info.btf_vmlinux_id`).
    pub btf: Option<u32>,
    pub size: u32,
}

/// `struct bpf_prog` (include/linux/bpf.h). Same members in v6.1, v6.12 and
/// v6.18; `aux` moved (56 in v6.1 and v6.12, 80 in v6.18) and `tag` sits in an
/// anonymous union in v6.18.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfProgOffsets {
    /// `enum bpf_prog_type type`.
    pub r#type: u32,
    /// `u32 len`: number of (translated) instructions.
    pub len: u32,
    /// `u32 jited_len`: bytes of JITed image.
    pub jited_len: u32,
    /// `u8 tag[BPF_TAG_SIZE]`.
    pub tag: u32,
    /// `struct bpf_prog_aux *aux`.
    pub aux: u32,
    pub size: u32,
}

/// `struct bpf_prog_aux` (include/linux/bpf.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfProgAuxOffsets {
    pub used_map_cnt: u32,
    /// `u32 id` (`prog_idr`).
    pub id: u32,
    /// `u32 func_cnt`: subprograms, 0 for a program without bpf-to-bpf calls.
    pub func_cnt: u32,
    /// `struct bpf_prog **func`: the JITed subprograms.
    pub func: u32,
    /// `struct bpf_map **used_maps`.
    pub used_maps: u32,
    /// `struct bpf_prog *prog`: back to the program.
    pub prog: u32,
    /// `u64 load_time`: `ktime_get_boottime_ns()` at load.
    pub load_time: u32,
    /// `char name[BPF_OBJ_NAME_LEN]`.
    pub name: u32,
    /// `struct btf *btf`: the program's BTF, NULL without one.
    pub btf: u32,
    pub size: u32,
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
    pub bpf_array: BpfArrayOffsets,
    pub bpf_htab: BpfHtabOffsets,
    pub bucket: BucketOffsets,
    pub htab_elem: HtabElemOffsets,
    pub vm_struct: VmStructOffsets,
    /// `None` before v6.9 or without `CONFIG_BPF_SYSCALL && CONFIG_MMU`.
    pub bpf_arena: Option<BpfArenaOffsets>,
    /// `None` without `CONFIG_BPF_JIT` (struct_ops needs trampolines).
    pub bpf_struct_ops_map: Option<BpfStructOpsMapOffsets>,
    pub bpf_prog: BpfProgOffsets,
    pub bpf_prog_aux: BpfProgAuxOffsets,
}
