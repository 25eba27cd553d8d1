//! Streaming a map's entries through `bpf(2)`: `BPF_MAP_LOOKUP_BATCH` where the
//! map has it, `BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM` otherwise. The
//! walk is written against [`ElemOps`], so its decisions (ENOSPC growth, the
//! fallback, skipped keys, budgets) are tested against a model without a
//! kernel.

use bpfmem_core::uapi::{percpu_value_size, MapType};

use super::sys::{Errno, ENOTSUPP};
use super::{LiveError, Op};
use crate::access::{Entries, Entry};
use crate::AccessError;

/// The sizes the element commands of one map copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub key_size: usize,
    /// `value_size`: what one CPU's value is.
    pub value_size: usize,
    /// Bytes between CPUs in a per-CPU buffer: `round_up(value_size, 8)`.
    pub stride: usize,
    /// CPUs in a per-CPU buffer (1 for other maps).
    pub ncpus: usize,
    /// Bytes of value the kernel copies per element (`bpf_map_value_size()`,
    /// kernel/bpf/syscall.c): `stride * ncpus` for per-CPU maps, else
    /// `value_size`.
    pub value_buf: usize,
    pub percpu: bool,
    pub max_entries: u32,
}

impl Shape {
    /// The shape of a map of `map_type` on a kernel with `ncpus` possible CPUs
    /// (`num_possible_cpus()`); `None` if the sizes overflow.
    pub fn new(
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        ncpus: usize,
    ) -> Option<Self> {
        let percpu = map_type.is_percpu();
        let stride = usize::try_from(percpu_value_size(value_size)?).ok()?;
        let value_size = usize::try_from(value_size).ok()?;
        let (ncpus, value_buf) = if percpu {
            (ncpus, stride.checked_mul(ncpus)?)
        } else {
            (1, value_size)
        };
        Some(Self {
            key_size: usize::try_from(key_size).ok()?,
            value_size,
            stride,
            ncpus,
            value_buf,
            percpu,
            max_entries,
        })
    }

    /// Bytes of a batch token: a `u32` bucket for hash tables, a key for
    /// `generic_map_lookup_batch()` (arrays).
    pub fn batch_token_size(&self) -> usize {
        self.key_size.max(8)
    }

    /// `value` as the accessor reports it: for per-CPU maps, `value_size`
    /// bytes of each CPU's `stride`-byte slot, padding dropped.
    pub fn unpad_into(&self, raw: &[u8], out: &mut Vec<u8>) {
        out.clear();
        if self.percpu {
            for slot in raw.chunks(self.stride.max(1)).take(self.ncpus) {
                out.extend_from_slice(slot.get(..self.value_size).unwrap_or(slot));
            }
        } else {
            out.extend_from_slice(raw.get(..self.value_size).unwrap_or(raw));
        }
    }
}

/// What one `BPF_MAP_LOOKUP_BATCH` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchOut {
    /// Elements copied.
    pub count: u32,
    /// The kernel said ENOENT: these are the last.
    pub last: bool,
}

/// The element commands a walk needs, as `bpf(2)` answers them.
pub(crate) trait ElemOps {
    /// `BPF_MAP_LOOKUP_ELEM`; `Ok(false)` for ENOENT.
    fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, Errno>;
    /// `BPF_MAP_GET_NEXT_KEY` (`None`: the first key); `Ok(false)` for ENOENT.
    fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno>;
    /// `BPF_MAP_LOOKUP_BATCH` of at most `count` elements.
    fn lookup_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: u32,
    ) -> Result<BatchOut, Errno>;
}

/// Whether `BPF_MAP_LOOKUP_BATCH` exists for a map type at all (kernel/bpf/
/// hashtab.c, arraymap.c: `.map_lookup_batch`, v5.6+ for both).
pub(crate) fn batch_capable(t: MapType) -> bool {
    matches!(
        t,
        MapType::HASH
            | MapType::LRU_HASH
            | MapType::PERCPU_HASH
            | MapType::LRU_PERCPU_HASH
            | MapType::ARRAY
            | MapType::PERCPU_ARRAY
    )
}

/// Answers that mean "this kernel or map type has no batch lookup".
fn batch_unsupported(e: Errno) -> bool {
    e == libc::EINVAL || e == ENOTSUPP || e == libc::EOPNOTSUPP
}

/// Batch buffers never grow beyond this; past it the walk goes on key by key.
pub(crate) const BATCH_MAX_BYTES: usize = 64 << 20;
/// The default batch aims at buffers of about this size.
const BATCH_TARGET_BYTES: usize = 1 << 20;
/// ... and at most this many elements.
const BATCH_TARGET_COUNT: usize = 4096;

/// The batch size used when none is set.
pub(crate) fn default_batch(shape: &Shape) -> u32 {
    let per = shape.key_size.saturating_add(shape.value_buf).max(1);
    let n = (BATCH_TARGET_BYTES / per).clamp(1, BATCH_TARGET_COUNT);
    u32::try_from(n).unwrap_or(1).min(shape.max_entries.max(1))
}

enum State {
    Batch,
    PerKey,
    Done,
}

/// The entries of one map, streamed with reused buffers.
pub(crate) struct Cursor<O> {
    ops: O,
    id: u32,
    shape: Shape,
    state: State,
    // Batch walk.
    count: u32,
    keys: Vec<u8>,
    values: Vec<u8>,
    token_in: Vec<u8>,
    token_out: Vec<u8>,
    have_token: bool,
    filled: usize,
    pos: usize,
    last_batch: bool,
    // Key-by-key walk.
    prev: Vec<u8>,
    next: Vec<u8>,
    have_prev: bool,
    value: Vec<u8>,
    steps: u64,
    budget: u64,
}

impl<O: ElemOps> Cursor<O> {
    /// A walk of map `id`; `batch` is the first batch size, `None` to go key
    /// by key from the start.
    pub fn new(ops: O, id: u32, shape: Shape, batch: Option<u32>) -> Self {
        let token = shape.batch_token_size();
        Self {
            ops,
            id,
            shape,
            state: match batch {
                Some(_) => State::Batch,
                None => State::PerKey,
            },
            count: batch.unwrap_or(0).max(1),
            keys: Vec::new(),
            values: Vec::new(),
            token_in: vec![0; token],
            token_out: vec![0; token],
            have_token: false,
            filled: 0,
            pos: 0,
            last_batch: false,
            prev: vec![0; shape.key_size],
            next: vec![0; shape.key_size],
            have_prev: false,
            value: Vec::new(),
            steps: 0,
            // GET_NEXT_KEY restarts from the first key when the key it is
            // given was deleted meanwhile (`htab_map_get_next_key()`): a walk
            // under heavy deletion could go round for ever.
            budget: u64::from(shape.max_entries)
                .saturating_mul(2)
                .saturating_add(64),
        }
    }

    fn fail(&mut self, e: LiveError) -> Result<bool, AccessError> {
        self.state = State::Done;
        Err(e.into())
    }

    fn sys(&self, op: Op, errno: Errno) -> LiveError {
        LiveError::from_errno(op, self.id, errno)
    }

    /// Size the batch buffers for `count` elements; `None` past the cap.
    fn size_batch(&mut self) -> Option<()> {
        let n = usize::try_from(self.count).ok()?;
        let kb = n.checked_mul(self.shape.key_size)?;
        let vb = n.checked_mul(self.shape.value_buf)?;
        if kb.checked_add(vb)? > BATCH_MAX_BYTES {
            return None;
        }
        self.keys.resize(kb, 0);
        self.values.resize(vb, 0);
        Some(())
    }

    /// Keep the last key handed out, where a key-by-key walk would resume.
    fn remember_last_key(&mut self) {
        let k = self.shape.key_size;
        if let Some(last) = self
            .filled
            .checked_sub(1)
            .and_then(|i| self.keys.get(i * k..(i + 1) * k))
        {
            self.prev.copy_from_slice(last);
            self.have_prev = true;
        }
        self.filled = 0;
        self.pos = 0;
    }

    /// Go on key by key after the last key handed out (or from the start).
    fn switch_to_per_key(&mut self) {
        self.state = State::PerKey;
    }

    /// Fetch the next batch, or switch to the key-by-key walk.
    fn fetch(&mut self) -> Result<(), LiveError> {
        self.remember_last_key();
        loop {
            if self.size_batch().is_none() {
                self.switch_to_per_key();
                return Ok(());
            }
            let in_batch = self.have_token.then_some(self.token_in.as_slice());
            let res = self.ops.lookup_batch(
                in_batch,
                &mut self.token_out,
                &mut self.keys,
                &mut self.values,
                self.count,
            );
            match res {
                Ok(out) => {
                    let n = usize::try_from(out.count).unwrap_or(usize::MAX);
                    if n == 0 && !out.last {
                        return Err(LiveError::Malformed {
                            what: "BPF_MAP_LOOKUP_BATCH returned nothing before the end",
                            id: self.id,
                        });
                    }
                    self.filled = n;
                    self.pos = 0;
                    self.last_batch = out.last;
                    if n > 0 {
                        std::mem::swap(&mut self.token_in, &mut self.token_out);
                        self.have_token = true;
                    }
                    return Ok(());
                }
                // One bucket holds more elements than the buffers: grow them
                // and ask again from the same place.
                Err(libc::ENOSPC) => {
                    let max = self.shape.max_entries.max(1);
                    if self.count >= max {
                        return Err(self.sys(Op::MapLookupBatch, libc::ENOSPC));
                    }
                    self.count = self.count.saturating_mul(2).min(max);
                }
                Err(e) if batch_unsupported(e) && !self.have_token => {
                    self.switch_to_per_key();
                    return Ok(());
                }
                Err(e) => return Err(self.sys(Op::MapLookupBatch, e)),
            }
        }
    }

    fn next_batch(&mut self, entry: &mut Entry) -> Result<Option<bool>, LiveError> {
        loop {
            if self.pos < self.filled {
                let (k, v) = (self.shape.key_size, self.shape.value_buf);
                let i = self.pos;
                self.pos += 1;
                let key = self.keys.get(i * k..(i + 1) * k);
                let value = self.values.get(i * v..(i + 1) * v);
                let (Some(key), Some(value)) = (key, value) else {
                    return Err(LiveError::Malformed {
                        what: "BPF_MAP_LOOKUP_BATCH count",
                        id: self.id,
                    });
                };
                entry.key.clear();
                entry.key.extend_from_slice(key);
                self.shape.unpad_into(value, &mut entry.value);
                return Ok(Some(true));
            }
            if self.last_batch {
                return Ok(Some(false));
            }
            self.fetch()?;
            if matches!(self.state, State::PerKey) {
                return Ok(None);
            }
        }
    }

    fn next_per_key(&mut self, entry: &mut Entry) -> Result<bool, LiveError> {
        self.value.resize(self.shape.value_buf, 0);
        loop {
            if self.steps >= self.budget {
                return Err(LiveError::Limit {
                    what: "BPF_MAP_GET_NEXT_KEY walk (restarted by keys deleted under it)",
                    id: self.id,
                    limit: self.budget,
                });
            }
            self.steps += 1;
            let prev = self.have_prev.then_some(self.prev.as_slice());
            match self.ops.next_key(prev, &mut self.next) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => return Err(self.sys(Op::MapGetNextKey, e)),
            }
            match self.ops.lookup(&self.next, &mut self.value) {
                Ok(true) => {
                    std::mem::swap(&mut self.prev, &mut self.next);
                    self.have_prev = true;
                    entry.key.clear();
                    entry.key.extend_from_slice(&self.prev);
                    self.shape.unpad_into(&self.value, &mut entry.value);
                    return Ok(true);
                }
                // Deleted between GET_NEXT_KEY and the lookup: skip it, and ask
                // again after the last key that was there, since asking after
                // a deleted key starts over from the first.
                Ok(false) => continue,
                Err(e) => return Err(self.sys(Op::MapLookupElem, e)),
            }
        }
    }
}

impl<O: ElemOps> Entries for Cursor<O> {
    fn next_into(&mut self, entry: &mut Entry) -> Result<bool, AccessError> {
        loop {
            let res = match self.state {
                State::Done => return Ok(false),
                State::Batch => match self.next_batch(entry) {
                    Ok(Some(more)) => Ok(more),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                },
                State::PerKey => self.next_per_key(entry),
            };
            return match res {
                Ok(true) => Ok(true),
                Ok(false) => {
                    self.state = State::Done;
                    Ok(false)
                }
                Err(e) => self.fail(e),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    #[test]
    fn shape_follows_bpf_map_value_size() {
        let s = Shape::new(MapType::PERCPU_HASH, 12, 20, 10, 3).unwrap();
        assert_eq!((s.stride, s.ncpus, s.value_buf), (24, 3, 72));
        let s = Shape::new(MapType::HASH, 12, 20, 10, 3).unwrap();
        assert_eq!((s.stride, s.ncpus, s.value_buf), (24, 1, 20));
        assert_eq!(s.batch_token_size(), 12);
        assert_eq!(Shape::new(MapType::PERCPU_ARRAY, 4, u32::MAX, 1, 2), None);
        assert_eq!(
            Shape::new(MapType::PERCPU_ARRAY, 4, 1 << 30, 1, usize::MAX),
            None
        );
    }

    #[test]
    fn unpad_drops_percpu_padding() {
        let s = Shape::new(MapType::PERCPU_ARRAY, 4, 12, 1, 2).unwrap();
        let raw: Vec<u8> = (0..32).collect();
        let mut out = vec![0xff; 3];
        s.unpad_into(&raw, &mut out);
        let want: Vec<u8> = (0..12).chain(16..28).collect();
        assert_eq!(out, want);
        let s = Shape::new(MapType::ARRAY, 4, 12, 1, 2).unwrap();
        s.unpad_into(&raw[..12], &mut out);
        assert_eq!(out, (0..12).collect::<Vec<u8>>());
    }

    #[test]
    fn default_batch_is_bounded() {
        let s = Shape::new(MapType::HASH, 8, 8, 1 << 20, 1).unwrap();
        assert_eq!(default_batch(&s), 4096);
        let s = Shape::new(MapType::HASH, 8, 8, 10, 1).unwrap();
        assert_eq!(default_batch(&s), 10);
        let s = Shape::new(MapType::HASH, 8, 4 << 20, 100, 1).unwrap();
        assert_eq!(default_batch(&s), 1);
    }

    /// A hash table the way `bpf(2)` walks one: batch by bucket (a `u32`
    /// token), GET_NEXT_KEY in bucket order restarting from the first key when
    /// the given key is gone, and hooks that delete keys mid-walk.
    struct Model {
        buckets: RefCell<Vec<Vec<(u32, u32)>>>,
        batch: Result<(), Errno>,
        /// Delete this key right after GET_NEXT_KEY returns it.
        delete_after_next: Cell<Option<u32>>,
        batch_calls: Cell<u32>,
    }

    impl Model {
        fn new(buckets: Vec<Vec<u32>>) -> Self {
            let buckets = buckets
                .into_iter()
                .map(|b| b.into_iter().map(|k| (k, k * 10)).collect())
                .collect();
            Self {
                buckets: RefCell::new(buckets),
                batch: Ok(()),
                delete_after_next: Cell::new(None),
                batch_calls: Cell::new(0),
            }
        }

        fn flat(&self) -> Vec<u32> {
            self.buckets
                .borrow()
                .iter()
                .flatten()
                .map(|e| e.0)
                .collect()
        }
    }

    fn key(b: &[u8]) -> u32 {
        u32::from_le_bytes(b.try_into().unwrap())
    }

    impl ElemOps for &Model {
        fn lookup(&self, k: &[u8], value: &mut [u8]) -> Result<bool, Errno> {
            let k = key(k);
            let found = self
                .buckets
                .borrow()
                .iter()
                .flatten()
                .find(|e| e.0 == k)
                .copied();
            Ok(found
                .map(|(_, v)| value[..4].copy_from_slice(&v.to_le_bytes()))
                .is_some())
        }

        fn next_key(&self, k: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno> {
            let flat = self.flat();
            let i = match k.map(key) {
                None => 0,
                Some(k) => flat.iter().position(|&x| x == k).map_or(0, |i| i + 1),
            };
            let Some(&n) = flat.get(i) else {
                return Ok(false);
            };
            next.copy_from_slice(&n.to_le_bytes());
            if self.delete_after_next.get() == Some(n) {
                for b in self.buckets.borrow_mut().iter_mut() {
                    b.retain(|e| e.0 != n);
                }
            }
            Ok(true)
        }

        fn lookup_batch(
            &self,
            in_batch: Option<&[u8]>,
            out_batch: &mut [u8],
            keys: &mut [u8],
            values: &mut [u8],
            count: u32,
        ) -> Result<BatchOut, Errno> {
            self.batch_calls.set(self.batch_calls.get() + 1);
            self.batch?;
            let buckets = self.buckets.borrow();
            let mut b = in_batch.map_or(0, |t| key(&t[..4]) as usize);
            let mut total = 0usize;
            while b < buckets.len() {
                let bucket = &buckets[b];
                if bucket.len() > count as usize - total {
                    if total == 0 {
                        return Err(libc::ENOSPC);
                    }
                    break;
                }
                for &(k, v) in bucket {
                    keys[total * 4..][..4].copy_from_slice(&k.to_le_bytes());
                    values[total * 4..][..4].copy_from_slice(&v.to_le_bytes());
                    total += 1;
                }
                b += 1;
            }
            out_batch[..4].copy_from_slice(&(b as u32).to_le_bytes());
            Ok(BatchOut {
                count: total as u32,
                last: b >= buckets.len(),
            })
        }
    }

    fn shape(max_entries: u32) -> Shape {
        Shape::new(MapType::HASH, 4, 4, max_entries, 1).unwrap()
    }

    fn walk(m: &Model, batch: Option<u32>) -> Result<Vec<(u32, u32)>, AccessError> {
        let mut c = Cursor::new(m, 7, shape(64), batch);
        let mut e = Entry::default();
        let mut out = Vec::new();
        while c.next_into(&mut e)? {
            out.push((key(&e.key), key(&e.value)));
        }
        // Fused: the end stays the end.
        assert!(!c.next_into(&mut e)?);
        Ok(out)
    }

    fn expect(keys: &[u32]) -> Vec<(u32, u32)> {
        keys.iter().map(|&k| (k, k * 10)).collect()
    }

    #[test]
    fn batch_walk_grows_on_enospc() {
        let m = Model::new(vec![vec![1], vec![], vec![2, 3, 4, 5, 6], vec![7, 8]]);
        assert_eq!(
            walk(&m, Some(1)).unwrap(),
            expect(&[1, 2, 3, 4, 5, 6, 7, 8])
        );
        // 1 | 2..6 (ENOSPC at 1, 2 and 4) | 7 8
        assert_eq!(m.batch_calls.get(), 5);
        m.batch_calls.set(0);
        assert_eq!(
            walk(&m, Some(64)).unwrap(),
            expect(&[1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(m.batch_calls.get(), 1);
    }

    #[test]
    fn empty_map_ends_at_once() {
        let m = Model::new(vec![vec![], vec![]]);
        assert_eq!(walk(&m, Some(4)).unwrap(), vec![]);
        assert_eq!(walk(&m, None).unwrap(), vec![]);
    }

    #[test]
    fn unsupported_batch_falls_back_to_next_key() {
        for errno in [libc::EINVAL, ENOTSUPP, libc::EOPNOTSUPP] {
            let mut m = Model::new(vec![vec![1, 2], vec![3]]);
            m.batch = Err(errno);
            assert_eq!(walk(&m, Some(8)).unwrap(), expect(&[1, 2, 3]));
        }
        let mut m = Model::new(vec![vec![1]]);
        m.batch = Err(libc::EFAULT);
        let e = walk(&m, Some(8)).unwrap_err();
        assert!(e.to_string().contains("EFAULT"), "{e}");
    }

    #[test]
    fn per_key_walk_skips_keys_deleted_before_lookup() {
        let m = Model::new(vec![vec![1, 2], vec![3, 4]]);
        m.delete_after_next.set(Some(2));
        assert_eq!(walk(&m, None).unwrap(), expect(&[1, 3, 4]));
    }

    #[test]
    fn per_key_walk_is_budgeted() {
        // Every GET_NEXT_KEY from a deleted key restarts at the first key: a
        // model that "deletes" the key it just returned, then re-inserts it,
        // never ends.
        struct Churn;
        impl ElemOps for Churn {
            fn lookup(&self, _: &[u8], _: &mut [u8]) -> Result<bool, Errno> {
                Ok(false)
            }
            fn next_key(&self, _: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Errno> {
                next.fill(1);
                Ok(true)
            }
            fn lookup_batch(
                &self,
                _: Option<&[u8]>,
                _: &mut [u8],
                _: &mut [u8],
                _: &mut [u8],
                _: u32,
            ) -> Result<BatchOut, Errno> {
                Err(libc::EINVAL)
            }
        }
        let mut c = Cursor::new(Churn, 3, shape(10), Some(4));
        let mut e = Entry::default();
        let err = c.next_into(&mut e).unwrap_err();
        assert!(err.to_string().contains("84"), "{err}");
        assert!(!c.next_into(&mut e).unwrap());
    }

    #[test]
    fn capped_batch_continues_key_by_key_after_the_last_key() {
        // A bucket larger than BATCH_MAX_BYTES allows: 16 MiB values, so even
        // 4 elements do not fit, and the bucket of 5 cannot be fetched.
        let m = Model::new(vec![vec![1], vec![2, 3, 4, 5, 6], vec![7]]);
        let big = Shape {
            value_buf: 16 << 20,
            ..shape(64)
        };
        struct Small<'a>(&'a Model);
        impl ElemOps for Small<'_> {
            fn lookup(&self, k: &[u8], v: &mut [u8]) -> Result<bool, Errno> {
                (&self.0).lookup(k, v)
            }
            fn next_key(&self, k: Option<&[u8]>, n: &mut [u8]) -> Result<bool, Errno> {
                (&self.0).next_key(k, n)
            }
            fn lookup_batch(
                &self,
                i: Option<&[u8]>,
                o: &mut [u8],
                k: &mut [u8],
                v: &mut [u8],
                c: u32,
            ) -> Result<BatchOut, Errno> {
                // Values are laid out 4 bytes apart by the model; the big
                // buffers only matter for sizing.
                (&self.0).lookup_batch(i, o, k, v, c)
            }
        }
        let mut c = Cursor::new(Small(&m), 1, big, Some(1));
        let mut e = Entry::default();
        let mut keys = Vec::new();
        while c.next_into(&mut e).unwrap() {
            keys.push(key(&e.key));
        }
        assert_eq!(keys, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn batch_count_above_request_is_an_error() {
        struct Liar;
        impl ElemOps for Liar {
            fn lookup(&self, _: &[u8], _: &mut [u8]) -> Result<bool, Errno> {
                Ok(false)
            }
            fn next_key(&self, _: Option<&[u8]>, _: &mut [u8]) -> Result<bool, Errno> {
                Ok(false)
            }
            fn lookup_batch(
                &self,
                _: Option<&[u8]>,
                _: &mut [u8],
                _: &mut [u8],
                _: &mut [u8],
                _: u32,
            ) -> Result<BatchOut, Errno> {
                Ok(BatchOut {
                    count: 0,
                    last: false,
                })
            }
        }
        let mut c = Cursor::new(Liar, 2, shape(4), Some(4));
        assert!(c.next_into(&mut Entry::default()).is_err());
        assert!(!c.next_into(&mut Entry::default()).unwrap());
    }
}
