//! A big hash map on the host kernel through `bpf(2)`, for the live benches
//! (`benches/live_hash.rs`) and the live comparison with bpftool
//! (`bpfmem-bench-map`, run by `benches/compare/run.sh`).

use std::ffi::{c_void, CString};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use bpfmem::core::uapi::{
    BatchAttr, BpfMapInfo, InfoByFdAttr, MapCreateAttr, MapType, BPF_MAP_CREATE,
    BPF_MAP_UPDATE_BATCH, BPF_OBJ_GET_INFO_BY_FD, BPF_OBJ_PIN,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `bpf(cmd, attr, sizeof(*attr))`.
///
/// # Safety
/// `T` must be a `bpf_attr` arm laid out as the kernel's (`#[repr(C)]`, no
/// padding), and every user address in `attr` valid for what `cmd` does with it.
unsafe fn sys_bpf<T: IntoBytes>(cmd: u32, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live exclusive `T` of the size passed; the caller
    // vouches for its layout and the addresses inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            std::ptr::from_mut(attr).cast::<c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The `BPF_OBJ_PIN` arm of `union bpf_attr` (include/uapi/linux/bpf.h).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// A full `BPF_MAP_TYPE_HASH` of `entries` u64 -> u64 elements (key `i`,
/// value `!i`), named `name`, filled with `BPF_MAP_UPDATE_BATCH`; its
/// descriptor and id.
pub fn u64_hash(name: &str, entries: u32) -> io::Result<(OwnedFd, u32)> {
    let mut create = MapCreateAttr {
        map_type: MapType::HASH.0,
        key_size: 8,
        value_size: 8,
        max_entries: entries,
        ..MapCreateAttr::default()
    };
    let n = name.len().min(create.map_name.len() - 1);
    create.map_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: the create arm holds no user addresses.
    let fd = unsafe { sys_bpf(BPF_MAP_CREATE, &mut create) }?;
    // SAFETY: a descriptor bpf(2) just created for us, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    const CHUNK: u64 = 1 << 16;
    let total = u64::from(entries);
    let mut start = 0u64;
    while start < total {
        let end = (start + CHUNK).min(total);
        let keys: Vec<u64> = (start..end).collect();
        let values: Vec<u64> = keys.iter().map(|k| !k).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: keys.len() as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the kernel reads `count` 8-byte keys and values from the two
        // vectors, which hold that many and outlive the call.
        unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }?;
        start = end;
    }
    let mut info = BpfMapInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<BpfMapInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok((fd, info.id))
}

/// Pin the map behind `fd` at `path` in a mounted bpffs, so that it outlives
/// this process (until the file is removed).
pub fn pin(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut attr = ObjPinAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    // SAFETY: `pathname` is a NUL-terminated string that outlives the call.
    unsafe { sys_bpf(BPF_OBJ_PIN, &mut attr) }?;
    Ok(())
}
