//! `BPF_MAP_TYPE_ARRAY` and `BPF_MAP_TYPE_PERCPU_ARRAY` (kernel/bpf/arraymap.c):
//! [`Array::new`] checks a `struct bpf_array` against what `array_map_alloc()`
//! would have made of its `struct bpf_map`, then [`Array::value_kva`]
//! (`array_map_lookup_elem()`), [`Array::pptr`] and [`Array::percpu_value_kva`]
//! (`percpu_array_map_lookup_percpu_elem()`) find values, and [`ArrayIter`] walks
//! every key.
//!
//! `array_map_alloc()` is the same in v6.1 and v6.12 in what we rely on:
//! `elem_size = round_up(value_size, 8)`, `index_mask =
//! roundup_pow_of_two(max_entries) - 1` computed in 64 bits (`fls_long()`) and
//! stored in a `u32`, and `map.max_entries` is the caller's `max_entries`. Without
//! `bpf_bypass_spec_v1()` (Spectre v1) the allocation is rounded up to
//! `index_mask + 1` entries and `max_entries` above 2^31 is refused, but only
//! `max_entries` entries are ever addressed, so neither changes where key `k`
//! lives: `value + elem_size * k` (ARRAY), `pptrs[k]` (PERCPU_ARRAY).
//!
//! Values of large arrays are vmalloc'ed (and always with `BPF_F_MMAPABLE`, which
//! puts `value` on a page boundary): a value may cross pages that are not
//! contiguous in physical memory, which [`KernelRead`] handles.

use core::iter::FusedIterator;

use crate::addr::Kva;
use crate::bpf_map::MapInfo;
use crate::error::{Error, Result};
use crate::offsets::Offsets;
use crate::paging::PAGE_SIZE;
use crate::percpu::PerCpu;
use crate::uapi::{percpu_value_size, MapType, BPF_F_MMAPABLE};
use crate::virt::KernelRead;

/// The largest `value_size` `array_map_alloc_check()` accepts: `INT_MAX` in v6.12
/// (v6.1 stops at `KMALLOC_MAX_SIZE`, 4 MiB, which is below it).
pub const ARRAY_MAX_VALUE_SIZE: u32 = 0x7fff_ffff;

/// `PCPU_MIN_UNIT_SIZE` (include/linux/percpu.h, 32 KiB): `pcpu_alloc()` refuses
/// larger chunks, so no per-CPU array has a larger `elem_size` (v6.12's
/// `array_map_alloc_check()` also checks it up front).
pub const PCPU_MIN_UNIT_SIZE: u32 = 32 << 10;

/// Keys an [`ArrayIter`] yields unless told otherwise.
pub const DEFAULT_MAX_ELEMS: u64 = 1 << 24;

/// `index_mask` as `array_map_alloc()` computes it:
/// `(1ULL << fls_long(max_entries - 1)) - 1`, truncated to 32 bits.
pub const fn array_index_mask(max_entries: u32) -> u32 {
    let fls = u32::BITS.wrapping_sub(max_entries.wrapping_sub(1).leading_zeros());
    1u64.wrapping_shl(fls).wrapping_sub(1) as u32
}

/// Whether `offset..offset + len` lies inside a value of `value_size` bytes.
pub const fn window_fits(value_size: u32, offset: u32, len: u64) -> bool {
    match (offset as u64).checked_add(len) {
        Some(end) => end <= value_size as u64,
        None => false,
    }
}

/// A checked window of one value: `len` bytes at `kva`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kva: Kva,
    pub len: usize,
}

/// Bytes of elements [`Array::read_values`] reads at a time when padding
/// separates the values.
pub const VALUES_BLOCK: usize = 4096;

/// What [`ArrayIter`] yields for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayElem {
    /// `BPF_MAP_TYPE_ARRAY`: the address of the value.
    Value(Kva),
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`: `pptrs[key]`, to hand to
    /// [`PerCpu::per_cpu_ptr`].
    Pptr(Kva),
}

/// A checked `struct bpf_array` (include/linux/bpf.h) of an ARRAY or
/// PERCPU_ARRAY map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Array {
    /// The `struct bpf_array`.
    kva: Kva,
    map_type: MapType,
    value_size: u32,
    max_entries: u32,
    elem_size: u32,
    index_mask: u32,
    /// `array->value` (ARRAY) or `array->pptrs` (PERCPU_ARRAY).
    elems: Kva,
}

fn field(base: Kva, off: u32, what: &'static str) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed(what, base))
}

impl Array {
    /// The array whose `struct bpf_map` is `map`, checked against
    /// `array_map_alloc_check()` and `array_map_alloc()`.
    pub fn new<K: KernelRead + ?Sized>(k: &K, map: &MapInfo, off: &Offsets) -> Result<Array> {
        let percpu = match map.map_type {
            MapType::ARRAY => false,
            MapType::PERCPU_ARRAY => true,
            _ => return Err(Error::unsupported("bpf_array map type", map.kva)),
        };
        let a = &off.bpf_array;
        let kva = map
            .kva
            .checked_sub(u64::from(a.map))
            .ok_or(Error::malformed("bpf_array", map.kva))?;
        if map.key_size != 4 {
            return Err(Error::malformed("bpf_map.key_size", map.kva));
        }
        if map.max_entries == 0 {
            return Err(Error::malformed("bpf_map.max_entries", map.kva));
        }
        let elem_size = percpu_value_size(map.value_size)
            .filter(|_| map.value_size != 0 && map.value_size <= ARRAY_MAX_VALUE_SIZE)
            .filter(|&e| !percpu || e <= PCPU_MIN_UNIT_SIZE)
            .ok_or(Error::malformed("bpf_map.value_size", map.kva))?;
        let at = field(kva, a.elem_size, "bpf_array")?;
        if k.read_kva_u32(at)? != elem_size {
            return Err(Error::malformed("bpf_array.elem_size", at));
        }
        let at = field(kva, a.index_mask, "bpf_array")?;
        let index_mask = k.read_kva_u32(at)?;
        if index_mask != array_index_mask(map.max_entries) {
            return Err(Error::malformed("bpf_array.index_mask", at));
        }
        let elems = field(kva, if percpu { a.pptrs } else { a.value }, "bpf_array")?;
        // array_map_alloc(): data + PAGE_ALIGN(sizeof(*array)) - offsetof(value).
        if map.map_flags & BPF_F_MMAPABLE != 0 && (percpu || elems.page_offset(PAGE_SIZE) != 0) {
            return Err(Error::malformed("bpf_array.value", elems));
        }
        Ok(Array {
            kva,
            map_type: map.map_type,
            value_size: map.value_size,
            max_entries: map.max_entries,
            elem_size,
            index_mask,
            elems,
        })
    }

    /// Address of the `struct bpf_array`.
    pub const fn kva(&self) -> Kva {
        self.kva
    }

    /// `BPF_MAP_TYPE_ARRAY` or `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub const fn map_type(&self) -> MapType {
        self.map_type
    }

    /// Whether this is a `BPF_MAP_TYPE_PERCPU_ARRAY`.
    pub const fn is_percpu(&self) -> bool {
        matches!(self.map_type, MapType::PERCPU_ARRAY)
    }

    /// `map.value_size`.
    pub const fn value_size(&self) -> u32 {
        self.value_size
    }

    /// `map.max_entries`.
    pub const fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// `array->elem_size`.
    pub const fn elem_size(&self) -> u32 {
        self.elem_size
    }

    /// `array->index_mask`.
    pub const fn index_mask(&self) -> u32 {
        self.index_mask
    }

    fn check_key(&self, key: u32) -> Result<()> {
        if key < self.max_entries {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "bpf_array key",
            })
        }
    }

    fn only(&self, percpu: bool) -> Result<()> {
        if self.is_percpu() == percpu {
            Ok(())
        } else {
            Err(Error::unsupported("bpf_array map type", self.kva))
        }
    }

    /// `array_map_lookup_elem()` of an ARRAY: `value + elem_size * key`.
    pub fn value_kva(&self, key: u32) -> Result<Kva> {
        self.only(false)?;
        self.check_key(key)?;
        u64::from(self.elem_size)
            .checked_mul(u64::from(key))
            .and_then(|off| self.elems.checked_add(off))
            .ok_or(Error::malformed("bpf_array.value", self.elems))
    }

    /// `offset..offset + len` of `value`, checked against `value_size`.
    fn window_at(&self, value: Kva, offset: u32, len: usize) -> Result<Window> {
        let fits = u64::try_from(len).is_ok_and(|n| window_fits(self.value_size, offset, n));
        if !fits {
            return Err(Error::limit(
                "bpf_array value window",
                value,
                u64::from(self.value_size),
            ));
        }
        let kva = value
            .checked_add(u64::from(offset))
            .ok_or(Error::malformed("bpf_array.value", value))?;
        Ok(Window { kva, len })
    }

    /// Where a write of `len` bytes at `offset` into the value of `key` of an
    /// ARRAY goes, without reading memory: the key and the window are checked
    /// exactly as [`Self::read_value`] checks them.
    pub fn write_plan(&self, key: u32, offset: u32, len: usize) -> Result<Window> {
        self.window_at(self.value_kva(key)?, offset, len)
    }

    /// Bytes `offset..offset + buf.len()` of the value of `key` of an ARRAY.
    pub fn read_value<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        key: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<()> {
        let w = self.write_plan(key, offset, buf.len())?;
        k.read_kva(w.kva, buf)
    }

    /// The values of keys `first`, `first + 1`, ... of an ARRAY, one after
    /// another into `buf`: as many whole values as fit (fewer where the array
    /// ends), and how many. One read covers a run of values when nothing pads
    /// them (`elem_size == value_size`), else one read per block of up to
    /// [`VALUES_BLOCK`] bytes of elements.
    pub fn read_values<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        first: u32,
        buf: &mut [u8],
    ) -> Result<u32> {
        let start = self.value_kva(first)?;
        let vs = usize::try_from(self.value_size).unwrap_or(usize::MAX);
        let es = usize::try_from(self.elem_size).unwrap_or(usize::MAX);
        let left = self.max_entries.saturating_sub(first);
        let fit = u32::try_from(buf.len().checked_div(vs).unwrap_or(0)).unwrap_or(u32::MAX);
        let n = left.min(fit);
        let len = usize::try_from(n).unwrap_or(0).saturating_mul(vs);
        let out = buf
            .get_mut(..len)
            .ok_or(Error::malformed("bpf_array values", start))?;
        if es == vs {
            k.read_kva(start, out)?;
            return Ok(n);
        }
        // Padding between values: read blocks of whole elements and keep
        // each value's bytes.
        let per_block = VALUES_BLOCK.checked_div(es).unwrap_or(0).max(1);
        let mut block = [0u8; VALUES_BLOCK];
        let mut at = start;
        for chunk in out.chunks_mut(vs.saturating_mul(per_block)) {
            let count = chunk.len().checked_div(vs).unwrap_or(0);
            let step = count.saturating_mul(es);
            // Up to the end of the last value, not of its padding.
            let raw_len = step.saturating_sub(es).saturating_add(vs);
            match block.get_mut(..raw_len) {
                Some(raw) => {
                    k.read_kva(at, raw)?;
                    for (value, elem) in chunk.chunks_mut(vs).zip(raw.chunks(es)) {
                        if let Some(src) = elem.get(..value.len()) {
                            value.copy_from_slice(src);
                        }
                    }
                }
                // Elements larger than a block: one read per value.
                None => {
                    let mut v = at;
                    for value in chunk.chunks_mut(vs) {
                        k.read_kva(v, value)?;
                        v = v
                            .checked_add(u64::from(self.elem_size))
                            .ok_or(Error::malformed("bpf_array.value", v))?;
                    }
                }
            }
            at = at
                .checked_add(u64::try_from(step).unwrap_or(u64::MAX))
                .ok_or(Error::malformed("bpf_array.value", at))?;
        }
        Ok(n)
    }

    /// Where `pptrs[key]` of a PERCPU_ARRAY is stored.
    fn pptr_at(&self, key: u32) -> Result<Kva> {
        self.only(true)?;
        self.check_key(key)?;
        u64::from(key)
            .checked_mul(8)
            .and_then(|off| self.elems.checked_add(off))
            .ok_or(Error::malformed("bpf_array.pptrs", self.elems))
    }

    /// `pptrs[key]` of a PERCPU_ARRAY. `bpf_array_alloc_percpu()` fills every
    /// slot with an 8-aligned allocation before the map exists, so NULL or a
    /// misaligned pointer is malformed.
    pub fn pptr<K: KernelRead + ?Sized>(&self, k: &K, key: u32) -> Result<Kva> {
        let at = self.pptr_at(key)?;
        let pptr = k.read_ptr(at)?;
        if pptr.get() == 0 || pptr.page_offset(8) != 0 {
            return Err(Error::malformed("bpf_array.pptrs", at));
        }
        Ok(pptr)
    }

    /// `percpu_array_map_lookup_percpu_elem()`: `per_cpu_ptr(pptrs[key], cpu)`.
    pub fn percpu_value_kva<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        key: u32,
        pcpu: &PerCpu,
        cpu: u32,
    ) -> Result<Kva> {
        pcpu.per_cpu_ptr(k, self.pptr(k, key)?, cpu)
    }

    /// Where bytes `offset..offset + len` of the value of `key` on `cpu` are
    /// (reads `pptrs[key]` and `__per_cpu_offset[cpu]`).
    pub fn percpu_window<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        key: u32,
        pcpu: &PerCpu,
        cpu: u32,
        offset: u32,
        len: usize,
    ) -> Result<Window> {
        self.window_at(self.percpu_value_kva(k, key, pcpu, cpu)?, offset, len)
    }

    /// Bytes `offset..offset + buf.len()` of the value of `key` on `cpu` of a
    /// PERCPU_ARRAY.
    pub fn read_percpu_value<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        key: u32,
        pcpu: &PerCpu,
        cpu: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<()> {
        let w = self.percpu_window(k, key, pcpu, cpu, offset, buf.len())?;
        k.read_kva(w.kva, buf)
    }

    /// Every key `0..max_entries` in order, with its value address (ARRAY) or
    /// per-CPU pointer (PERCPU_ARRAY); at most [`DEFAULT_MAX_ELEMS`] keys unless
    /// [`ArrayIter::limit`] says otherwise.
    pub fn iter<'a, K: KernelRead + ?Sized>(&self, k: &'a K) -> ArrayIter<'a, K> {
        ArrayIter {
            k,
            array: *self,
            next: 0,
            limit: DEFAULT_MAX_ELEMS,
            done: false,
        }
    }
}

/// The walk of [`Array::iter`]: `(key, elem)` for keys `0..max_entries`, stopped
/// for good by the first error.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ArrayIter<'a, K: ?Sized> {
    k: &'a K,
    array: Array,
    /// Next key; a `u64` so that `max_entries == u32::MAX` ends.
    next: u64,
    limit: u64,
    done: bool,
}

impl<K: KernelRead + ?Sized> ArrayIter<'_, K> {
    /// Yield at most `max_elems` keys; asking for more is [`Error::Limit`].
    pub fn limit(mut self, max_elems: u64) -> Self {
        self.limit = max_elems;
        self
    }

    /// The next `(key, elem)`, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u32, ArrayElem)>> {
        if self.done {
            return Ok(None);
        }
        let r = self.step();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn step(&mut self) -> Result<Option<(u32, ArrayElem)>> {
        let Ok(key) = u32::try_from(self.next) else {
            return Ok(None);
        };
        if key >= self.array.max_entries {
            return Ok(None);
        }
        if self.next >= self.limit {
            return Err(Error::limit("bpf_array key", self.array.kva, self.limit));
        }
        let elem = if self.array.is_percpu() {
            ArrayElem::Pptr(self.array.pptr(self.k, key)?)
        } else {
            ArrayElem::Value(self.array.value_kva(key)?)
        };
        self.next = self.next.saturating_add(1);
        Ok(Some((key, elem)))
    }
}

impl<K: KernelRead + ?Sized> Iterator for ArrayIter<'_, K> {
    type Item = Result<(u32, ArrayElem)>;

    fn next(&mut self) -> Option<Self::Item> {
        ArrayIter::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for ArrayIter<'_, K> {}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::offsets::BpfArrayOffsets;
    use crate::uapi::BPF_OBJ_NAME_LEN;
    use crate::virt::FlatKernel;

    /// `struct bpf_array` of the Debian 6.12 kernel (pahole on its BTF).
    fn offsets() -> Offsets {
        Offsets {
            bpf_array: BpfArrayOffsets {
                map: 0,
                elem_size: 248,
                index_mask: 252,
                value: 264,
                ptrs: 264,
                pptrs: 264,
                size: 264,
            },
            ..Offsets::default()
        }
    }

    const BASE: Kva = Kva(0xffff_c900_0010_0000);
    /// Where the per-CPU chunks and `__per_cpu_offset` live.
    const PCPU_BASE: Kva = Kva(0xffff_8880_0400_0000);

    fn map_info(map_type: MapType, value_size: u32, max_entries: u32) -> MapInfo {
        MapInfo {
            id: 7,
            map_type,
            name: [0; BPF_OBJ_NAME_LEN],
            map_flags: 0,
            key_size: 4,
            value_size,
            max_entries,
            map_extra: 0,
            btf_id: 0,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_vmlinux_value_type_id: 0,
            kva: BASE,
        }
    }

    /// Virtual pages of 4 KiB, stored out of order (as vmalloc maps them), read
    /// the way `KernelMem` reads: split at page boundaries.
    struct Scattered {
        base: Kva,
        pages: Vec<[u8; 4096]>,
        /// Virtual page `i` is stored in `pages[order[i]]`.
        order: Vec<usize>,
    }

    impl Scattered {
        fn new(base: Kva, npages: usize) -> Self {
            // Reverse the middle so neighbours are never adjacent.
            let order = (0..npages).rev().collect();
            Scattered {
                base,
                pages: std::vec![[0u8; 4096]; npages],
                order,
            }
        }

        fn byte(&mut self, at: Kva) -> &mut u8 {
            let off = at.offset_from(self.base).unwrap() as usize;
            let page = self.order[off / 4096];
            &mut self.pages[page][off % 4096]
        }

        fn put(&mut self, at: Kva, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                *self.byte(at.checked_add(i as u64).unwrap()) = *b;
            }
        }
    }

    impl KernelRead for Scattered {
        fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
            let miss = Error::NotMapped { kva, level: 1 };
            let mut off = usize::try_from(kva.offset_from(self.base).ok_or(miss)?).unwrap();
            let mut done = 0;
            while done < buf.len() {
                let page = *self.order.get(off / 4096).ok_or(miss)?;
                let n = (4096 - off % 4096).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&self.pages[page][off % 4096..off % 4096 + n]);
                done += n;
                off += n;
            }
            Ok(())
        }
    }

    /// An ARRAY laid out as `array_map_alloc()` does, value `k` filled with
    /// `pattern(k, i)`.
    fn array_image(value_size: u32, max_entries: u32) -> Scattered {
        let off = offsets().bpf_array;
        let elem = percpu_value_size(value_size).unwrap();
        let bytes = off.value as usize + elem as usize * max_entries as usize;
        let mut img = Scattered::new(BASE, bytes.div_ceil(4096));
        img.put(
            BASE.checked_add(off.elem_size.into()).unwrap(),
            &elem.to_le_bytes(),
        );
        img.put(
            BASE.checked_add(off.index_mask.into()).unwrap(),
            &array_index_mask(max_entries).to_le_bytes(),
        );
        for key in 0..max_entries {
            let v: Vec<u8> = (0..value_size).map(|i| pattern(key, i)).collect();
            let at = u64::from(off.value) + u64::from(elem) * u64::from(key);
            img.put(BASE.checked_add(at).unwrap(), &v);
        }
        img
    }

    fn pattern(key: u32, i: u32) -> u8 {
        (key.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8
    }

    #[test]
    fn index_mask_and_elem_size_follow_array_map_alloc() {
        assert_eq!(array_index_mask(1), 0);
        assert_eq!(array_index_mask(2), 1);
        assert_eq!(array_index_mask(3), 3);
        assert_eq!(array_index_mask(4), 3);
        assert_eq!(array_index_mask(5), 7);
        assert_eq!(array_index_mask(1 << 31), 0x7fff_ffff);
        // 1 << 32 in 64 bits, minus one, truncated.
        assert_eq!(array_index_mask((1 << 31) + 1), u32::MAX);
        assert_eq!(array_index_mask(u32::MAX), u32::MAX);
        assert!(window_fits(8, 0, 8));
        assert!(window_fits(8, 8, 0));
        assert!(!window_fits(8, 1, 8));
        assert!(!window_fits(8, u32::MAX, u64::MAX));
    }

    #[test]
    fn values_of_8_20_and_1000_bytes_read_back() {
        for (value_size, max_entries) in [(8u32, 600u32), (20, 300), (1000, 20)] {
            let img = array_image(value_size, max_entries);
            let map = map_info(MapType::ARRAY, value_size, max_entries);
            let a = Array::new(&img, &map, &offsets()).unwrap();
            assert_eq!(a.elem_size(), value_size.next_multiple_of(8));
            let mut straddles = 0;
            for key in 0..max_entries {
                let at = a.value_kva(key).unwrap();
                let end = at.checked_add(u64::from(value_size) - 1).unwrap();
                if at.align_down(4096) != end.align_down(4096) {
                    straddles += 1;
                }
                let mut buf = std::vec![0u8; value_size as usize];
                a.read_value(&img, key, 0, &mut buf).unwrap();
                let want: Vec<u8> = (0..value_size).map(|i| pattern(key, i)).collect();
                assert_eq!(buf, want, "value_size {value_size} key {key}");
                // A window at the tail.
                let mut tail = [0u8; 3];
                a.read_value(&img, key, value_size - 3, &mut tail).unwrap();
                assert_eq!(tail[..], want[want.len() - 3..]);
            }
            if value_size != 8 {
                assert!(
                    straddles > 0,
                    "no value of {value_size} bytes crossed a page"
                );
            }
        }
    }

    #[test]
    fn runs_of_values_read_as_each_value_reads() {
        // Unpadded, padded, padded past a block, and larger than a block.
        for (value_size, max_entries) in [(8u32, 1200u32), (20, 700), (1000, 30), (5000, 4)] {
            let img = array_image(value_size, max_entries);
            let map = map_info(MapType::ARRAY, value_size, max_entries);
            let a = Array::new(&img, &map, &offsets()).unwrap();
            let vs = value_size as usize;
            let want = |first: u32, n: u32| -> Vec<u8> {
                (first..first + n)
                    .flat_map(|key| (0..value_size).map(move |i| pattern(key, i)))
                    .collect()
            };
            for first in [0, 1, max_entries / 2, max_entries - 1] {
                // Room for all, for three and a bit, and for less than one.
                for room in [vs * max_entries as usize, 3 * vs + 1, vs - 1] {
                    let mut buf = std::vec![0xeeu8; room];
                    let n = a.read_values(&img, first, &mut buf).unwrap();
                    let fit = (room / vs) as u32;
                    assert_eq!(
                        n,
                        fit.min(max_entries - first),
                        "{value_size} {first} {room}"
                    );
                    let len = n as usize * vs;
                    assert_eq!(
                        buf[..len],
                        want(first, n)[..],
                        "{value_size} {first} {room}"
                    );
                    assert!(buf[len..].iter().all(|&b| b == 0xee));
                }
            }
            let mut buf = std::vec![0u8; vs];
            assert!(a.read_values(&img, max_entries, &mut buf).is_err());
        }
    }

    #[test]
    fn out_of_range_key_and_window_are_refused() {
        let img = array_image(20, 5);
        let a = Array::new(&img, &map_info(MapType::ARRAY, 20, 5), &offsets()).unwrap();
        assert_eq!(
            a.value_kva(5),
            Err(Error::NotFound {
                what: "bpf_array key"
            })
        );
        assert!(a.value_kva(u32::MAX).is_err());
        let mut buf = [0u8; 21];
        assert!(matches!(
            a.read_value(&img, 0, 0, &mut buf),
            Err(Error::Limit { limit: 20, .. })
        ));
        assert!(matches!(
            a.read_value(&img, 0, 20, &mut buf[..1]),
            Err(Error::Limit { .. })
        ));
        assert!(a.read_value(&img, 0, 20, &mut buf[..0]).is_ok());
        assert!(a.read_value(&img, 4, u32::MAX, &mut buf[..1]).is_err());
        // The planner is the reader's check, without a read.
        let w = a.write_plan(3, 4, 16).unwrap();
        assert_eq!(w.kva, a.value_kva(3).unwrap().checked_add(4).unwrap());
        assert_eq!(w.len, 16);
        assert!(a.write_plan(3, 5, 16).is_err());
        assert!(a.write_plan(5, 0, 1).is_err());
        // An ARRAY has no per-CPU pointers.
        assert!(matches!(a.pptr(&img, 0), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn bad_elem_size_and_index_mask_are_named() {
        let off = offsets().bpf_array;
        let map = map_info(MapType::ARRAY, 20, 5);
        let mut img = array_image(20, 5);
        img.put(
            BASE.checked_add(off.elem_size.into()).unwrap(),
            &20u32.to_le_bytes(),
        );
        assert_eq!(
            Array::new(&img, &map, &offsets()),
            Err(Error::malformed(
                "bpf_array.elem_size",
                BASE.checked_add(248).unwrap()
            ))
        );
        let mut img = array_image(20, 5);
        img.put(
            BASE.checked_add(off.index_mask.into()).unwrap(),
            &4u32.to_le_bytes(),
        );
        assert_eq!(
            Array::new(&img, &map, &offsets()),
            Err(Error::malformed(
                "bpf_array.index_mask",
                BASE.checked_add(252).unwrap()
            ))
        );
        // Attributes array_map_alloc_check() refuses.
        let img = array_image(20, 5);
        for (what, m) in [
            ("bpf_map.key_size", MapInfo { key_size: 8, ..map }),
            (
                "bpf_map.max_entries",
                MapInfo {
                    max_entries: 0,
                    ..map
                },
            ),
            (
                "bpf_map.value_size",
                MapInfo {
                    value_size: 0,
                    ..map
                },
            ),
            (
                "bpf_map.value_size",
                MapInfo {
                    value_size: 0x8000_0000,
                    ..map
                },
            ),
        ] {
            assert_eq!(
                Array::new(&img, &m, &offsets()),
                Err(Error::malformed(what, BASE)),
                "{what}"
            );
        }
        let hash = MapInfo {
            map_type: MapType::HASH,
            ..map
        };
        assert!(matches!(
            Array::new(&img, &hash, &offsets()),
            Err(Error::Unsupported { .. })
        ));
        // BPF_F_MMAPABLE puts value on a page boundary; 264 is not one.
        let mmapable = MapInfo {
            map_flags: BPF_F_MMAPABLE,
            ..map
        };
        assert!(matches!(
            Array::new(&img, &mmapable, &offsets()),
            Err(Error::Malformed {
                what: "bpf_array.value",
                ..
            })
        ));
        // A bpf_map address that the struct's offset would put below zero.
        let low = MapInfo { kva: Kva(4), ..map };
        let shifted = Offsets {
            bpf_array: BpfArrayOffsets { map: 8, ..off },
            ..offsets()
        };
        assert!(Array::new(&img, &low, &shifted).is_err());
    }

    #[test]
    fn mmapable_array_with_page_aligned_values() {
        // value at 4096: bpf_array starts 4096 - 264 into the vmalloc area.
        let off = offsets().bpf_array;
        let data = BASE;
        let array = data.checked_add(4096 - u64::from(off.value)).unwrap();
        let mut img = Scattered::new(data, 3);
        img.put(array.checked_add(248).unwrap(), &24u32.to_le_bytes());
        img.put(
            array.checked_add(252).unwrap(),
            &array_index_mask(100).to_le_bytes(),
        );
        img.put(data.checked_add(4096 + 24 * 99).unwrap(), b"last");
        let map = MapInfo {
            map_flags: BPF_F_MMAPABLE,
            kva: array,
            ..map_info(MapType::ARRAY, 24, 100)
        };
        let a = Array::new(&img, &map, &offsets()).unwrap();
        assert_eq!(a.value_kva(0).unwrap(), data.checked_add(4096).unwrap());
        let mut buf = [0u8; 4];
        a.read_value(&img, 99, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"last");
    }

    /// A PERCPU_ARRAY of `max_entries` pointers, `ncpus` CPUs whose chunks are
    /// 64 KiB apart, and the value of `key` on `cpu` filled with
    /// `pattern(key * 16 + cpu, i)`.
    fn percpu_image(
        value_size: u32,
        max_entries: u32,
        ncpus: u32,
    ) -> (FlatKernel<Vec<u8>>, PerCpu) {
        let off = offsets().bpf_array;
        let elem = percpu_value_size(value_size).unwrap();
        let chunk = 0x1_0000u64;
        // Layout: bpf_array + pptrs at 0, __per_cpu_offset at 0x8000, CPU c's
        // unit at 0x10000 + c * chunk; pptrs are offsets into unit 0.
        let len = 0x1_0000 + chunk * u64::from(ncpus);
        let mut bytes = std::vec![0u8; len as usize];
        let put = |b: &mut Vec<u8>, at: u64, v: &[u8]| {
            b[at as usize..at as usize + v.len()].copy_from_slice(v)
        };
        put(&mut bytes, off.elem_size.into(), &elem.to_le_bytes());
        put(
            &mut bytes,
            off.index_mask.into(),
            &array_index_mask(max_entries).to_le_bytes(),
        );
        // The "first chunk" base: per-CPU pointers are relative to it.
        let pcpu_base = PCPU_BASE.get();
        for cpu in 0..ncpus {
            let unit = BASE.get() + 0x1_0000 + chunk * u64::from(cpu);
            put(
                &mut bytes,
                0x8000 + 8 * u64::from(cpu),
                &unit.wrapping_sub(pcpu_base).to_le_bytes(),
            );
        }
        for key in 0..max_entries {
            let pptr = pcpu_base + u64::from(key) * u64::from(elem);
            put(
                &mut bytes,
                u64::from(off.pptrs) + 8 * u64::from(key),
                &pptr.to_le_bytes(),
            );
            for cpu in 0..ncpus {
                let at = 0x1_0000 + chunk * u64::from(cpu) + u64::from(key) * u64::from(elem);
                let v: Vec<u8> = (0..value_size)
                    .map(|i| pattern(key * 16 + cpu, i))
                    .collect();
                put(&mut bytes, at, &v);
            }
        }
        let per_cpu_offset = BASE.checked_add(0x8000).unwrap();
        (
            FlatKernel { base: BASE, bytes },
            PerCpu::new(per_cpu_offset, ncpus),
        )
    }

    #[test]
    fn percpu_values_on_several_cpus() {
        let (k, pcpu) = percpu_image(12, 50, 4);
        let map = map_info(MapType::PERCPU_ARRAY, 12, 50);
        let a = Array::new(&k, &map, &offsets()).unwrap();
        assert_eq!((a.elem_size(), a.index_mask()), (16, 63));
        for key in [0, 1, 17, 49] {
            for cpu in 0..4 {
                let mut buf = [0u8; 12];
                a.read_percpu_value(&k, key, &pcpu, cpu, 0, &mut buf)
                    .unwrap();
                let want: Vec<u8> = (0..12).map(|i| pattern(key * 16 + cpu, i)).collect();
                assert_eq!(buf[..], want[..], "key {key} cpu {cpu}");
                let mut mid = [0u8; 4];
                a.read_percpu_value(&k, key, &pcpu, cpu, 8, &mut mid)
                    .unwrap();
                assert_eq!(mid[..], want[8..]);
            }
        }
        let mut buf = [0u8; 4];
        assert!(matches!(
            a.read_percpu_value(&k, 0, &pcpu, 4, 0, &mut buf),
            Err(Error::Limit {
                what: "cpu number",
                ..
            })
        ));
        assert!(matches!(
            a.read_percpu_value(&k, 0, &pcpu, 0, 9, &mut buf),
            Err(Error::Limit { .. })
        ));
        assert!(a.read_percpu_value(&k, 50, &pcpu, 0, 0, &mut buf).is_err());
        assert!(matches!(a.value_kva(0), Err(Error::Unsupported { .. })));
        // The walk yields every pointer.
        let all: Vec<_> = a.iter(&k).collect::<Result<_>>().unwrap();
        assert_eq!(all.len(), 50);
        assert_eq!(all[3], (3, ArrayElem::Pptr(Kva(PCPU_BASE.get() + 3 * 16))));
    }

    #[test]
    fn percpu_value_too_large_for_pcpu_alloc_is_malformed() {
        let (k, _) = percpu_image(8, 2, 1);
        let map = map_info(MapType::PERCPU_ARRAY, PCPU_MIN_UNIT_SIZE + 1, 2);
        assert_eq!(
            Array::new(&k, &map, &offsets()),
            Err(Error::malformed("bpf_map.value_size", BASE))
        );
    }

    #[test]
    fn pptr_outside_memory_or_null_is_an_error() {
        let (mut k, pcpu) = percpu_image(8, 4, 2);
        let pptrs = offsets().bpf_array.pptrs as usize;
        // Key 1 points far away, key 2 is NULL, key 3 is misaligned.
        k.bytes[pptrs + 8..pptrs + 16].copy_from_slice(&0x1234_5000u64.to_le_bytes());
        k.bytes[pptrs + 16..pptrs + 24].copy_from_slice(&0u64.to_le_bytes());
        k.bytes[pptrs + 24..pptrs + 32].copy_from_slice(&(PCPU_BASE.get() + 4).to_le_bytes());
        let a = Array::new(&k, &map_info(MapType::PERCPU_ARRAY, 8, 4), &offsets()).unwrap();
        let mut buf = [0u8; 8];
        assert!(a.read_percpu_value(&k, 0, &pcpu, 1, 0, &mut buf).is_ok());
        assert!(matches!(
            a.read_percpu_value(&k, 1, &pcpu, 1, 0, &mut buf),
            Err(Error::NotMapped { .. })
        ));
        let at2 = BASE.checked_add(pptrs as u64 + 16).unwrap();
        assert_eq!(a.pptr(&k, 2), Err(Error::malformed("bpf_array.pptrs", at2)));
        assert!(a.pptr(&k, 3).is_err());
        // The walk stops for good at the NULL pointer.
        let mut it = a.iter(&k);
        assert!(matches!(it.next(), Ok(Some((0, _)))));
        assert!(matches!(it.next(), Ok(Some((1, _)))));
        assert!(it.next().is_err());
        assert_eq!(it.next(), Ok(None));
    }

    #[test]
    fn walk_yields_every_value_and_honours_its_limit() {
        let img = array_image(20, 10);
        let a = Array::new(&img, &map_info(MapType::ARRAY, 20, 10), &offsets()).unwrap();
        let keys: Vec<_> = a
            .iter(&img)
            .map(|r| r.map(|(key, e)| (key, e == ArrayElem::Value(a.value_kva(key).unwrap()))))
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(keys, (0..10).map(|k| (k, true)).collect::<Vec<_>>());
        let mut it = a.iter(&img).limit(4);
        for _ in 0..4 {
            assert!(matches!(it.next(), Ok(Some(_))));
        }
        assert!(matches!(it.next(), Err(Error::Limit { limit: 4, .. })));
        assert_eq!(it.next(), Ok(None));
        // Exactly enough budget is not an error.
        assert_eq!(a.iter(&img).limit(10).count(), 10);
    }

    #[test]
    fn max_entries_of_u32_max_ends() {
        // Nothing is read for an ARRAY walk: the last key is u32::MAX - 1.
        let img = FlatKernel {
            base: BASE,
            bytes: {
                let mut b = std::vec![0u8; 264];
                b[248..252].copy_from_slice(&8u32.to_le_bytes());
                b[252..256].copy_from_slice(&u32::MAX.to_le_bytes());
                b
            },
        };
        let a = Array::new(&img, &map_info(MapType::ARRAY, 8, u32::MAX), &offsets()).unwrap();
        assert_eq!(
            a.value_kva(u32::MAX - 1).unwrap(),
            BASE.checked_add(264 + 8 * u64::from(u32::MAX - 1)).unwrap()
        );
        assert!(a.value_kva(u32::MAX).is_err());
        let mut it = a.iter(&img).limit(u64::MAX);
        it.next = u64::from(u32::MAX) - 1;
        assert!(matches!(it.next(), Ok(Some((k, _))) if k == u32::MAX - 1));
        assert_eq!(it.next(), Ok(None));
    }

    proptest! {
        /// Windows of any array read the same bytes as a model of it.
        #[test]
        fn windows_equal_the_model(
            value_size in 1u32..1200,
            max_entries in 1u32..24,
            probes in proptest::collection::vec((any::<u32>(), any::<u32>(), 0usize..1300), 16),
        ) {
            let img = array_image(value_size, max_entries);
            let a = Array::new(&img, &map_info(MapType::ARRAY, value_size, max_entries), &offsets()).unwrap();
            for (key, offset, len) in probes {
                let key = key % (max_entries + 1);
                let offset = offset % (value_size + 2);
                let mut buf = std::vec![0u8; len];
                let got = a.read_value(&img, key, offset, &mut buf);
                let end = offset as usize + len;
                if key < max_entries && end <= value_size as usize {
                    prop_assert!(got.is_ok());
                    let want: Vec<u8> = (offset..end as u32).map(|i| pattern(key, i)).collect();
                    prop_assert_eq!(buf, want);
                } else {
                    prop_assert!(got.is_err());
                }
            }
        }

        /// Whatever the header and pointers say, nothing panics and walks end.
        #[test]
        fn corruption_never_panics(
            value_size in 1u32..64,
            max_entries in 1u32..16,
            percpu in any::<bool>(),
            hits in proptest::collection::vec((0usize..512, any::<u8>()), 0..24),
            map_extra_flags in any::<u32>(),
            cpu in 0u32..4,
        ) {
            let (mut k, pcpu) = percpu_image(value_size, max_entries, 2);
            for (at, b) in hits {
                if let Some(byte) = k.bytes.get_mut(at) {
                    *byte = b;
                }
            }
            let ty = if percpu { MapType::PERCPU_ARRAY } else { MapType::ARRAY };
            let map = MapInfo { map_flags: map_extra_flags, ..map_info(ty, value_size, max_entries) };
            if let Ok(a) = Array::new(&k, &map, &offsets()) {
                let n = a.iter(&k).limit(64).take(100).count();
                prop_assert!(n <= max_entries as usize + 1);
                let mut buf = [0u8; 8];
                for key in 0..max_entries + 1 {
                    let _ = a.read_value(&k, key, 0, &mut buf);
                    let _ = a.read_percpu_value(&k, key, &pcpu, cpu, 0, &mut buf);
                }
            }
        }
    }
}
