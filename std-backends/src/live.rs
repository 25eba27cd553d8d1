//! The running kernel through the `bpf(2)` syscall, behind the same
//! [`BpfMapAccessor`] as memory images.
//!
//! [`LiveBpf::open`] walks the map ids (`BPF_MAP_GET_NEXT_ID`), opens every
//! map read-only (`BPF_MAP_GET_FD_BY_ID`) and keeps the descriptors for the
//! accessor's life, so a map cannot vanish while it is read; it sees the maps
//! that existed when it was opened. Maps are named by id only.
//!
//! What differs from an image:
//! - [`MapInfo::kva`] is unknown and always `Kva(0)`: `bpf(2)` does not say
//!   where a map lives.
//! - Contents are read through the kernel's own element commands, so they are
//!   consistent per element but not a snapshot of the whole map, and a hash
//!   walked key by key can repeat keys if its elements are deleted under it.
//! - Arena pages can be listed exactly only for `BPF_F_SEGV_ON_FAULT` arenas;
//!   see [`ArenaPresence`] and [`LiveBpf::arena_presence`].
//!
//! Errors of the [`BpfMapAccessor`] methods are [`AccessError`]s: a failed
//! system call becomes [`AccessError::Memory`] with an
//! [`Error::Unsupported`] naming the command and the errno. [`LiveError`]
//! says the same with the errno as a number.

mod ahead;
mod arena;
mod cpus;
mod entries;
mod objects;
mod sys;

use std::fmt;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::uapi::{BpfMapInfo, MapType};
use bpfmem_core::Kva;

use ahead::ReadAhead;
pub use arena::ArenaPresence;
use entries::{batch_capable, default_batch, Cursor, ElemOps, Shape};
use sys::{MapFd, OwnedMapFd, ENOTSUPP};

use crate::access::{
    check_key, check_window, wrong, AccessError, ArenaPages, BpfMapAccessor, Entries, MapBtf,
};

/// Maps [`LiveBpf::open`] holds at most. Each costs a descriptor, so the
/// open-file limit usually stops the walk long before.
pub const MAX_MAPS: usize = 1 << 20;

/// Raw BTF blobs [`BpfMapAccessor::map_btf`] copies at most (the kernel caps
/// loaded BTF at 16 MiB, `BTF_MAX_SIZE`; vmlinux BTF is a few MiB).
pub const MAX_BTF_SIZE: u32 = 1 << 28;

macro_rules! ops_and_errnos {
    (ops: [$($v:ident => $name:literal),* $(,)?], errnos: $errnos:tt $(,)?) => {
        /// The command or file a [`LiveError`] comes from.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Op {
            $(#[doc = concat!("`", $name, "`")] $v,)*
        }

        impl Op {
            /// The command's name, as `bpf.h` or the man pages spell it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Op::$v => $name,)*
                }
            }
        }

        /// The symbolic name of an errno this backend meets.
        pub(crate) fn errno_name(errno: i32) -> Option<&'static str> {
            ops_and_errnos!(@name errno, $errnos)
        }
    };
    (@name $e:ident, [$($n:ident),* $(,)?]) => {
        match $e {
            libc::EPERM => Some("EPERM"),
            libc::EACCES => Some("EACCES"),
            $(libc::$n => Some(stringify!($n)),)*
            ENOTSUPP => Some("ENOTSUPP"),
            _ => None,
        }
    };
}

ops_and_errnos! {
    ops: [
        MapGetNextId => "BPF_MAP_GET_NEXT_ID",
        MapGetFdById => "BPF_MAP_GET_FD_BY_ID",
        ObjGetInfoByFd => "BPF_OBJ_GET_INFO_BY_FD",
        MapLookupElem => "BPF_MAP_LOOKUP_ELEM",
        MapGetNextKey => "BPF_MAP_GET_NEXT_KEY",
        MapLookupBatch => "BPF_MAP_LOOKUP_BATCH",
        BtfGetFdById => "BPF_BTF_GET_FD_BY_ID",
        ProgGetNextId => "BPF_PROG_GET_NEXT_ID",
        ProgGetFdById => "BPF_PROG_GET_FD_BY_ID",
        BtfGetNextId => "BPF_BTF_GET_NEXT_ID",
        Mmap => "mmap",
        Mincore => "mincore",
        ProcessVmReadv => "process_vm_readv",
        ProcSelf => "reading /proc/self",
        PossibleCpus => "reading /sys/devices/system/cpu/possible",
    ],
    errnos: [
        ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, EBADF, EAGAIN, ENOMEM, EFAULT, EBUSY,
        EEXIST, ENODEV, EINVAL, ENFILE, EMFILE, ENOSPC, ERANGE, ENOSYS, EOPNOTSUPP,
        EOVERFLOW, ENOTDIR, ELOOP,
    ],
}

/// Why the live backend failed. `Copy`; `Display` names the command, the
/// errno and, for missing privileges, what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveError {
    /// The kernel refused for want of privilege (EPERM or EACCES). `id` is
    /// the map concerned, 0 for none.
    Permission { op: Op, id: u32, errno: i32 },
    /// A system call failed. `id` is the map (or BTF object for
    /// [`Op::BtfGetFdById`]) concerned, 0 for none.
    Syscall { op: Op, id: u32, errno: i32 },
    /// `/sys/devices/system/cpu/possible` is not the kernel's list.
    PossibleCpus { what: &'static str },
    /// The kernel answered something this crate cannot use.
    Malformed { what: &'static str, id: u32 },
    /// A walk hit its budget.
    Limit {
        what: &'static str,
        id: u32,
        limit: u64,
    },
    /// Not something the live kernel lets user space read.
    Unsupported { what: &'static str, id: u32 },
}

impl LiveError {
    /// The error for `errno` from `op` on map `id`.
    pub fn from_errno(op: Op, id: u32, errno: i32) -> Self {
        match errno {
            libc::EPERM | libc::EACCES => LiveError::Permission { op, id, errno },
            _ => LiveError::Syscall { op, id, errno },
        }
    }
}

struct ErrnoText(i32);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match errno_name(e) {
            Some(name) if e == ENOTSUPP => write!(f, "{name} (not supported)"),
            Some(name) => write!(f, "{name} ({})", std::io::Error::from_raw_os_error(e)),
            None => write!(f, "errno {e}"),
        }
    }
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = |f: &mut fmt::Formatter<'_>, id: u32| match id {
            0 => Ok(()),
            id => write!(f, "map {id}: "),
        };
        match *self {
            LiveError::Permission { op, id, errno } => {
                map(f, id)?;
                write!(
                    f,
                    "{} refused: {}: run as root, or with CAP_BPF and CAP_SYS_ADMIN \
                     (walking map ids and opening maps by id need CAP_SYS_ADMIN whatever \
                     kernel.unprivileged_bpf_disabled says; when that sysctl is 1 or 2, \
                     unprivileged bpf(2) is refused altogether)",
                    op.name(),
                    ErrnoText(errno)
                )
            }
            LiveError::Syscall { op, id, errno } => {
                map(f, id)?;
                write!(f, "{} failed: {}", op.name(), ErrnoText(errno))?;
                match errno {
                    libc::EMFILE => f.write_str(
                        " (the accessor holds one descriptor per map: raise the \
                         open-file limit, ulimit -n)",
                    ),
                    _ => Ok(()),
                }
            }
            LiveError::PossibleCpus { what } => {
                write!(f, "{}: {what}", cpus::POSSIBLE_PATH)
            }
            LiveError::Malformed { what, id } => {
                map(f, id)?;
                write!(f, "the kernel reported unusable {what}")
            }
            LiveError::Limit { what, id, limit } => {
                map(f, id)?;
                write!(f, "{what} exceeds the limit of {limit}")
            }
            LiveError::Unsupported { what, id } => {
                map(f, id)?;
                write!(f, "cannot read live: {what}")
            }
        }
    }
}

impl std::error::Error for LiveError {}

impl From<LiveError> for AccessError {
    fn from(e: LiveError) -> Self {
        AccessError::Live(e)
    }
}

/// One map held open.
struct LiveMap {
    info: MapInfo,
    fd: OwnedFd,
}

/// `bpf_map_info` as a [`MapInfo`]; `kva` is unknown live and left 0.
pub fn map_info_from_uapi(info: &BpfMapInfo) -> MapInfo {
    MapInfo {
        id: info.id,
        map_type: MapType(info.r#type),
        name: info.name,
        map_flags: info.map_flags,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_extra: info.map_extra,
        btf_id: info.btf_id,
        btf_key_type_id: info.btf_key_type_id,
        btf_value_type_id: info.btf_value_type_id,
        btf_vmlinux_value_type_id: info.btf_vmlinux_value_type_id,
        kva: Kva(0),
    }
}

/// The map id walk: `next_id(id)` is `BPF_MAP_GET_NEXT_ID`, `open(id)` opens
/// one map and says `None` when it vanished since (ENOENT). Returns what was
/// opened and how many vanished. Ids must ascend: the walk cannot loop.
fn walk_ids<T>(
    mut next_id: impl FnMut(u32) -> Result<Option<u32>, LiveError>,
    mut open: impl FnMut(u32) -> Result<Option<T>, LiveError>,
) -> Result<(Vec<T>, usize), LiveError> {
    let mut held = Vec::new();
    let mut skipped = 0usize;
    let mut id = 0u32;
    while let Some(next) = next_id(id)? {
        if next <= id {
            return Err(LiveError::Malformed {
                what: "map id order (BPF_MAP_GET_NEXT_ID did not ascend)",
                id: next,
            });
        }
        if held.len() >= MAX_MAPS {
            return Err(LiveError::Limit {
                what: "number of maps",
                id: 0,
                limit: MAX_MAPS as u64,
            });
        }
        match open(next)? {
            Some(t) => held.push(t),
            None => skipped += 1,
        }
        id = next;
    }
    Ok((held, skipped))
}

/// Open map `id` read-only and read its `bpf_map_info`; `None` if it is gone.
fn open_map(id: u32) -> Result<Option<LiveMap>, LiveError> {
    let fd = match sys::map_get_fd_by_id(id, false) {
        Ok(fd) => fd,
        // Freed between BPF_MAP_GET_NEXT_ID and now.
        Err(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(LiveError::from_errno(Op::MapGetFdById, id, e)),
    };
    let info =
        sys::map_info(fd.as_fd()).map_err(|e| LiveError::from_errno(Op::ObjGetInfoByFd, id, e))?;
    if info.id != id {
        return Err(LiveError::Malformed {
            what: "map id (bpf_map_info of another map)",
            id,
        });
    }
    Ok(Some(LiveMap {
        info: map_info_from_uapi(&info),
        fd,
    }))
}

/// The running kernel's BPF maps through `bpf(2)`. Needs root, or `CAP_BPF`
/// with `CAP_SYS_ADMIN`. Dropping it closes every descriptor it holds.
pub struct LiveBpf {
    /// Ascending by id.
    maps: Vec<LiveMap>,
    possible_cpus: Vec<u32>,
    skipped: usize,
    batch: bool,
    batch_size: Option<NonZeroU32>,
    read_ahead: bool,
}

/// Whether this process can run on more than one CPU (read once).
fn two_cpus() -> bool {
    static TWO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TWO.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

impl fmt::Debug for LiveBpf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveBpf")
            .field("maps", &self.maps.len())
            .field("possible_cpus", &self.possible_cpus.len())
            .field("skipped", &self.skipped)
            .field("batch", &self.batch)
            .finish()
    }
}

impl LiveBpf {
    /// Open every map of the running kernel and read the possible CPUs.
    pub fn open() -> Result<Self, LiveError> {
        let possible_cpus = cpus::possible_cpus().map_err(|e| match e {
            cpus::CpusError::Read(errno) => LiveError::Syscall {
                op: Op::PossibleCpus,
                id: 0,
                errno,
            },
            cpus::CpusError::NotSysfs => LiveError::PossibleCpus {
                what: "not the kernel's sysfs file (an overlay could miscount CPUs)",
            },
            cpus::CpusError::Malformed(what) => LiveError::PossibleCpus { what },
        })?;
        let next_id = |id| {
            sys::map_get_next_id(id).map_err(|e| LiveError::from_errno(Op::MapGetNextId, 0, e))
        };
        let (maps, skipped) = walk_ids(next_id, open_map)?;
        Ok(Self {
            maps,
            possible_cpus,
            skipped,
            batch: true,
            batch_size: None,
            read_ahead: true,
        })
    }

    /// Maps that vanished between being listed and being opened.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Use `BPF_MAP_LOOKUP_BATCH` in [`BpfMapAccessor::entries`] where the map
    /// type has it (the default), or always go key by key
    /// (`BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`).
    pub fn set_batch(&mut self, on: bool) {
        self.batch = on;
    }

    /// Elements per `BPF_MAP_LOOKUP_BATCH` to start with (`None`: about 1 MiB
    /// of buffers, at most 4096). The walk grows it when one hash bucket holds
    /// more (ENOSPC).
    pub fn set_batch_size(&mut self, entries: Option<NonZeroU32>) {
        self.batch_size = entries;
    }

    /// Whether [`BpfMapAccessor::entries`] walks batches on a helper thread of
    /// its own, one step ahead of the caller (on by default; used only for
    /// batch walks and with more than one CPU to run on). The kernel then
    /// fetches the next batch while the caller handles this one. The thread
    /// holds a duplicate of the map's descriptor until the walk ends, or
    /// until its next hand-over after the walk is dropped.
    pub fn set_read_ahead(&mut self, on: bool) {
        self.read_ahead = on;
    }

    /// The descriptor held for map `id`, read-only.
    pub fn map_fd(&self, id: u32) -> Option<BorrowedFd<'_>> {
        self.get(id).ok().map(|m| m.fd.as_fd())
    }

    /// How [`BpfMapAccessor::arena_pages`] would find arena `id`'s pages now,
    /// or why it cannot.
    pub fn arena_presence(&self, id: u32) -> Result<ArenaPresence, AccessError> {
        let m = self.get(id)?;
        if m.info.map_type != MapType::ARENA {
            return Err(wrong(&m.info, "an arena map"));
        }
        Ok(arena::arena_presence(&m.info)?)
    }

    fn get(&self, id: u32) -> Result<&LiveMap, AccessError> {
        self.maps
            .binary_search_by_key(&id, |m| m.info.id)
            .ok()
            .and_then(|i| self.maps.get(i))
            .ok_or(AccessError::NoSuchMap { id })
    }

    fn shape(&self, m: &MapInfo) -> Result<Shape, AccessError> {
        Shape::new(
            m.map_type,
            m.key_size,
            m.value_size,
            m.max_entries,
            self.possible_cpus.len(),
        )
        .ok_or(
            LiveError::Malformed {
                what: "key or value size",
                id: m.id,
            }
            .into(),
        )
    }

    /// `BPF_MAP_LOOKUP_ELEM` of a `u32` key into `value`, sized here.
    fn lookup_u32(&self, lm: &LiveMap, key: u32, value: &mut Vec<u8>) -> Result<(), AccessError> {
        let shape = self.shape(&lm.info)?;
        let ops = MapFd {
            fd: lm.fd.as_fd(),
            shape,
        };
        value.resize(shape.value_buf, 0);
        match ops.lookup(&key.to_le_bytes(), value) {
            Ok(true) => Ok(()),
            // Arrays have every key below max_entries; struct_ops has key 0.
            Ok(false) => Err(LiveError::Malformed {
                what: "array without the key (ENOENT)",
                id: lm.info.id,
            }
            .into()),
            Err(e) => Err(LiveError::from_errno(Op::MapLookupElem, lm.info.id, e).into()),
        }
    }
}

impl BpfMapAccessor for LiveBpf {
    fn list_maps(&self) -> Result<Vec<MapInfo>, AccessError> {
        Ok(self.maps.iter().map(|m| m.info).collect())
    }

    fn map_info(&self, id: u32) -> Result<MapInfo, AccessError> {
        self.get(id).map(|m| m.info)
    }

    fn possible_cpus(&self) -> &[u32] {
        &self.possible_cpus
    }

    fn read_array_value(
        &self,
        id: u32,
        key: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), AccessError> {
        let lm = self.get(id)?;
        let m = &lm.info;
        if !matches!(m.map_type, MapType::ARRAY | MapType::STRUCT_OPS) {
            return Err(wrong(m, "an array or struct_ops map"));
        }
        check_key(m, key)?;
        check_window(m, offset, buf.len())?;
        let mut value = Vec::new();
        self.lookup_u32(lm, key, &mut value)?;
        // Inside the value: check_window.
        let start = offset as usize;
        let window = value
            .get(start..start + buf.len())
            .ok_or(AccessError::WindowOutOfRange {
                id,
                offset,
                len: buf.len(),
                value_size: m.value_size,
            })?;
        buf.copy_from_slice(window);
        Ok(())
    }

    fn read_percpu_array_value(
        &self,
        id: u32,
        key: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), AccessError> {
        let lm = self.get(id)?;
        let m = &lm.info;
        if m.map_type != MapType::PERCPU_ARRAY {
            return Err(wrong(m, "a percpu_array map"));
        }
        check_key(m, key)?;
        let mut raw = Vec::new();
        self.lookup_u32(lm, key, &mut raw)?;
        self.shape(m)?.unpad_into(&raw, out);
        Ok(())
    }

    fn entries(&self, id: u32) -> Result<Box<dyn Entries + '_>, AccessError> {
        let lm = self.get(id)?;
        let m = &lm.info;
        if !matches!(
            m.map_type,
            MapType::HASH
                | MapType::LRU_HASH
                | MapType::PERCPU_HASH
                | MapType::LRU_PERCPU_HASH
                | MapType::ARRAY
                | MapType::PERCPU_ARRAY
        ) {
            return Err(wrong(m, "a hash or array map"));
        }
        let shape = self.shape(m)?;
        let batch = (self.batch && batch_capable(m.map_type)).then(|| {
            self.batch_size
                .map_or_else(|| default_batch(&shape), NonZeroU32::get)
        });
        if batch.is_some() && self.read_ahead && two_cpus() {
            // A thread of its own needs a descriptor of its own; without
            // either, the walk runs here.
            if let Ok(fd) = lm.fd.try_clone() {
                let ops = OwnedMapFd { fd, shape };
                if let Ok(r) = ReadAhead::spawn(Cursor::new(ops, id, shape, batch), id) {
                    return Ok(Box::new(r));
                }
            }
        }
        let ops = MapFd {
            fd: lm.fd.as_fd(),
            shape,
        };
        Ok(Box::new(Cursor::new(ops, id, shape, batch)))
    }

    fn arena_pages(&self, id: u32) -> Result<Box<dyn ArenaPages + '_>, AccessError> {
        let lm = self.get(id)?;
        if lm.info.map_type != MapType::ARENA {
            return Err(wrong(&lm.info, "an arena map"));
        }
        Ok(Box::new(arena::arena_pages(&lm.info)?))
    }

    fn map_btf(&self, id: u32) -> Result<Option<MapBtf>, AccessError> {
        let m = self.get(id)?.info;
        if m.btf_id == 0 {
            return Ok(None);
        }
        let btf_err = |op| move |e| AccessError::from(LiveError::from_errno(op, id, e));
        let fd = sys::btf_get_fd_by_id(m.btf_id).map_err(btf_err(Op::BtfGetFdById))?;
        // Sizes first, then the data: BTF objects never change.
        let sizes =
            sys::btf_info(fd.as_fd(), &mut [], &mut []).map_err(btf_err(Op::ObjGetInfoByFd))?;
        if sizes.btf_size > MAX_BTF_SIZE || sizes.name_len > 4096 {
            return Err(LiveError::Limit {
                what: "BTF object size",
                id,
                limit: MAX_BTF_SIZE.into(),
            }
            .into());
        }
        let mut data = vec![0u8; sizes.btf_size as usize];
        let mut name = vec![0u8; sizes.name_len as usize + 1];
        let info =
            sys::btf_info(fd.as_fd(), &mut data, &mut name).map_err(btf_err(Op::ObjGetInfoByFd))?;
        if info.btf_size != sizes.btf_size || info.name_len != sizes.name_len {
            return Err(LiveError::Malformed {
                what: "BTF object size (changed between two reads)",
                id,
            }
            .into());
        }
        name.truncate(sizes.name_len as usize);
        let name = String::from_utf8_lossy(&name).into_owned();
        let kernel_btf = info.kernel_btf != 0;
        Ok(Some(MapBtf {
            id: info.id,
            // Only module BTF is split (over vmlinux); bpf_btf_info has no
            // base id, so tell it by name.
            split: kernel_btf && name != "vmlinux",
            name,
            kernel_btf,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_maps_are_skipped_and_counted() {
        // Ids 3 and 9 are listed, then freed before they can be opened.
        let ids = [1u32, 3, 4, 9, 12];
        let next = |id: u32| Ok(ids.iter().copied().find(|&i| i > id));
        let open = |id: u32| Ok((id != 3 && id != 9).then_some(id));
        let (held, skipped) = walk_ids(next, open).unwrap();
        assert_eq!(held, vec![1, 4, 12]);
        assert_eq!(skipped, 2);
    }

    #[test]
    fn id_walk_must_ascend_and_errors_stop_it() {
        let next = |id: u32| Ok(Some(if id == 5 { 5 } else { id + 5 }));
        let err = walk_ids(next, |id| Ok(Some(id))).unwrap_err();
        assert!(matches!(err, LiveError::Malformed { id: 5, .. }));
        let next = |id: u32| Ok((id < 10).then_some(id + 1));
        let open = |id: u32| match id {
            4 => Err(LiveError::from_errno(Op::MapGetFdById, id, libc::EMFILE)),
            _ => Ok(Some(id)),
        };
        let err = walk_ids(next, open).unwrap_err();
        assert!(err.to_string().contains("ulimit -n"), "{err}");
    }

    #[test]
    fn permission_error_says_what_to_do() {
        let e = LiveError::from_errno(Op::MapGetNextId, 0, libc::EPERM);
        assert!(matches!(e, LiveError::Permission { .. }));
        let text = e.to_string();
        for needle in [
            "BPF_MAP_GET_NEXT_ID",
            "EPERM",
            "root",
            "CAP_BPF and CAP_SYS_ADMIN",
            "kernel.unprivileged_bpf_disabled",
        ] {
            assert!(text.contains(needle), "{text}");
        }
        let a = AccessError::from(LiveError::from_errno(Op::MapLookupElem, 7, libc::EACCES));
        let text = a.to_string();
        assert!(text.starts_with("map 7: "), "{text}");
        assert!(text.contains("CAP_BPF and CAP_SYS_ADMIN"), "{text}");
    }

    #[test]
    fn syscall_errors_keep_command_and_errno() {
        let e = LiveError::from_errno(Op::MapLookupBatch, 3, libc::EFAULT);
        assert_eq!(
            e.to_string(),
            "map 3: BPF_MAP_LOOKUP_BATCH failed: EFAULT (Bad address (os error 14))"
        );
        // Through the accessor interface the errno survives whole.
        let a = AccessError::from(e);
        assert_eq!(a, AccessError::Live(e));
        assert_eq!(a.to_string(), e.to_string());
        let e = LiveError::from_errno(Op::Mmap, 3, ENOTSUPP);
        assert_eq!(
            e.to_string(),
            "map 3: mmap failed: ENOTSUPP (not supported)"
        );
        let e = LiveError::from_errno(Op::Mmap, 0, 4000);
        assert_eq!(e.to_string(), "mmap failed: errno 4000");
        assert!(AccessError::from(e).to_string().contains("mmap failed"));
    }

    #[test]
    fn map_info_keeps_every_field_and_no_address() {
        let mut u = BpfMapInfo {
            r#type: MapType::ARENA.0,
            id: 9,
            key_size: 1,
            value_size: 2,
            max_entries: 3,
            map_flags: 4,
            btf_vmlinux_value_type_id: 5,
            btf_id: 6,
            btf_key_type_id: 7,
            btf_value_type_id: 8,
            map_extra: 1 << 44,
            ..BpfMapInfo::default()
        };
        u.name[..5].copy_from_slice(b"arena");
        let m = map_info_from_uapi(&u);
        assert_eq!((m.id, m.map_type, m.name()), (9, MapType::ARENA, "arena"));
        assert_eq!(
            (m.key_size, m.value_size, m.max_entries, m.map_flags),
            (1, 2, 3, 4)
        );
        assert_eq!(
            (
                m.btf_id,
                m.btf_key_type_id,
                m.btf_value_type_id,
                m.btf_vmlinux_value_type_id
            ),
            (6, 7, 8, 5)
        );
        assert_eq!((m.map_extra, m.kva), (1 << 44, Kva(0)));
    }
}
