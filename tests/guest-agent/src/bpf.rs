//! Raw `bpf(2)` and the arena mapping: the agent's only unsafe code besides the
//! debugcon port writes.

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bpfmem_core::uapi::{
    percpu_value_size, BpfBtfInfo, BpfMapInfo, BpfProgInfo, GetIdAttr, InfoByFdAttr, MapCreateAttr,
    MapElemAttr, MapType, BPF_BTF_GET_FD_BY_ID, BPF_BTF_LOAD, BPF_MAP_CREATE, BPF_MAP_DELETE_ELEM,
    BPF_MAP_GET_FD_BY_ID, BPF_MAP_GET_NEXT_ID, BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_ELEM,
    BPF_MAP_UPDATE_ELEM, BPF_OBJ_GET_INFO_BY_FD, BPF_OBJ_NAME_LEN, BPF_PROG_GET_FD_BY_ID,
    BPF_PROG_LOAD,
};
use bpfmem_guest_agent::plan::PAGE_SIZE;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `bpf(cmd, attr, sizeof(*attr))`.
///
/// # Safety
/// Every user address inside `attr` must point to memory that is valid for the
/// reads and writes `cmd` makes through it (sizes as the kernel computes them
/// for the map involved).
unsafe fn sys_bpf<T: IntoBytes + Immutable>(cmd: u32, attr: &mut T) -> io::Result<libc::c_long> {
    let size = libc::c_uint::try_from(size_of::<T>())
        .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    // SAFETY: `attr` is a live, exclusively borrowed `T` of `size` bytes, which is
    // all the kernel reads or writes of it; the caller vouches for the addresses
    // inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            std::ptr::from_mut(attr).cast::<c_void>(),
            size,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wrap a descriptor `bpf(2)` just returned.
fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just created `fd` for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw_fd_u32(fd: &OwnedFd) -> u32 {
    // Descriptors are never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// The number of value bytes a syscall lookup or update of this map copies
/// (`bpf_map_value_size()`, kernel/bpf/syscall.c): `round_up(value_size, 8)`
/// per possible CPU for per-CPU maps, a `u32` id or fd for fd-holding maps,
/// else `value_size`.
pub fn syscall_value_size(info: &BpfMapInfo, nr_cpus: u32) -> Option<usize> {
    let size = match MapType(info.r#type) {
        t if t.is_percpu() => percpu_value_size(info.value_size)?.checked_mul(nr_cpus)?,
        MapType::PROG_ARRAY
        | MapType::PERF_EVENT_ARRAY
        | MapType::CGROUP_ARRAY
        | MapType::ARRAY_OF_MAPS
        | MapType::HASH_OF_MAPS => 4,
        _ => info.value_size,
    };
    usize::try_from(size).ok()
}

/// A map descriptor with the buffer sizes its element commands need.
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_buf: usize,
}

impl Map {
    /// `info` must describe the map behind `fd`; `nr_cpus` is the number of
    /// possible CPUs (`num_possible_cpus()` in the kernel).
    pub fn new(fd: OwnedFd, info: &BpfMapInfo, nr_cpus: u32) -> io::Result<Self> {
        let key_size = usize::try_from(info.key_size).map_err(|_| einval())?;
        let value_buf = syscall_value_size(info, nr_cpus).ok_or_else(einval)?;
        Ok(Self {
            fd,
            key_size,
            value_buf,
        })
    }

    /// The descriptor alone.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Key size in bytes.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// Value bytes [`Map::lookup`] and [`Map::update`] copy; their buffers must
    /// be at least this long.
    pub fn value_buf(&self) -> usize {
        self.value_buf
    }

    /// `BPF_MAP_UPDATE_ELEM`.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
        if key.len() != self.key_size || value.len() < self.value_buf {
            return Err(einval());
        }
        let mut attr = MapElemAttr {
            map_fd: raw_fd_u32(&self.fd),
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..MapElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` bytes of key and `value_buf` bytes
        // of value; the slices are at least that long.
        unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
    }

    /// `BPF_MAP_DELETE_ELEM`; `Ok(false)` if the key was not there.
    pub fn delete(&self, key: &[u8]) -> io::Result<bool> {
        if key.len() != self.key_size {
            return Err(einval());
        }
        let mut attr = MapElemAttr {
            map_fd: raw_fd_u32(&self.fd),
            key: key.as_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` bytes of key, which `key` holds.
        match unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `BPF_MAP_LOOKUP_ELEM`; `Ok(false)` if the key is not there.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
        if key.len() != self.key_size || value.len() < self.value_buf {
            return Err(einval());
        }
        let mut attr = MapElemAttr {
            map_fd: raw_fd_u32(&self.fd),
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` bytes of key and writes
        // `value_buf` bytes of value (`bpf_map_value_size()`); the slices are
        // at least that long.
        match unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY` after `key` (`None`: the first key); `Ok(false)`
    /// at the end.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
        if next.len() != self.key_size || key.is_some_and(|k| k.len() != self.key_size) {
            return Err(einval());
        }
        let mut attr = MapElemAttr {
            map_fd: raw_fd_u32(&self.fd),
            key: key.map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` bytes of key (or none for 0) and
        // writes `key_size` bytes of next_key; both slices are that long.
        match unsafe { sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for Map {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// `BPF_MAP_CREATE`.
pub fn map_create(attr: &MapCreateAttr) -> io::Result<OwnedFd> {
    let mut attr = *attr;
    // SAFETY: the create arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }?)
}

/// `BPF_MAP_GET_NEXT_ID` after `start`; `Ok(None)` past the last map.
pub fn map_get_next_id(start: u32) -> io::Result<Option<u32>> {
    let mut attr = GetIdAttr {
        start_id: start,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    match unsafe { sys_bpf(BPF_MAP_GET_NEXT_ID, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_GET_FD_BY_ID`.
pub fn map_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        start_id: id,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_MAP_GET_FD_BY_ID, &mut attr) }?)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a map. Fields a kernel does not know stay zero.
pub fn map_info(fd: &impl AsRawFd) -> io::Result<BpfMapInfo> {
    let mut info = BpfMapInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).map_err(|_| einval())?,
        info_len: u32::try_from(size_of::<BpfMapInfo>()).map_err(|_| einval())?,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: `info` is a live `BpfMapInfo` of `info_len` bytes, and the kernel
    // writes at most `info_len` bytes to it.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// The `BPF_BTF_LOAD` arm of `union bpf_attr`, through `btf_log_true_size`
/// (v6.4+, output only; older kernels see a zero tail and accept it). Not in
/// `bpfmem_core::uapi`, which only reads.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct BtfLoadAttr {
    /// User address of the raw BTF.
    btf: u64,
    /// User address of the log buffer.
    btf_log_buf: u64,
    /// Bytes of raw BTF.
    btf_size: u32,
    /// Bytes of log buffer.
    btf_log_size: u32,
    /// 0: no log; 1: log.
    btf_log_level: u32,
    /// Output: the log size the kernel wanted (v6.4+).
    btf_log_true_size: u32,
}

/// Why `BPF_BTF_LOAD` or `BPF_PROG_LOAD` failed: the error and the kernel's log.
pub struct BtfLoadError {
    /// The error of the first, unlogged attempt.
    pub error: io::Error,
    /// The (BTF) verifier's log, trimmed.
    pub log: String,
}

/// The log buffer of a failed `BPF_BTF_LOAD`'s second try. The kernel wants
/// at least 128 bytes (`bpf_vlog_init()`).
const BTF_LOG_SIZE: usize = 1 << 16;

fn btf_load_once(blob: &[u8], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let (log_buf, log_size, log_level) = match log {
        Some(buf) => (
            buf.as_mut_ptr() as u64,
            u32::try_from(buf.len()).map_err(|_| einval())?,
            1,
        ),
        None => (0, 0, 0),
    };
    let mut attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        btf_log_buf: log_buf,
        btf_size: u32::try_from(blob.len()).map_err(|_| einval())?,
        btf_log_size: log_size,
        btf_log_level: log_level,
        btf_log_true_size: 0,
    };
    // SAFETY: the kernel reads `btf_size` bytes at `btf`, which is `blob`, and
    // writes at most `btf_log_size` bytes at `btf_log_buf`, the live exclusive
    // `log` slice of that length (or nothing, when both are 0).
    owned_fd(unsafe { sys_bpf(BPF_BTF_LOAD, &mut attr) }?)
}

/// `BPF_BTF_LOAD` of a raw BTF blob. On failure, loads again with a log (as
/// libbpf does) and returns the kernel's reasons.
pub fn btf_load(blob: &[u8]) -> Result<OwnedFd, BtfLoadError> {
    let error = match btf_load_once(blob, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; BTF_LOG_SIZE];
    // The second try's own error may be about the log (ENOSPC): keep the first.
    if let Ok(fd) = btf_load_once(blob, Some(&mut log)) {
        // Not expected: the same blob went through this time.
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end])
        .trim()
        .replace('\n', " | ");
    Err(BtfLoadError { error, log })
}

/// `BPF_BTF_GET_FD_BY_ID`.
pub fn btf_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        start_id: id,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_BTF_GET_FD_BY_ID, &mut attr) }?)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a BTF object, copying up to `data.len()` bytes
/// of its raw BTF into `data` and its NUL-terminated name into `name`
/// (`btf_get_info_by_fd()`, kernel/bpf/btf.c). The returned `btf_size` is the
/// whole size, which may exceed `data.len()`; `name_len` is the name's length.
/// A `name` shorter than the name gives ENOSPC.
pub fn btf_info(fd: &impl AsRawFd, data: &mut [u8], name: &mut [u8]) -> io::Result<BpfBtfInfo> {
    let addr = |b: &mut [u8]| {
        if b.is_empty() {
            0
        } else {
            b.as_mut_ptr() as u64
        }
    };
    let mut info = BpfBtfInfo {
        btf: addr(data),
        btf_size: u32::try_from(data.len()).map_err(|_| einval())?,
        name: addr(name),
        name_len: u32::try_from(name.len()).map_err(|_| einval())?,
        ..BpfBtfInfo::default()
    };
    let mut attr = InfoByFdAttr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).map_err(|_| einval())?,
        info_len: u32::try_from(size_of::<BpfBtfInfo>()).map_err(|_| einval())?,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`, a live
    // `BpfBtfInfo` of that size; at most `btf_size` bytes to `btf`, the live
    // exclusive `data` slice of that length (address 0 when empty, then nothing
    // is copied); at most `name_len` bytes to `name`, likewise.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// Any `BPF_*_GET_NEXT_ID` (`cmd`) after `start`; `Ok(None)` past the last id.
pub fn obj_get_next_id(cmd: u32, start: u32) -> io::Result<Option<u32>> {
    let mut attr = GetIdAttr {
        start_id: start,
        ..GetIdAttr::default()
    };
    // SAFETY: the GET_NEXT_ID arm holds no user addresses.
    match unsafe { sys_bpf(cmd, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        start_id: id,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a program: the ids of up to `map_ids.len()`
/// maps it uses land in `map_ids`, and `nr_map_ids` says how many it uses.
pub fn prog_info(fd: &impl AsRawFd, map_ids: &mut [u32]) -> io::Result<BpfProgInfo> {
    let mut info = BpfProgInfo {
        nr_map_ids: u32::try_from(map_ids.len()).map_err(|_| einval())?,
        map_ids: if map_ids.is_empty() {
            0
        } else {
            map_ids.as_mut_ptr() as u64
        },
        ..BpfProgInfo::default()
    };
    let mut attr = InfoByFdAttr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).map_err(|_| einval())?,
        info_len: u32::try_from(size_of::<BpfProgInfo>()).map_err(|_| einval())?,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`, a live
    // `BpfProgInfo` of that size, and at most `nr_map_ids` `u32`s to
    // `map_ids`, the live exclusive slice of that length; every other buffer
    // has a zero length or count, so nothing is copied through it.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// `struct bpf_insn` (include/uapi/linux/bpf.h): `regs` is `dst_reg` in the
/// low nibble, `src_reg` in the high one (little-endian bitfields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u8,
    /// `dst_reg | src_reg << 4`.
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl BpfInsn {
    /// One instruction.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (dst & 0xf) | (src << 4),
            off,
            imm,
        }
    }
}

/// The `BPF_PROG_LOAD` arm of `union bpf_attr`, through
/// `expected_attach_type` (v4.17); later fields stay zero, which every kernel
/// accepts.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The verifier log of a failed `BPF_PROG_LOAD`'s second try.
const PROG_LOG_SIZE: usize = 1 << 16;

fn prog_load_once(
    prog_type: u32,
    insns: &[BpfInsn],
    name: &str,
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"GPL\0";
    let mut prog_name = [0u8; BPF_OBJ_NAME_LEN];
    let n = name.len().min(BPF_OBJ_NAME_LEN - 1);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let (log_buf, log_size, log_level) = match log {
        Some(buf) => (
            buf.as_mut_ptr() as u64,
            u32::try_from(buf.len()).map_err(|_| einval())?,
            1,
        ),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| einval())?,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        prog_name,
        ..ProgLoadAttr::default()
    };
    // SAFETY: the kernel reads `insn_cnt` instructions of 8 bytes at `insns`,
    // which is `insns`; the NUL-terminated string at `license`; and writes at
    // most `log_size` bytes at `log_buf`, the live exclusive `log` slice of
    // that length (or nothing when both are 0).
    owned_fd(unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) }?)
}

/// `BPF_PROG_LOAD` of `insns` (GPL). On failure, loads again with a verifier
/// log and returns the kernel's reasons.
pub fn prog_load(prog_type: u32, insns: &[BpfInsn], name: &str) -> Result<OwnedFd, BtfLoadError> {
    let error = match prog_load_once(prog_type, insns, name, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; PROG_LOG_SIZE];
    if let Ok(fd) = prog_load_once(prog_type, insns, name, Some(&mut log)) {
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end])
        .trim()
        .replace('\n', " | ");
    Err(BtfLoadError { error, log })
}

/// An arena's user mapping. Never unmapped: the maps live as long as the agent.
pub struct ArenaMapping {
    base: *mut u8,
    pages: usize,
}

impl ArenaMapping {
    /// `mmap(addr, pages * 4096, PROT_READ | PROT_WRITE, MAP_SHARED |
    /// MAP_FIXED_NOREPLACE, fd, 0)`: the arena wants exactly its `map_extra`
    /// address and full length (`arena_get_unmapped_area()`, kernel/bpf/arena.c).
    /// `MAP_FIXED_NOREPLACE` fails with EEXIST rather than replace a mapping.
    pub fn map(fd: &impl AsRawFd, addr: u64, pages: u32) -> io::Result<Self> {
        let pages = usize::try_from(pages).map_err(|_| einval())?;
        let len = pages.checked_mul(page_size()).ok_or_else(einval)?;
        let addr = usize::try_from(addr).map_err(|_| einval())?;
        // SAFETY: a fixed mapping at an address nothing else uses (NOREPLACE
        // guarantees it); no Rust object refers to that range yet.
        let p = unsafe {
            libc::mmap(
                addr as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        if p as usize != addr {
            // Pre-4.17 kernels ignore NOREPLACE and treat addr as a hint.
            // SAFETY: `p..p+len` is the mapping just created, unused by anything.
            unsafe { libc::munmap(p, len) };
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        Ok(Self {
            base: p.cast(),
            pages,
        })
    }

    fn page_ptr(&self, page: u32) -> Option<*mut u8> {
        let page = usize::try_from(page).ok().filter(|&p| p < self.pages)?;
        // In bounds: `page < pages`, and `pages * page_size()` did not overflow.
        Some(self.base.wrapping_add(page * page_size()))
    }

    /// Copy `data` (at most a page) to the start of page `page`. The first
    /// touch faults the page in (`arena_vm_fault()`).
    pub fn write_page(&self, page: u32, data: &[u8]) -> io::Result<()> {
        let dst = self.page_ptr(page).ok_or_else(einval)?;
        if data.len() > page_size() {
            return Err(einval());
        }
        // SAFETY: `dst..dst+data.len()` lies inside our live, writable mapping,
        // and no Rust reference to it exists.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// A copy of page `page`. Reading an untouched page would fault it in; the
    /// caller only reads pages it wrote.
    pub fn read_page(&self, page: u32) -> Option<Vec<u8>> {
        let src = self.page_ptr(page)?;
        let mut out = vec![0u8; page_size()];
        // SAFETY: `src..src+page_size()` lies inside our live, readable mapping.
        unsafe { std::ptr::copy_nonoverlapping(src.cast_const(), out.as_mut_ptr(), out.len()) };
        Some(out)
    }
}

/// The page size of the test bed (x86-64).
fn page_size() -> usize {
    PAGE_SIZE as usize
}
