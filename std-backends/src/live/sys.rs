//! Raw `bpf(2)`, `mmap(2)`, `mincore(2)` and `process_vm_readv(2)`: every
//! `unsafe` block of the live backend is in this file.
//!
//! Buffer sizes handed to the kernel come from the map's own `bpf_map_info`
//! (through [`Shape`]), computed the way `bpf_map_value_size()`
//! (kernel/bpf/syscall.c) computes what the kernel copies, and every wrapper
//! checks the caller's slices against them before the call.

use std::ffi::c_void;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use bpfmem_core::uapi::{
    BatchAttr, BpfBtfInfo, BpfMapInfo, BpfProgInfo, GetIdAttr, InfoByFdAttr, MapElemAttr,
    BPF_BTF_GET_FD_BY_ID, BPF_F_RDONLY, BPF_MAP_GET_FD_BY_ID, BPF_MAP_GET_NEXT_ID,
    BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_BATCH, BPF_MAP_LOOKUP_ELEM, BPF_OBJ_GET_INFO_BY_FD,
    BPF_PROG_GET_FD_BY_ID,
};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::entries::{BatchOut, ElemOps, Shape};

/// An `errno` value.
pub(crate) type Errno = i32;

/// `ENOTSUPP` (include/linux/errno.h): kernel-internal, yet `bpf(2)` returns
/// it, e.g. for a batch command the map type lacks (`BPF_DO_BATCH`,
/// kernel/bpf/syscall.c).
pub(crate) const ENOTSUPP: Errno = 524;

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `bpf(cmd, attr, sizeof(*attr))`.
///
/// # Safety
/// Every user address inside `attr` must point to memory valid for the reads
/// and writes `cmd` makes through it, at the sizes the kernel computes for the
/// object involved.
unsafe fn sys_bpf<T: IntoBytes + FromBytes + Immutable>(
    cmd: u32,
    attr: &mut T,
) -> Result<libc::c_long, Errno> {
    let size = libc::c_uint::try_from(size_of::<T>()).map_err(|_| libc::E2BIG)?;
    // SAFETY: `attr` is a live, exclusively borrowed `T` of `size` bytes with no
    // padding (`IntoBytes`), and any bytes the kernel writes back are a valid
    // `T` (`FromBytes`); the caller vouches for the addresses inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            std::ptr::from_mut(attr).cast::<c_void>(),
            size,
        )
    };
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret)
    }
}

/// Own a descriptor `bpf(2)` just returned.
fn owned_fd(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = libc::c_int::try_from(ret).map_err(|_| libc::EBADF)?;
    // SAFETY: the kernel just installed `fd` for this call (and with
    // O_CLOEXEC: `bpf_map_new_fd()`, `btf_new_fd()`); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw(fd: BorrowedFd<'_>) -> u32 {
    // Open descriptors are never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

fn addr_of(b: &[u8]) -> u64 {
    b.as_ptr() as u64
}

fn addr_of_mut(b: &mut [u8]) -> u64 {
    b.as_mut_ptr() as u64
}

/// `BPF_MAP_GET_NEXT_ID` after `start`; `Ok(None)` past the last map.
pub(crate) fn map_get_next_id(start: u32) -> Result<Option<u32>, Errno> {
    let mut attr = GetIdAttr {
        start_id: start,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    match unsafe { sys_bpf(BPF_MAP_GET_NEXT_ID, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Any `BPF_*_GET_NEXT_ID` command (`cmd`: `BPF_PROG_GET_NEXT_ID`,
/// `BPF_BTF_GET_NEXT_ID`, ...) after `start`; `Ok(None)` past the last id.
pub(crate) fn obj_get_next_id(cmd: u32, start: u32) -> Result<Option<u32>, Errno> {
    let mut attr = GetIdAttr {
        start_id: start,
        ..GetIdAttr::default()
    };
    // SAFETY: the GET_NEXT_ID arm holds no user addresses.
    match unsafe { sys_bpf(cmd, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub(crate) fn prog_get_fd_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut attr = GetIdAttr {
        start_id: id,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a program (`bpf_prog_get_info_by_fd()`,
/// kernel/bpf/syscall.c): the ids of the first `map_ids.len()` maps it uses
/// go to `map_ids`; the returned `nr_map_ids` is how many it uses in all.
/// Nothing else is copied out: every other length and count is left zero.
pub(crate) fn prog_info(fd: BorrowedFd<'_>, map_ids: &mut [u32]) -> Result<BpfProgInfo, Errno> {
    let mut info = BpfProgInfo {
        nr_map_ids: u32::try_from(map_ids.len()).map_err(|_| libc::EINVAL)?,
        map_ids: if map_ids.is_empty() {
            0
        } else {
            map_ids.as_mut_ptr() as u64
        },
        ..BpfProgInfo::default()
    };
    let mut attr = InfoByFdAttr {
        bpf_fd: raw(fd),
        info_len: u32::try_from(size_of::<BpfProgInfo>()).map_err(|_| libc::EINVAL)?,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`, a live
    // `BpfProgInfo` of that size, and at most `min(nr_map_ids, used_map_cnt)`
    // `u32`s to `map_ids`, the live exclusive slice of `nr_map_ids` elements.
    // Every other buffer has a zero length or count (`xlated_prog_len`,
    // `jited_prog_len`, `nr_jited_ksyms`, `nr_jited_func_lens`,
    // `nr_func_info`, `nr_line_info`, `nr_jited_line_info`, `nr_prog_tags`),
    // so the kernel copies nothing through their addresses.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// `BPF_MAP_GET_FD_BY_ID`, read-only (`BPF_F_RDONLY`) unless `rdwr`.
pub(crate) fn map_get_fd_by_id(id: u32, rdwr: bool) -> Result<OwnedFd, Errno> {
    let mut attr = GetIdAttr {
        start_id: id,
        open_flags: if rdwr { 0 } else { BPF_F_RDONLY },
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_MAP_GET_FD_BY_ID, &mut attr) }?)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a map. Fields an older kernel does not know
/// stay zero.
pub(crate) fn map_info(fd: BorrowedFd<'_>) -> Result<BpfMapInfo, Errno> {
    let mut info = BpfMapInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: raw(fd),
        info_len: u32::try_from(size_of::<BpfMapInfo>()).map_err(|_| libc::EINVAL)?,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: `info` is a live `BpfMapInfo` of `info_len` bytes; the kernel
    // writes at most `info_len` bytes to it (`bpf_map_get_info_by_fd()`), and
    // reads no other user address because `hash` and `hash_size` are zero.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// `BPF_BTF_GET_FD_BY_ID`.
pub(crate) fn btf_get_fd_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut attr = GetIdAttr {
        start_id: id,
        ..GetIdAttr::default()
    };
    // SAFETY: this arm holds no user addresses.
    owned_fd(unsafe { sys_bpf(BPF_BTF_GET_FD_BY_ID, &mut attr) }?)
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a BTF object (`btf_get_info_by_fd()`,
/// kernel/bpf/btf.c): copies up to `data.len()` bytes of the raw BTF into
/// `data` and up to `name.len()` bytes of the NUL-terminated name into `name`
/// (ENOSPC if the name did not fit). The returned `btf_size` and `name_len`
/// are the full sizes. Empty slices ask for sizes only.
pub(crate) fn btf_info(
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    name: &mut [u8],
) -> Result<BpfBtfInfo, Errno> {
    let or_null = |b: &mut [u8]| if b.is_empty() { 0 } else { addr_of_mut(b) };
    let mut info = BpfBtfInfo {
        btf: or_null(data),
        btf_size: u32::try_from(data.len()).map_err(|_| libc::EINVAL)?,
        name: or_null(name),
        name_len: u32::try_from(name.len()).map_err(|_| libc::EINVAL)?,
        ..BpfBtfInfo::default()
    };
    let mut attr = InfoByFdAttr {
        bpf_fd: raw(fd),
        info_len: u32::try_from(size_of::<BpfBtfInfo>()).map_err(|_| libc::EINVAL)?,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`, a live
    // `BpfBtfInfo` of that size; at most `btf_size` bytes to `btf`, the live
    // exclusive `data` slice of that length (or nothing for address 0 and size
    // 0); at most `name_len` bytes to `name`, likewise.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// A map descriptor with the sizes its element commands copy.
#[derive(Clone, Copy)]
pub(crate) struct MapFd<'a> {
    pub fd: BorrowedFd<'a>,
    pub shape: Shape,
}

/// A map descriptor of its own (a duplicate), for a walk on another thread.
pub(crate) struct OwnedMapFd {
    pub fd: OwnedFd,
    pub shape: Shape,
}

impl OwnedMapFd {
    fn borrowed(&self) -> MapFd<'_> {
        MapFd {
            fd: self.fd.as_fd(),
            shape: self.shape,
        }
    }
}

impl ElemOps for OwnedMapFd {
    fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, Errno> {
        self.borrowed().lookup(key, value)
    }

    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno> {
        self.borrowed().next_key(key, next)
    }

    fn lookup_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: u32,
    ) -> Result<BatchOut, Errno> {
        self.borrowed()
            .lookup_batch(in_batch, out_batch, keys, values, count)
    }
}

impl MapFd<'_> {
    /// Whether `key` and `value` are the sizes the kernel reads and writes.
    fn fits(&self, key: usize, value: usize) -> bool {
        key == self.shape.key_size && value >= self.shape.value_buf
    }
}

impl ElemOps for MapFd<'_> {
    fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, Errno> {
        if !self.fits(key.len(), value.len()) {
            return Err(libc::EINVAL);
        }
        let mut attr = MapElemAttr {
            map_fd: raw(self.fd),
            key: addr_of(key),
            value: addr_of_mut(value),
            ..MapElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` bytes of key and writes
        // `bpf_map_value_size()` bytes of value (`map_lookup_elem()`); `key` is
        // exactly `key_size` long and `value` at least `value_buf`, which is
        // `bpf_map_value_size()` for this map (`Shape::new`).
        match unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno> {
        let k = self.shape.key_size;
        if next.len() != k || key.is_some_and(|key| key.len() != k) {
            return Err(libc::EINVAL);
        }
        let mut attr = MapElemAttr {
            map_fd: raw(self.fd),
            key: key.map_or(0, addr_of),
            value: addr_of_mut(next),
            ..MapElemAttr::default()
        };
        // SAFETY: the kernel reads `key_size` bytes of key (none for address
        // 0) and writes `key_size` bytes of next_key (`map_get_next_key()`);
        // both slices are exactly that long.
        match unsafe { sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => Ok(true),
            Err(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn lookup_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: u32,
    ) -> Result<BatchOut, Errno> {
        let s = &self.shape;
        let n = usize::try_from(count).map_err(|_| libc::EINVAL)?;
        let token = s.batch_token_size();
        let fits = in_batch.is_none_or(|t| t.len() >= token)
            && out_batch.len() >= token
            && n.checked_mul(s.key_size).is_some_and(|b| keys.len() >= b)
            && n.checked_mul(s.value_buf)
                .is_some_and(|b| values.len() >= b);
        if !fits {
            return Err(libc::EINVAL);
        }
        let mut attr = BatchAttr {
            in_batch: in_batch.map_or(0, addr_of),
            out_batch: addr_of_mut(out_batch),
            keys: addr_of_mut(keys),
            values: addr_of_mut(values),
            count,
            map_fd: raw(self.fd),
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: the kernel reads a token from `in_batch` and writes one to
        // `out_batch` (a `u32` bucket for hash tables in
        // `__htab_map_lookup_and_delete_batch()`, a `key_size` key in
        // `generic_map_lookup_batch()`): both hold `batch_token_size()`, the
        // larger of the two. It writes at most `count` keys of `key_size`
        // bytes and `count` values of `bpf_map_value_size()` bytes, and the
        // slices hold that much.
        let res = unsafe { sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) };
        // The kernel writes the number of elements copied back into the
        // attribute even when it fails with ENOENT (the end) or ENOSPC.
        let filled = attr.count;
        if filled > count {
            return Err(libc::EOVERFLOW);
        }
        match res {
            Ok(_) => Ok(BatchOut {
                count: filled,
                last: false,
            }),
            Err(libc::ENOENT) => Ok(BatchOut {
                count: filled,
                last: true,
            }),
            Err(e) => Err(e),
        }
    }
}

/// The system page size, which arenas are made of.
pub(crate) fn page_size() -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(ps).ok()
}

/// A read-only shared mapping this process created; unmapped on drop.
/// Nothing ever dereferences it: it is only read through
/// [`read_own_memory`], which cannot fault in this process.
pub(crate) struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    /// `mmap(addr, len, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0)`.
    /// EEXIST when anything already occupies part of the range.
    pub fn map_fixed_noreplace(fd: BorrowedFd<'_>, addr: u64, len: u64) -> Result<Self, Errno> {
        let addr = usize::try_from(addr).map_err(|_| libc::EINVAL)?;
        let len = usize::try_from(len).map_err(|_| libc::EINVAL)?;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping (the
        // kernel fails with EEXIST instead), so no memory any Rust object
        // lives in is affected; the new range is ours alone.
        let p = unsafe {
            libc::mmap(
                addr as *mut c_void,
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_errno());
        }
        let mapping = Self {
            addr: p as usize,
            len,
        };
        if mapping.addr != addr {
            // Before v4.17 the flag is unknown and `addr` only a hint; dropping
            // `mapping` unmaps what was made elsewhere.
            return Err(libc::EEXIST);
        }
        Ok(mapping)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr..addr + len` is the mapping `map_fixed_noreplace` made,
        // unmapped nowhere else, and no reference into it exists (it is only
        // read through `process_vm_readv`).
        unsafe { libc::munmap(self.addr as *mut c_void, self.len) };
    }
}

/// `mincore(addr, len, vec)`: one byte per page, bit 0 set when the page is
/// resident in this process's page tables (or page cache).
pub(crate) fn mincore(addr: u64, len: u64, vec: &mut [u8]) -> Result<(), Errno> {
    let ps = page_size().ok_or(libc::EINVAL)?;
    let pages = len.div_ceil(ps);
    if u64::try_from(vec.len()).map_or(true, |v| v < pages) {
        return Err(libc::EINVAL);
    }
    let addr = usize::try_from(addr).map_err(|_| libc::EINVAL)?;
    let len = usize::try_from(len).map_err(|_| libc::EINVAL)?;
    // SAFETY: mincore reads no memory at `addr` (it inspects page tables and
    // fails with ENOMEM for unmapped ranges) and writes one byte per page of
    // `len` into `vec`, which holds at least that many.
    let ret = unsafe { libc::mincore(addr as *mut c_void, len, vec.as_mut_ptr()) };
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// Copy `buf.len()` bytes at user address `addr` of this process into `buf`
/// with `process_vm_readv(2)` on ourselves. The kernel reads through
/// `get_user_pages`, so an address it cannot fault in gives EFAULT here
/// instead of a SIGSEGV in this process. Returns the bytes copied.
pub(crate) fn read_own_memory(addr: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let remote = libc::iovec {
        iov_base: usize::try_from(addr).map_err(|_| libc::EINVAL)? as *mut c_void,
        iov_len: buf.len(),
    };
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most `local.iov_len` bytes into `buf`, a
    // live exclusive slice of that length. The remote range is only read by
    // the kernel through its own page walk (`process_vm_rw_core()`, mm/
    // process_vm_access.c), never through a Rust reference, so it may be
    // unmapped or changing underneath without undefined behaviour.
    let ret = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if ret < 0 {
        Err(last_errno())
    } else {
        usize::try_from(ret).map_err(|_| libc::EOVERFLOW)
    }
}
