//! The live `bpf(2)` backend against the host kernel. Each test creates its
//! own maps with raw `bpf(2)` (below, independent of the code under test),
//! fills them with known contents and reads them back through [`LiveBpf`].
//! Other tests' maps exist at the same time: maps are always found by id.
//!
//! Needs root (or CAP_BPF + CAP_SYS_ADMIN). Under `CI=true` (or
//! `BPFMEM_REQUIRE_REAL=1`) a kernel or privilege that does not allow it
//! fails the tests; elsewhere they print `SKIPPED` and pass.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::{RwLock, RwLockReadGuard};

use bpfmem::core::bpf_prog::ProgType;
use bpfmem::core::uapi::{
    BpfBtfInfo, BpfProgInfo, InfoByFdAttr, MapCreateAttr, MapType, BPF_F_MMAPABLE,
    BPF_F_NO_PREALLOC, BPF_F_SEGV_ON_FAULT, BPF_OBJ_GET_INFO_BY_FD, BPF_OBJ_NAME_LEN,
    BPF_PROG_LOAD, BPF_PROG_TEST_RUN,
};
use bpfmem::objects::{BpfObjectAccessor, BtfInfo};
use bpfmem::{
    AccessError, ArenaPageData, ArenaPresence, BpfMapAccessor, Entry, LiveBpf, LiveError,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

mod common;
use common::*;

/// The `BPF_PROG_LOAD` arm, through `expected_attach_type`.
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
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

/// The `test` arm (`BPF_PROG_TEST_RUN`).
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct bpf_insn`.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

const BPF_PROG_TYPE_SYSCALL: u32 = 31;
const BPF_F_SLEEPABLE: u32 = 1 << 4;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// The vmlinux BTF id of kfunc `name`.
fn kfunc_id(name: &str) -> Result<u32, String> {
    let btf = btf_rs::Btf::from_file("/sys/kernel/btf/vmlinux").map_err(|e| e.to_string())?;
    let ids = btf.resolve_ids_by_name(name).map_err(|e| e.to_string())?;
    ids.into_iter()
        .find(|&id| matches!(btf.resolve_type_by_id(id), Ok(btf_rs::Type::Func(_))))
        .ok_or_else(|| format!("no FUNC {name} in vmlinux BTF"))
}

/// Allocate `pages` arena pages at `addr` the way a BPF program does: a
/// sleepable syscall program calling `bpf_arena_alloc_pages(arena, addr,
/// pages, NUMA_NO_NODE, 0)`, run once. `Ok(true)` if the kfunc returned a
/// page (it returns NULL when the range is not free).
fn bpf_arena_alloc_pages(arena: &TestMap, addr: u64, pages: i32) -> Result<bool, String> {
    let kfunc = kfunc_id("bpf_arena_alloc_pages")? as i32;
    let prog = [
        // r1 = arena (ld_imm64 with BPF_PSEUDO_MAP_FD)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, arena.fd.as_raw_fd()),
        insn(0, 0, 0, 0, 0),
        // r2 = addr
        insn(0x18, 2, 0, 0, addr as u32 as i32),
        insn(0, 0, 0, 0, (addr >> 32) as u32 as i32),
        insn(0xb7, 3, 0, 0, pages), // r3 = page_cnt
        insn(0xb7, 4, 0, 0, -1),    // r4 = NUMA_NO_NODE
        insn(0xb7, 5, 0, 0, 0),     // r5 = flags
        insn(0x85, 0, BPF_PSEUDO_KFUNC_CALL, 0, kfunc),
        insn(0x55, 0, 0, 2, 0), // if r0 != 0 goto +2
        insn(0xb7, 0, 0, 0, 0),
        insn(0x95, 0, 0, 0, 0),
        insn(0xb7, 0, 0, 0, 1),
        insn(0x95, 0, 0, 0, 0),
    ];
    let license = b"GPL\0";
    let mut log = vec![0u8; 1 << 16];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SYSCALL,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_flags: BPF_F_SLEEPABLE,
        prog_name: name16("arena_alloc"),
        ..ProgLoadAttr::default()
    };
    // SAFETY: the kernel reads `insn_cnt` instructions at `insns`, the
    // NUL-terminated license, and writes at most `log_size` bytes of log.
    let prog_fd = match unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) } {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            return Err(format!(
                "loading the arena program: {e}: {}",
                String::from_utf8_lossy(&log[..end]).trim()
            ));
        }
    };
    let mut run = TestRunAttr {
        prog_fd: prog_fd.as_raw_fd() as u32,
        ..TestRunAttr::default()
    };
    // SAFETY: no user addresses: no data, no context.
    unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut run) }.map_err(|e| format!("running it: {e}"))?;
    Ok(run.retval == 1)
}

/// This test's own read-write mapping of an arena at its `map_extra`.
struct ArenaMap {
    addr: usize,
    len: usize,
}

impl ArenaMap {
    fn map(arena: &TestMap, addr: u64, pages: usize) -> ArenaMap {
        let len = pages * PAGE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping; the range is
        // only touched through `write` below.
        let p = unsafe {
            libc::mmap(
                addr as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                arena.fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "{}", io::Error::last_os_error());
        assert_eq!(p as u64, addr);
        ArenaMap {
            addr: p as usize,
            len,
        }
    }

    /// Fill page `page` with `data` repeated (faults it in: allocates it
    /// unless it exists).
    fn write(&self, page: usize, data: &[u8]) {
        assert!((page + 1) * PAGE <= self.len);
        for (i, b) in page_bytes(data).iter().enumerate() {
            // SAFETY: inside our live writable mapping; no references exist.
            unsafe { ((self.addr + page * PAGE + i) as *mut u8).write_volatile(*b) };
        }
    }

    /// Whether `page` is resident in this process (mincore).
    fn resident(&self, page: usize) -> bool {
        let mut v = [0u8; 1];
        // SAFETY: mincore writes one byte for one page.
        let r = unsafe {
            libc::mincore(
                (self.addr + page * PAGE) as *mut c_void,
                PAGE,
                v.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        v[0] & 1 != 0
    }
}

impl Drop for ArenaMap {
    fn drop(&mut self) {
        // SAFETY: our mapping, with no references into it.
        unsafe { libc::munmap(self.addr as *mut c_void, self.len) };
    }
}

fn page_bytes(seed: &[u8]) -> Vec<u8> {
    seed.iter().copied().cycle().take(PAGE).collect()
}

// ---------------------------------------------------------------------------
// Test gating and the descriptor-table lock.

/// Tests that open descriptors hold it shared; the leak test holds it alone,
/// so its counts of /proc/self/fd are not disturbed.
static FDS: RwLock<()> = RwLock::new(());

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("BPFMEM_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

fn skip_or_fail(test: &str, why: &str) {
    if required() {
        panic!("{test}: {why} (required under CI=true)");
    }
    eprintln!("SKIPPED: {test}: {why} (set CI=true to fail)");
}

/// Whether bpf(2) works here: a map can be created and `LiveBpf` opened.
fn bpf_works() -> Result<(), String> {
    map_create(&MapCreateAttr {
        map_type: MapType::ARRAY.0,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..MapCreateAttr::default()
    })
    .map_err(|e| format!("BPF_MAP_CREATE: {e}"))?;
    LiveBpf::open().map(drop).map_err(|e| e.to_string())
}

fn setup(test: &str) -> Option<RwLockReadGuard<'static, ()>> {
    let guard = FDS.read().unwrap_or_else(|e| e.into_inner());
    match bpf_works() {
        Ok(()) => Some(guard),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

fn live() -> LiveBpf {
    LiveBpf::open().expect("LiveBpf::open")
}

/// Every entry of map `id`, sorted by key, batch or key by key.
fn dump(live: &LiveBpf, id: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut it = live.entries(id).expect("entries");
    let mut e = Entry::default();
    let mut out = BTreeMap::new();
    while it.next_into(&mut e).expect("entry") {
        assert!(
            out.insert(e.key.clone(), e.value.clone()).is_none(),
            "key {:?} twice",
            e.key
        );
    }
    out
}

/// `dump` in every walk mode: default batches, one-element batches (grown on
/// ENOSPC), and key by key; all must agree.
fn dump_all_ways(id: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut l = live();
    let batch = dump(&l, id);
    l.set_batch_size(NonZeroU32::new(1));
    assert_eq!(dump(&l, id), batch, "batch size 1");
    l.set_batch(false);
    assert_eq!(dump(&l, id), batch, "key by key");
    batch
}

/// A value pattern of `len` bytes for `seed` (no zero bytes, so a missing
/// value cannot pass for a written one).
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u32 * 7) % 251 + 1) as u8)
        .collect()
}

/// The syscall buffer of a per-CPU value: `value_size` bytes per CPU, each
/// padded to 8 with 0xee (which the reader must drop).
fn percpu_buf(values: &[Vec<u8>], value_size: usize) -> Vec<u8> {
    let stride = value_size.div_ceil(8) * 8;
    let mut buf = vec![0xee; stride * values.len()];
    for (i, v) in values.iter().enumerate() {
        buf[i * stride..i * stride + value_size].copy_from_slice(v);
    }
    buf
}

// ---------------------------------------------------------------------------
// Maps read back exactly.

#[test]
fn map_info_matches_what_was_created() {
    let Some(_g) = setup("map_info_matches_what_was_created") else {
        return;
    };
    let m = create(MapType::LRU_HASH, 12, 20, 333, 0, "live_info");
    let l = live();
    let info = l.map_info(m.id).unwrap();
    assert_eq!(info.map_type, MapType::LRU_HASH);
    assert_eq!(info.name(), "live_info");
    assert_eq!((info.key_size, info.value_size), (12, 20));
    assert_eq!((info.max_entries, info.map_flags), (333, 0));
    assert_eq!(info.kva.0, 0, "no address live");
    let listed = l.list_maps().unwrap();
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(listed.iter().filter(|i| i.id == m.id).count(), 1);
    assert_eq!(l.possible_cpus(), possible_cpus().as_slice());
}

#[test]
fn arrays_read_back_exactly() {
    let Some(_g) = setup("arrays_read_back_exactly") else {
        return;
    };
    // ARRAY, 20-byte values, keys 0..17; every fourth key left zero.
    let arr = create(MapType::ARRAY, 4, 20, 17, 0, "live_arr20");
    let mut want = BTreeMap::new();
    for k in 0..17u32 {
        let v = if k % 4 == 0 {
            vec![0; 20]
        } else {
            pattern(k, 20)
        };
        if k % 4 != 0 {
            arr.update(&k.to_le_bytes(), &v);
        }
        want.insert(k.to_le_bytes().to_vec(), v);
    }
    assert_eq!(dump_all_ways(arr.id), want);

    // PERCPU_ARRAY, 12-byte values (stride 16): a different value per CPU.
    let ncpu = possible_cpus().len();
    let pa = create(MapType::PERCPU_ARRAY, 4, 12, 9, 0, "live_pcpu_arr");
    let mut want = BTreeMap::new();
    for k in 0..9u32 {
        let per: Vec<Vec<u8>> = (0..ncpu as u32).map(|c| pattern(k * 100 + c, 12)).collect();
        pa.update(&k.to_le_bytes(), &percpu_buf(&per, 12));
        want.insert(k.to_le_bytes().to_vec(), per.concat());
    }
    assert_eq!(dump_all_ways(pa.id), want);

    let l = live();
    // Windows of ARRAY values.
    let mut buf = [0u8; 7];
    l.read_array_value(arr.id, 5, 13, &mut buf).unwrap();
    assert_eq!(buf, pattern(5, 20)[13..20]);
    let mut whole = [0u8; 20];
    l.read_array_value(arr.id, 16, 0, &mut whole).unwrap();
    assert_eq!(whole, [0u8; 20]);
    l.read_array_value(arr.id, 3, 20, &mut []).unwrap();
    // Every CPU's PERCPU_ARRAY value.
    let mut out = Vec::new();
    for k in 0..9u32 {
        l.read_percpu_array_value(pa.id, k, &mut out).unwrap();
        assert_eq!(out, want[&k.to_le_bytes().to_vec()]);
    }

    // Range and type errors, as the image backend reports them.
    assert!(matches!(
        l.read_array_value(arr.id, 17, 0, &mut buf),
        Err(AccessError::KeyOutOfRange {
            key: 17,
            max_entries: 17,
            ..
        })
    ));
    assert!(matches!(
        l.read_array_value(arr.id, 0, 14, &mut buf),
        Err(AccessError::WindowOutOfRange {
            offset: 14,
            len: 7,
            value_size: 20,
            ..
        })
    ));
    assert!(matches!(
        l.read_array_value(pa.id, 0, 0, &mut buf),
        Err(AccessError::WrongType { .. })
    ));
    assert!(matches!(
        l.read_percpu_array_value(arr.id, 0, &mut out),
        Err(AccessError::WrongType { .. })
    ));
    assert!(matches!(
        l.read_percpu_array_value(pa.id, 9, &mut out),
        Err(AccessError::KeyOutOfRange { .. })
    ));
}

/// Fill a hash map with `n` keys of `key_size` and values of `value_size`
/// (per CPU for per-CPU maps); return what a reader must see.
fn fill_hash(
    m: &TestMap,
    n: u32,
    key_size: usize,
    value_size: usize,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let info = obj_map_info(&m.fd);
    let ncpu = possible_cpus().len() as u32;
    let mut want = BTreeMap::new();
    for i in 0..n {
        let key = pattern(i.wrapping_mul(7919), key_size);
        if MapType(info.r#type).is_percpu() {
            let per: Vec<Vec<u8>> = (0..ncpu)
                .map(|c| pattern(i * 64 + c + 1, value_size))
                .collect();
            m.update(&key, &percpu_buf(&per, value_size));
            want.insert(key, per.concat());
        } else {
            let v = pattern(i + 1, value_size);
            m.update(&key, &v);
            want.insert(key, v);
        }
    }
    want
}

#[test]
fn hashes_read_back_exactly() {
    let Some(_g) = setup("hashes_read_back_exactly") else {
        return;
    };
    let cases = [
        (MapType::HASH, 12, 20, 0, "live_hash"),
        (MapType::HASH, 20, 12, BPF_F_NO_PREALLOC, "live_hash_np"),
        (MapType::LRU_HASH, 4, 8, 0, "live_lru"),
        (MapType::PERCPU_HASH, 12, 20, 0, "live_pcpu_hash"),
        (MapType::LRU_PERCPU_HASH, 8, 12, 0, "live_lru_pcpu"),
        (
            MapType::PERCPU_HASH,
            4,
            4,
            BPF_F_NO_PREALLOC,
            "live_pcpu_np",
        ),
    ];
    for (t, k, v, flags, name) in cases {
        // 200 keys in 1024 buckets share some buckets: one-element batches
        // must grow on ENOSPC. (LRU maps get room to spare: their per-CPU
        // free lists take 128 elements at a time and evict when the common
        // list runs short.)
        let m = create(t, k, v, 1024, flags, name);
        let want = fill_hash(&m, 200, k as usize, v as usize);
        let got = dump_all_ways(m.id);
        assert_eq!(got.len(), 200, "{name}");
        assert_eq!(got, want, "{name}");
        // An empty map of the same kind.
        let empty = create(t, k, v, 16, flags, name);
        assert!(dump_all_ways(empty.id).is_empty(), "{name} empty");
    }
}

#[test]
fn entries_of_other_map_types_are_refused() {
    let Some(_g) = setup("entries_of_other_map_types_are_refused") else {
        return;
    };
    let q = create(MapType::QUEUE, 0, 8, 4, 0, "live_queue");
    let l = live();
    assert!(matches!(
        l.entries(q.id),
        Err(AccessError::WrongType {
            map_type: MapType::QUEUE,
            ..
        })
    ));
    assert!(matches!(
        l.arena_pages(q.id),
        Err(AccessError::WrongType { .. })
    ));
    assert!(matches!(
        l.entries(u32::MAX),
        Err(AccessError::NoSuchMap { id: u32::MAX })
    ));
}

#[test]
fn map_btf_is_the_loaded_blob() {
    let Some(_g) = setup("map_btf_is_the_loaded_blob") else {
        return;
    };
    let blob = int_btf();
    let btf = btf_load(&blob);
    let m = map_create(&MapCreateAttr {
        map_type: MapType::HASH.0,
        key_size: 4,
        value_size: 4,
        max_entries: 8,
        map_name: name16("live_btf"),
        btf_fd: btf.as_raw_fd() as u32,
        btf_key_type_id: 1,
        btf_value_type_id: 1,
        ..MapCreateAttr::default()
    })
    .expect("map with BTF");
    let plain = create(MapType::HASH, 4, 4, 8, 0, "live_nobtf");
    let l = live();
    let info = l.map_info(m.id).unwrap();
    assert_ne!(info.btf_id, 0);
    assert_eq!((info.btf_key_type_id, info.btf_value_type_id), (1, 1));
    let got = l.map_btf(m.id).unwrap().expect("BTF");
    assert_eq!(got.id, info.btf_id);
    assert_eq!(got.data, blob);
    assert_eq!(got.name, "");
    assert!(!got.kernel_btf && !got.split);
    assert_eq!(l.map_btf(plain.id).unwrap(), None);
}

// ---------------------------------------------------------------------------
// Arenas.

/// Distinct 4 GiB-aligned user addresses for the arenas of different tests.
fn arena_addr(slot: u64) -> u64 {
    0x1000_0000_0000 + (slot << 32)
}

fn create_arena(pages: u32, flags: u32, map_extra: u64, name: &str) -> TestMap {
    map_create(&MapCreateAttr {
        map_type: MapType::ARENA.0,
        max_entries: pages,
        map_flags: BPF_F_MMAPABLE | flags,
        map_extra,
        map_name: name16(name),
        ..MapCreateAttr::default()
    })
    .unwrap_or_else(|e| panic!("creating arena {name}: {e}"))
}

fn arena_dump(l: &LiveBpf, id: u32) -> Result<BTreeMap<u64, Vec<u8>>, AccessError> {
    let mut it = l.arena_pages(id)?;
    let mut p = ArenaPageData {
        user_addr: 0,
        data: Vec::new(),
    };
    let mut out = BTreeMap::new();
    while it.next_into(&mut p)? {
        assert_eq!(p.data.len(), PAGE);
        out.insert(p.user_addr, p.data.clone());
    }
    Ok(out)
}

/// `BPF_F_SEGV_ON_FAULT` arena: pages a BPF program allocated are found
/// whether or not anyone ever mapped them, and absent pages stay absent.
#[test]
fn arena_pages_of_segv_on_fault_arena_are_exact() {
    let test = "arena_pages_of_segv_on_fault_arena_are_exact";
    let Some(_g) = setup(test) else {
        return;
    };
    let base = arena_addr(1);
    let arena = create_arena(16, BPF_F_SEGV_ON_FAULT, base, "live_arena_segv");
    // Pages 1, 5 and 6 by a BPF program; 5 and 6 in one call.
    let page = |i: u64| base + i * PAGE as u64;
    for (at, n) in [(1u64, 1), (5, 2)] {
        match bpf_arena_alloc_pages(&arena, page(at), n) {
            Ok(true) => {}
            Ok(false) => panic!("bpf_arena_alloc_pages({at}, {n}) returned NULL"),
            Err(why) => return skip_or_fail(test, &why),
        }
    }
    // Write pages 1 and 5 through this test's mapping; 6 stays zeros and
    // nobody ever maps it in.
    let mut want = BTreeMap::new();
    {
        let m = ArenaMap::map(&arena, base, 16);
        m.write(1, b"page one ");
        m.write(5, b"five ");
        // The mapping is shared: LiveBpf reads through it (it is there).
        let l = live();
        assert_eq!(l.arena_presence(arena.id).unwrap(), ArenaPresence::Probed);
        want.insert(page(1), page_bytes(b"page one "));
        want.insert(page(5), page_bytes(b"five "));
        want.insert(page(6), vec![0; PAGE]);
        assert_eq!(arena_dump(&l, arena.id).unwrap(), want);
        // Probing faulted no absent page in: none is resident here.
        for p in [0, 2, 3, 4, 7, 15] {
            assert!(!m.resident(p), "page {p}");
        }
    }
    // No mapping left in this process: LiveBpf maps the arena itself.
    let l = live();
    assert_eq!(arena_dump(&l, arena.id).unwrap(), want);
    assert_eq!(arena_dump(&l, arena.id).unwrap(), want, "a second read");
    // Nothing was allocated by reading: page 2 is still free, so a BPF
    // program can allocate it now.
    assert_eq!(bpf_arena_alloc_pages(&arena, page(2), 1), Ok(true));
    want.insert(page(2), vec![0; PAGE]);
    assert_eq!(arena_dump(&l, arena.id).unwrap(), want);
}

/// An ordinary arena: only pages resident in this process's own mapping can
/// be listed (a lower bound); without a mapping it is an error, and nothing
/// is ever allocated by reading.
#[test]
fn arena_pages_of_ordinary_arena_are_those_resident_here() {
    let test = "arena_pages_of_ordinary_arena_are_those_resident_here";
    let Some(_g) = setup(test) else {
        return;
    };
    let base = arena_addr(2);
    let arena = create_arena(32, 0, base, "live_arena");
    let page = |i: u64| base + i * PAGE as u64;
    let m = ArenaMap::map(&arena, base, 32);
    m.write(0, b"zero");
    m.write(3, b"three ");
    m.write(31, b"last page ");
    // A page a BPF program allocated that this process never touched: it
    // exists, but has no PTE here, so it is not listed (the limitation).
    let bpf_page = match bpf_arena_alloc_pages(&arena, page(9), 1) {
        Ok(ok) => {
            assert!(ok);
            true
        }
        Err(why) => {
            skip_or_fail(test, &why);
            false
        }
    };
    let l = live();
    assert_eq!(
        l.arena_presence(arena.id).unwrap(),
        ArenaPresence::ResidentHere
    );
    let want: BTreeMap<u64, Vec<u8>> = [
        (page(0), page_bytes(b"zero")),
        (page(3), page_bytes(b"three ")),
        (page(31), page_bytes(b"last page ")),
    ]
    .into_iter()
    .collect();
    assert_eq!(arena_dump(&l, arena.id).unwrap(), want);
    // Reading faulted nothing in, and allocated nothing.
    for p in [1, 2, 4, 9, 30] {
        assert!(!m.resident(p), "page {p}");
    }
    if bpf_page {
        assert_eq!(
            bpf_arena_alloc_pages(&arena, page(1), 1),
            Ok(true),
            "page 1 was free"
        );
        assert_eq!(
            bpf_arena_alloc_pages(&arena, page(9), 1),
            Ok(false),
            "page 9 is taken"
        );
    }
    // Without this process's mapping the pages cannot be found honestly.
    drop(m);
    let e = arena_dump(&l, arena.id).unwrap_err();
    assert!(e.to_string().contains("BPF_F_SEGV_ON_FAULT"), "{e}");
    assert!(l.arena_presence(arena.id).is_err());
}

#[test]
fn arena_without_map_extra_is_refused() {
    let Some(_g) = setup("arena_without_map_extra_is_refused") else {
        return;
    };
    let arena = create_arena(4, 0, 0, "live_arena_any");
    let l = live();
    let e = arena_dump(&l, arena.id).unwrap_err();
    assert!(e.to_string().contains("map_extra"), "{e}");
}

// ---------------------------------------------------------------------------
// Descriptors and lifetimes.

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn every_descriptor_is_closed_on_drop() {
    let test = "every_descriptor_is_closed_on_drop";
    // Alone: no other test of this binary opens or closes descriptors now.
    let _g = FDS.write().unwrap_or_else(|e| e.into_inner());
    if let Err(why) = bpf_works() {
        return skip_or_fail(test, &why);
    }
    let h = create(MapType::HASH, 8, 8, 64, 0, "live_fds");
    let want = fill_hash(&h, 50, 8, 8);
    let arena = create_arena(4, BPF_F_SEGV_ON_FAULT, arena_addr(3), "live_fds_arena");
    let before = open_fds();
    {
        let l = live();
        let n = l.list_maps().unwrap().len();
        assert!(open_fds() >= before + n, "one descriptor per map");
        assert_eq!(dump(&l, h.id), want);
        // Arena pages through LiveBpf's own mapping; the stream dropped.
        assert_eq!(arena_dump(&l, arena.id).unwrap().len(), 0);
        let l2 = live();
        assert_eq!(dump(&l2, h.id), want);
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
    // And the arena mapping is gone: mapping it again here works.
    let again = ArenaMap::map(&arena, arena_addr(3), 4);
    drop(again);
}

#[test]
fn two_accessors_at_once() {
    let Some(_g) = setup("two_accessors_at_once") else {
        return;
    };
    let h = create(MapType::HASH, 4, 8, 64, 0, "live_two");
    let want = fill_hash(&h, 40, 4, 8);
    let a = live();
    let b = live();
    let mut ia = a.entries(h.id).unwrap();
    let mut ib = b.entries(h.id).unwrap();
    let (mut ea, mut eb) = (Entry::default(), Entry::default());
    let mut got = BTreeMap::new();
    // Interleaved walks over the same map.
    while ia.next_into(&mut ea).unwrap() {
        assert!(ib.next_into(&mut eb).unwrap());
        assert_eq!(ea, eb);
        got.insert(ea.key.clone(), ea.value.clone());
    }
    assert!(!ib.next_into(&mut eb).unwrap());
    assert_eq!(got, want);
    drop(ia);
    drop(a);
    assert_eq!(dump(&b, h.id), want);
}

#[test]
fn a_map_closed_by_its_owner_stays_readable_while_held() {
    let Some(_g) = setup("a_map_closed_by_its_owner_stays_readable_while_held") else {
        return;
    };
    let h = create(MapType::PERCPU_HASH, 4, 12, 64, 0, "live_closed");
    let want = fill_hash(&h, 30, 4, 12);
    let id = h.id;
    let l = live();
    let mut it = l.entries(id).unwrap();
    let mut e = Entry::default();
    assert!(it.next_into(&mut e).unwrap());
    // The creator closes its only descriptor mid-walk: the accessor's keeps
    // the map alive.
    drop(h);
    let mut got = BTreeMap::from([(e.key.clone(), e.value.clone())]);
    while it.next_into(&mut e).unwrap() {
        got.insert(e.key.clone(), e.value.clone());
    }
    assert_eq!(got, want);
    assert_eq!(dump(&l, id), want);
    drop(it);
    drop(l);
    // With the last descriptor gone, the map is freed: its id is no more.
    assert!(matches!(
        live().map_info(id),
        Err(AccessError::NoSuchMap { .. })
    ));
}

#[test]
fn maps_created_after_open_are_not_seen() {
    let Some(_g) = setup("maps_created_after_open_are_not_seen") else {
        return;
    };
    let l = live();
    let h = create(MapType::HASH, 4, 4, 4, 0, "live_late");
    assert!(matches!(
        l.map_info(h.id),
        Err(AccessError::NoSuchMap { .. })
    ));
    assert!(live().map_info(h.id).is_ok());
}

/// Maps freed while `LiveBpf::open` walks the ids are skipped, not fatal.
/// Which ones vanish in the window is up to the scheduler, so this only
/// checks that opening never fails under churn (the skip logic itself is
/// unit-tested against a scripted id walk in `live.rs`).
#[test]
fn open_survives_maps_vanishing_under_it() {
    let Some(_g) = setup("open_survives_maps_vanishing_under_it") else {
        return;
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<TestMap> = (0..32)
                    .map(|_| create(MapType::ARRAY, 4, 4, 1, 0, "live_churn"))
                    .collect();
                drop(batch);
            }
        });
        let mut skipped = 0;
        for _ in 0..200 {
            let l = LiveBpf::open().expect("open under churn");
            skipped += l.skipped();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!("open_survives_maps_vanishing_under_it: {skipped} maps skipped in 200 opens");
    });
}

// ---------------------------------------------------------------------------
// Privileges.

const PERMISSION_CHILD: &str = "BPFMEM_LIVE_PERMISSION_CHILD";

/// Run as an unprivileged user by `unprivileged_user_gets_one_clear_error`;
/// does nothing otherwise.
#[test]
fn permission_child() {
    if std::env::var_os(PERMISSION_CHILD).is_none() {
        return;
    }
    match LiveBpf::open() {
        Ok(_) => panic!("LiveBpf::open worked without privileges"),
        Err(e) => {
            assert!(matches!(e, LiveError::Permission { .. }), "{e:?}");
            println!("\nERROR: {e}");
        }
    }
}

#[test]
fn unprivileged_user_gets_one_clear_error() {
    let test = "unprivileged_user_gets_one_clear_error";
    let Some(_g) = setup(test) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: {test}: needs root to switch to nobody");
        return;
    }
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "permission_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PERMISSION_CHILD, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run the test binary as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ERROR: "))
        .expect("the child's error");
    for needle in [
        "BPF_MAP_GET_NEXT_ID",
        "EPERM",
        "root",
        "CAP_BPF and CAP_SYS_ADMIN",
    ] {
        assert!(line.contains(needle), "{line}");
    }
    assert!(line.contains("kernel.unprivileged_bpf_disabled"), "{line}");
}

// ---------------------------------------------------------------------------
// Programs and BTF objects.

/// `clock_gettime(CLOCK_BOOTTIME)` in ns: the clock of `bpf_prog_info::load_time`.
fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) },
        0
    );
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A socket filter that looks up key 0 in `a`, then in `b`, and returns 0.
fn load_socket_filter(a: &TestMap, b: &TestMap, name: &str) -> std::os::fd::OwnedFd {
    let mut prog = Vec::new();
    for m in [a, b] {
        prog.extend([
            insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, m.fd.as_raw_fd()), // r1 = map
            insn(0, 0, 0, 0, 0),
            insn(0x62, 10, 0, -4, 0), // *(u32 *)(r10 - 4) = 0
            insn(0xbf, 2, 10, 0, 0),  // r2 = r10
            insn(0x07, 2, 0, 0, -4),  // r2 += -4
            insn(0x85, 0, 0, 0, 1),   // call bpf_map_lookup_elem
        ]);
    }
    prog.extend([insn(0xb7, 0, 0, 0, 0), insn(0x95, 0, 0, 0, 0)]);
    let license = b"GPL\0";
    let mut log = vec![0u8; 1 << 16];
    let mut attr = ProgLoadAttr {
        prog_type: 1, // BPF_PROG_TYPE_SOCKET_FILTER
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name16(name),
        ..ProgLoadAttr::default()
    };
    // SAFETY: the kernel reads `insn_cnt` instructions at `insns`, the
    // NUL-terminated license, and writes at most `log_size` bytes of log.
    match unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) } {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            panic!(
                "loading {name}: {e}: {}",
                String::from_utf8_lossy(&log[..end]).trim()
            )
        }
    }
}

/// `bpf_prog_info` through raw `bpf(2)`, with up to 8 map ids.
fn raw_prog_info(fd: &std::os::fd::OwnedFd) -> (BpfProgInfo, Vec<u32>) {
    let mut ids = [0u32; 8];
    let mut info = BpfProgInfo {
        nr_map_ids: ids.len() as u32,
        map_ids: ids.as_mut_ptr() as u64,
        ..BpfProgInfo::default()
    };
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<BpfProgInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info` and at
    // most `nr_map_ids` u32s to `ids`; every other count is zero.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.expect("prog info");
    let n = (info.nr_map_ids as usize).min(ids.len());
    (info, ids[..n].to_vec())
}

/// The id of a BTF object, through raw `bpf(2)`.
fn raw_btf_id(fd: &std::os::fd::OwnedFd) -> u32 {
    let mut info = BpfBtfInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<BpfBtfInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the kernel writes at most `info_len` bytes to `info`; the data
    // and name buffers are absent (address and size 0).
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.expect("BTF info");
    info.id
}

#[test]
fn live_lists_a_program_with_its_maps_as_bpf_reports_it() {
    let Some(_g) = setup("live_lists_a_program_with_its_maps_as_bpf_reports_it") else {
        return;
    };
    let a = create(MapType::ARRAY, 4, 8, 4, 0, "live_prog_arr");
    let b = create(MapType::HASH, 4, 8, 4, 0, "live_prog_hash");
    let before = boottime_ns();
    let fd = load_socket_filter(&a, &b, "live_prog");
    let after = boottime_ns();
    let (raw, raw_maps) = raw_prog_info(&fd);
    let l = live();
    let progs = l.list_progs().unwrap();
    assert!(progs.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
    let p = progs
        .iter()
        .find(|p| p.id == raw.id)
        .unwrap_or_else(|| panic!("program {} not listed", raw.id));
    assert_eq!(p.name(), "live_prog");
    assert_eq!(p.prog_type, ProgType::SOCKET_FILTER);
    assert_eq!(p.map_ids(), &[a.id, b.id], "used_maps in the order used");
    assert_eq!(p.map_ids(), &raw_maps[..]);
    assert_eq!(p.tag, raw.tag);
    assert_eq!(p.load_time, raw.load_time);
    assert!(
        (before..=after).contains(&p.load_time),
        "load_time {} is CLOCK_BOOTTIME at load, between {before} and {after}",
        p.load_time
    );
    assert_eq!(
        (p.jited_len, p.xlated_len),
        (raw.jited_prog_len, raw.xlated_prog_len)
    );
    assert!(
        p.xlated_len >= 8 * 14 && p.xlated_len % 8 == 0,
        "{}",
        p.xlated_len
    );
    assert_eq!((p.btf_id, p.kva.get()), (0, 0));
    // Listed afresh on every call: once its last descriptor is closed, the
    // program is gone from the next listing.
    let id = p.id;
    drop(fd);
    assert!(l.list_progs().unwrap().iter().all(|p| p.id != id));
}

#[test]
fn live_lists_btf_objects_with_vmlinux_and_a_loaded_one() {
    let Some(_g) = setup("live_lists_btf_objects_with_vmlinux_and_a_loaded_one") else {
        return;
    };
    let blob = int_btf();
    let fd = btf_load(&blob);
    let id = raw_btf_id(&fd);
    let btfs = live().list_btfs().unwrap();
    assert!(btfs.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
    let vmlinux = btfs
        .iter()
        .find(|b| b.name == "vmlinux")
        .expect("vmlinux BTF listed");
    // btf_parse_vmlinux(): data is __start_BTF..__stop_BTF, which sysfs
    // publishes as /sys/kernel/btf/vmlinux.
    let sysfs = std::fs::metadata("/sys/kernel/btf/vmlinux").unwrap().len();
    assert!(vmlinux.kernel_btf);
    assert_eq!(u64::from(vmlinux.size), sysfs);
    eprintln!("vmlinux BTF is object {}", vmlinux.id);
    let own = btfs.iter().find(|b| b.id == id).expect("loaded BTF listed");
    assert_eq!(
        own,
        &BtfInfo {
            id,
            name: String::new(),
            size: blob.len() as u32,
            kernel_btf: false
        }
    );
}
