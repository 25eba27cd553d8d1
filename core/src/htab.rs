//! BPF hash tables (kernel/bpf/hashtab.c): `BPF_MAP_TYPE_HASH`, `LRU_HASH`,
//! `PERCPU_HASH` and `LRU_PERCPU_HASH`, preallocated or `BPF_F_NO_PREALLOC`.
//! [`Htab::new`] checks a `struct bpf_htab` against what `htab_map_alloc()`
//! would have made of its `struct bpf_map`, [`Htab::iter`] walks every bucket's
//! chain the way `htab_map_get_next_key()` does, and [`detect_pcpu_ptr_at`]
//! finds where this kernel keeps the per-CPU pointer of an element.
//!
//! What we rely on is the same from v6.1 through v6.15 (kernel/bpf/hashtab.c);
//! member offsets come from BTF. `struct bpf_htab` embeds `struct bpf_map` first
//! and points at `n_buckets` `struct bucket`s, each starting with a
//! `struct hlist_nulls_head`. A chain links the `hash_node`s of
//! `struct htab_elem`s through `hlist_nulls_node.next` and ends in a "nulls"
//! marker, an odd value whose `>> 1` is the bucket's index:
//! `htab_init_buckets()` does `INIT_HLIST_NULLS_HEAD(&buckets[i].head, i)`
//! (include/linux/list_nulls.h: `NULLS_MARKER(v) = 1UL | (v << 1)`). An element
//! is the `struct htab_elem` header, the key at `key`, then at
//! `key + round_up(key_size, 8)` the value or, in per-CPU maps, a
//! `void __percpu *` (but see [`PcpuPtrAt`]).
//!
//! Unlike the kernel we trust nothing we read. An element must hash to the
//! bucket it hangs in (`__select_bucket()`: `hash & (n_buckets - 1)`), a chain
//! must end in its own bucket's marker, a chain that loops is caught by Brent's
//! cycle detection in constant memory, and [`HtabLimits`] bounds buckets, chain
//! length and elements. So every element is yielded at most once, short of a
//! cycle: a chain that loops may yield some of its elements again before the
//! loop is caught, and the walk then ends in an `htab chain (cycle)` error. A
//! walk reads at most `n_buckets` heads and three words per element.
//!
//! Read from a live kernel, a walk can catch an element being moved to another
//! bucket (the kernel's lockless readers restart then, `lookup_nulls_elem_raw()`);
//! we report it as [`Error::Malformed`] and leave retrying to the caller.

use core::iter::FusedIterator;

use crate::addr::Kva;
use crate::array::PCPU_MIN_UNIT_SIZE;
use crate::bpf_map::MapInfo;
use crate::error::{Error, Result};
use crate::offsets::{BucketOffsets, HtabElemOffsets, Offsets};
use crate::percpu::PerCpu;
use crate::uapi::{MapType, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC};
use crate::virt::KernelRead;

/// The largest `max_entries` `htab_map_alloc()` accepts: `1UL << 31` ("bpf: Fix
/// hashtab overflow check on 32-bit arches", March 2024, also in the stable
/// series; before it `roundup_pow_of_two()` of a larger value made the `u32`
/// `n_buckets` 0 on 64-bit, which was refused too).
pub const HTAB_MAX_ENTRIES: u32 = 1 << 31;

/// `KMALLOC_MAX_SIZE` on x86-64 with SLUB and 4 KiB pages: `1 << 22`
/// (include/linux/slab.h: `KMALLOC_SHIFT_MAX` is `MAX_ORDER + PAGE_SHIFT - 1`
/// with `MAX_ORDER` 11 in v6.1, `MAX_PAGE_ORDER + PAGE_SHIFT` with
/// `MAX_PAGE_ORDER` 10 in v6.12). `htab_map_alloc_check()` wants
/// `key_size + value_size < KMALLOC_MAX_SIZE - sizeof(struct htab_elem)` since
/// v5.11 ("bpf: Lift hashtab key_size limit", which dropped the `MAX_BPF_STACK`
/// bound on keys).
pub const KMALLOC_MAX_SIZE: u64 = 1 << 22;

/// `CONFIG_NR_CPUS` of a `MAXSMP` x86-64 kernel (Debian's): no kernel has more
/// possible CPUs. The default for [`HtabLimits::nr_cpus`].
pub const NR_CPUS_MAX: u32 = 8192;

/// Elements a chain or a walk may hold beyond `max_entries + nr_cpus` before
/// [`HtabLimits`]' defaults stop it.
pub const HTAB_SLACK: u64 = 64;

/// Elements [`detect_pcpu_ptr_at`] looks at.
pub const DETECT_SAMPLES: usize = 16;

/// Offset of `next` in `struct hlist_nulls_node` and of `first` in
/// `struct hlist_nulls_head` (include/linux/list_nulls.h, unchanged since
/// v2.6.29): the first member of each.
const NEXT: u64 = 0;

/// `is_a_nulls()`: bit 0 set marks the end of a chain.
pub const fn is_a_nulls(ptr: u64) -> bool {
    ptr & 1 == 1
}

/// `get_nulls_value()` of a nulls marker.
pub const fn get_nulls_value(ptr: u64) -> u64 {
    ptr.wrapping_shr(1)
}

/// `NULLS_MARKER(value)`: what ends the chain of bucket `value`.
pub const fn nulls_marker(value: u64) -> u64 {
    value.wrapping_shl(1) | 1
}

/// `round_up(n, 8)`, in 64 bits so that it cannot overflow.
pub const fn round_up_8(n: u32) -> u64 {
    (n as u64).wrapping_add(7) & !7
}

/// `n_buckets` as `htab_map_alloc()` computes it: `roundup_pow_of_two(max_entries)`,
/// `None` where the kernel refuses `max_entries` (0 or above 2^31).
pub const fn htab_n_buckets(max_entries: u32) -> Option<u32> {
    if max_entries == 0 || max_entries > HTAB_MAX_ENTRIES {
        return None;
    }
    max_entries.checked_next_power_of_two()
}

/// `htab->elem_size` as `htab_map_alloc()` computes it: `sizeof(struct htab_elem)
/// + round_up(key_size, 8)`, plus `sizeof(void *)` for a per-CPU map and
/// `round_up(value_size, 8)` otherwise.
pub const fn htab_elem_size(elem_hdr: u32, key_size: u32, value_size: u32, percpu: bool) -> u64 {
    let tail = if percpu { 8 } else { round_up_8(value_size) };
    (elem_hdr as u64)
        .wrapping_add(round_up_8(key_size))
        .wrapping_add(tail)
}

/// Where a per-CPU element keeps its `void __percpu *`, relative to its key.
///
/// `htab_elem_set_ptr()`/`htab_elem_get_ptr()` used `l->key + key_size` until
/// upstream commit 11ba7ce076e5 ("bpf: Fix kmemleak warning for percpu hashmap",
/// v6.15, CVE-2025-37807, backported to 6.12.y and 6.14.y) moved it to
/// `l->key + round_up(key_size, 8)`. That is code, not layout, so BTF cannot
/// say which: the caller decides, or asks [`detect_pcpu_ptr_at`]. The two agree
/// when `key_size` is a multiple of 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PcpuPtrAt {
    /// `l->key + key_size`: before 11ba7ce076e5 and its backports.
    KeySize,
    /// `l->key + round_up(key_size, 8)`: after, and where every kernel puts
    /// the value of a map that is not per-CPU.
    KeySizeRoundUp,
}

impl PcpuPtrAt {
    /// Offset of the pointer from `htab_elem.key`.
    pub const fn offset(self, key_size: u32) -> u64 {
        match self {
            PcpuPtrAt::KeySize => key_size as u64,
            PcpuPtrAt::KeySizeRoundUp => round_up_8(key_size),
        }
    }
}

/// Budget of one walk. Sound tables never hit it; it stops a memory image (or
/// a kernel racing with us) from keeping a walk busy for long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtabLimits {
    /// Most buckets a walk visits: a table with more fails at once.
    pub max_buckets: u64,
    /// Longest chain. `None`: `max_entries + nr_cpus + HTAB_SLACK`.
    pub max_chain: Option<u64>,
    /// Most elements a walk yields. `None`: `max_entries + nr_cpus + HTAB_SLACK`.
    pub max_elems: Option<u64>,
    /// `num_possible_cpus()`, only for the defaults above. A table holds at most
    /// `max_entries` elements, but while an element is replaced the new one is
    /// linked before the old one is unlinked (`htab_map_update_elem()`; with
    /// prealloc the new one comes from the per-CPU `extra_elems`), so a snapshot
    /// may catch one more per CPU.
    pub nr_cpus: u32,
}

impl Default for HtabLimits {
    fn default() -> Self {
        HtabLimits {
            // U32_MAX / sizeof(struct bucket) rounded down to a power of two:
            // the most htab_map_alloc() allows with 16-byte buckets.
            max_buckets: 1 << 27,
            max_chain: None,
            max_elems: None,
            nr_cpus: NR_CPUS_MAX,
        }
    }
}

impl HtabLimits {
    /// `(max_chain, max_elems)` for a table of `max_entries`.
    fn resolve(&self, max_entries: u32) -> (u64, u64) {
        let default = u64::from(max_entries)
            .saturating_add(u64::from(self.nr_cpus))
            .saturating_add(HTAB_SLACK);
        (
            self.max_chain.unwrap_or(default),
            self.max_elems.unwrap_or(default),
        )
    }
}

/// One element as [`HtabIter`] finds it. Keys and values stay in guest memory:
/// read them with [`Htab::read_key`], [`Htab::read_value`] and
/// [`Htab::read_percpu_value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtabElem {
    /// The `struct htab_elem`.
    pub elem: Kva,
    /// `htab_elem.key` (`key_size` bytes).
    pub key: Kva,
    /// HASH and LRU_HASH: the value (`value_size` bytes). PERCPU_HASH and
    /// LRU_PERCPU_HASH: the `void __percpu *` read from the element, to hand to
    /// [`PerCpu::per_cpu_ptr`].
    pub value: Kva,
    /// The bucket whose chain holds it.
    pub bucket: u32,
    /// `htab_elem.hash`.
    pub hash: u32,
}

/// A checked `struct bpf_htab` (kernel/bpf/hashtab.c) of one of the four hash
/// map types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Htab {
    /// The `struct bpf_htab`.
    kva: Kva,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    buckets: Kva,
    n_buckets: u32,
    elem_size: u32,
    /// `htab->elems` of a preallocated table.
    elems: Option<Kva>,
    bucket: BucketOffsets,
    elem: HtabElemOffsets,
    pcpu_ptr_at: Option<PcpuPtrAt>,
}

fn field(base: Kva, off: u32, what: &'static str) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed(what, base))
}

/// Whether `at..at + len` lies in a structure of `size` bytes.
fn fits(at: u32, len: u32, size: u32) -> bool {
    at.checked_add(len).is_some_and(|end| end <= size)
}

/// The offsets must describe structures we can walk; anything else is another
/// layout, not bad data.
fn check_layout(off: &Offsets, htab: Kva) -> Result<()> {
    let h = &off.bpf_htab;
    if !(fits(h.buckets, 8, h.size)
        && fits(h.elems, 8, h.size)
        && fits(h.n_buckets, 4, h.size)
        && fits(h.elem_size, 4, h.size))
    {
        return Err(Error::unsupported("bpf_htab", htab));
    }
    let b = &off.bucket;
    if !fits(b.head, 8, b.size) {
        return Err(Error::unsupported("bucket", htab));
    }
    // `char key[] __aligned(8)` is the last member; the header ends at `size`.
    let e = &off.htab_elem;
    let layout_ok = fits(e.hash_node, 16, e.size)
        && fits(e.hash, 4, e.key)
        && e.key <= e.size
        && e.key & 7 == 0
        && e.ptr_to_pptr.is_none_or(|p| fits(p, 8, e.key));
    if !layout_ok {
        return Err(Error::unsupported("htab_elem", htab));
    }
    Ok(())
}

/// What `htab_map_alloc_check()` refuses (v6.1 and v6.12 alike).
fn check_map(map: &MapInfo, percpu: bool, prealloc: bool, elem_hdr: u32) -> Result<()> {
    let lru = matches!(map.map_type, MapType::LRU_HASH | MapType::LRU_PERCPU_HASH);
    let at = map.kva;
    // `lru && !prealloc` is -ENOTSUPP, `!lru && percpu_lru` -EINVAL.
    if (lru && !prealloc) || (!lru && map.map_flags & BPF_F_NO_COMMON_LRU != 0) {
        return Err(Error::malformed("bpf_map.map_flags", at));
    }
    if htab_n_buckets(map.max_entries).is_none() {
        return Err(Error::malformed("bpf_map.max_entries", at));
    }
    let room = KMALLOC_MAX_SIZE.saturating_sub(u64::from(elem_hdr));
    if map.key_size == 0 || u64::from(map.key_size) >= room {
        return Err(Error::malformed("bpf_map.key_size", at));
    }
    let too_big = u64::from(map.key_size).saturating_add(u64::from(map.value_size)) >= room
        // pcpu_alloc() refuses more than PCPU_MIN_UNIT_SIZE, and prealloc_init()
        // allocated every element's value up front.
        || (percpu && prealloc && round_up_8(map.value_size) > u64::from(PCPU_MIN_UNIT_SIZE));
    if map.value_size == 0 || too_big {
        return Err(Error::malformed("bpf_map.value_size", at));
    }
    Ok(())
}

impl Htab {
    /// The hash table whose `struct bpf_map` is `map`, checked against
    /// `htab_map_alloc_check()` and `htab_map_alloc()`. Reads `buckets`, `elems`,
    /// `n_buckets` and `elem_size` of the `struct bpf_htab`.
    ///
    /// The per-CPU pointer position is set only where both kernels agree (not
    /// per-CPU, or `key_size % 8 == 0`); otherwise see
    /// [`Htab::set_pcpu_ptr_at`].
    pub fn new<K: KernelRead + ?Sized>(k: &K, map: &MapInfo, off: &Offsets) -> Result<Htab> {
        let percpu = match map.map_type {
            MapType::HASH | MapType::LRU_HASH => false,
            MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH => true,
            _ => return Err(Error::unsupported("htab map type", map.kva)),
        };
        let h = &off.bpf_htab;
        let kva = map
            .kva
            .checked_sub(u64::from(h.map))
            .ok_or(Error::malformed("bpf_htab", map.kva))?;
        check_layout(off, kva)?;
        let prealloc = map.map_flags & BPF_F_NO_PREALLOC == 0;
        check_map(map, percpu, prealloc, off.htab_elem.size)?;

        let buckets = k.read_ptr(field(kva, h.buckets, "bpf_htab")?)?;
        let elems = k.read_ptr(field(kva, h.elems, "bpf_htab")?)?;
        let n_buckets = k.read_kva_u32(field(kva, h.n_buckets, "bpf_htab")?)?;
        let elem_size = k.read_kva_u32(field(kva, h.elem_size, "bpf_htab")?)?;

        // map.max_entries is stored after BPF_F_NO_COMMON_LRU rounded it to the
        // CPU count, so this is exactly what htab_map_alloc() computed: non-zero,
        // a power of two, and at most U32_MAX / sizeof(struct bucket).
        let bucket_size = off.bucket.size;
        let n_ok = htab_n_buckets(map.max_entries) == Some(n_buckets)
            && n_buckets <= u32::MAX.checked_div(bucket_size).unwrap_or(0);
        if !n_ok {
            return Err(Error::malformed("bpf_htab.n_buckets", kva));
        }
        // bpf_map_area_alloc() memory is at least 8-aligned.
        let span = u64::from(n_buckets).checked_mul(u64::from(bucket_size));
        if buckets.get() == 0
            || buckets.page_offset(8) != 0
            || span.and_then(|s| buckets.checked_add(s)).is_none()
        {
            return Err(Error::malformed("bpf_htab.buckets", kva));
        }
        let want = htab_elem_size(off.htab_elem.size, map.key_size, map.value_size, percpu);
        if u64::from(elem_size) != want {
            return Err(Error::malformed("bpf_htab.elem_size", kva));
        }
        let elems = if prealloc {
            let span = u64::from(elem_size).checked_mul(u64::from(map.max_entries));
            if elems.get() == 0
                || elems.page_offset(8) != 0
                || span.and_then(|s| elems.checked_add(s)).is_none()
            {
                return Err(Error::malformed("bpf_htab.elems", kva));
            }
            Some(elems)
        } else {
            None
        };
        Ok(Htab {
            kva,
            map_type: map.map_type,
            key_size: map.key_size,
            value_size: map.value_size,
            max_entries: map.max_entries,
            buckets,
            n_buckets,
            elem_size,
            elems,
            bucket: off.bucket,
            elem: off.htab_elem,
            pcpu_ptr_at: (!percpu || map.key_size & 7 == 0).then_some(PcpuPtrAt::KeySizeRoundUp),
        })
    }

    /// Address of the `struct bpf_htab`.
    pub const fn kva(&self) -> Kva {
        self.kva
    }

    /// One of the four hash map types.
    pub const fn map_type(&self) -> MapType {
        self.map_type
    }

    /// Whether values are per-CPU (PERCPU_HASH, LRU_PERCPU_HASH).
    pub const fn is_percpu(&self) -> bool {
        matches!(
            self.map_type,
            MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
        )
    }

    /// `map.key_size`.
    pub const fn key_size(&self) -> u32 {
        self.key_size
    }

    /// `map.value_size`.
    pub const fn value_size(&self) -> u32 {
        self.value_size
    }

    /// `map.max_entries`.
    pub const fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// `htab->buckets`.
    pub const fn buckets(&self) -> Kva {
        self.buckets
    }

    /// `htab->n_buckets`.
    pub const fn n_buckets(&self) -> u32 {
        self.n_buckets
    }

    /// `htab->elem_size`.
    pub const fn elem_size(&self) -> u32 {
        self.elem_size
    }

    /// `htab->elems`, the preallocated element area; `None` with
    /// `BPF_F_NO_PREALLOC`.
    pub const fn elems(&self) -> Option<Kva> {
        self.elems
    }

    /// Where per-CPU pointers are read; `None` until known.
    pub const fn pcpu_ptr_at(&self) -> Option<PcpuPtrAt> {
        self.pcpu_ptr_at
    }

    /// Read per-CPU pointers at `at` (ignored by maps that are not per-CPU).
    pub fn set_pcpu_ptr_at(&mut self, at: PcpuPtrAt) {
        if self.is_percpu() {
            self.pcpu_ptr_at = Some(at);
        }
    }

    /// Every element, bucket by bucket and each chain in order, as
    /// `htab_map_get_next_key()` visits them.
    pub fn iter<'a, K: KernelRead + ?Sized>(
        &self,
        k: &'a K,
        limits: HtabLimits,
    ) -> HtabIter<'a, K> {
        let (max_chain, max_elems) = limits.resolve(self.max_entries);
        let state = if u64::from(self.n_buckets) > limits.max_buckets {
            State::Failed(Error::limit(
                "bpf_htab.n_buckets",
                self.kva,
                limits.max_buckets,
            ))
        } else {
            State::Walk
        };
        HtabIter {
            k,
            htab: *self,
            max_chain,
            max_elems,
            state,
            bucket: 0,
            link: None,
            chain: 0,
            elems: 0,
            brent: Brent::new(),
            pending: None,
            elem_buf: [0; ELEM_BUF],
            elem_len: 0,
            read: self.elem_read(),
            heads: Heads::new(),
        }
    }

    /// How a walk reads each element: one read for `hash_node.next` and
    /// `hash` when they sit close, and for the key and value too when the
    /// element is small and not per-CPU.
    fn elem_read(&self) -> ElemRead {
        let next_at = u64::from(self.elem.hash_node).saturating_add(NEXT);
        let hash_at = u64::from(self.elem.hash);
        let hdr = next_at.saturating_add(8).max(hash_at.saturating_add(4));
        // From the start of the element to the end of its value.
        let whole = (!self.is_percpu())
            .then(|| {
                u64::from(self.elem.key)
                    .checked_add(round_up_8(self.key_size))?
                    .checked_add(u64::from(self.value_size))
            })
            .flatten()
            .filter(|&w| w >= hdr && w <= ELEM_BUF as u64);
        let len = whole.unwrap_or(hdr);
        let fits = len <= ELEM_BUF as u64;
        let at = |o: u64| usize::try_from(o).unwrap_or(usize::MAX);
        ElemRead {
            // 0: the header does not fit, read `hash` alone.
            len: if fits { at(len) } else { 0 },
            next_at: at(next_at),
            hash_at: at(hash_at),
            whole: whole.is_some(),
        }
    }

    /// `&buckets[i].head.first`.
    fn bucket_head(&self, i: u64) -> Result<Kva> {
        u64::from(self.bucket.size)
            .checked_mul(i)
            .and_then(|off| self.buckets.checked_add(off))
            .and_then(|b| b.checked_add(u64::from(self.bucket.head)))
            .and_then(|h| h.checked_add(NEXT))
            .ok_or(Error::malformed("bpf_htab.buckets", self.kva))
    }

    /// `htab->elems + i * elem_size` (`get_htab_elem()`).
    fn elems_entry(&self, elems: Kva, i: u64) -> Result<Kva> {
        u64::from(self.elem_size)
            .checked_mul(i)
            .and_then(|off| elems.checked_add(off))
            .ok_or(Error::malformed("bpf_htab.elems", self.kva))
    }

    fn key_of(&self, elem: Kva) -> Result<Kva> {
        field(elem, self.elem.key, "htab_elem")
    }

    /// Where the per-CPU pointer of `elem` would be if stored at `at`.
    fn pptr_slot(&self, elem: Kva, at: PcpuPtrAt) -> Result<Kva> {
        self.key_of(elem)?
            .checked_add(at.offset(self.key_size))
            .ok_or(Error::malformed("htab_elem", elem))
    }

    /// Key and value (or per-CPU pointer) of an element the walk found.
    fn resolve<K: KernelRead + ?Sized>(&self, k: &K, raw: Raw) -> Result<HtabElem> {
        let key = self.key_of(raw.elem)?;
        let value = if self.is_percpu() {
            let at = self.pcpu_ptr_at.ok_or(Error::unsupported(
                "htab_elem per-CPU pointer position",
                raw.elem,
            ))?;
            let slot = self.pptr_slot(raw.elem, at)?;
            // bpf_map_alloc_percpu(.., 8, ..) and the per-CPU bpf_mem_alloc hand
            // out 8-aligned chunks, and every linked element has one.
            let pptr = k.read_ptr(slot)?;
            if pptr.get() == 0 || pptr.page_offset(8) != 0 {
                return Err(Error::malformed("htab_elem per-CPU pointer", slot));
            }
            pptr
        } else {
            key.checked_add(round_up_8(self.key_size))
                .ok_or(Error::malformed("htab_elem", raw.elem))?
        };
        Ok(HtabElem {
            elem: raw.elem,
            key,
            value,
            bucket: raw.bucket,
            hash: raw.hash,
        })
    }

    /// `buf.len()` must not exceed `size`.
    fn check_len(what: &'static str, at: Kva, len: usize, size: u32) -> Result<()> {
        if u64::try_from(len).is_ok_and(|n| n <= u64::from(size)) {
            Ok(())
        } else {
            Err(Error::limit(what, at, u64::from(size)))
        }
    }

    /// The first `buf.len()` (at most `key_size`) bytes of the key of `e`.
    pub fn read_key<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        e: &HtabElem,
        buf: &mut [u8],
    ) -> Result<()> {
        Self::check_len("htab_elem.key", e.key, buf.len(), self.key_size)?;
        k.read_kva(e.key, buf)
    }

    /// The first `buf.len()` (at most `value_size`) bytes of the value of `e`,
    /// in a map that is not per-CPU.
    pub fn read_value<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        e: &HtabElem,
        buf: &mut [u8],
    ) -> Result<()> {
        if self.is_percpu() {
            return Err(Error::unsupported("per-CPU htab value", e.elem));
        }
        Self::check_len("htab_elem value", e.value, buf.len(), self.value_size)?;
        k.read_kva(e.value, buf)
    }

    /// The whole key and the first `value.len()` bytes of the value of `e`, in
    /// a map that is not per-CPU: one read when they are small, as they sit
    /// next to each other (`key`, padding to 8, value).
    pub fn read_key_value<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        e: &HtabElem,
        key: &mut [u8],
        value: &mut [u8],
    ) -> Result<()> {
        const SMALL: usize = 512;
        const TINY: usize = 64;
        let gap = usize::try_from(round_up_8(self.key_size)).unwrap_or(usize::MAX);
        let whole_key = u64::try_from(key.len()).ok() == Some(u64::from(self.key_size));
        let total = gap.saturating_add(value.len());
        if self.is_percpu() || !whole_key || total > SMALL {
            self.read_key(k, e, key)?;
            return self.read_value(k, e, value);
        }
        Self::check_len("htab_elem value", e.value, value.len(), self.value_size)?;
        // A small buffer for small elements: zeroing 512 bytes per call costs
        // more than the read.
        if total <= TINY {
            Self::split_read(k, e, key, value, gap, &mut [0u8; TINY], total)
        } else {
            Self::split_read(k, e, key, value, gap, &mut [0u8; SMALL], total)
        }
    }

    /// Read key, padding and value (`total` bytes) in one go through `buf`,
    /// then split them out.
    fn split_read<K: KernelRead + ?Sized>(
        k: &K,
        e: &HtabElem,
        key: &mut [u8],
        value: &mut [u8],
        gap: usize,
        buf: &mut [u8],
        total: usize,
    ) -> Result<()> {
        let both = buf
            .get_mut(..total)
            .ok_or(Error::malformed("htab_elem", e.elem))?;
        k.read_kva(e.key, both)?;
        let (k_part, rest) = both.split_at(key.len());
        key.copy_from_slice(k_part);
        let v_part = rest
            .get(gap.saturating_sub(key.len())..)
            .ok_or(Error::malformed("htab_elem", e.elem))?;
        value.copy_from_slice(v_part);
        Ok(())
    }

    /// The first `buf.len()` (at most `value_size`) bytes of `cpu`'s value of
    /// `e`, in a per-CPU map: `per_cpu_ptr(pptr, cpu)`.
    pub fn read_percpu_value<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        e: &HtabElem,
        pcpu: &PerCpu,
        cpu: u32,
        buf: &mut [u8],
    ) -> Result<()> {
        if !self.is_percpu() {
            return Err(Error::unsupported("htab value that is not per-CPU", e.elem));
        }
        Self::check_len("htab_elem value", e.value, buf.len(), self.value_size)?;
        k.read_kva(pcpu.per_cpu_ptr(k, e.value, cpu)?, buf)
    }
}

/// Brent's cycle detection over one chain: the tortoise waits at nodes
/// 1, 3, 7, 15, ... of the chain while the hare (the walk) moves on, so a loop
/// is found within a few times its length plus the tail before it.
#[derive(Clone, Copy, Debug)]
struct Brent {
    tortoise: Option<Kva>,
    power: u64,
    lam: u64,
}

impl Brent {
    const fn new() -> Self {
        Brent {
            tortoise: None,
            power: 1,
            lam: 0,
        }
    }

    /// The walk stepped onto `node`: `true` if it has been there before.
    fn step(&mut self, node: Kva) -> bool {
        if self.tortoise == Some(node) {
            return true;
        }
        self.lam = self.lam.saturating_add(1);
        if self.lam >= self.power {
            self.tortoise = Some(node);
            self.power = self.power.saturating_mul(2);
            self.lam = 0;
        }
        false
    }
}

/// An element before its key and value are resolved.
#[derive(Clone, Copy, Debug)]
struct Raw {
    elem: Kva,
    bucket: u32,
    hash: u32,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Walk,
    Failed(Error),
    Done,
}

/// The walk of [`Htab::iter`]: elements bucket by bucket, stopped for good by
/// the first error.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct HtabIter<'a, K: ?Sized> {
    k: &'a K,
    htab: Htab,
    max_chain: u64,
    max_elems: u64,
    state: State,
    /// The bucket being walked.
    bucket: u64,
    /// Where the next link is read; `None` before the bucket's head.
    link: Option<Kva>,
    /// Elements seen in this bucket's chain.
    chain: u64,
    /// Elements yielded.
    elems: u64,
    brent: Brent,
    /// The value of `*link`, when the element header read already had it.
    pending: Option<u64>,
    /// The bytes of the element last yielded, from its start, when it was
    /// small enough to be read whole (`elem_len` of them; 0: not read whole).
    elem_buf: [u8; ELEM_BUF],
    elem_len: usize,
    /// How each element is read, worked out once per walk.
    read: ElemRead,
    /// Bucket heads read ahead, a block at a time.
    heads: Heads,
}

/// Bytes of bucket array read at a time.
const HEADS_BUF: usize = 1024;

/// Bytes of an element read at once: header, key and value of a map that is
/// not per-CPU, when they fit (a u32 -> u64 hash element is 64 bytes).
const ELEM_BUF: usize = 128;

/// Offsets and length of the one read per element of [`HtabIter`].
#[derive(Clone, Copy, Debug)]
struct ElemRead {
    /// Bytes read from the start of the element, into `elem_buf`; 0 when
    /// `hash_node.next` and `hash` do not fit it.
    len: usize,
    next_at: usize,
    hash_at: usize,
    /// Whether the read takes in the key and value too.
    whole: bool,
}

/// A block of the bucket array.
#[derive(Clone, Copy, Debug)]
struct Heads {
    buf: [u8; HEADS_BUF],
    /// Index of the first bucket in `buf`.
    first: u64,
    /// Buckets in `buf`.
    count: u64,
}

impl Heads {
    const fn new() -> Self {
        Heads {
            buf: [0; HEADS_BUF],
            first: 0,
            count: 0,
        }
    }
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let b = b.get(at..at.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    Some(u64::from_le_bytes(w))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let b = b.get(at..at.checked_add(4)?)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    Some(u32::from_le_bytes(w))
}

/// Buckets ahead whose first element is prefetched: elements sit in random
/// order, so a walk waits on memory unless it asks early.
const PREFETCH_BUCKETS: u64 = 16;

impl<K: KernelRead + ?Sized> HtabIter<'_, K> {
    /// Ask for the first element of the bucket [`PREFETCH_BUCKETS`] ahead, if
    /// its head is in the block read ahead.
    fn prefetch_ahead(&self) {
        let h = &self.heads;
        let b = self.bucket.saturating_add(PREFETCH_BUCKETS);
        let size = u64::from(self.htab.bucket.size);
        if b < h.first || b >= h.first.saturating_add(h.count) {
            return;
        }
        let at_in = u64::from(self.htab.bucket.head).saturating_add(NEXT);
        let off = b
            .saturating_sub(h.first)
            .saturating_mul(size)
            .saturating_add(at_in);
        if let Some(ptr) = usize::try_from(off).ok().and_then(|o| le_u64(&h.buf, o)) {
            if !is_a_nulls(ptr) && ptr != 0 {
                self.k.prefetch_kva(Kva(ptr));
            }
        }
    }

    /// `buckets[bucket].head.first`, from a block read ahead when the bucket
    /// layout allows; a block that does not read falls back to one head, so
    /// an error names the bucket that failed.
    fn head(&mut self, bucket: u64) -> Result<u64> {
        let size = u64::from(self.htab.bucket.size);
        let at_in = u64::from(self.htab.bucket.head).saturating_add(NEXT);
        let fits = size >= 8 && at_in.saturating_add(8) <= size && size <= HEADS_BUF as u64;
        if fits {
            let h = &self.heads;
            // Refill early enough that the prefetch distance stays in the block.
            let ahead = bucket
                .saturating_add(PREFETCH_BUCKETS)
                .min(u64::from(self.htab.n_buckets).saturating_sub(1));
            if bucket >= h.first && ahead < h.first.saturating_add(h.count) {
                let off = bucket
                    .saturating_sub(h.first)
                    .saturating_mul(size)
                    .saturating_add(at_in);
                if let Some(v) = usize::try_from(off).ok().and_then(|o| le_u64(&h.buf, o)) {
                    return Ok(v);
                }
            }
            let left = u64::from(self.htab.n_buckets).saturating_sub(bucket);
            let count = (HEADS_BUF as u64).checked_div(size).unwrap_or(0).min(left);
            let len = usize::try_from(count.saturating_mul(size)).unwrap_or(0);
            let start = self
                .htab
                .bucket_head(bucket)?
                .checked_sub(at_in)
                .ok_or(Error::malformed("bpf_htab.buckets", self.htab.kva))?;
            self.heads.count = 0;
            if let Some(dst) = self.heads.buf.get_mut(..len) {
                if count > 0 && self.k.read_kva(start, dst).is_ok() {
                    self.heads.first = bucket;
                    self.heads.count = count;
                    if let Some(v) = usize::try_from(at_in)
                        .ok()
                        .and_then(|o| le_u64(&self.heads.buf, o))
                    {
                        return Ok(v);
                    }
                }
            }
        }
        self.k.read_kva_u64(self.htab.bucket_head(bucket)?)
    }

    /// The next element, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<HtabElem>> {
        let r = self
            .next_raw()
            .and_then(|raw| raw.map(|raw| self.htab.resolve(self.k, raw)).transpose());
        if !matches!(r, Ok(Some(_))) {
            self.state = State::Done;
        }
        r
    }

    fn next_raw(&mut self) -> Result<Option<Raw>> {
        let r = self.step();
        if !matches!(r, Ok(Some(_))) {
            self.state = State::Done;
        }
        r
    }

    /// `hlist_nulls_for_each_entry_rcu()` over each bucket in turn.
    fn step(&mut self) -> Result<Option<Raw>> {
        match self.state {
            State::Done => return Ok(None),
            State::Failed(e) => return Err(e),
            State::Walk => {}
        }
        loop {
            let (link, ptr) = match self.link {
                Some(at) => match self.pending.take() {
                    Some(v) => (at, v),
                    None => (at, self.k.read_kva_u64(at)?),
                },
                None => {
                    if self.bucket >= u64::from(self.htab.n_buckets) {
                        return Ok(None);
                    }
                    self.chain = 0;
                    self.brent = Brent::new();
                    let at = self.htab.bucket_head(self.bucket)?;
                    let head = self.head(self.bucket)?;
                    self.prefetch_ahead();
                    (at, head)
                }
            };
            if is_a_nulls(ptr) {
                // The kernel restarts a lookup that ends in another bucket's
                // marker (lookup_nulls_elem_raw()): the element it was on moved.
                // In an image that is a broken chain.
                if ptr != nulls_marker(self.bucket) {
                    return Err(Error::malformed("htab nulls marker", link));
                }
                self.link = None;
                self.bucket = self.bucket.saturating_add(1);
                continue;
            }
            // NULL is not a nulls marker (a freed and zeroed table), and
            // elements are 8-aligned (`key[] __aligned(8)`, kmalloc and vmalloc).
            if ptr == 0 || ptr & 7 != 0 {
                return Err(Error::malformed("htab_elem.hash_node.next", link));
            }
            let node = Kva(ptr);
            let elem = node
                .checked_sub(u64::from(self.htab.elem.hash_node))
                .ok_or(Error::malformed("htab_elem.hash_node.next", link))?;
            if self.brent.step(node) {
                return Err(Error::malformed("htab chain (cycle)", elem));
            }
            if self.chain >= self.max_chain {
                let head = self.htab.bucket_head(self.bucket)?;
                return Err(Error::limit("htab chain", head, self.max_chain));
            }
            if self.elems >= self.max_elems {
                return Err(Error::limit("htab_elem", elem, self.max_elems));
            }
            self.chain = self.chain.saturating_add(1);
            self.elem_len = 0;
            let r = self.read;
            let header = self.elem_buf.get_mut(..r.len).filter(|b| !b.is_empty());
            let hash = match header {
                Some(dst) => {
                    self.k.read_kva(elem, dst)?;
                    let dst: &[u8] = dst;
                    self.pending = le_u64(dst, r.next_at);
                    let hash = le_u32(dst, r.hash_at).ok_or(Error::malformed("htab_elem", elem))?;
                    if r.whole {
                        self.elem_len = dst.len();
                    }
                    hash
                }
                None => self
                    .k
                    .read_kva_u32(field(elem, self.htab.elem.hash, "htab_elem")?)?,
            };
            let mask = self.htab.n_buckets.wrapping_sub(1);
            if u64::from(hash & mask) != self.bucket {
                return Err(Error::malformed("htab_elem.hash", elem));
            }
            self.elems = self.elems.saturating_add(1);
            self.link = Some(
                node.checked_add(NEXT)
                    .ok_or(Error::malformed("htab_elem", elem))?,
            );
            return Ok(Some(Raw {
                elem,
                bucket: hash & mask,
                hash,
            }));
        }
    }
}

impl<K: KernelRead + ?Sized> HtabIter<'_, K> {
    /// The key and value of the element [`HtabIter::next`] returned last, as
    /// the same read that found it saw them: `None` for per-CPU maps and for
    /// elements too large to read whole (read them with
    /// [`Htab::read_key_value`]).
    pub fn last_key_value(&self) -> Option<(&[u8], &[u8])> {
        let bytes = self
            .elem_buf
            .get(..self.elem_len)
            .filter(|b| !b.is_empty())?;
        let key_at = usize::try_from(self.htab.elem.key).ok()?;
        let key_len = usize::try_from(self.htab.key_size).ok()?;
        let value_at = key_at.checked_add(usize::try_from(round_up_8(self.htab.key_size)).ok()?)?;
        let value_len = usize::try_from(self.htab.value_size).ok()?;
        Some((
            bytes.get(key_at..key_at.checked_add(key_len)?)?,
            bytes.get(value_at..value_at.checked_add(value_len)?)?,
        ))
    }
}

impl<K: KernelRead + ?Sized> Iterator for HtabIter<'_, K> {
    type Item = Result<HtabElem>;

    fn next(&mut self) -> Option<Self::Item> {
        HtabIter::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for HtabIter<'_, K> {}

/// Where this kernel keeps per-CPU pointers in the elements of `htab`, decided
/// from the image; `None` when it cannot tell (both or neither place fits, or
/// there is nothing to look at). Maps that are not per-CPU, and keys whose size
/// is a multiple of 8, give [`PcpuPtrAt::KeySizeRoundUp`] at once.
///
/// - `BPF_F_NO_PREALLOC` with `htab_elem.ptr_to_pptr` (v6.1+, "bpf: Convert
///   percpu hash map to per-cpu bpf_mem_alloc"): `alloc_htab_elem()` sets
///   `l->ptr_to_pptr` to a per-CPU `bpf_mem_alloc` object whose first word is
///   the pointer, then `htab_elem_set_ptr()` copies it into the element. The
///   place holding that word, in every element sampled, wins.
/// - Otherwise the candidates are judged over up to [`DETECT_SAMPLES`] elements
///   (spread over `htab->elems`, where `prealloc_init()` gave each of the first
///   `max_entries` its pointer; or the first ones linked): a candidate fits if
///   all its values are non-zero, 8-aligned, pairwise distinct, and
///   `per_cpu_ptr(p, cpu)` is readable at both ends of a value for every CPU in
///   `cpus` (the possible CPUs). A misplaced read takes half of the pointer
///   and half of a neighbour, which fails one of these.
pub fn detect_pcpu_ptr_at<K: KernelRead + ?Sized>(
    k: &K,
    htab: &Htab,
    pcpu: &PerCpu,
    cpus: &[u32],
) -> Result<Option<PcpuPtrAt>> {
    if !htab.is_percpu() || htab.key_size & 7 == 0 {
        return Ok(Some(PcpuPtrAt::KeySizeRoundUp));
    }
    let mut samples = [Kva(0); DETECT_SAMPLES];
    let mut n = 0usize;
    if let Some(elems) = htab.elems {
        let max = u64::from(htab.max_entries);
        let want = max.min(DETECT_SAMPLES as u64);
        for (j, slot) in (0..want).zip(samples.iter_mut()) {
            // Spread evenly: j * max_entries / want, distinct as want <= max.
            let i = j.saturating_mul(max).checked_div(want).unwrap_or(0);
            *slot = htab.elems_entry(elems, i)?;
            n = n.saturating_add(1);
        }
    } else {
        let limits = HtabLimits {
            nr_cpus: u32::try_from(cpus.len()).unwrap_or(u32::MAX),
            ..HtabLimits::default()
        };
        let mut it = htab.iter(k, limits);
        for slot in samples.iter_mut() {
            let Some(raw) = it.next_raw()? else { break };
            *slot = raw.elem;
            n = n.saturating_add(1);
        }
    }
    let samples = samples.get(..n).unwrap_or(&[]);
    if htab.elems.is_none() {
        if let Some(p2p) = htab.elem.ptr_to_pptr {
            return by_ptr_to_pptr(k, htab, samples, p2p);
        }
    }
    let key_size = plausible(k, htab, pcpu, cpus, samples, PcpuPtrAt::KeySize)?;
    let round_up = plausible(k, htab, pcpu, cpus, samples, PcpuPtrAt::KeySizeRoundUp)?;
    Ok(match (key_size, round_up) {
        (true, false) => Some(PcpuPtrAt::KeySize),
        (false, true) => Some(PcpuPtrAt::KeySizeRoundUp),
        _ => None,
    })
}

/// The place that holds `*l->ptr_to_pptr` in every sample.
fn by_ptr_to_pptr<K: KernelRead + ?Sized>(
    k: &K,
    htab: &Htab,
    samples: &[Kva],
    p2p: u32,
) -> Result<Option<PcpuPtrAt>> {
    let (mut key_size, mut round_up) = (false, false);
    for &elem in samples {
        let pptr = k.read_kva_u64(k.read_ptr(field(elem, p2p, "htab_elem")?)?)?;
        let a = k.read_kva_u64(htab.pptr_slot(elem, PcpuPtrAt::KeySize)?)? == pptr;
        let b = k.read_kva_u64(htab.pptr_slot(elem, PcpuPtrAt::KeySizeRoundUp)?)? == pptr;
        match (a, b) {
            (true, false) => key_size = true,
            (false, true) => round_up = true,
            // Both: this element cannot tell. Neither: it contradicts itself.
            (true, true) => {}
            (false, false) => return Ok(None),
        }
    }
    Ok(match (key_size, round_up) {
        (true, false) => Some(PcpuPtrAt::KeySize),
        (false, true) => Some(PcpuPtrAt::KeySizeRoundUp),
        _ => None,
    })
}

/// Whether every sample has a believable per-CPU pointer at `at`.
fn plausible<K: KernelRead + ?Sized>(
    k: &K,
    htab: &Htab,
    pcpu: &PerCpu,
    cpus: &[u32],
    samples: &[Kva],
    at: PcpuPtrAt,
) -> Result<bool> {
    let mut seen = [0u64; DETECT_SAMPLES];
    // The last byte of a value: value_size >= 1 was checked.
    let last = round_up_8(htab.value_size).saturating_sub(1);
    for (i, &elem) in samples.iter().enumerate() {
        let p = k.read_kva_u64(htab.pptr_slot(elem, at)?)?;
        if p == 0 || p & 7 != 0 || seen.get(..i).is_some_and(|s| s.contains(&p)) {
            return Ok(false);
        }
        if let Some(s) = seen.get_mut(i) {
            *s = p;
        }
        for &cpu in cpus {
            let v = pcpu.per_cpu_ptr(k, Kva(p), cpu)?;
            let mut b = [0u8; 1];
            let end = v.checked_add(last);
            if k.read_kva(v, &mut b).is_err() || end.is_none_or(|e| k.read_kva(e, &mut b).is_err())
            {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::offsets::BpfHtabOffsets;
    use crate::uapi::BPF_OBJ_NAME_LEN;
    use crate::virt::FlatKernel;

    const BASE: Kva = Kva(0xffff_8880_0100_0000);
    const NCPUS: u32 = 4;
    /// Per-CPU pointers start here: dynamic per-CPU chunks give pointers like
    /// this (the kmemleak report in 11ba7ce076e5 shows 0x606fd7c44ac8).
    const PCPU_BIAS: u64 = 0x606f_d7c4_0000;
    const FAR: Kva = Kva(0xffff_c900_dead_0000);

    /// x86-64 v6.12 layouts, as BTF reports them (the 6.1 `htab_elem` has the
    /// same offsets).
    fn offsets() -> Offsets {
        Offsets {
            bpf_htab: BpfHtabOffsets {
                map: 0,
                buckets: 376,
                elems: 384,
                n_buckets: 760,
                elem_size: 764,
                size: 896,
            },
            bucket: BucketOffsets { head: 0, size: 16 },
            htab_elem: HtabElemOffsets {
                hash_node: 0,
                hash: 40,
                key: 48,
                ptr_to_pptr: Some(16),
                size: 48,
            },
            ..Offsets::default()
        }
    }

    /// Kernel memory as one run of bytes at `BASE`.
    struct Image {
        bytes: Vec<u8>,
    }

    impl Image {
        fn alloc(&mut self, size: u64, align: u64) -> Kva {
            let at = (self.bytes.len() as u64).next_multiple_of(align);
            self.bytes.resize((at + size) as usize, 0);
            Kva(BASE.0 + at)
        }

        /// Pads so that the next 8-aligned allocation starts `before` bytes
        /// short of a 4 KiB boundary.
        fn pad_to_page_end(&mut self, before: u64) {
            let at = (self.bytes.len() as u64).next_multiple_of(8);
            let page_off = (BASE.0 + at) % 4096;
            let pad = (4096 - before + 4096 - page_off) % 4096;
            self.bytes.resize((at + pad) as usize, 0);
        }

        fn pos(&self, at: Kva) -> usize {
            at.offset_from(BASE).unwrap() as usize
        }

        fn put(&mut self, at: Kva, v: &[u8]) {
            let p = self.pos(at);
            self.bytes[p..p + v.len()].copy_from_slice(v);
        }

        fn put_u32(&mut self, at: Kva, v: u32) {
            self.put(at, &v.to_le_bytes());
        }

        fn put_u64(&mut self, at: Kva, v: u64) {
            self.put(at, &v.to_le_bytes());
        }

        fn get_u64(&self, at: Kva) -> u64 {
            let p = self.pos(at);
            u64::from_le_bytes(self.bytes[p..p + 8].try_into().unwrap())
        }

        fn kernel(&self) -> FlatKernel<&[u8]> {
            FlatKernel {
                base: BASE,
                bytes: &self.bytes[..],
            }
        }
    }

    fn at(base: Kva, off: u64) -> Kva {
        base.checked_add(off).unwrap()
    }

    #[derive(Clone, Copy, Debug)]
    struct Spec {
        map_type: MapType,
        prealloc: bool,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        /// Where this "kernel" stores per-CPU pointers.
        at: PcpuPtrAt,
    }

    fn spec(map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> Spec {
        Spec {
            map_type,
            prealloc: true,
            key_size,
            value_size,
            max_entries,
            at: PcpuPtrAt::KeySizeRoundUp,
        }
    }

    /// What a walk reads back: the key, and one value (or one per CPU).
    type Got = (Vec<u8>, Vec<Vec<u8>>);

    /// A `struct bpf_htab` with its buckets, elements and per-CPU values, laid
    /// out and filled the way `htab_map_alloc()` and `htab_map_update_elem()` do.
    struct Table {
        img: Image,
        off: Offsets,
        spec: Spec,
        map: MapInfo,
        htab: Kva,
        buckets: Kva,
        n_buckets: u32,
        elem_size: u64,
        elems: Option<Kva>,
        nr_elems: u64,
        next_free: u64,
        pcpu: PerCpu,
        units: Kva,
        unit: u64,
        next_pptr: u64,
        rng: u64,
        /// Elements in insertion order.
        linked: Vec<Kva>,
        model: Vec<Got>,
    }

    fn value_bytes(v: u64, cpu: u32, len: u32) -> Vec<u8> {
        (0..len)
            .map(|j| (v.wrapping_mul(131) + u64::from(cpu) * 7 + u64::from(j)) as u8)
            .collect()
    }

    impl Table {
        fn new(spec: Spec) -> Table {
            let off = offsets();
            let mut img = Image { bytes: Vec::new() };
            let percpu = spec.map_type.is_percpu();
            let pcpu_offset = img.alloc(8 * u64::from(NCPUS), 64);
            let htab = img.alloc(896, 64);
            let n_buckets = htab_n_buckets(spec.max_entries).unwrap();
            let elem_size = htab_elem_size(48, spec.key_size, spec.value_size, percpu);
            let buckets = img.alloc(16 * u64::from(n_buckets), 64);
            for i in 0..u64::from(n_buckets) {
                img.put_u64(at(buckets, 16 * i), nulls_marker(i));
            }
            let mut nr_elems = 0;
            let elems = spec.prealloc.then(|| {
                // htab_has_extra_elems(): plain HASH keeps one spare per CPU.
                nr_elems = u64::from(spec.max_entries)
                    + if spec.map_type == MapType::HASH {
                        u64::from(NCPUS)
                    } else {
                        0
                    };
                img.alloc(nr_elems * elem_size, 4096)
            });
            let vsz = round_up_8(spec.value_size);
            let unit = if percpu {
                ((u64::from(spec.max_entries) + 8) * vsz).next_multiple_of(4096)
            } else {
                0
            };
            let units = img.alloc(unit * u64::from(NCPUS), 4096);
            for cpu in 0..u64::from(NCPUS) {
                let o = (units.0 + cpu * unit).wrapping_sub(PCPU_BIAS);
                img.put_u64(at(pcpu_offset, 8 * cpu), o);
            }
            img.put_u64(at(htab, 376), buckets.0);
            img.put_u64(at(htab, 384), elems.map_or(0, |e| e.0));
            img.put_u32(at(htab, 760), n_buckets);
            img.put_u32(at(htab, 764), elem_size as u32);
            let map = MapInfo {
                id: 1,
                map_type: spec.map_type,
                name: [0; BPF_OBJ_NAME_LEN],
                map_flags: if spec.prealloc { 0 } else { BPF_F_NO_PREALLOC },
                key_size: spec.key_size,
                value_size: spec.value_size,
                max_entries: spec.max_entries,
                map_extra: 0,
                btf_id: 0,
                btf_key_type_id: 0,
                btf_value_type_id: 0,
                btf_vmlinux_value_type_id: 0,
                kva: htab,
            };
            let mut t = Table {
                img,
                off,
                spec,
                map,
                htab,
                buckets,
                n_buckets,
                elem_size,
                elems,
                nr_elems,
                next_free: 0,
                pcpu: PerCpu::new(pcpu_offset, NCPUS),
                units,
                unit,
                next_pptr: 0,
                rng: 0x2545_f491_4f6c_dd1d,
                linked: Vec::new(),
                model: Vec::new(),
            };
            // prealloc_init(): every element of a per-CPU map gets its pointer.
            if let (Some(elems), true) = (elems, percpu) {
                for i in 0..u64::from(spec.max_entries) {
                    let pptr = t.new_pptr();
                    let slot = t.slot(at(elems, i * elem_size), spec.at);
                    t.img.put_u64(slot, pptr);
                }
            }
            t
        }

        fn percpu(&self) -> bool {
            self.spec.map_type.is_percpu()
        }

        fn new_pptr(&mut self) -> u64 {
            let p = PCPU_BIAS + self.next_pptr;
            self.next_pptr += round_up_8(self.spec.value_size);
            assert!(self.next_pptr <= self.unit);
            p
        }

        fn percpu_addr(&self, pptr: u64, cpu: u32) -> Kva {
            at(self.units, u64::from(cpu) * self.unit + (pptr - PCPU_BIAS))
        }

        fn slot(&self, elem: Kva, pos: PcpuPtrAt) -> Kva {
            at(elem, 48 + pos.offset(self.spec.key_size))
        }

        fn head(&self, bucket: u64) -> Kva {
            at(self.buckets, 16 * bucket)
        }

        /// kmalloc-style: scattered, every third one across a page boundary.
        fn alloc_elem(&mut self) -> Kva {
            self.rng = self.rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            let gap = 8 * ((self.rng >> 33) % 6);
            self.img.alloc(gap, 8);
            if self.linked.len() % 3 == 1 {
                self.img.pad_to_page_end(24);
            }
            self.img.alloc(self.elem_size, 8)
        }

        /// `htab_map_update_elem()` of a new key: fill an element, then
        /// `hlist_nulls_add_head_rcu()` it onto bucket `hash & (n_buckets - 1)`.
        fn insert(&mut self, key: &[u8], hash: u32, v: u64) -> Kva {
            assert_eq!(key.len() as u32, self.spec.key_size);
            let elem = match self.elems {
                Some(elems) => {
                    assert!(self.next_free < self.nr_elems);
                    let e = at(elems, self.next_free * self.elem_size);
                    self.next_free += 1;
                    e
                }
                None => self.alloc_elem(),
            };
            self.img.put(at(elem, 48), key);
            self.img.put_u32(at(elem, 40), hash);
            let vs = self.spec.value_size;
            let values = if self.percpu() {
                let slot = self.slot(elem, self.spec.at);
                let pptr = if self.spec.prealloc {
                    self.img.get_u64(slot)
                } else {
                    // A per-CPU bpf_mem_alloc object: llist_node, then the pointer.
                    let p = self.new_pptr();
                    let obj = self.img.alloc(16, 8);
                    self.img.put_u64(at(obj, 8), p);
                    self.img.put_u64(at(elem, 16), obj.0 + 8);
                    self.img.put_u64(slot, p);
                    p
                };
                (0..NCPUS)
                    .map(|cpu| {
                        let bytes = value_bytes(v, cpu, vs);
                        self.img.put(self.percpu_addr(pptr, cpu), &bytes);
                        bytes
                    })
                    .collect()
            } else {
                let bytes = value_bytes(v, 0, vs);
                self.img
                    .put(at(elem, 48 + round_up_8(self.spec.key_size)), &bytes);
                vec![bytes]
            };
            self.link(elem, hash);
            self.model.push((key.to_vec(), values));
            elem
        }

        fn link(&mut self, elem: Kva, hash: u32) {
            let head = self.head(u64::from(hash & (self.n_buckets - 1)));
            let first = self.img.get_u64(head);
            self.img.put_u64(elem, first);
            self.img.put_u64(at(elem, 8), head.0);
            if !is_a_nulls(first) {
                self.img.put_u64(at(Kva(first), 8), elem.0);
            }
            self.img.put_u64(head, elem.0);
            self.linked.push(elem);
        }

        fn kernel(&self) -> FlatKernel<&[u8]> {
            self.img.kernel()
        }

        fn try_htab(&self) -> Result<Htab> {
            let mut h = Htab::new(&self.kernel(), &self.map, &self.off)?;
            h.set_pcpu_ptr_at(self.spec.at);
            Ok(h)
        }

        fn htab(&self) -> Htab {
            self.try_htab().unwrap()
        }

        fn read_all<K: KernelRead>(&self, k: &K, h: &Htab, e: &HtabElem) -> Result<Got> {
            let mut key = vec![0; self.spec.key_size as usize];
            h.read_key(k, e, &mut key)?;
            let vs = self.spec.value_size as usize;
            let values = if h.is_percpu() {
                (0..NCPUS)
                    .map(|cpu| {
                        let mut v = vec![0; vs];
                        h.read_percpu_value(k, e, &self.pcpu, cpu, &mut v)
                            .map(|()| v)
                    })
                    .collect::<Result<Vec<_>>>()?
            } else {
                let mut v = vec![0; vs];
                h.read_value(k, e, &mut v)?;
                vec![v]
            };
            Ok((key, values))
        }

        fn walk_with(&self, limits: HtabLimits) -> Result<Vec<Got>> {
            let k = self.kernel();
            let h = self.try_htab()?;
            h.iter(&k, limits)
                .map(|e| e.and_then(|e| self.read_all(&k, &h, &e)))
                .collect()
        }

        fn walk(&self) -> Result<Vec<Got>> {
            self.walk_with(HtabLimits::default())
        }

        fn elems_of_walk(&self) -> Result<Vec<HtabElem>> {
            self.htab()
                .iter(&self.kernel(), HtabLimits::default())
                .collect()
        }

        fn sorted_model(&self) -> Vec<Got> {
            let mut m = self.model.clone();
            m.sort();
            m
        }

        fn detect(&self) -> Result<Option<PcpuPtrAt>> {
            let cpus: Vec<u32> = (0..NCPUS).collect();
            detect_pcpu_ptr_at(&self.kernel(), &self.htab(), &self.pcpu, &cpus)
        }
    }

    fn key(i: u64, len: u32) -> Vec<u8> {
        (0..len)
            .map(|j| (i >> (8 * (j % 8))) as u8 ^ (j / 8) as u8)
            .collect()
    }

    fn sorted(mut v: Vec<Got>) -> Vec<Got> {
        v.sort();
        v
    }

    /// Counts reads, to show a walk's work is bounded by its budget.
    struct Counting<K> {
        inner: K,
        reads: Cell<u64>,
    }

    impl<K: KernelRead> KernelRead for Counting<K> {
        fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
            self.reads.set(self.reads.get() + 1);
            self.inner.read_kva(kva, buf)
        }
    }

    /// Reads anything: outside its image, memory is zero.
    struct Everywhere<K>(K);

    impl<K: KernelRead> KernelRead for Everywhere<K> {
        fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
            if self.0.read_kva(kva, buf).is_err() {
                buf.fill(0);
            }
            Ok(())
        }
    }

    fn malformed(what: &'static str, at: Kva) -> Error {
        Error::malformed(what, at)
    }

    const TYPES: [MapType; 4] = [
        MapType::HASH,
        MapType::LRU_HASH,
        MapType::PERCPU_HASH,
        MapType::LRU_PERCPU_HASH,
    ];

    fn is_lru(t: MapType) -> bool {
        matches!(t, MapType::LRU_HASH | MapType::LRU_PERCPU_HASH)
    }

    #[test]
    fn decoders_match_the_kernel() {
        assert_eq!(nulls_marker(0), 1);
        assert_eq!(nulls_marker(5), 0xb);
        assert!(is_a_nulls(0xb) && !is_a_nulls(0xffff_8880_0000_1000));
        assert_eq!(get_nulls_value(0xb), 5);
        assert_eq!(htab_n_buckets(1), Some(1));
        assert_eq!(htab_n_buckets(100), Some(128));
        assert_eq!(htab_n_buckets(1 << 31), Some(1 << 31));
        assert_eq!(htab_n_buckets((1 << 31) + 1), None);
        assert_eq!(htab_n_buckets(0), None);
        // sizeof(struct htab_elem) 48 (v6.1, v6.12), key 4, value 12.
        assert_eq!(htab_elem_size(48, 4, 12, false), 48 + 8 + 16);
        assert_eq!(htab_elem_size(48, 4, 12, true), 48 + 8 + 8);
        assert_eq!(PcpuPtrAt::KeySize.offset(12), 12);
        assert_eq!(PcpuPtrAt::KeySizeRoundUp.offset(12), 16);
        assert_eq!(round_up_8(u32::MAX), 0x1_0000_0000);
    }

    #[test]
    fn empty_maps() {
        for t in TYPES {
            for prealloc in [true, false] {
                if is_lru(t) && !prealloc {
                    continue;
                }
                let tab = Table::new(Spec {
                    prealloc,
                    ..spec(t, 4, 8, 10)
                });
                assert_eq!(tab.htab().n_buckets(), 16);
                assert_eq!(tab.walk(), Ok(Vec::new()), "{t} prealloc {prealloc}");
            }
        }
    }

    #[test]
    fn chains_come_bucket_by_bucket_newest_first() {
        let mut t = Table::new(spec(MapType::HASH, 4, 8, 16));
        let hashes = [0x105, 0x205, 0x300, 0x00f, 0x50f, 0x60f];
        for (i, &h) in hashes.iter().enumerate() {
            t.insert(&key(i as u64, 4), h, i as u64);
        }
        let got = t.elems_of_walk().unwrap();
        let order: Vec<(u32, u32)> = got.iter().map(|e| (e.bucket, e.hash)).collect();
        assert_eq!(
            order,
            vec![
                (0, 0x300),
                (5, 0x205),
                (5, 0x105),
                (15, 0x60f),
                (15, 0x50f),
                (15, 0x00f)
            ]
        );
        let e = got[1];
        assert_eq!(e.elem, t.linked[1]);
        assert_eq!(e.key, at(e.elem, 48));
        assert_eq!(e.value, at(e.elem, 56));
        assert_eq!(sorted(t.walk().unwrap()), t.sorted_model());
    }

    #[test]
    fn percpu_values_for_every_key_size_and_layout() {
        for map_type in [MapType::PERCPU_HASH, MapType::LRU_PERCPU_HASH] {
            for prealloc in [true, false] {
                if is_lru(map_type) && !prealloc {
                    continue;
                }
                for key_size in [4, 12, 20] {
                    for pos in [PcpuPtrAt::KeySize, PcpuPtrAt::KeySizeRoundUp] {
                        let mut t = Table::new(Spec {
                            prealloc,
                            at: pos,
                            ..spec(map_type, key_size, 12, 8)
                        });
                        for i in 0..6 {
                            t.insert(&key(i, key_size), (i * 0x9e37_79b9) as u32, i);
                        }
                        let what = (map_type, prealloc, key_size, pos);
                        assert_eq!(sorted(t.walk().unwrap()), t.sorted_model(), "{what:?}");
                        assert_eq!(t.detect(), Ok(Some(pos)), "{what:?}");
                        // Both kernels put the pointer in the same place for 8n keys,
                        // so Htab::new knows it only then.
                        let h = Htab::new(&t.kernel(), &t.map, &t.off).unwrap();
                        assert_eq!(h.pcpu_ptr_at(), None);
                    }
                }
            }
        }
    }

    #[test]
    fn key_size_multiple_of_8_needs_no_detection() {
        let mut t = Table::new(spec(MapType::PERCPU_HASH, 16, 4, 4));
        t.insert(&key(1, 16), 3, 1);
        let h = Htab::new(&t.kernel(), &t.map, &t.off).unwrap();
        assert_eq!(h.pcpu_ptr_at(), Some(PcpuPtrAt::KeySizeRoundUp));
        assert_eq!(t.detect(), Ok(Some(PcpuPtrAt::KeySizeRoundUp)));
        assert_eq!(t.walk().unwrap(), t.model);
        let t = Table::new(spec(MapType::HASH, 4, 4, 4));
        assert_eq!(t.detect(), Ok(Some(PcpuPtrAt::KeySizeRoundUp)));
    }

    #[test]
    fn unknown_pointer_position_fails_at_the_first_element() {
        let mut t = Table::new(spec(MapType::PERCPU_HASH, 4, 8, 4));
        let k = t.kernel();
        let h = Htab::new(&k, &t.map, &t.off).unwrap();
        assert_eq!(h.iter(&k, HtabLimits::default()).next(), Ok(None));
        let elem = t.insert(&key(1, 4), 1, 1);
        let k = t.kernel();
        let mut it = h.iter(&k, HtabLimits::default());
        assert_eq!(
            it.next(),
            Err(Error::unsupported(
                "htab_elem per-CPU pointer position",
                elem
            ))
        );
        assert_eq!(it.next(), Ok(None));
    }

    #[test]
    fn lru_and_full_maps() {
        for map_type in TYPES {
            let mut t = Table::new(spec(map_type, 8, 16, 100));
            for i in 0..100u64 {
                t.insert(&key(i, 8), (i.wrapping_mul(0x2545_f491) >> 3) as u32, i);
            }
            let got = t.walk().unwrap();
            assert_eq!(got.len(), 100);
            assert_eq!(sorted(got), t.sorted_model(), "{map_type}");
        }
    }

    #[test]
    fn elements_across_page_boundaries() {
        let mut t = Table::new(Spec {
            prealloc: false,
            ..spec(MapType::HASH, 20, 20, 32)
        });
        for i in 0..12 {
            t.insert(&key(i, 20), i as u32 * 7, i);
        }
        let straddles = |e: &Kva| e.0 / 4096 != (e.0 + t.elem_size - 1) / 4096;
        assert!(t.linked.iter().filter(|e| straddles(e)).count() >= 3);
        assert_eq!(sorted(t.walk().unwrap()), t.sorted_model());
    }

    #[test]
    fn long_chain_and_its_budget() {
        let mut t = Table::new(Spec {
            prealloc: false,
            ..spec(MapType::HASH, 4, 4, 256)
        });
        for i in 0..200u64 {
            t.insert(&key(i, 4), 3 | (i << 8) as u32, i);
        }
        assert_eq!(t.walk().map(|v| v.len()), Ok(200));
        let chain = |n| HtabLimits {
            max_chain: Some(n),
            ..HtabLimits::default()
        };
        assert_eq!(t.walk_with(chain(200)).map(|v| v.len()), Ok(200));
        assert_eq!(
            t.walk_with(chain(199)),
            Err(Error::limit("htab chain", t.head(3), 199))
        );
    }

    /// A chain of five in bucket 1, newest first: `[e4, e3, e2, e1, e0]`.
    fn five(prealloc: bool) -> (Table, Vec<Kva>) {
        let mut t = Table::new(Spec {
            prealloc,
            ..spec(MapType::HASH, 4, 8, 64)
        });
        for i in 0..5u64 {
            t.insert(&key(i, 4), 1 | (i << 8) as u32, i);
        }
        let mut chain = t.linked.clone();
        chain.reverse();
        (t, chain)
    }

    #[test]
    fn chain_cycles_end_quickly() {
        let unlimited = HtabLimits {
            max_chain: Some(u64::MAX),
            max_elems: Some(u64::MAX),
            ..HtabLimits::default()
        };
        // (element whose next is rewritten, where it now points).
        for (from, to) in [(0, 0), (1, 0), (4, 0), (4, 2), (2, 2)] {
            for prealloc in [true, false] {
                let (mut t, chain) = five(prealloc);
                t.img.put_u64(chain[from], chain[to].0);
                let k = t.kernel();
                let mut it = t.htab().iter(&k, unlimited);
                let mut calls = 0;
                let err = loop {
                    calls += 1;
                    match it.next() {
                        Ok(Some(_)) => assert!(calls < 20, "{from}->{to}"),
                        Ok(None) => panic!("{from}->{to} ended"),
                        Err(e) => break e,
                    }
                };
                assert!(
                    matches!(
                        err,
                        Error::Malformed {
                            what: "htab chain (cycle)",
                            ..
                        }
                    ),
                    "{err:?}"
                );
                assert!(calls <= 3 * 5 + 2, "{from}->{to}: {calls}");
                assert_eq!(it.next(), Ok(None));
            }
        }
    }

    /// The fuzzer's `chain-loop-yields-an-element-again-before-the-cycle-is-caught`:
    /// Brent's detection needs no memory but waits for the tortoise, so a loop
    /// that does not go back to the first element repeats some elements before
    /// the walk fails, in the same bucket, and yields nothing after.
    #[test]
    fn a_loop_repeats_elements_before_it_is_caught() {
        let unlimited = HtabLimits {
            max_chain: Some(u64::MAX),
            max_elems: Some(u64::MAX),
            ..HtabLimits::default()
        };
        // 0 1 2 3, then 1 again: the tortoise waits at 2 by then.
        let (mut t, chain) = five(true);
        t.img.put_u64(chain[3], chain[1].0);
        let k = t.kernel();
        let mut it = t.htab().iter(&k, unlimited);
        let mut seen = Vec::new();
        let err = loop {
            match it.next() {
                Ok(Some(e)) => seen.push(e),
                Ok(None) => panic!("the loop ended"),
                Err(e) => break e,
            }
        };
        assert!(matches!(
            err,
            Error::Malformed {
                what: "htab chain (cycle)",
                ..
            }
        ));
        let elems: Vec<Kva> = seen.iter().map(|e| e.elem).collect();
        assert_eq!(elems, [chain[0], chain[1], chain[2], chain[3], chain[1]]);
        assert!(seen.iter().all(|e| e.bucket == seen[0].bucket));
        assert_eq!(it.next(), Ok(None));
    }

    #[test]
    fn element_in_the_wrong_bucket() {
        let (mut t, chain) = five(true);
        t.img.put_u32(at(chain[2], 40), 2);
        let got: Vec<_> = t.htab().iter(&t.kernel(), HtabLimits::default()).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], Err(malformed("htab_elem.hash", chain[2])));
    }

    #[test]
    fn nulls_marker_of_another_bucket() {
        let (mut t, chain) = five(false);
        let last = chain[4];
        for bad in [
            nulls_marker(3),
            nulls_marker(1) | (1 << 40),
            nulls_marker(1 + 64),
        ] {
            t.img.put_u64(last, bad);
            assert_eq!(t.walk(), Err(malformed("htab nulls marker", last)));
        }
        t.img.put_u64(last, nulls_marker(1));
        assert_eq!(t.walk().map(|v| v.len()), Ok(5));
        // An empty bucket's head.
        t.img.put_u64(t.head(2), nulls_marker(0));
        assert_eq!(t.walk(), Err(malformed("htab nulls marker", t.head(2))));
    }

    #[test]
    fn buckets_outside_memory() {
        let (mut t, _) = five(true);
        t.img.put_u64(at(t.htab, 376), FAR.0);
        let k = t.kernel();
        let mut it = t.htab().iter(&k, HtabLimits::default());
        assert_eq!(it.next(), Err(Error::NotMapped { kva: FAR, level: 0 }));
        assert_eq!(it.next(), Ok(None));
    }

    #[test]
    fn elements_outside_memory() {
        let (mut t, chain) = five(false);
        // A head pointing away: the element's header (next and hash, read
        // at once) is the first thing read.
        t.img.put_u64(t.head(1), FAR.0);
        let far_hash = Error::NotMapped { kva: FAR, level: 0 };
        assert_eq!(t.walk(), Err(far_hash));
        // A next pointer pointing away, after one good element.
        t.img.put_u64(t.head(1), chain[0].0);
        t.img.put_u64(chain[0], FAR.0);
        let got: Vec<_> = t.htab().iter(&t.kernel(), HtabLimits::default()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Err(far_hash));
        // The value of a per-CPU element out of reach of __per_cpu_offset.
        let mut t = Table::new(Spec {
            prealloc: false,
            ..spec(MapType::PERCPU_HASH, 8, 8, 4)
        });
        let elem = t.insert(&key(1, 8), 0, 1);
        let k = t.kernel();
        let h = t.htab();
        let e = h.iter(&k, HtabLimits::default()).next().unwrap().unwrap();
        let mut buf = [0u8; 8];
        assert!(h.read_percpu_value(&k, &e, &t.pcpu, 0, &mut buf).is_ok());
        assert!(matches!(
            h.read_percpu_value(&k, &e, &t.pcpu, NCPUS, &mut buf),
            Err(Error::Limit { .. })
        ));
        t.img.put_u64(t.slot(elem, PcpuPtrAt::KeySizeRoundUp), 8);
        let k = t.kernel();
        let e = h.iter(&k, HtabLimits::default()).next().unwrap().unwrap();
        assert!(matches!(
            h.read_percpu_value(&k, &e, &t.pcpu, 0, &mut buf),
            Err(Error::NotMapped { .. })
        ));
    }

    #[test]
    fn map_freed_mid_walk() {
        // A next pointer into zeroed memory: in bucket 0 the zero hash fits,
        // and the NULL next that follows is not a nulls marker.
        let mut t = Table::new(spec(MapType::HASH, 4, 8, 8));
        let e = t.insert(&key(1, 4), 0, 1);
        let zero = t.img.alloc(128, 64);
        t.img.put_u64(e, zero.0);
        let got: Vec<_> = t.htab().iter(&t.kernel(), HtabLimits::default()).collect();
        assert_eq!(got.len(), 3);
        assert!(got[..2].iter().all(Result::is_ok));
        assert_eq!(got[2], Err(malformed("htab_elem.hash_node.next", zero)));
        // In any other bucket the zero hash is misplaced.
        let mut t = Table::new(spec(MapType::HASH, 4, 8, 8));
        let e = t.insert(&key(1, 4), 1, 1);
        t.img.put_u64(e, zero.0);
        t.img.alloc(256, 64);
        assert_eq!(t.walk(), Err(malformed("htab_elem.hash", zero)));
        // The bucket array itself zeroed.
        let t = Table::new(spec(MapType::HASH, 4, 8, 8));
        let mut t = t;
        t.img.put_u64(t.head(0), 0);
        assert_eq!(
            t.walk(),
            Err(malformed("htab_elem.hash_node.next", t.head(0)))
        );
        // A misaligned pointer.
        let e = t.insert(&key(2, 4), 4, 2);
        t.img.put_u64(t.head(0), nulls_marker(0));
        t.img.put_u64(t.head(4), e.0 + 4);
        assert_eq!(
            t.walk(),
            Err(malformed("htab_elem.hash_node.next", t.head(4)))
        );
    }

    #[test]
    fn n_buckets_must_be_what_htab_map_alloc_made() {
        for n in [0u32, 12, 8, 32, 1 << 31, u32::MAX] {
            let mut t = Table::new(spec(MapType::HASH, 4, 8, 16));
            t.img.put_u32(at(t.htab, 760), n);
            assert_eq!(
                t.try_htab(),
                Err(malformed("bpf_htab.n_buckets", t.htab)),
                "{n}"
            );
        }
        // 2^31 entries are allowed, but 2^31 16-byte buckets overflow a u32.
        let mut t = Table::new(spec(MapType::HASH, 4, 8, 16));
        t.map.max_entries = 1 << 31;
        t.img.put_u32(at(t.htab, 760), 1 << 31);
        t.img.put_u32(at(t.htab, 384), 0);
        assert_eq!(t.try_htab(), Err(malformed("bpf_htab.n_buckets", t.htab)));
        for max in [0, (1 << 31) + 1, u32::MAX] {
            t.map.max_entries = max;
            assert_eq!(t.try_htab(), Err(malformed("bpf_map.max_entries", t.htab)));
        }
    }

    #[test]
    fn htab_fields_are_checked() {
        let t = Table::new(spec(MapType::HASH, 4, 8, 16));
        let base = t.img.bytes.clone();
        let with = |off: u64, v: u64, t: &mut Table| {
            t.img.bytes.clone_from(&base);
            t.img.put_u64(at(t.htab, off), v);
        };
        let mut t = t;
        let elem_size = 48 + 8 + 8;
        with(764, elem_size + 8 + (16 << 32), &mut t);
        assert_eq!(t.try_htab(), Err(malformed("bpf_htab.elem_size", t.htab)));
        with(764, elem_size - 8 + (16 << 32), &mut t);
        assert_eq!(t.try_htab(), Err(malformed("bpf_htab.elem_size", t.htab)));
        for bad in [0, t.buckets.0 + 4, u64::MAX - 64] {
            with(376, bad, &mut t);
            assert_eq!(t.try_htab(), Err(malformed("bpf_htab.buckets", t.htab)));
        }
        for bad in [0, t.elems.unwrap().0 + 2, u64::MAX - 64] {
            with(384, bad, &mut t);
            assert_eq!(t.try_htab(), Err(malformed("bpf_htab.elems", t.htab)));
        }
        // Without prealloc, elems is not used.
        t.img.bytes.clone_from(&base);
        t.map.map_flags = BPF_F_NO_PREALLOC;
        t.img.put_u64(at(t.htab, 384), 0);
        assert_eq!(t.try_htab().map(|h| h.elems()), Ok(None));
        // The struct bpf_htab itself unreadable.
        t.map.kva = FAR;
        assert_eq!(
            t.try_htab(),
            Err(Error::NotMapped {
                kva: at(FAR, 376),
                level: 0
            })
        );
    }

    #[test]
    fn map_attributes_are_checked() {
        let t = Table::new(spec(MapType::PERCPU_HASH, 4, 8, 16));
        let check = |f: &dyn Fn(&mut MapInfo)| {
            let mut map = t.map;
            f(&mut map);
            Htab::new(&t.kernel(), &map, &t.off)
        };
        let kva = t.htab;
        assert_eq!(
            check(&|m| m.key_size = 0),
            Err(malformed("bpf_map.key_size", kva))
        );
        assert_eq!(
            check(&|m| m.key_size = (4 << 20) - 48),
            Err(malformed("bpf_map.key_size", kva))
        );
        assert_eq!(
            check(&|m| m.value_size = 0),
            Err(malformed("bpf_map.value_size", kva))
        );
        assert_eq!(
            check(&|m| m.value_size = (4 << 20) - 48 - 4),
            Err(malformed("bpf_map.value_size", kva))
        );
        // Preallocated per-CPU values cannot exceed PCPU_MIN_UNIT_SIZE...
        assert_eq!(
            check(&|m| m.value_size = (32 << 10) + 1),
            Err(malformed("bpf_map.value_size", kva))
        );
        // ...and the elem_size of a per-CPU map does not depend on value_size.
        assert!(check(&|m| m.value_size = 32 << 10).is_ok());
        assert!(check(&|m| {
            m.value_size = (32 << 10) + 1;
            m.map_flags = BPF_F_NO_PREALLOC;
        })
        .is_ok());
        // LRU maps are always preallocated (htab_map_alloc_check()).
        assert_eq!(
            check(&|m| {
                m.map_type = MapType::LRU_PERCPU_HASH;
                m.map_flags = BPF_F_NO_PREALLOC;
            }),
            Err(malformed("bpf_map.map_flags", kva))
        );
        assert_eq!(
            check(&|m| m.map_flags = BPF_F_NO_COMMON_LRU),
            Err(malformed("bpf_map.map_flags", kva))
        );
        assert!(check(&|m| {
            m.map_type = MapType::LRU_PERCPU_HASH;
            m.map_flags = BPF_F_NO_COMMON_LRU;
        })
        .is_ok());
        for other in [MapType::ARRAY, MapType::HASH_OF_MAPS, MapType(999)] {
            assert_eq!(
                check(&|m| m.map_type = other),
                Err(Error::unsupported("htab map type", kva))
            );
        }
    }

    #[test]
    fn unsupported_layouts() {
        let mut t = Table::new(spec(MapType::HASH, 4, 8, 16));
        t.off.bucket.size = 0;
        assert_eq!(t.try_htab(), Err(Error::unsupported("bucket", t.htab)));
        t.off = offsets();
        t.off.htab_elem.key = 44;
        assert_eq!(t.try_htab(), Err(Error::unsupported("htab_elem", t.htab)));
        t.off = offsets();
        t.off.htab_elem.ptr_to_pptr = Some(44);
        assert_eq!(t.try_htab(), Err(Error::unsupported("htab_elem", t.htab)));
        t.off = offsets();
        t.off.bpf_htab.size = 762;
        assert_eq!(t.try_htab(), Err(Error::unsupported("bpf_htab", t.htab)));
        t.off = offsets();
        t.off.bpf_htab.map = 8;
        t.map.kva = Kva(4);
        assert_eq!(t.try_htab(), Err(malformed("bpf_htab", Kva(4))));
    }

    #[test]
    fn budgets() {
        let (t, chain) = five(true);
        let limits = |max_elems, max_buckets| HtabLimits {
            max_elems: Some(max_elems),
            max_buckets,
            ..HtabLimits::default()
        };
        let got: Vec<_> = t.htab().iter(&t.kernel(), limits(2, 64)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], Err(Error::limit("htab_elem", chain[2], 2)));
        assert_eq!(t.walk_with(limits(5, 64)).map(|v| v.len()), Ok(5));
        assert_eq!(
            t.walk_with(limits(5, 63)),
            Err(Error::limit("bpf_htab.n_buckets", t.htab, 63))
        );
        // The defaults follow max_entries and the CPU count.
        let d = HtabLimits {
            nr_cpus: 2,
            ..HtabLimits::default()
        };
        assert_eq!(d.resolve(64), (64 + 2 + HTAB_SLACK, 64 + 2 + HTAB_SLACK));
    }

    #[test]
    fn fused_after_error() {
        let (mut t, chain) = five(true);
        t.img.put_u32(at(chain[1], 40), 7);
        let k = t.kernel();
        let mut it = t.htab().iter(&k, HtabLimits::default());
        assert!(matches!(it.next(), Ok(Some(_))));
        assert_eq!(it.next(), Err(malformed("htab_elem.hash", chain[1])));
        assert_eq!(it.next(), Ok(None));
        assert_eq!(Iterator::next(&mut it), None);
    }

    #[test]
    fn read_helpers_check_their_buffers() {
        let mut t = Table::new(spec(MapType::HASH, 6, 10, 4));
        t.insert(&key(9, 6), 2, 9);
        let k = t.kernel();
        let h = t.htab();
        let e = h.iter(&k, HtabLimits::default()).next().unwrap().unwrap();
        let mut key_buf = [0u8; 7];
        assert_eq!(
            h.read_key(&k, &e, &mut key_buf),
            Err(Error::limit("htab_elem.key", e.key, 6))
        );
        h.read_key(&k, &e, &mut key_buf[..3]).unwrap();
        assert_eq!(key_buf[..3], key(9, 6)[..3]);
        let mut v = [0u8; 11];
        assert_eq!(
            h.read_value(&k, &e, &mut v),
            Err(Error::limit("htab_elem value", e.value, 10))
        );
        h.read_value(&k, &e, &mut v[..10]).unwrap();
        assert_eq!(v[..10], value_bytes(9, 0, 10)[..]);
        assert_eq!(
            h.read_percpu_value(&k, &e, &t.pcpu, 0, &mut v[..1]),
            Err(Error::unsupported("htab value that is not per-CPU", e.elem))
        );
        let mut t = Table::new(spec(MapType::PERCPU_HASH, 8, 8, 4));
        t.insert(&key(1, 8), 2, 1);
        let k = t.kernel();
        let h = t.htab();
        let e = h.iter(&k, HtabLimits::default()).next().unwrap().unwrap();
        assert_eq!(
            h.read_value(&k, &e, &mut v[..1]),
            Err(Error::unsupported("per-CPU htab value", e.elem))
        );
    }

    #[test]
    fn detect_without_ptr_to_pptr() {
        // Before v6.1 there is no ptr_to_pptr: the plausibility test decides.
        for pos in [PcpuPtrAt::KeySize, PcpuPtrAt::KeySizeRoundUp] {
            let mut t = Table::new(Spec {
                prealloc: false,
                at: pos,
                ..spec(MapType::PERCPU_HASH, 12, 8, 16)
            });
            for i in 0..5 {
                t.insert(&key(i, 12), i as u32, i);
            }
            t.off.htab_elem.ptr_to_pptr = None;
            assert_eq!(t.detect(), Ok(Some(pos)));
        }
    }

    #[test]
    fn detect_says_none_when_it_cannot_tell() {
        // Nothing linked in a table without prealloc.
        let t = Table::new(Spec {
            prealloc: false,
            ..spec(MapType::PERCPU_HASH, 4, 8, 16)
        });
        assert_eq!(t.detect(), Ok(None));
        // ptr_to_pptr names a pointer neither place holds.
        let mut t = Table::new(Spec {
            prealloc: false,
            ..spec(MapType::PERCPU_HASH, 4, 8, 16)
        });
        let e = t.insert(&key(1, 4), 1, 1);
        let obj = Kva(t.img.get_u64(at(e, 16)));
        t.img.put_u64(obj, PCPU_BIAS + 0x1000);
        assert_eq!(t.detect(), Ok(None));
        // Neither place fits: pointers gone from a preallocated table.
        let mut t = Table::new(spec(MapType::PERCPU_HASH, 4, 8, 16));
        let elems = t.elems.unwrap();
        for i in 0..16 {
            t.img.put(at(elems, i * t.elem_size + 48), &[0; 16]);
        }
        assert_eq!(t.detect(), Ok(None));
        // Both fit: with all memory readable, `a | b << 32` at key + 4 and `b`
        // at key + 8 are both aligned, distinct and non-zero.
        let mut t = Table::new(spec(MapType::PERCPU_HASH, 4, 8, 4));
        let elems = t.elems.unwrap();
        for i in 0..4u64 {
            let e = at(elems, i * t.elem_size);
            t.img.put_u32(at(e, 52), 8 * (i as u32 + 1));
            t.img.put_u32(at(e, 56), 8 * (i as u32 + 1));
            t.img.put_u32(at(e, 60), 0);
        }
        let cpus: Vec<u32> = (0..NCPUS).collect();
        let k = Everywhere(t.kernel());
        let h = Htab::new(&k, &t.map, &t.off).unwrap();
        assert_eq!(detect_pcpu_ptr_at(&k, &h, &t.pcpu, &cpus), Ok(None));
        // In the image alone neither fits: both values, per-CPU offsets added,
        // land outside it.
        assert_eq!(t.detect(), Ok(None));
    }

    fn map_type() -> impl Strategy<Value = MapType> {
        prop::sample::select(TYPES.to_vec())
    }

    fn key_size() -> impl Strategy<Value = u32> {
        prop::sample::select(vec![1u32, 4, 8, 12, 20, 33])
    }

    fn position() -> impl Strategy<Value = PcpuPtrAt> {
        prop_oneof![Just(PcpuPtrAt::KeySize), Just(PcpuPtrAt::KeySizeRoundUp)]
    }

    /// Builds a table from generated parameters; LRU maps are always preallocated.
    fn build(
        map_type: MapType,
        prealloc: bool,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        pos: PcpuPtrAt,
        hashes: &[u32],
    ) -> Table {
        let mut t = Table::new(Spec {
            map_type,
            prealloc: prealloc || is_lru(map_type),
            key_size,
            value_size,
            max_entries,
            at: pos,
        });
        let n = hashes.len().min(max_entries as usize);
        for (i, &h) in hashes[..n].iter().enumerate() {
            t.insert(&key(i as u64, key_size), h, i as u64);
        }
        t
    }

    proptest! {
        #[test]
        fn nulls_markers_round_trip(bucket in 0u64..(1 << 62)) {
            let m = nulls_marker(bucket);
            prop_assert!(is_a_nulls(m));
            prop_assert_eq!(get_nulls_value(m), bucket);
        }

        #[test]
        fn n_buckets_is_the_next_power_of_two(max in any::<u32>()) {
            match htab_n_buckets(max) {
                None => prop_assert!(max == 0 || max > HTAB_MAX_ENTRIES),
                Some(n) => {
                    prop_assert!(n.is_power_of_two() && n >= max);
                    prop_assert!(n / 2 < max);
                }
            }
        }

        /// Random key sets, stored like the kernel does, come back exactly,
        /// and the per-CPU pointer position is found again.
        #[test]
        fn built_tables_iterate_back(
            map_type in map_type(),
            prealloc in any::<bool>(),
            key_size in key_size(),
            value_size in 1u32..40,
            max_entries in 1u32..150,
            pos in position(),
            hashes in proptest::collection::vec(any::<u32>(), 0..150),
        ) {
            let t = build(map_type, prealloc, key_size, value_size, max_entries, pos, &hashes);
            prop_assert_eq!(sorted(t.walk().unwrap()), t.sorted_model());
            let mask = t.n_buckets - 1;
            let elems = t.elems_of_walk().unwrap();
            prop_assert!(elems.windows(2).all(|w| w[0].bucket <= w[1].bucket));
            prop_assert!(elems.iter().all(|e| e.hash & mask == e.bucket));
            let want = if !map_type.is_percpu() || key_size % 8 == 0 {
                Some(PcpuPtrAt::KeySizeRoundUp)
            } else if t.spec.prealloc || !t.model.is_empty() {
                Some(pos)
            } else {
                None
            };
            prop_assert_eq!(t.detect(), Ok(want));
        }

        /// Whatever is written over buckets and elements, walks neither panic
        /// nor outrun their budget, and stay fused after an error.
        #[test]
        fn corrupt_tables_stay_bounded(
            map_type in map_type(),
            prealloc in any::<bool>(),
            key_size in key_size(),
            max_entries in 1u32..40,
            pos in position(),
            hashes in proptest::collection::vec(any::<u32>(), 1..40),
            hits in proptest::collection::vec(
                (0u8..7, any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u64>()),
                1..8,
            ),
            max_chain in prop::option::of(0u64..48),
            max_elems in prop::option::of(0u64..48),
        ) {
            let mut t = build(map_type, prealloc, key_size, 8, max_entries, pos, &hashes);
            let n = u64::from(t.n_buckets);
            let linked = t.linked.clone();
            for (kind, a, b, x) in hits {
                let elem = *a.get(&linked);
                let other = *b.get(&linked);
                let word = match x % 8 {
                    0 => other.0,
                    1 => other.0 + 4,
                    2 => nulls_marker((x >> 8) % (n + 2)),
                    3 => 0,
                    4 => t.head((x >> 8) % n).0,
                    5 => FAR.0,
                    6 => other.0 + 8,
                    _ => x,
                };
                match kind {
                    0 => t.img.put_u64(t.head((x >> 16) % n), word),
                    1 => t.img.put_u64(elem, word),
                    2 => t.img.put_u32(at(elem, 40), (x >> 32) as u32),
                    3 => {
                        let p = at(elem, (x >> 8) % t.elem_size);
                        t.img.put(p, &[(x >> 32) as u8]);
                    }
                    4 => {
                        let p = at(t.buckets, (x >> 8) % (16 * n));
                        t.img.put(p, &[(x >> 32) as u8]);
                    }
                    5 => t.img.put_u64(t.slot(elem, pos), word),
                    _ => t.img.put_u32(at(t.htab, 760 + 4 * ((x >> 8) % 2)), (x >> 32) as u32),
                }
            }
            let k = Counting { inner: t.kernel(), reads: Cell::new(0) };
            let Ok(mut h) = Htab::new(&k, &t.map, &t.off) else { return Ok(()) };
            h.set_pcpu_ptr_at(pos);
            let limits = HtabLimits { max_chain, max_elems, nr_cpus: NCPUS, ..HtabLimits::default() };
            let (_, budget) = limits.resolve(max_entries);
            k.reads.set(0);
            let mut it = h.iter(&k, limits);
            let mut calls = 0u64;
            loop {
                calls += 1;
                prop_assert!(calls <= budget + 1);
                match it.next() {
                    Ok(Some(e)) => {
                        let _ = t.read_all(&k.inner, &h, &e);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        prop_assert_eq!(it.next(), Ok(None));
                        break;
                    }
                }
            }
            // Per bucket its head; per element reached its hash, its
            // per-CPU pointer and the link after it.
            prop_assert!(k.reads.get() <= n + 3 * (calls + 1));
            let cpus: Vec<u32> = (0..NCPUS).collect();
            let _ = detect_pcpu_ptr_at(&k, &h, &t.pcpu, &cpus);
        }
    }
}
