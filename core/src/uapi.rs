//! Linux BPF uapi layouts (`include/uapi/linux/bpf.h`).
//!
//! Field names copy the header's. Every layout here was checked against the v6.1
//! header (Debian bookworm's `linux-libc-dev` 6.1) by compiling it; later
//! additions are marked with the release that added them. uapi structures only
//! ever grow at the end, and the kernel accepts a shorter or longer buffer (it
//! zero-fills or requires the unknown tail to be zero), so one layout serves
//! every kernel we test.
//!
//! The `bpf_attr` union is split into one struct per command arm; pass the arm's
//! own size to `bpf(2)`.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BPF_OBJ_NAME_LEN`: map and program names, NUL-padded.
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// A NUL-padded object name (`char name[BPF_OBJ_NAME_LEN]`, or `btf->name`)
/// up to its first NUL, if it is UTF-8; else empty.
pub fn obj_name(name: &[u8]) -> &str {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    name.get(..len)
        .and_then(|n| core::str::from_utf8(n).ok())
        .unwrap_or("")
}
/// `BPF_TAG_SIZE`: length of `bpf_prog_info::tag`.
pub const BPF_TAG_SIZE: usize = 8;

// `enum bpf_cmd`.
/// `BPF_MAP_CREATE`
pub const BPF_MAP_CREATE: u32 = 0;
/// `BPF_MAP_LOOKUP_ELEM`
pub const BPF_MAP_LOOKUP_ELEM: u32 = 1;
/// `BPF_MAP_UPDATE_ELEM`
pub const BPF_MAP_UPDATE_ELEM: u32 = 2;
/// `BPF_MAP_DELETE_ELEM`
pub const BPF_MAP_DELETE_ELEM: u32 = 3;
/// `BPF_MAP_GET_NEXT_KEY`
pub const BPF_MAP_GET_NEXT_KEY: u32 = 4;
/// `BPF_PROG_LOAD`
pub const BPF_PROG_LOAD: u32 = 5;
/// `BPF_OBJ_PIN`
pub const BPF_OBJ_PIN: u32 = 6;
/// `BPF_OBJ_GET`
pub const BPF_OBJ_GET: u32 = 7;
/// `BPF_PROG_ATTACH`
pub const BPF_PROG_ATTACH: u32 = 8;
/// `BPF_PROG_DETACH`
pub const BPF_PROG_DETACH: u32 = 9;
/// `BPF_PROG_TEST_RUN` (alias `BPF_PROG_RUN`)
pub const BPF_PROG_TEST_RUN: u32 = 10;
/// `BPF_PROG_GET_NEXT_ID`
pub const BPF_PROG_GET_NEXT_ID: u32 = 11;
/// `BPF_MAP_GET_NEXT_ID`
pub const BPF_MAP_GET_NEXT_ID: u32 = 12;
/// `BPF_PROG_GET_FD_BY_ID`
pub const BPF_PROG_GET_FD_BY_ID: u32 = 13;
/// `BPF_MAP_GET_FD_BY_ID`
pub const BPF_MAP_GET_FD_BY_ID: u32 = 14;
/// `BPF_OBJ_GET_INFO_BY_FD`
pub const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
/// `BPF_PROG_QUERY`
pub const BPF_PROG_QUERY: u32 = 16;
/// `BPF_RAW_TRACEPOINT_OPEN`
pub const BPF_RAW_TRACEPOINT_OPEN: u32 = 17;
/// `BPF_BTF_LOAD`
pub const BPF_BTF_LOAD: u32 = 18;
/// `BPF_BTF_GET_FD_BY_ID`
pub const BPF_BTF_GET_FD_BY_ID: u32 = 19;
/// `BPF_TASK_FD_QUERY`
pub const BPF_TASK_FD_QUERY: u32 = 20;
/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM`
pub const BPF_MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
/// `BPF_MAP_FREEZE`
pub const BPF_MAP_FREEZE: u32 = 22;
/// `BPF_BTF_GET_NEXT_ID`
pub const BPF_BTF_GET_NEXT_ID: u32 = 23;
/// `BPF_MAP_LOOKUP_BATCH`
pub const BPF_MAP_LOOKUP_BATCH: u32 = 24;
/// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`
pub const BPF_MAP_LOOKUP_AND_DELETE_BATCH: u32 = 25;
/// `BPF_MAP_UPDATE_BATCH`
pub const BPF_MAP_UPDATE_BATCH: u32 = 26;
/// `BPF_MAP_DELETE_BATCH`
pub const BPF_MAP_DELETE_BATCH: u32 = 27;
/// `BPF_LINK_CREATE`
pub const BPF_LINK_CREATE: u32 = 28;
/// `BPF_LINK_UPDATE`
pub const BPF_LINK_UPDATE: u32 = 29;
/// `BPF_LINK_GET_FD_BY_ID`
pub const BPF_LINK_GET_FD_BY_ID: u32 = 30;
/// `BPF_LINK_GET_NEXT_ID`
pub const BPF_LINK_GET_NEXT_ID: u32 = 31;
/// `BPF_ENABLE_STATS`
pub const BPF_ENABLE_STATS: u32 = 32;
/// `BPF_ITER_CREATE`
pub const BPF_ITER_CREATE: u32 = 33;
/// `BPF_LINK_DETACH`
pub const BPF_LINK_DETACH: u32 = 34;
/// `BPF_PROG_BIND_MAP`
pub const BPF_PROG_BIND_MAP: u32 = 35;
/// `BPF_TOKEN_CREATE` (v6.9+)
pub const BPF_TOKEN_CREATE: u32 = 36;

// Flags for `BPF_MAP_UPDATE_ELEM` (the `flags` of [`MapElemAttr`]).
/// `BPF_ANY`: create a new element or update an existing one.
pub const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create a new element only if it did not exist.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update an existing element only.
pub const BPF_EXIST: u64 = 2;
/// `BPF_F_LOCK`: spin_lock-ed lookup/update.
pub const BPF_F_LOCK: u64 = 4;

// Flags for `BPF_MAP_CREATE` (`map_flags`).
/// `BPF_F_NO_PREALLOC`: hash tables allocate elements on update.
pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
/// `BPF_F_NO_COMMON_LRU`: per-CPU LRU lists.
pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
/// `BPF_F_NUMA_NODE`: `numa_node` is valid.
pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
/// `BPF_F_RDONLY`: read-only from the syscall side.
pub const BPF_F_RDONLY: u32 = 1 << 3;
/// `BPF_F_WRONLY`: write-only from the syscall side.
pub const BPF_F_WRONLY: u32 = 1 << 4;
/// `BPF_F_STACK_BUILD_ID`
pub const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
/// `BPF_F_ZERO_SEED`: zero hash seed (testing only).
pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
/// `BPF_F_RDONLY_PROG`
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_WRONLY_PROG`
pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
/// `BPF_F_CLONE`
pub const BPF_F_CLONE: u32 = 1 << 9;
/// `BPF_F_MMAPABLE`: the map can be mmap()ed (arrays, arenas).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_F_PRESERVE_ELEMS`
pub const BPF_F_PRESERVE_ELEMS: u32 = 1 << 11;
/// `BPF_F_INNER_MAP`
pub const BPF_F_INNER_MAP: u32 = 1 << 12;
/// `BPF_F_LINK` (v6.4+)
pub const BPF_F_LINK: u32 = 1 << 13;
/// `BPF_F_PATH_FD` (v6.5+)
pub const BPF_F_PATH_FD: u32 = 1 << 14;
/// `BPF_F_VTYPE_BTF_OBJ_FD` (v6.9+)
pub const BPF_F_VTYPE_BTF_OBJ_FD: u32 = 1 << 15;
/// `BPF_F_TOKEN_FD` (v6.9+)
pub const BPF_F_TOKEN_FD: u32 = 1 << 16;
/// `BPF_F_SEGV_ON_FAULT` (v6.9+, arena)
pub const BPF_F_SEGV_ON_FAULT: u32 = 1 << 17;
/// `BPF_F_NO_USER_CONV` (v6.9+, arena)
pub const BPF_F_NO_USER_CONV: u32 = 1 << 18;

/// `enum bpf_map_type`.
///
/// A newtype rather than a Rust enum: the value comes from the kernel, and a
/// newer kernel has types this list does not know.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
)]
#[repr(transparent)]
pub struct MapType(pub u32);

impl MapType {
    /// `BPF_MAP_TYPE_UNSPEC`
    pub const UNSPEC: Self = Self(0);
    /// `BPF_MAP_TYPE_HASH`
    pub const HASH: Self = Self(1);
    /// `BPF_MAP_TYPE_ARRAY`
    pub const ARRAY: Self = Self(2);
    /// `BPF_MAP_TYPE_PROG_ARRAY`
    pub const PROG_ARRAY: Self = Self(3);
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`
    pub const PERF_EVENT_ARRAY: Self = Self(4);
    /// `BPF_MAP_TYPE_PERCPU_HASH`
    pub const PERCPU_HASH: Self = Self(5);
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`
    pub const PERCPU_ARRAY: Self = Self(6);
    /// `BPF_MAP_TYPE_STACK_TRACE`
    pub const STACK_TRACE: Self = Self(7);
    /// `BPF_MAP_TYPE_CGROUP_ARRAY`
    pub const CGROUP_ARRAY: Self = Self(8);
    /// `BPF_MAP_TYPE_LRU_HASH`
    pub const LRU_HASH: Self = Self(9);
    /// `BPF_MAP_TYPE_LRU_PERCPU_HASH`
    pub const LRU_PERCPU_HASH: Self = Self(10);
    /// `BPF_MAP_TYPE_LPM_TRIE`
    pub const LPM_TRIE: Self = Self(11);
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS`
    pub const ARRAY_OF_MAPS: Self = Self(12);
    /// `BPF_MAP_TYPE_HASH_OF_MAPS`
    pub const HASH_OF_MAPS: Self = Self(13);
    /// `BPF_MAP_TYPE_DEVMAP`
    pub const DEVMAP: Self = Self(14);
    /// `BPF_MAP_TYPE_SOCKMAP`
    pub const SOCKMAP: Self = Self(15);
    /// `BPF_MAP_TYPE_CPUMAP`
    pub const CPUMAP: Self = Self(16);
    /// `BPF_MAP_TYPE_XSKMAP`
    pub const XSKMAP: Self = Self(17);
    /// `BPF_MAP_TYPE_SOCKHASH`
    pub const SOCKHASH: Self = Self(18);
    /// `BPF_MAP_TYPE_CGROUP_STORAGE` (renamed `..._DEPRECATED` in v6.2, same value)
    pub const CGROUP_STORAGE: Self = Self(19);
    /// `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY`
    pub const REUSEPORT_SOCKARRAY: Self = Self(20);
    /// `BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE` (renamed `..._DEPRECATED` in v6.2, same value)
    pub const PERCPU_CGROUP_STORAGE: Self = Self(21);
    /// `BPF_MAP_TYPE_QUEUE`
    pub const QUEUE: Self = Self(22);
    /// `BPF_MAP_TYPE_STACK`
    pub const STACK: Self = Self(23);
    /// `BPF_MAP_TYPE_SK_STORAGE`
    pub const SK_STORAGE: Self = Self(24);
    /// `BPF_MAP_TYPE_DEVMAP_HASH`
    pub const DEVMAP_HASH: Self = Self(25);
    /// `BPF_MAP_TYPE_STRUCT_OPS`
    pub const STRUCT_OPS: Self = Self(26);
    /// `BPF_MAP_TYPE_RINGBUF`
    pub const RINGBUF: Self = Self(27);
    /// `BPF_MAP_TYPE_INODE_STORAGE`
    pub const INODE_STORAGE: Self = Self(28);
    /// `BPF_MAP_TYPE_TASK_STORAGE`
    pub const TASK_STORAGE: Self = Self(29);
    /// `BPF_MAP_TYPE_BLOOM_FILTER`
    pub const BLOOM_FILTER: Self = Self(30);
    /// `BPF_MAP_TYPE_USER_RINGBUF`
    pub const USER_RINGBUF: Self = Self(31);
    /// `BPF_MAP_TYPE_CGRP_STORAGE` (v6.2+)
    pub const CGRP_STORAGE: Self = Self(32);
    /// `BPF_MAP_TYPE_ARENA` (v6.9+)
    pub const ARENA: Self = Self(33);

    /// The name bpftool and libbpf print (`map_type_name[]` in
    /// `tools/lib/bpf/libbpf.c`), or `None` for a type this list does not know.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::UNSPEC => "unspec",
            Self::HASH => "hash",
            Self::ARRAY => "array",
            Self::PROG_ARRAY => "prog_array",
            Self::PERF_EVENT_ARRAY => "perf_event_array",
            Self::PERCPU_HASH => "percpu_hash",
            Self::PERCPU_ARRAY => "percpu_array",
            Self::STACK_TRACE => "stack_trace",
            Self::CGROUP_ARRAY => "cgroup_array",
            Self::LRU_HASH => "lru_hash",
            Self::LRU_PERCPU_HASH => "lru_percpu_hash",
            Self::LPM_TRIE => "lpm_trie",
            Self::ARRAY_OF_MAPS => "array_of_maps",
            Self::HASH_OF_MAPS => "hash_of_maps",
            Self::DEVMAP => "devmap",
            Self::SOCKMAP => "sockmap",
            Self::CPUMAP => "cpumap",
            Self::XSKMAP => "xskmap",
            Self::SOCKHASH => "sockhash",
            Self::CGROUP_STORAGE => "cgroup_storage",
            Self::REUSEPORT_SOCKARRAY => "reuseport_sockarray",
            Self::PERCPU_CGROUP_STORAGE => "percpu_cgroup_storage",
            Self::QUEUE => "queue",
            Self::STACK => "stack",
            Self::SK_STORAGE => "sk_storage",
            Self::DEVMAP_HASH => "devmap_hash",
            Self::STRUCT_OPS => "struct_ops",
            Self::RINGBUF => "ringbuf",
            Self::INODE_STORAGE => "inode_storage",
            Self::TASK_STORAGE => "task_storage",
            Self::BLOOM_FILTER => "bloom_filter",
            Self::USER_RINGBUF => "user_ringbuf",
            Self::CGRP_STORAGE => "cgrp_storage",
            Self::ARENA => "arena",
            _ => return None,
        })
    }

    /// Whether a syscall lookup returns one value per possible CPU
    /// (`bpf_map_value_size()` in `kernel/bpf/syscall.c`).
    pub const fn is_percpu(self) -> bool {
        matches!(
            self,
            Self::PERCPU_HASH
                | Self::PERCPU_ARRAY
                | Self::LRU_PERCPU_HASH
                | Self::PERCPU_CGROUP_STORAGE
        )
    }
}

impl fmt::Display for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

/// The stride of one CPU's value in a per-CPU syscall buffer, and of the per-CPU
/// allocation in the kernel: `round_up(value_size, 8)` (`bpf_map_value_size()`,
/// `kernel/bpf/syscall.c`). `None` on overflow.
pub const fn percpu_value_size(value_size: u32) -> Option<u32> {
    match value_size.checked_add(7) {
        Some(v) => Some(v & !7),
        None => None,
    }
}

/// The `BPF_MAP_CREATE` arm of `union bpf_attr`, through `map_extra` (v5.16+).
/// v6.7 appended `value_type_btf_obj_fd` and v6.9 `map_token_fd`; they stay zero
/// when this shorter struct is passed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MapCreateAttr {
    /// One of [`MapType`].
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries (pages for an arena).
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// Inner map fd for map-in-map types.
    pub inner_map_fd: u32,
    /// NUMA node, if `BPF_F_NUMA_NODE`.
    pub numa_node: u32,
    /// NUL-padded name: `[A-Za-z0-9_.]`, at most 15 characters.
    pub map_name: [u8; BPF_OBJ_NAME_LEN],
    /// Netdev ifindex for offloaded maps.
    pub map_ifindex: u32,
    /// BTF object fd.
    pub btf_fd: u32,
    /// BTF type id of the key.
    pub btf_key_type_id: u32,
    /// BTF type id of the value.
    pub btf_value_type_id: u32,
    /// BTF type id of a kernel struct stored as the value (struct_ops).
    pub btf_vmlinux_value_type_id: u32,
    /// Per-type extra: bloom filter hash count; arena user VMA start.
    pub map_extra: u64,
}

/// The `BPF_MAP_*_ELEM` / `BPF_MAP_GET_NEXT_KEY` arm of `union bpf_attr`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MapElemAttr {
    /// Map fd.
    pub map_fd: u32,
    /// Implicit padding before the `__aligned_u64` key.
    pub pad: u32,
    /// User address of the key (0 = "first key" for `BPF_MAP_GET_NEXT_KEY`).
    pub key: u64,
    /// User address of the value; the union member `next_key` for
    /// `BPF_MAP_GET_NEXT_KEY`.
    pub value: u64,
    /// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK`.
    pub flags: u64,
}

/// The `BPF_*_GET_*_ID` / `BPF_*_GET_FD_BY_ID` arm of `union bpf_attr`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct GetIdAttr {
    /// The union `start_id` / `prog_id` / `map_id` / `btf_id` / `link_id`.
    pub start_id: u32,
    /// Output of `BPF_*_GET_NEXT_ID`.
    pub next_id: u32,
    /// `BPF_F_RDONLY` / `BPF_F_WRONLY` for `BPF_*_GET_FD_BY_ID`.
    pub open_flags: u32,
}

/// The `info` arm of `union bpf_attr` (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct InfoByFdAttr {
    /// Object fd.
    pub bpf_fd: u32,
    /// In: buffer size. Out: bytes the kernel filled.
    pub info_len: u32,
    /// User address of a [`BpfMapInfo`], [`BpfProgInfo`] or [`BpfBtfInfo`].
    pub info: u64,
}

/// The `batch` arm of `union bpf_attr` (`BPF_MAP_*_BATCH`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct BatchAttr {
    /// User address of the start token; 0 starts from the beginning.
    pub in_batch: u64,
    /// User address the kernel writes the next start token to.
    pub out_batch: u64,
    /// User address of `count` keys.
    pub keys: u64,
    /// User address of `count` values.
    pub values: u64,
    /// In: number of elements the buffers hold. Out: number filled.
    pub count: u32,
    /// Map fd.
    pub map_fd: u32,
    /// Per-element flags (`BPF_F_LOCK`).
    pub elem_flags: u64,
    /// Command flags.
    pub flags: u64,
}

/// `struct bpf_map_info`, as of v6.18.
///
/// `btf_vmlinux_id` was an alignment pad before v6.9; `hash` and `hash_size` were
/// appended in v6.18. Older kernels fill less and report it in
/// [`InfoByFdAttr::info_len`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct BpfMapInfo {
    /// One of [`MapType`].
    pub r#type: u32,
    /// Map id (`map_idr`).
    pub id: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// NUL-padded name.
    pub name: [u8; BPF_OBJ_NAME_LEN],
    /// Offload netdev.
    pub ifindex: u32,
    /// BTF type id of a kernel struct value (struct_ops).
    pub btf_vmlinux_value_type_id: u32,
    /// Offload netns device.
    pub netns_dev: u64,
    /// Offload netns inode.
    pub netns_ino: u64,
    /// BTF object id.
    pub btf_id: u32,
    /// BTF type id of the key.
    pub btf_key_type_id: u32,
    /// BTF type id of the value.
    pub btf_value_type_id: u32,
    /// BTF object id of a struct_ops value type (v6.9+; padding before).
    pub btf_vmlinux_id: u32,
    /// Per-type extra (see [`MapCreateAttr::map_extra`]).
    pub map_extra: u64,
    /// User address of a SHA-256 buffer for the map contents (v6.18+).
    pub hash: u64,
    /// Size of the `hash` buffer (v6.18+).
    pub hash_size: u32,
    /// Tail padding of the `aligned(8)` struct.
    pub _pad: u32,
}

/// `struct bpf_btf_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct BpfBtfInfo {
    /// User address of a buffer for the raw BTF.
    pub btf: u64,
    /// In: buffer size. Out: BTF size.
    pub btf_size: u32,
    /// BTF object id (`btf_idr`).
    pub id: u32,
    /// User address of a buffer for the name.
    pub name: u64,
    /// In: name buffer size. Out: name length.
    pub name_len: u32,
    /// Non-zero for vmlinux and module BTF.
    pub kernel_btf: u32,
}

/// `struct bpf_prog_info`, through `attach_btf_id` (the v6.1 layout).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct BpfProgInfo {
    /// `enum bpf_prog_type`.
    pub r#type: u32,
    /// Program id (`prog_idr`).
    pub id: u32,
    /// Program tag.
    pub tag: [u8; BPF_TAG_SIZE],
    /// Size of the JITed image.
    pub jited_prog_len: u32,
    /// Size of the translated instructions.
    pub xlated_prog_len: u32,
    /// User address of a buffer for the JITed image.
    pub jited_prog_insns: u64,
    /// User address of a buffer for the translated instructions.
    pub xlated_prog_insns: u64,
    /// Load time, ns since boot.
    pub load_time: u64,
    /// Loader's uid.
    pub created_by_uid: u32,
    /// In: `map_ids` buffer entries. Out: number of maps used.
    pub nr_map_ids: u32,
    /// User address of a `u32` buffer for the ids of maps used.
    pub map_ids: u64,
    /// NUL-padded name.
    pub name: [u8; BPF_OBJ_NAME_LEN],
    /// Offload netdev.
    pub ifindex: u32,
    /// Bit 0: `gpl_compatible`; bits 1..31 are padding.
    pub gpl_compatible: u32,
    /// Offload netns device.
    pub netns_dev: u64,
    /// Offload netns inode.
    pub netns_ino: u64,
    /// Number of JITed function symbols.
    pub nr_jited_ksyms: u32,
    /// Number of JITed function lengths.
    pub nr_jited_func_lens: u32,
    /// User address of a `u64` buffer for JITed symbol addresses.
    pub jited_ksyms: u64,
    /// User address of a `u32` buffer for JITed function lengths.
    pub jited_func_lens: u64,
    /// BTF object id.
    pub btf_id: u32,
    /// Size of one `bpf_func_info` record.
    pub func_info_rec_size: u32,
    /// User address of the func info buffer.
    pub func_info: u64,
    /// Number of func info records.
    pub nr_func_info: u32,
    /// Number of line info records.
    pub nr_line_info: u32,
    /// User address of the line info buffer.
    pub line_info: u64,
    /// User address of the JITed line info buffer.
    pub jited_line_info: u64,
    /// Number of JITed line info records.
    pub nr_jited_line_info: u32,
    /// Size of one `bpf_line_info` record.
    pub line_info_rec_size: u32,
    /// Size of one JITed line info record.
    pub jited_line_info_rec_size: u32,
    /// Number of program tags.
    pub nr_prog_tags: u32,
    /// User address of the tags buffer.
    pub prog_tags: u64,
    /// Run time, ns (with `BPF_ENABLE_STATS`).
    pub run_time_ns: u64,
    /// Run count (with `BPF_ENABLE_STATS`).
    pub run_cnt: u64,
    /// Missed runs due to recursion.
    pub recursion_misses: u64,
    /// Instructions the verifier processed.
    pub verified_insns: u32,
    /// BTF object id of the attach target.
    pub attach_btf_obj_id: u32,
    /// BTF type id of the attach target.
    pub attach_btf_id: u32,
    /// Tail padding (`__u32 :32`).
    pub _pad: u32,
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    // Sizes and offsets below were printed by a C program compiled against the
    // v6.1 `linux/bpf.h`; the v6.18 `bpf_map_info` tail from the header text
    // (`__u32 btf_vmlinux_id; __u64 map_extra; __aligned_u64 hash; __u32 hash_size;`).

    #[test]
    fn map_create_attr_layout() {
        assert_eq!(size_of::<MapCreateAttr>(), 72);
        assert_eq!(offset_of!(MapCreateAttr, map_flags), 16);
        assert_eq!(offset_of!(MapCreateAttr, inner_map_fd), 20);
        assert_eq!(offset_of!(MapCreateAttr, numa_node), 24);
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapCreateAttr, map_ifindex), 44);
        assert_eq!(offset_of!(MapCreateAttr, btf_fd), 48);
        assert_eq!(offset_of!(MapCreateAttr, btf_key_type_id), 52);
        assert_eq!(offset_of!(MapCreateAttr, btf_value_type_id), 56);
        assert_eq!(offset_of!(MapCreateAttr, btf_vmlinux_value_type_id), 60);
        assert_eq!(offset_of!(MapCreateAttr, map_extra), 64);
    }

    #[test]
    fn other_attr_layouts() {
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, value), 16);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);

        assert_eq!(size_of::<GetIdAttr>(), 12);
        assert_eq!(offset_of!(GetIdAttr, next_id), 4);
        assert_eq!(offset_of!(GetIdAttr, open_flags), 8);

        assert_eq!(size_of::<InfoByFdAttr>(), 16);
        assert_eq!(offset_of!(InfoByFdAttr, info_len), 4);
        assert_eq!(offset_of!(InfoByFdAttr, info), 8);

        assert_eq!(size_of::<BatchAttr>(), 56);
        assert_eq!(offset_of!(BatchAttr, keys), 16);
        assert_eq!(offset_of!(BatchAttr, values), 24);
        assert_eq!(offset_of!(BatchAttr, count), 32);
        assert_eq!(offset_of!(BatchAttr, map_fd), 36);
        assert_eq!(offset_of!(BatchAttr, elem_flags), 40);
        assert_eq!(offset_of!(BatchAttr, flags), 48);
    }

    #[test]
    fn bpf_map_info_layout() {
        assert_eq!(size_of::<BpfMapInfo>(), 104);
        assert_eq!(offset_of!(BpfMapInfo, name), 24);
        assert_eq!(offset_of!(BpfMapInfo, ifindex), 40);
        assert_eq!(offset_of!(BpfMapInfo, btf_vmlinux_value_type_id), 44);
        assert_eq!(offset_of!(BpfMapInfo, netns_dev), 48);
        assert_eq!(offset_of!(BpfMapInfo, netns_ino), 56);
        assert_eq!(offset_of!(BpfMapInfo, btf_id), 64);
        assert_eq!(offset_of!(BpfMapInfo, btf_key_type_id), 68);
        assert_eq!(offset_of!(BpfMapInfo, btf_value_type_id), 72);
        assert_eq!(offset_of!(BpfMapInfo, btf_vmlinux_id), 76);
        assert_eq!(offset_of!(BpfMapInfo, map_extra), 80);
        // v6.1..v6.17 `sizeof(struct bpf_map_info)` ends here.
        assert_eq!(offset_of!(BpfMapInfo, map_extra) + 8, 88);
        assert_eq!(offset_of!(BpfMapInfo, hash), 88);
        assert_eq!(offset_of!(BpfMapInfo, hash_size), 96);
    }

    #[test]
    fn bpf_btf_info_layout() {
        assert_eq!(size_of::<BpfBtfInfo>(), 32);
        assert_eq!(offset_of!(BpfBtfInfo, btf_size), 8);
        assert_eq!(offset_of!(BpfBtfInfo, id), 12);
        assert_eq!(offset_of!(BpfBtfInfo, name), 16);
        assert_eq!(offset_of!(BpfBtfInfo, name_len), 24);
        assert_eq!(offset_of!(BpfBtfInfo, kernel_btf), 28);
    }

    #[test]
    fn bpf_prog_info_layout() {
        assert_eq!(size_of::<BpfProgInfo>(), 232);
        assert_eq!(offset_of!(BpfProgInfo, tag), 8);
        assert_eq!(offset_of!(BpfProgInfo, jited_prog_len), 16);
        assert_eq!(offset_of!(BpfProgInfo, jited_prog_insns), 24);
        assert_eq!(offset_of!(BpfProgInfo, xlated_prog_insns), 32);
        assert_eq!(offset_of!(BpfProgInfo, load_time), 40);
        assert_eq!(offset_of!(BpfProgInfo, created_by_uid), 48);
        assert_eq!(offset_of!(BpfProgInfo, nr_map_ids), 52);
        assert_eq!(offset_of!(BpfProgInfo, map_ids), 56);
        assert_eq!(offset_of!(BpfProgInfo, name), 64);
        assert_eq!(offset_of!(BpfProgInfo, ifindex), 80);
        assert_eq!(offset_of!(BpfProgInfo, netns_dev), 88);
        assert_eq!(offset_of!(BpfProgInfo, netns_ino), 96);
        assert_eq!(offset_of!(BpfProgInfo, nr_jited_ksyms), 104);
        assert_eq!(offset_of!(BpfProgInfo, jited_ksyms), 112);
        assert_eq!(offset_of!(BpfProgInfo, jited_func_lens), 120);
        assert_eq!(offset_of!(BpfProgInfo, btf_id), 128);
        assert_eq!(offset_of!(BpfProgInfo, func_info_rec_size), 132);
        assert_eq!(offset_of!(BpfProgInfo, func_info), 136);
        assert_eq!(offset_of!(BpfProgInfo, nr_func_info), 144);
        assert_eq!(offset_of!(BpfProgInfo, nr_line_info), 148);
        assert_eq!(offset_of!(BpfProgInfo, line_info), 152);
        assert_eq!(offset_of!(BpfProgInfo, jited_line_info), 160);
        assert_eq!(offset_of!(BpfProgInfo, nr_jited_line_info), 168);
        assert_eq!(offset_of!(BpfProgInfo, line_info_rec_size), 172);
        assert_eq!(offset_of!(BpfProgInfo, jited_line_info_rec_size), 176);
        assert_eq!(offset_of!(BpfProgInfo, nr_prog_tags), 180);
        assert_eq!(offset_of!(BpfProgInfo, prog_tags), 184);
        assert_eq!(offset_of!(BpfProgInfo, run_time_ns), 192);
        assert_eq!(offset_of!(BpfProgInfo, run_cnt), 200);
        assert_eq!(offset_of!(BpfProgInfo, recursion_misses), 208);
        assert_eq!(offset_of!(BpfProgInfo, verified_insns), 216);
        assert_eq!(offset_of!(BpfProgInfo, attach_btf_obj_id), 220);
        assert_eq!(offset_of!(BpfProgInfo, attach_btf_id), 224);
    }

    #[test]
    fn command_numbers() {
        assert_eq!(BPF_MAP_GET_NEXT_ID, 12);
        assert_eq!(BPF_MAP_GET_FD_BY_ID, 14);
        assert_eq!(BPF_OBJ_GET_INFO_BY_FD, 15);
        assert_eq!(BPF_BTF_GET_NEXT_ID, 23);
        assert_eq!(BPF_MAP_LOOKUP_BATCH, 24);
        assert_eq!(BPF_PROG_BIND_MAP, 35);
        assert_eq!(BPF_TOKEN_CREATE, 36);
    }

    #[test]
    fn map_type_numbers_and_names() {
        let cases = [
            (MapType::HASH, 1, "hash"),
            (MapType::ARRAY, 2, "array"),
            (MapType::PERCPU_HASH, 5, "percpu_hash"),
            (MapType::PERCPU_ARRAY, 6, "percpu_array"),
            (MapType::LRU_HASH, 9, "lru_hash"),
            (MapType::LRU_PERCPU_HASH, 10, "lru_percpu_hash"),
            (MapType::DEVMAP_HASH, 25, "devmap_hash"),
            (MapType::STRUCT_OPS, 26, "struct_ops"),
            (MapType::USER_RINGBUF, 31, "user_ringbuf"),
            (MapType::CGRP_STORAGE, 32, "cgrp_storage"),
            (MapType::ARENA, 33, "arena"),
        ];
        for (t, n, name) in cases {
            assert_eq!(t.0, n);
            assert_eq!(t.name(), Some(name));
        }
        assert_eq!(MapType(34).name(), None);
        assert_eq!(std::format!("{}", MapType(99)), "type 99");
        // Every known value has a distinct name.
        let mut names = std::vec::Vec::new();
        for v in 0..=33 {
            names.push(MapType(v).name().unwrap());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 34);
    }

    #[test]
    fn percpu_types_and_stride() {
        assert!(MapType::PERCPU_HASH.is_percpu());
        assert!(MapType::PERCPU_ARRAY.is_percpu());
        assert!(MapType::LRU_PERCPU_HASH.is_percpu());
        assert!(MapType::PERCPU_CGROUP_STORAGE.is_percpu());
        assert!(!MapType::HASH.is_percpu());
        assert!(!MapType::LRU_HASH.is_percpu());
        assert_eq!(percpu_value_size(12), Some(16));
        assert_eq!(percpu_value_size(8), Some(8));
        assert_eq!(percpu_value_size(0), Some(0));
        assert_eq!(percpu_value_size(u32::MAX), None);
    }

    #[test]
    fn flag_values() {
        assert_eq!(BPF_F_NO_PREALLOC, 1);
        assert_eq!(BPF_F_MMAPABLE, 1024);
        assert_eq!(BPF_F_NO_USER_CONV, 1 << 18);
        assert_eq!((BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK), (0, 1, 2, 4));
    }
}
