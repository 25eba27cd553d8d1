//! Dumping a 1M-entry u64 -> u64 HASH from the host kernel through
//! [`LiveBpf`]: `BPF_MAP_LOOKUP_BATCH` against the forced key-by-key walk
//! (`BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`). Needs root; without it
//! the bench says why and measures nothing.

use std::ffi::c_void;
use std::hint::black_box;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bpfmem::core::uapi::{
    BatchAttr, BpfMapInfo, InfoByFdAttr, MapCreateAttr, MapType, BPF_MAP_CREATE,
    BPF_MAP_UPDATE_BATCH, BPF_OBJ_GET_INFO_BY_FD,
};
use bpfmem::{BpfMapAccessor, Entry, LiveBpf};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ENTRIES: u32 = 1 << 20;

/// `bpf(cmd, attr, sizeof(*attr))`.
///
/// # Safety
/// `T` must be one of the `bpfmem_core::uapi` attribute structs (no padding,
/// any bytes valid), and every user address in `attr` valid for what `cmd`
/// does with it.
unsafe fn sys_bpf<T>(cmd: u32, attr: &mut T) -> std::io::Result<libc::c_long> {
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
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A full 1M-entry u64 -> u64 hash (key i, value !i) and its id.
fn big_hash() -> std::io::Result<(OwnedFd, u32)> {
    let mut create = MapCreateAttr {
        map_type: MapType::HASH.0,
        key_size: 8,
        value_size: 8,
        max_entries: ENTRIES,
        ..MapCreateAttr::default()
    };
    create.map_name[..9].copy_from_slice(b"live_1m_h");
    // SAFETY: the create arm holds no user addresses.
    let fd = unsafe { sys_bpf(BPF_MAP_CREATE, &mut create) }?;
    // SAFETY: a descriptor bpf(2) just created for us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    const CHUNK: u64 = 1 << 16;
    for start in (0..u64::from(ENTRIES)).step_by(CHUNK as usize) {
        let keys: Vec<u64> = (start..start + CHUNK).collect();
        let values: Vec<u64> = keys.iter().map(|k| !k).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the kernel reads `count` 8-byte keys and values from the two
        // vectors, which hold that many.
        unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }?;
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

fn count_entries(live: &LiveBpf, id: u32, e: &mut Entry) -> u64 {
    let mut it = live.entries(id).expect("entries");
    let mut n = 0u64;
    while it.next_into(e).expect("entry") {
        black_box(&e.value);
        n += 1;
    }
    n
}

fn live_hash(c: &mut Criterion) {
    let (_fd, id) = match big_hash() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("live_hash: cannot create the 1M-entry hash ({e}); needs root");
            return;
        }
    };
    let mut live = match LiveBpf::open() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("live_hash: {e}");
            return;
        }
    };
    let mut e = Entry::default();
    assert_eq!(count_entries(&live, id, &mut e), u64::from(ENTRIES));

    let mut g = c.benchmark_group("live hash 1M u64->u64");
    g.throughput(Throughput::Elements(ENTRIES.into()));
    g.sample_size(10);
    g.bench_function("entries: BPF_MAP_LOOKUP_BATCH", |b| {
        b.iter(|| assert_eq!(count_entries(&live, id, &mut e), u64::from(ENTRIES)))
    });
    live.set_batch(false);
    // About 2 s per walk.
    g.measurement_time(std::time::Duration::from_secs(25));
    g.bench_function("entries: GET_NEXT_KEY + LOOKUP_ELEM", |b| {
        b.iter(|| assert_eq!(count_entries(&live, id, &mut e), u64::from(ENTRIES)))
    });
    g.finish();
}

criterion_group!(benches, live_hash);
criterion_main!(benches);
