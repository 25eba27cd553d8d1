//! Raw `bpf(2)` for the integration tests: enough to create and fill maps and
//! load BTF, independent of the code under test.
#![allow(dead_code)]

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bpfmem::core::uapi::{
    BpfMapInfo, InfoByFdAttr, MapCreateAttr, MapElemAttr, MapType, BPF_BTF_LOAD, BPF_MAP_CREATE,
    BPF_MAP_UPDATE_ELEM, BPF_OBJ_GET_INFO_BY_FD, BPF_OBJ_NAME_LEN,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const PAGE: usize = 4096;

// ---------------------------------------------------------------------------
// Raw bpf(2), enough to create and fill maps, load BTF and run one program.

/// `bpf(cmd, attr, sizeof(*attr))`.
///
/// # Safety
/// Every user address in `attr` must be valid for what `cmd` does with it.
pub unsafe fn sys_bpf<T: IntoBytes + FromBytes + Immutable>(
    cmd: u32,
    attr: &mut T,
) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live exclusive `T` of the size passed; the caller
    // vouches for the addresses inside it.
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

pub fn owned(ret: libc::c_long) -> OwnedFd {
    // SAFETY: a descriptor bpf(2) just created for us.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

pub fn name16(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut n = [0u8; BPF_OBJ_NAME_LEN];
    n[..name.len()].copy_from_slice(name.as_bytes());
    n
}

/// A map this test created, with its id.
pub struct TestMap {
    pub fd: OwnedFd,
    pub id: u32,
}

pub fn map_create(attr: &MapCreateAttr) -> io::Result<TestMap> {
    let mut a = *attr;
    // SAFETY: the create arm holds no user addresses.
    let fd = owned(unsafe { sys_bpf(BPF_MAP_CREATE, &mut a) }?);
    let id = obj_map_info(&fd).id;
    Ok(TestMap { fd, id })
}

pub fn create(
    t: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> TestMap {
    map_create(&MapCreateAttr {
        map_type: t.0,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        map_name: name16(name),
        ..MapCreateAttr::default()
    })
    .unwrap_or_else(|e| panic!("creating {t} map {name}: {e}"))
}

pub fn obj_map_info(fd: &OwnedFd) -> BpfMapInfo {
    let mut info = BpfMapInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<BpfMapInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.expect("map info");
    info
}

impl TestMap {
    /// `BPF_MAP_UPDATE_ELEM`; `value` must be what the kernel reads
    /// (`round_up(value_size, 8)` per possible CPU for per-CPU maps).
    pub fn update(&self, key: &[u8], value: &[u8]) {
        let info = obj_map_info(&self.fd);
        assert_eq!(key.len(), info.key_size as usize);
        let want = if MapType(info.r#type).is_percpu() {
            info.value_size.div_ceil(8) as usize * 8 * possible_cpus().len()
        } else {
            info.value_size as usize
        };
        assert_eq!(value.len(), want);
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: key and value hold what the kernel reads (checked above).
        unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.expect("update");
    }
}

/// `/sys/devices/system/cpu/possible`, parsed here independently.
pub fn possible_cpus() -> Vec<u32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap());
    }
    cpus
}

/// The `BPF_BTF_LOAD` arm of `union bpf_attr` (include/uapi/linux/bpf.h).
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BtfLoadAttr {
    pub btf: u64,
    pub btf_log_buf: u64,
    pub btf_size: u32,
    pub btf_log_size: u32,
    pub btf_log_level: u32,
    pub btf_log_true_size: u32,
}

pub fn btf_load(blob: &[u8]) -> OwnedFd {
    let mut attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        btf_size: blob.len() as u32,
        ..BtfLoadAttr::default()
    };
    // SAFETY: the kernel reads `btf_size` bytes at `btf`, which is `blob`.
    owned(unsafe { sys_bpf(BPF_BTF_LOAD, &mut attr) }.expect("BTF load"))
}

/// Raw BTF with one type, id 1: `int` (4 bytes, signed).
pub fn int_btf() -> Vec<u8> {
    let strings = b"\0int\0";
    let mut types = Vec::new();
    for v in [1u32, 1 << 24, 4, (1 << 24) | 32] {
        types.extend_from_slice(&v.to_le_bytes());
    }
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9fu16.to_le_bytes());
    blob.extend_from_slice(&[1, 0]);
    for v in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(strings);
    blob
}
