//! Arena pages through the live kernel, without changing the arena.
//!
//! What kernel/bpf/arena.c (v6.9 to v6.18) allows:
//! - A page exists when `vmalloc_to_page(kern_vm_start + (u32)uaddr)` finds
//!   it. Pages come into being in two ways: a BPF program calls
//!   `bpf_arena_alloc_pages()`, which maps them into the kernel's `kern_vm`
//!   only, or user space faults on an address (`arena_vm_fault()`).
//! - `arena_vm_fault()` maps an existing page into the faulting VMA; for an
//!   absent page it *allocates* one (zeroed, charged to the arena's memcg,
//!   taken out of the free `range_tree`), unless the arena was created with
//!   `BPF_F_SEGV_ON_FAULT`, in which case it returns `VM_FAULT_SIGSEGV` and
//!   allocates nothing.
//! - Every user VMA of an arena must start at `user_vm_start`, which a
//!   non-zero `map_extra` fixes at creation; with `map_extra == 0` the first
//!   `mmap()` anywhere fixes it (`arena_map_mmap()`), and `bpf_map_info`
//!   keeps reporting `map_extra == 0`.
//!
//! So user space can learn which pages exist only by touching them, and a
//! touch allocates unless `BPF_F_SEGV_ON_FAULT` is set. Hence two modes:
//! - [`ArenaPresence::Probed`] (`BPF_F_SEGV_ON_FAULT`): every page is read
//!   with `process_vm_readv(2)` on this process. The kernel faults through
//!   `get_user_pages`, so an absent page's `VM_FAULT_SIGSEGV` becomes EFAULT
//!   for the call (no signal, nothing allocated) and a present page is copied.
//!   Exact.
//! - [`ArenaPresence::ResidentHere`] (any other arena): `mincore(2)` on a
//!   mapping of the arena that this process already has. `mincore` looks at
//!   this process's page tables: a page is resident only once this process's
//!   VMA faulted it in (here that means it exists: faults map or allocate).
//!   Pages a BPF program allocated, or another process touched, but that
//!   this process never touched have no PTE here and are not reported. That
//!   is a lower bound, not the arena. A fresh mapping has no PTEs at all, so
//!   without an existing mapping there is nothing honest to report, and the
//!   call fails rather than list an empty arena.
//!
//! Arenas created with `map_extra == 0` fail too: their address is not in
//! `bpf_map_info`, and mapping one where nobody mapped it yet would fix its
//! address for its owner.
//!
//! Where the reads go: if nothing is mapped at the arena's range in this
//! process, a read-only mapping of our own (unmapped when the stream drops);
//! if this process already maps the arena, that mapping. Nothing is ever
//! dereferenced: pages are copied with `process_vm_readv`, so a mapping that
//! changes underneath gives an error, never undefined behaviour. Limits:
//! - `/proc/self/maps` shows `anon_inode:bpf-map` for every BPF map, so an
//!   existing mapping is taken for the arena's when it is exactly the arena's
//!   range, shared and readable; another BPF map mapped at exactly that range
//!   would be read instead. The caller must keep its mapping while the stream
//!   is read (an unmapped page reads as absent, or fails).
//! - `ResidentHere`: a page the arena frees between the `mincore` just before
//!   the copy and the copy itself would be faulted in afresh, i.e. allocated,
//!   by the copy. The window is two system calls wide.

use bpfmem_core::arena::ARENA_MAX_PAGES;
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::paging::PAGE_SIZE;
use bpfmem_core::uapi::BPF_F_SEGV_ON_FAULT;
use std::os::fd::AsFd;

use super::sys::{self, Mapping};
use super::{LiveError, Op};
use crate::access::{ArenaPageData, ArenaPages};
use crate::AccessError;

/// How [`crate::LiveBpf`] finds the pages of an arena (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArenaPresence {
    /// `BPF_F_SEGV_ON_FAULT`: every page probed without allocating; the list
    /// is exact.
    Probed,
    /// Pages resident in this process's own mapping of the arena: a lower
    /// bound that misses pages this process never touched.
    ResidentHere,
}

/// `mincore` and scan this many pages at a time.
const CHUNK_PAGES: u64 = 512;

/// One line of `/proc/self/maps` that matters here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Vma<'a> {
    start: u64,
    end: u64,
    perms: &'a str,
    offset: u64,
    path: &'a str,
}

fn parse_vma(line: &str) -> Option<Vma<'_>> {
    // start-end perms offset dev inode [path]
    let mut it = line.splitn(6, ' ');
    let (start, end) = it.next()?.split_once('-')?;
    let perms = it.next()?;
    let offset = it.next()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().unwrap_or("").trim_start();
    Some(Vma {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms,
        offset: u64::from_str_radix(offset, 16).ok()?,
        path,
    })
}

/// What occupies `[start, end)` in a `/proc/self/maps` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Occupant {
    /// Nothing at all.
    Nothing,
    /// One readable shared mapping of a BPF map file, exactly the range, from
    /// file offset 0: an arena mapping (arenas must be mapped whole, at
    /// `user_vm_start`, `arena_get_unmapped_area()`).
    BpfMap,
    /// Anything else, or part of the range.
    Other,
}

fn occupant(maps: &str, start: u64, end: u64) -> Occupant {
    let mut found = Occupant::Nothing;
    for vma in maps.lines().filter_map(parse_vma) {
        if vma.end <= start || vma.start >= end {
            continue;
        }
        let whole = vma.start == start && vma.end == end && vma.offset == 0;
        let shared_ro = vma.perms.starts_with('r') && vma.perms.ends_with('s');
        found = match found {
            Occupant::Nothing if whole && shared_ro && vma.path == "anon_inode:bpf-map" => {
                Occupant::BpfMap
            }
            _ => Occupant::Other,
        };
    }
    found
}

fn proc_err(op: Op, id: u32) -> impl Fn(std::io::Error) -> LiveError {
    move |e| LiveError::Syscall {
        op,
        id,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// Whether `mincore` tells the truth about a BPF map mapping: for a file
/// mapping the caller could not open for writing it reports every page
/// resident (`can_do_mincore()`, mm/mincore.c, v5.0+), and the anon inode
/// behind BPF map files is root's, mode 0600. Owning it (fsuid 0) or
/// `CAP_FOWNER`/`CAP_DAC_OVERRIDE` passes.
fn mincore_trustworthy(status: &str) -> bool {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let fsuid_root = field("Uid:")
        .and_then(|u| u.split_whitespace().nth(3))
        .is_some_and(|u| u == "0");
    let caps = field("CapEff:")
        .and_then(|c| u64::from_str_radix(c, 16).ok())
        .unwrap_or(0);
    const CAP_DAC_OVERRIDE: u32 = 1;
    const CAP_FOWNER: u32 = 3;
    fsuid_root || caps & (1 << CAP_DAC_OVERRIDE | 1 << CAP_FOWNER) != 0
}

/// [`ArenaPages`] of a live arena.
pub(crate) struct LiveArenaPages {
    id: u32,
    base: u64,
    pages: u64,
    next: u64,
    presence: ArenaPresence,
    /// Our own mapping, unmapped when the stream is dropped; `None` when this
    /// process already had the arena mapped.
    _mapping: Option<Mapping>,
    /// `mincore` results for pages `chunk_start..chunk_start + CHUNK_PAGES`.
    resident: Vec<u8>,
    chunk_start: u64,
    done: bool,
}

/// The user range of an arena: `(map_extra, max_entries pages)`.
fn user_range(m: &MapInfo) -> Result<(u64, u64), LiveError> {
    let id = m.id;
    if sys::page_size() != Some(PAGE_SIZE) {
        return Err(LiveError::Unsupported {
            what: "arena on a kernel whose page size is not 4 KiB",
            id,
        });
    }
    if m.map_extra == 0 {
        return Err(LiveError::Unsupported {
            what: "arena created without map_extra (bpf(2) does not report where it is mapped)",
            id,
        });
    }
    let pages = u64::from(m.max_entries);
    let len = pages * PAGE_SIZE;
    let fits = m.map_extra % PAGE_SIZE == 0
        && pages > 0
        && pages <= ARENA_MAX_PAGES
        && m.map_extra
            .checked_add(len - 1)
            .is_some_and(|last| last >> 32 == m.map_extra >> 32);
    if !fits {
        return Err(LiveError::Malformed {
            what: "arena map_extra/max_entries",
            id,
        });
    }
    Ok((m.map_extra, pages))
}

/// How this process can see arena `m`'s pages, and what already occupies
/// its range here.
fn presence(m: &MapInfo) -> Result<(ArenaPresence, Occupant), LiveError> {
    let (base, pages) = user_range(m)?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(proc_err(Op::ProcSelf, m.id))?;
    let here = occupant(&maps, base, base + pages * PAGE_SIZE);
    if m.map_flags & BPF_F_SEGV_ON_FAULT != 0 {
        return match here {
            Occupant::Other => Err(LiveError::Unsupported {
                what: "arena whose address range is taken by another mapping in this process",
                id: m.id,
            }),
            _ => Ok((ArenaPresence::Probed, here)),
        };
    }
    if here != Occupant::BpfMap {
        return Err(LiveError::Unsupported {
            what: "arena without BPF_F_SEGV_ON_FAULT that this process has not mapped \
                   (its pages cannot be found without allocating the absent ones)",
            id: m.id,
        });
    }
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(proc_err(Op::ProcSelf, m.id))?;
    if !mincore_trustworthy(&status) {
        return Err(LiveError::Unsupported {
            what: "arena residency: mincore(2) reports every page resident for this process \
                   (needs fsuid 0, CAP_FOWNER or CAP_DAC_OVERRIDE)",
            id: m.id,
        });
    }
    Ok((ArenaPresence::ResidentHere, here))
}

/// See [`crate::LiveBpf::arena_presence`].
pub(crate) fn arena_presence(m: &MapInfo) -> Result<ArenaPresence, LiveError> {
    presence(m).map(|(p, _)| p)
}

/// Map arena `m` at its address, read-only, for this process's reads.
///
/// A shared mapping needs a descriptor open for writing even with PROT_READ:
/// `do_mmap()` (mm/mmap.c) drops `VM_SHARED` for files not opened with
/// `FMODE_WRITE`, and `bpf_map_mmap()` (kernel/bpf/syscall.c) refuses
/// non-shared mappings with EINVAL. So a second, read-write descriptor is
/// opened by id just for the `mmap` and closed at once (the mapping keeps the
/// file). The id still names the same map: the accessor's own descriptor
/// keeps the map, and so its id, alive.
fn map_arena(m: &MapInfo, base: u64, pages: u64) -> Result<Mapping, LiveError> {
    let fd = sys::map_get_fd_by_id(m.id, true)
        .map_err(|e| LiveError::from_errno(Op::MapGetFdById, m.id, e))?;
    Mapping::map_fixed_noreplace(fd.as_fd(), base, pages * PAGE_SIZE)
        .map_err(|e| LiveError::from_errno(Op::Mmap, m.id, e))
}

/// The present pages of arena `m`.
pub(crate) fn arena_pages(m: &MapInfo) -> Result<LiveArenaPages, LiveError> {
    let (presence, here) = presence(m)?;
    let (base, pages) = user_range(m)?;
    let mapping = match here {
        Occupant::Nothing => Some(map_arena(m, base, pages)?),
        _ => None,
    };
    Ok(LiveArenaPages {
        id: m.id,
        base,
        pages,
        next: 0,
        presence,
        _mapping: mapping,
        resident: Vec::new(),
        chunk_start: 0,
        done: false,
    })
}

impl LiveArenaPages {
    fn addr(&self, pgoff: u64) -> u64 {
        // pgoff < pages, and base + pages * PAGE_SIZE stays within 4 GiB of
        // base (`user_range`).
        self.base + pgoff * PAGE_SIZE
    }

    fn err(&self, op: Op, errno: i32) -> LiveError {
        LiveError::from_errno(op, self.id, errno)
    }

    /// Whether page `pgoff` is resident in this process, per a chunked
    /// `mincore`.
    fn resident(&mut self, pgoff: u64) -> Result<bool, LiveError> {
        let idx = pgoff.wrapping_sub(self.chunk_start);
        if self.resident.is_empty() || idx >= self.resident.len() as u64 {
            let n = CHUNK_PAGES.min(self.pages - pgoff);
            self.resident.resize(n as usize, 0);
            sys::mincore(self.addr(pgoff), n * PAGE_SIZE, &mut self.resident)
                .map_err(|e| self.err(Op::Mincore, e))?;
            self.chunk_start = pgoff;
        }
        let idx = (pgoff - self.chunk_start) as usize;
        Ok(self.resident.get(idx).is_some_and(|&b| b & 1 != 0))
    }

    /// Copy page `pgoff` into `data`; `Ok(false)` if it is absent.
    fn read(&mut self, pgoff: u64, data: &mut [u8]) -> Result<bool, LiveError> {
        if self.presence == ArenaPresence::ResidentHere {
            if !self.resident(pgoff)? {
                return Ok(false);
            }
            // Ask again just before the copy: a page the arena freed since the
            // chunk's mincore would be faulted in, i.e. allocated afresh, by
            // the read. The window left is between this call and the copy.
            let mut one = [0u8; 1];
            sys::mincore(self.addr(pgoff), PAGE_SIZE, &mut one)
                .map_err(|e| self.err(Op::Mincore, e))?;
            if one[0] & 1 == 0 {
                return Ok(false);
            }
        }
        match sys::read_own_memory(self.addr(pgoff), data) {
            Ok(n) if n == data.len() => Ok(true),
            // An absent page of a BPF_F_SEGV_ON_FAULT arena.
            Err(libc::EFAULT) if self.presence == ArenaPresence::Probed => Ok(false),
            Ok(_) => Err(LiveError::Malformed {
                what: "short read of an arena page",
                id: self.id,
            }),
            Err(e) => Err(self.err(Op::ProcessVmReadv, e)),
        }
    }
}

impl ArenaPages for LiveArenaPages {
    fn next_into(&mut self, page: &mut ArenaPageData) -> Result<bool, AccessError> {
        page.data.resize(PAGE_SIZE as usize, 0);
        while !self.done && self.next < self.pages {
            let pgoff = self.next;
            self.next += 1;
            match self.read(pgoff, &mut page.data) {
                Ok(true) => {
                    page.user_addr = self.addr(pgoff);
                    return Ok(true);
                }
                Ok(false) => {}
                Err(e) => {
                    self.done = true;
                    return Err(e.into());
                }
            }
        }
        self.done = true;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d4c0a00000-55d4c0a21000 r--p 00000000 08:01 131 /usr/bin/x
100000000000-100000010000 rw-s 00000000 00:0e 1045 anon_inode:bpf-map
100100000000-100100010000 r--p 00000000 00:0e 1045 anon_inode:bpf-map
100200000000-100200008000 rw-s 00000000 00:0e 1045 anon_inode:bpf-map
100200008000-100200010000 rw-s 00008000 00:0e 1045 anon_inode:bpf-map
100300000000-100300010000 rw-s 00000000 00:01 7 /memfd:x (deleted)
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0
";

    #[test]
    fn finds_a_whole_bpf_map_mapping() {
        let at = |a: u64| occupant(MAPS, a, a + 0x10000);
        assert_eq!(at(0x1000_0000_0000), Occupant::BpfMap);
        // Private: not an arena mapping (arenas are always shared).
        assert_eq!(at(0x1001_0000_0000), Occupant::Other);
        // Split in two.
        assert_eq!(at(0x1002_0000_0000), Occupant::Other);
        // Not a BPF map.
        assert_eq!(at(0x1003_0000_0000), Occupant::Other);
        assert_eq!(at(0x1004_0000_0000), Occupant::Nothing);
        // Part of a bigger mapping, or bigger than the mapping.
        assert_eq!(
            occupant(MAPS, 0x1000_0000_0000, 0x1000_0000_8000),
            Occupant::Other
        );
        assert_eq!(
            occupant(MAPS, 0x1000_0000_0000, 0x1000_0002_0000),
            Occupant::Other
        );
    }

    #[test]
    fn vma_lines() {
        let v = parse_vma("7f00-7f10 r-xp 0000a000 fd:00 12  /lib/x.so").unwrap();
        assert_eq!(
            (v.start, v.end, v.offset, v.path),
            (0x7f00, 0x7f10, 0xa000, "/lib/x.so")
        );
        assert_eq!(parse_vma("7f00-7f10 r-xp 0 fd:00 0").unwrap().path, "");
        assert!(parse_vma("garbage").is_none());
        assert!(parse_vma("7f00-zz r-xp 0 fd:00 0").is_none());
    }

    #[test]
    fn mincore_trust_needs_root_or_caps() {
        let st = |uid: &str, cap: &str| format!("Name:\tx\nUid:\t{uid}\nCapEff:\t{cap}\n");
        assert!(mincore_trustworthy(&st("0\t0\t0\t0", "0000000000000000")));
        assert!(mincore_trustworthy(&st(
            "1000\t1000\t1000\t1000",
            "0000000000000008"
        )));
        assert!(mincore_trustworthy(&st(
            "1000\t1000\t1000\t1000",
            "0000000000000002"
        )));
        assert!(!mincore_trustworthy(&st(
            "1000\t1000\t1000\t1000",
            "00000000a80425f0"
        )));
        assert!(!mincore_trustworthy(&st(
            "0\t0\t0\t1000",
            "0000000000200000"
        )));
        assert!(!mincore_trustworthy(""));
    }
}
