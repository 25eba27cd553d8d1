//! The XArray (include/linux/xarray.h, lib/xarray.c) and the IDR built on it
//! (include/linux/idr.h, lib/idr.c): [`xa_for_each`], [`xa_load`],
//! [`idr_for_each`] and [`idr_find`] over memory that may be corrupt or changing.
//!
//! The entry encoding and the shape of `struct xa_node` are the same from v4.20
//! (when the radix tree became the XArray) through v6.1 and v6.12; member offsets
//! still come from BTF ([`XaNodeOffsets`]).
//!
//! Unlike the kernel, we trust nothing we read: a node must sit exactly one level
//! ([`XA_CHUNK_SHIFT`] bits) below the node it was reached from, and its `parent`
//! and `offset` must name that node and slot. Whatever the bytes say, a walk
//! therefore only sees a tree of at most [`XA_MAX_DEPTH`] levels in which no node
//! is visited twice, and [`XaLimits`] bounds how big that tree may be.

use core::iter::FusedIterator;

use zerocopy::byteorder::little_endian::U64;
use zerocopy::IntoBytes;

use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::offsets::{Offsets, XaNodeOffsets};
use crate::virt::KernelRead;

/// `XA_CHUNK_SHIFT` with `CONFIG_BASE_SMALL=0` (include/linux/xarray.h): each
/// level of the tree decodes 6 bits of the index.
pub const XA_CHUNK_SHIFT: u8 = 6;
/// `XA_CHUNK_SIZE`: slots per `xa_node`.
pub const XA_CHUNK_SIZE: u8 = 64;
/// `XA_CHUNK_MASK`.
pub const XA_CHUNK_MASK: u8 = 63;
/// Levels a 64-bit index can need, ceil(64 / 6): node shifts run 60, 54, ..., 0.
pub const XA_MAX_DEPTH: usize = 11;
/// `XA_RETRY_ENTRY` = `xa_mk_internal(256)`: written over the slots of nodes being
/// freed, so RCU readers start again.
pub const XA_RETRY_ENTRY: u64 = xa_mk_internal(256);
/// `XA_ZERO_ENTRY` = `xa_mk_internal(257)`: a reserved index, read as NULL.
pub const XA_ZERO_ENTRY: u64 = xa_mk_internal(257);
/// `INT_MAX`: `idr_for_each()` and `idr_get_next()` (lib/idr.c) refuse ids above it.
pub const IDR_MAX_ID: u64 = 0x7fff_ffff;

/// Bytes of `slots[XA_CHUNK_SIZE]`: 64 pointers of 8 bytes.
const SLOTS_BYTES: u32 = 512;

/// `xa_mk_internal()`: internal entries end in binary `10`.
pub const fn xa_mk_internal(v: u64) -> u64 {
    v.wrapping_shl(2) | 2
}

/// `xa_to_internal()`.
pub const fn xa_to_internal(entry: u64) -> u64 {
    entry.wrapping_shr(2)
}

/// `xa_is_internal()`.
pub const fn xa_is_internal(entry: u64) -> bool {
    entry & 3 == 2
}

/// `xa_mk_value()`: value entries have bit 0 set.
pub const fn xa_mk_value(v: u64) -> u64 {
    v.wrapping_shl(1) | 1
}

/// `xa_to_value()`.
pub const fn xa_to_value(entry: u64) -> u64 {
    entry.wrapping_shr(1)
}

/// `xa_is_value()`: a value entry, or a pointer tagged with `xa_tag_pointer()`.
pub const fn xa_is_value(entry: u64) -> bool {
    entry & 1 == 1
}

/// `xa_mk_node()`.
pub const fn xa_mk_node(node: Kva) -> u64 {
    node.get() | 2
}

/// `xa_to_node()`.
pub const fn xa_to_node(entry: u64) -> Kva {
    Kva(entry.wrapping_sub(2))
}

/// `xa_is_node()`: internal entries above 4096 point at an `xa_node`.
pub const fn xa_is_node(entry: u64) -> bool {
    xa_is_internal(entry) && entry > 4096
}

/// `xa_mk_sibling()`.
pub const fn xa_mk_sibling(offset: u8) -> u64 {
    xa_mk_internal(offset as u64)
}

/// `xa_to_sibling()`: the slot holding the multi-index entry. Meaningful only
/// when [`xa_is_sibling`].
pub const fn xa_to_sibling(entry: u64) -> u8 {
    xa_to_internal(entry) as u8
}

/// `xa_is_sibling()` (`CONFIG_XARRAY_MULTI`, which every distribution kernel
/// sets): internal entries 0..=62 say "see the entry in slot n of this node".
pub const fn xa_is_sibling(entry: u64) -> bool {
    xa_is_internal(entry) && entry < xa_mk_sibling(XA_CHUNK_MASK)
}

/// `xa_is_retry()`.
pub const fn xa_is_retry(entry: u64) -> bool {
    entry == XA_RETRY_ENTRY
}

/// `xa_is_zero()`.
pub const fn xa_is_zero(entry: u64) -> bool {
    entry == XA_ZERO_ENTRY
}

/// One slot (or `xa_head`) decoded as the kernel reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XaEntry {
    Null,
    /// A pointer a user stored (bottom bits `00`).
    Pointer(Kva),
    /// `xa_to_value()` of a value entry or tagged pointer.
    Value(u64),
    /// `xa_to_node()` of a node entry.
    Node(Kva),
    /// `xa_to_sibling()`: part of the multi-index entry in that slot.
    Sibling(u8),
    Retry,
    Zero,
    /// Any other internal entry (`xa_to_internal()`): never stored in a tree.
    Internal(u64),
}

/// Decodes a slot the way the `xa_is_*()` helpers of include/linux/xarray.h do.
pub const fn decode_entry(entry: u64) -> XaEntry {
    if entry == 0 {
        XaEntry::Null
    } else if xa_is_value(entry) {
        XaEntry::Value(xa_to_value(entry))
    } else if !xa_is_internal(entry) {
        XaEntry::Pointer(Kva(entry))
    } else if xa_is_node(entry) {
        XaEntry::Node(xa_to_node(entry))
    } else if xa_is_sibling(entry) {
        XaEntry::Sibling(xa_to_sibling(entry))
    } else if xa_is_retry(entry) {
        XaEntry::Retry
    } else if xa_is_zero(entry) {
        XaEntry::Zero
    } else {
        XaEntry::Internal(xa_to_internal(entry))
    }
}

impl XaEntry {
    /// The slot value that decodes to `self` (inverse of [`decode_entry`]).
    pub const fn encode(self) -> u64 {
        match self {
            XaEntry::Null => 0,
            XaEntry::Pointer(p) => p.get(),
            XaEntry::Value(v) => xa_mk_value(v),
            XaEntry::Node(n) => xa_mk_node(n),
            XaEntry::Sibling(s) => xa_mk_sibling(s),
            XaEntry::Retry => XA_RETRY_ENTRY,
            XaEntry::Zero => XA_ZERO_ENTRY,
            XaEntry::Internal(v) => xa_mk_internal(v),
        }
    }
}

/// What a user stored, as `xa_for_each()` and `xa_load()` hand it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Pointer(Kva),
    Value(u64),
}

/// Budget of one walk. Sound trees never hit it; it stops a memory image (or a
/// kernel racing with us) from keeping a walk busy for long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XaLimits {
    /// `xa_node`s read.
    pub max_nodes: u64,
    /// Entries yielded.
    pub max_entries: u64,
}

impl Default for XaLimits {
    fn default() -> Self {
        XaLimits {
            max_nodes: 1 << 20,
            max_entries: 1 << 24,
        }
    }
}

fn field(base: Kva, off: u32, what: &'static str) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed(what, base))
}

/// Our walks index `slots[]` with 6-bit offsets, so anything but 64 slots is
/// another layout (`CONFIG_BASE_SMALL` kernels have 16).
fn check_layout(off: &XaNodeOffsets, xa: Kva) -> Result<()> {
    if off.nr_slots != u32::from(XA_CHUNK_SIZE) {
        return Err(Error::unsupported("xa_node.slots", xa));
    }
    let fits = |at: u32, len: u32| at.checked_add(len).is_some_and(|end| end <= off.size);
    if fits(off.shift, 1)
        && fits(off.offset, 1)
        && fits(off.parent, 8)
        && fits(off.slots, SLOTS_BYTES)
    {
        Ok(())
    } else {
        Err(Error::unsupported("xa_node", xa))
    }
}

fn slot_at(off: &XaNodeOffsets, node: Kva, offset: u8) -> Result<Kva> {
    node.checked_add(u64::from(off.slots))
        .and_then(|slots| slots.checked_add(u64::from(offset).checked_mul(8)?))
        .ok_or(Error::malformed("xa_node", node))
}

fn read_slots<K: KernelRead + ?Sized>(
    k: &K,
    off: &XaNodeOffsets,
    node: Kva,
) -> Result<[u64; XA_CHUNK_SIZE as usize]> {
    let mut slots = [U64::ZERO; XA_CHUNK_SIZE as usize];
    k.read_kva(slot_at(off, node, 0)?, slots.as_mut_bytes())?;
    Ok(slots.map(|s| s.get()))
}

/// How a node was reached: from `xa_head`, or through slot `offset` of the node
/// `parent`, whose shift is `shift`.
#[derive(Clone, Copy)]
enum Via {
    Head,
    Slot { parent: Kva, shift: u8, offset: u8 },
}

/// Reads the header of the `xa_node` at `node`, checks that it sits where `via`
/// says, and returns its shift.
///
/// The kernel keeps `parent` and `offset` exact. lib/xarray.c: `xas_alloc()` sets
/// both for a child, `xas_expand()` both when the old head moves down,
/// `xas_shrink()` clears `parent` of a new root. lib/radix-tree.c (the IDR):
/// `radix_tree_node_alloc()` sets both, `radix_tree_extend()` re-parents the old
/// root (whose offset is 0), `radix_tree_shrink()` clears `parent`. Same in v6.1
/// and v6.12. `xas_alloc()` leaves a root's `offset` stale, so that is unchecked.
fn read_node<K: KernelRead + ?Sized>(
    k: &K,
    off: &XaNodeOffsets,
    node: Kva,
    via: Via,
) -> Result<u8> {
    let shift = k.read_kva_u8(field(node, off.shift, "xa_node")?)?;
    let shift_ok = match via {
        Via::Head => shift < 64 && shift.checked_rem(XA_CHUNK_SHIFT) == Some(0),
        Via::Slot { shift: up, .. } => up.checked_sub(XA_CHUNK_SHIFT) == Some(shift),
    };
    if !shift_ok {
        return Err(Error::malformed("xa_node.shift", node));
    }
    let parent = k.read_kva_u64(field(node, off.parent, "xa_node")?)?;
    let want = match via {
        Via::Head => 0,
        Via::Slot { parent, .. } => parent.get(),
    };
    if parent != want {
        return Err(Error::malformed("xa_node.parent", node));
    }
    if let Via::Slot { offset, .. } = via {
        if k.read_kva_u8(field(node, off.offset, "xa_node")?)? != offset {
            return Err(Error::malformed("xa_node.offset", node));
        }
    }
    Ok(shift)
}

/// A slot `xa_for_each()` stops at.
enum Present {
    Entry(Entry),
    Node(Kva),
}

/// Classifies slot `offset` (0 for `xa_head`), read at `at`. NULL, retry and zero
/// entries are passed over as `xas_find()` and `xa_find()` do (lib/xarray.c),
/// and so are siblings, which only repeat an entry of a lower slot.
fn present(entry: u64, offset: u8, at: Kva) -> Result<Option<Present>> {
    Ok(match decode_entry(entry) {
        XaEntry::Null | XaEntry::Retry | XaEntry::Zero => None,
        XaEntry::Sibling(s) if s < offset => None,
        XaEntry::Pointer(p) => Some(Present::Entry(Entry::Pointer(p))),
        XaEntry::Value(v) => Some(Present::Entry(Entry::Value(v))),
        XaEntry::Node(n) => Some(Present::Node(n)),
        XaEntry::Sibling(_) | XaEntry::Internal(_) => {
            return Err(Error::malformed("xarray entry", at))
        }
    })
}

/// One level of the cursor.
#[derive(Clone, Copy, Debug, Default)]
struct Level {
    node: Kva,
    shift: u8,
    /// Index of slot 0.
    base: u64,
    /// Next slot to look at.
    next: u8,
}

impl Level {
    /// `base + offset << shift`, or `None` past `u64::MAX` (a root of shift 60
    /// has only 16 usable slots).
    fn index(&self, offset: u8) -> Option<u64> {
        let step = 1u64.checked_shl(u32::from(self.shift))?;
        self.base.checked_add(u64::from(offset).checked_mul(step)?)
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// `xa_head` is to be read at this address.
    Start(Kva),
    Walk,
    Failed(Error),
    Done,
}

/// A present slot, with where it was read for errors about it.
struct Slot {
    index: u64,
    entry: Entry,
    at: Kva,
}

/// The walk of [`xa_for_each`]: `(index, entry)` in index order, stopped for good
/// by the first error.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct XaIter<'a, K: ?Sized> {
    k: &'a K,
    node: XaNodeOffsets,
    limits: XaLimits,
    state: State,
    cursor: [Level; XA_MAX_DEPTH],
    depth: usize,
    /// `slots[]` of the deepest node in `cursor`.
    slots: [u64; XA_CHUNK_SIZE as usize],
    nodes: u64,
    entries: u64,
}

/// `xa_for_each(xa, index, entry)` over the `struct xarray` at `xa`: every pointer
/// and value entry, in index order. A head that is not a node is the entry at
/// index 0; a multi-index entry is yielded once, at its first index.
pub fn xa_for_each<'a, K: KernelRead + ?Sized>(
    k: &'a K,
    xa: Kva,
    off: &Offsets,
    limits: XaLimits,
) -> XaIter<'a, K> {
    XaIter::new(k, Ok(xa), off, limits)
}

impl<'a, K: KernelRead + ?Sized> XaIter<'a, K> {
    fn new(k: &'a K, xa: Result<Kva>, off: &Offsets, limits: XaLimits) -> Self {
        let head = xa.and_then(|xa| {
            check_layout(&off.xa_node, xa)?;
            field(xa, off.xarray.xa_head, "xarray")
        });
        XaIter {
            k,
            node: off.xa_node,
            limits,
            state: match head {
                Ok(at) => State::Start(at),
                Err(e) => State::Failed(e),
            },
            cursor: [Level::default(); XA_MAX_DEPTH],
            depth: 0,
            slots: [0; XA_CHUNK_SIZE as usize],
            nodes: 0,
            entries: 0,
        }
    }

    /// The next `(index, entry)`, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u64, Entry)>> {
        Ok(self.next_slot()?.map(|s| (s.index, s.entry)))
    }

    fn next_slot(&mut self) -> Result<Option<Slot>> {
        let r = self.step();
        if !matches!(r, Ok(Some(_))) {
            self.state = State::Done;
        }
        r
    }

    /// `xas_find()`, with our cursor standing in for `node->parent` on the way up.
    fn step(&mut self) -> Result<Option<Slot>> {
        match self.state {
            State::Done => return Ok(None),
            State::Failed(e) => return Err(e),
            State::Walk => {}
            State::Start(at) => {
                self.state = State::Walk;
                match present(self.k.read_kva_u64(at)?, 0, at)? {
                    None => return Ok(None),
                    Some(Present::Entry(entry)) => return self.found(0, entry, at).map(Some),
                    Some(Present::Node(root)) => self.descend(root, Via::Head, 0)?,
                }
            }
        }
        loop {
            let Some(level) = self
                .depth
                .checked_sub(1)
                .and_then(|d| self.cursor.get_mut(d))
            else {
                return Ok(None);
            };
            let offset = level.next;
            if offset >= XA_CHUNK_SIZE {
                self.ascend()?;
                continue;
            }
            level.next = offset.saturating_add(1);
            let level = *level;
            let at = slot_at(&self.node, level.node, offset)?;
            let entry = *self
                .slots
                .get(usize::from(offset))
                .ok_or(Error::malformed("xa_node", level.node))?;
            let Some(p) = present(entry, offset, at)? else {
                continue;
            };
            let index = level
                .index(offset)
                .ok_or(Error::malformed("xarray entry", at))?;
            match p {
                Present::Entry(entry) => return self.found(index, entry, at).map(Some),
                Present::Node(child) => {
                    let via = Via::Slot {
                        parent: level.node,
                        shift: level.shift,
                        offset,
                    };
                    self.descend(child, via, index)?;
                }
            }
        }
    }

    fn found(&mut self, index: u64, entry: Entry, at: Kva) -> Result<Slot> {
        if self.entries >= self.limits.max_entries {
            return Err(Error::limit("xarray entry", at, self.limits.max_entries));
        }
        self.entries = self.entries.saturating_add(1);
        Ok(Slot { index, entry, at })
    }

    fn descend(&mut self, node: Kva, via: Via, base: u64) -> Result<()> {
        if self.nodes >= self.limits.max_nodes {
            return Err(Error::limit("xa_node", node, self.limits.max_nodes));
        }
        self.nodes = self.nodes.saturating_add(1);
        let shift = read_node(self.k, &self.node, node, via)?;
        let slots = read_slots(self.k, &self.node, node)?;
        // Shifts fall by 6 from at most 60, so this never runs out.
        let level = self
            .cursor
            .get_mut(self.depth)
            .ok_or(Error::malformed("xa_node", node))?;
        *level = Level {
            node,
            shift,
            base,
            next: 0,
        };
        self.slots = slots;
        self.depth = self.depth.saturating_add(1);
        Ok(())
    }

    /// Back to the parent, whose slots are read again: memory may have moved on,
    /// but the parent's position and shift, already checked, stay ours.
    fn ascend(&mut self) -> Result<()> {
        self.depth = self.depth.saturating_sub(1);
        let parent = self
            .depth
            .checked_sub(1)
            .and_then(|d| self.cursor.get(d))
            .map(|l| l.node);
        if let Some(parent) = parent {
            self.slots = read_slots(self.k, &self.node, parent)?;
        }
        Ok(())
    }
}

impl<K: KernelRead + ?Sized> Iterator for XaIter<'_, K> {
    type Item = Result<(u64, Entry)>;

    fn next(&mut self) -> Option<Self::Item> {
        XaIter::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for XaIter<'_, K> {}

/// `xa_load()`: the entry at `index` of the `struct xarray` at `xa`, following a
/// sibling to its multi-index entry. NULL, retry and zero entries read as `None`.
pub fn xa_load<K: KernelRead + ?Sized>(
    k: &K,
    xa: Kva,
    index: u64,
    off: &Offsets,
) -> Result<Option<Entry>> {
    Ok(xa_load_slot(k, xa, index, off)?.map(|(entry, _)| entry))
}

/// `xas_load()` (lib/xarray.c), returning where the entry was read.
fn xa_load_slot<K: KernelRead + ?Sized>(
    k: &K,
    xa: Kva,
    index: u64,
    off: &Offsets,
) -> Result<Option<(Entry, Kva)>> {
    let node_off = &off.xa_node;
    check_layout(node_off, xa)?;
    let at = field(xa, off.xarray.xa_head, "xarray")?;
    let (mut node, mut via) = match present(k.read_kva_u64(at)?, 0, at)? {
        None => return Ok(None),
        Some(Present::Entry(entry)) => return Ok((index == 0).then_some((entry, at))),
        Some(Present::Node(root)) => (root, Via::Head),
    };
    // read_node() makes every step go one level down.
    for _ in 0..XA_MAX_DEPTH {
        let shift = read_node(k, node_off, node, via)?;
        let chunk = index
            .checked_shr(u32::from(shift))
            .ok_or(Error::malformed("xa_node.shift", node))?;
        if matches!(via, Via::Head) && chunk > u64::from(XA_CHUNK_MASK) {
            // Beyond the root's reach (xas_start()).
            return Ok(None);
        }
        let mut offset = (chunk & u64::from(XA_CHUNK_MASK)) as u8;
        let mut at = slot_at(node_off, node, offset)?;
        let mut entry = k.read_kva_u64(at)?;
        let mut sibling = false;
        // xas_descend(): a chain of siblings, each pointing lower, ends in <= 63 steps.
        while let XaEntry::Sibling(s) = decode_entry(entry) {
            if s >= offset {
                return Err(Error::malformed("xarray entry", at));
            }
            (offset, sibling) = (s, true);
            at = slot_at(node_off, node, offset)?;
            entry = k.read_kva_u64(at)?;
        }
        match present(entry, offset, at)? {
            None => return Ok(None),
            Some(Present::Entry(entry)) => return Ok(Some((entry, at))),
            // A multi-index entry is never a node; newer xas_descend() retries
            // when it catches one mid-update, we report it.
            Some(Present::Node(_)) if sibling => return Err(Error::malformed("xarray entry", at)),
            Some(Present::Node(child)) => {
                via = Via::Slot {
                    parent: node,
                    shift,
                    offset,
                };
                node = child;
            }
        }
    }
    Err(Error::malformed("xa_node", node))
}

/// The walk of [`idr_for_each`]: `(id, pointer)` in id order, stopped for good by
/// the first error.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct IdrIter<'a, K: ?Sized> {
    xa: XaIter<'a, K>,
    /// Where `idr_base` is, or why it cannot be read.
    idr_base: Result<Kva>,
    base: Option<u64>,
}

/// `idr_for_each()` over the `struct idr` at `idr` (lib/idr.c): every stored
/// pointer with its id, `index + idr_base`. As in the kernel, an id above
/// `INT_MAX` ends the walk (here as [`Error::Malformed`]); an IDR never holds
/// value entries, so one is malformed too.
pub fn idr_for_each<'a, K: KernelRead + ?Sized>(
    k: &'a K,
    idr: Kva,
    off: &Offsets,
    limits: XaLimits,
) -> IdrIter<'a, K> {
    IdrIter {
        xa: XaIter::new(k, field(idr, off.idr.idr_rt, "idr"), off, limits),
        idr_base: field(idr, off.idr.idr_base, "idr"),
        base: None,
    }
}

impl<K: KernelRead + ?Sized> IdrIter<'_, K> {
    /// The next `(id, pointer)`, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u32, Kva)>> {
        let r = self.step();
        if r.is_err() {
            self.xa.state = State::Done;
        }
        r
    }

    fn step(&mut self) -> Result<Option<(u32, Kva)>> {
        if matches!(self.xa.state, State::Done) {
            return Ok(None);
        }
        let base = match self.base {
            Some(base) => base,
            None => {
                let base = u64::from(self.xa.k.read_kva_u32(self.idr_base?)?);
                *self.base.insert(base)
            }
        };
        let Some(slot) = self.xa.next_slot()? else {
            return Ok(None);
        };
        Ok(Some((
            idr_id(slot.index, base, slot.at)?,
            idr_ptr(slot.entry, slot.at)?,
        )))
    }
}

impl<K: KernelRead + ?Sized> Iterator for IdrIter<'_, K> {
    type Item = Result<(u32, Kva)>;

    fn next(&mut self) -> Option<Self::Item> {
        IdrIter::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for IdrIter<'_, K> {}

/// `iter.index + idr_base`, refused above `INT_MAX` like `WARN_ON_ONCE(id > INT_MAX)`
/// in `idr_for_each()`.
fn idr_id(index: u64, base: u64, at: Kva) -> Result<u32> {
    index
        .checked_add(base)
        .filter(|&id| id <= IDR_MAX_ID)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or(Error::malformed("idr id", at))
}

fn idr_ptr(entry: Entry, at: Kva) -> Result<Kva> {
    match entry {
        Entry::Pointer(p) => Ok(p),
        Entry::Value(_) => Err(Error::malformed("idr entry", at)),
    }
}

/// `idr_find()` (lib/idr.c): the pointer stored under `id` in the `struct idr`
/// at `idr`, `None` if there is none (or `id` is below `idr_base`).
pub fn idr_find<K: KernelRead + ?Sized>(
    k: &K,
    idr: Kva,
    id: u64,
    off: &Offsets,
) -> Result<Option<Kva>> {
    let base = u64::from(k.read_kva_u32(field(idr, off.idr.idr_base, "idr")?)?);
    let Some(index) = id.checked_sub(base) else {
        return Ok(None);
    };
    let xa = field(idr, off.idr.idr_rt, "idr")?;
    match xa_load_slot(k, xa, index, off)? {
        None => Ok(None),
        Some((entry, at)) => idr_ptr(entry, at).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use std::collections::BTreeMap;
    use std::string::ToString;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::offsets::{IdrOffsets, XarrayOffsets};
    use crate::virt::FlatKernel;

    /// x86-64 v6.x layouts, as BTF reports them.
    fn offsets() -> Offsets {
        Offsets {
            xarray: XarrayOffsets { xa_head: 8 },
            xa_node: XaNodeOffsets {
                shift: 0,
                offset: 1,
                count: 2,
                parent: 8,
                slots: 40,
                nr_slots: 64,
                size: 576,
            },
            idr: IdrOffsets {
                idr_rt: 0,
                idr_base: 16,
            },
            ..Offsets::default()
        }
    }

    const BASE: Kva = Kva(0xffff_8880_0100_0000);

    fn ptr(n: u64) -> Kva {
        Kva(0xffff_8880_2000_0000 + 64 * n)
    }

    fn raw(e: Entry) -> u64 {
        match e {
            Entry::Pointer(p) => p.get(),
            Entry::Value(v) => xa_mk_value(v),
        }
    }

    /// A memory image with `struct xarray`, `struct idr` and `struct xa_node`
    /// laid out like the kernel's, stored into the way `xa_store()` would.
    struct Image {
        bytes: Vec<u8>,
        off: Offsets,
        nodes: Vec<Kva>,
    }

    impl Image {
        fn new() -> Self {
            Image {
                bytes: Vec::new(),
                off: offsets(),
                nodes: Vec::new(),
            }
        }

        fn alloc(&mut self, size: usize) -> Kva {
            let at = self.bytes.len().next_multiple_of(64);
            self.bytes.resize(at + size, 0);
            BASE.checked_add(at as u64).unwrap()
        }

        fn pos(&self, at: Kva) -> usize {
            at.offset_from(BASE).unwrap() as usize
        }

        fn put_u8(&mut self, at: Kva, v: u8) {
            let p = self.pos(at);
            self.bytes[p] = v;
        }

        fn put_u64(&mut self, at: Kva, v: u64) {
            let p = self.pos(at);
            self.bytes[p..p + 8].copy_from_slice(&v.to_le_bytes());
        }

        fn get_u64(&self, at: Kva) -> u64 {
            let p = self.pos(at);
            u64::from_le_bytes(self.bytes[p..p + 8].try_into().unwrap())
        }

        fn xarray(&mut self) -> Kva {
            self.alloc(16)
        }

        fn idr(&mut self, idr_base: u32) -> Kva {
            let idr = self.alloc(24);
            let p = self.pos(idr) + 16;
            self.bytes[p..p + 4].copy_from_slice(&idr_base.to_le_bytes());
            idr
        }

        fn head_at(&self, xa: Kva) -> Kva {
            xa.checked_add(u64::from(self.off.xarray.xa_head)).unwrap()
        }

        fn head(&self, xa: Kva) -> u64 {
            self.get_u64(self.head_at(xa))
        }

        fn set_head(&mut self, xa: Kva, entry: u64) {
            self.put_u64(self.head_at(xa), entry);
        }

        /// `xas_alloc()`: a node at `shift` in slot `offset` of `parent`
        /// (the slot itself is left alone).
        fn xa_node(&mut self, shift: u8, parent: Option<(Kva, u8)>) -> Kva {
            let node = self.alloc(576);
            self.put_u8(node, shift);
            if let Some((parent, offset)) = parent {
                self.put_u8(node.checked_add(1).unwrap(), offset);
                self.put_u64(node.checked_add(8).unwrap(), parent.get());
            }
            self.nodes.push(node);
            node
        }

        fn slot(&self, node: Kva, offset: u8) -> Kva {
            slot_at(&self.off.xa_node, node, offset).unwrap()
        }

        fn set_slot(&mut self, node: Kva, offset: u8, entry: u64) {
            self.put_u64(self.slot(node, offset), entry);
        }

        fn shift_of(&self, node: Kva) -> u8 {
            self.bytes[self.pos(node)]
        }

        /// `xa_store()` of a non-NULL `entry`: grow the root like `xas_expand()`,
        /// then create the path like `xas_create()`.
        fn xa_store(&mut self, xa: Kva, index: u64, entry: u64) {
            let mut need = 0u8;
            while need < 60 && index >> need > 63 {
                need += 6;
            }
            let head = self.head(xa);
            if head == 0 && index == 0 {
                return self.set_head(xa, entry);
            }
            if head == 0 {
                let root = self.xa_node(need, None);
                self.set_head(xa, xa_mk_node(root));
            } else if !xa_is_node(head) {
                let root = self.xa_node(0, None);
                self.set_slot(root, 0, head);
                self.set_head(xa, xa_mk_node(root));
            }
            loop {
                let root = xa_to_node(self.head(xa));
                let shift = self.shift_of(root);
                if shift >= need {
                    break;
                }
                let up = self.xa_node(shift + 6, None);
                self.set_slot(up, 0, xa_mk_node(root));
                self.put_u8(root.checked_add(1).unwrap(), 0);
                self.put_u64(root.checked_add(8).unwrap(), up.get());
                self.set_head(xa, xa_mk_node(up));
            }
            let mut node = xa_to_node(self.head(xa));
            loop {
                let shift = self.shift_of(node);
                let offset = ((index >> shift) & 63) as u8;
                if shift == 0 {
                    return self.set_slot(node, offset, entry);
                }
                let child = self.get_u64(self.slot(node, offset));
                node = if child == 0 {
                    let child = self.xa_node(shift - 6, Some((node, offset)));
                    self.set_slot(node, offset, xa_mk_node(child));
                    child
                } else {
                    xa_to_node(child)
                };
            }
        }

        fn kernel(&self) -> FlatKernel<&[u8]> {
            FlatKernel {
                base: BASE,
                bytes: &self.bytes[..],
            }
        }

        fn walk_with(&self, xa: Kva, limits: XaLimits) -> Result<Vec<(u64, Entry)>> {
            xa_for_each(&self.kernel(), xa, &self.off, limits).collect()
        }

        fn walk(&self, xa: Kva) -> Result<Vec<(u64, Entry)>> {
            self.walk_with(xa, XaLimits::default())
        }

        fn load(&self, xa: Kva, index: u64) -> Result<Option<Entry>> {
            xa_load(&self.kernel(), xa, index, &self.off)
        }
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

    fn malformed(what: &'static str, at: Kva) -> Error {
        Error::malformed(what, at)
    }

    #[test]
    fn entry_encodings_match_the_kernel() {
        assert_eq!(XA_RETRY_ENTRY, 0x402);
        assert_eq!(XA_ZERO_ENTRY, 0x406);
        assert_eq!(decode_entry(0), XaEntry::Null);
        assert_eq!(decode_entry(0x1000), XaEntry::Pointer(Kva(0x1000)));
        assert_eq!(decode_entry(xa_mk_value(7)), XaEntry::Value(7));
        // A pointer tagged 3 (xa_tag_pointer) reads as a value, as in the kernel.
        assert_eq!(decode_entry(0x1003), XaEntry::Value(0x801));
        assert_eq!(
            decode_entry(xa_mk_node(Kva(0xffff_8880_0000_1000))),
            XaEntry::Node(Kva(0xffff_8880_0000_1000))
        );
        // 4096 is the boundary: 0x1002 is a node, 0xffe is not.
        assert_eq!(decode_entry(0x1002), XaEntry::Node(Kva(0x1000)));
        assert_eq!(decode_entry(0xffe), XaEntry::Internal(1023));
        assert_eq!(decode_entry(xa_mk_sibling(0)), XaEntry::Sibling(0));
        assert_eq!(decode_entry(xa_mk_sibling(62)), XaEntry::Sibling(62));
        assert_eq!(decode_entry(xa_mk_sibling(63)), XaEntry::Internal(63));
        assert_eq!(decode_entry(XA_RETRY_ENTRY), XaEntry::Retry);
        assert_eq!(decode_entry(XA_ZERO_ENTRY), XaEntry::Zero);
        assert_eq!(decode_entry(xa_mk_internal(300)), XaEntry::Internal(300));
    }

    #[test]
    fn empty_xarray() {
        let mut img = Image::new();
        let xa = img.xarray();
        assert_eq!(img.walk(xa), Ok(Vec::new()));
        assert_eq!(img.load(xa, 0), Ok(None));
    }

    #[test]
    fn single_entry_in_head_is_index_0() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 0, ptr(1).get());
        assert_eq!(img.head(xa), ptr(1).get());
        assert_eq!(img.walk(xa), Ok(std::vec![(0, Entry::Pointer(ptr(1)))]));
        assert_eq!(img.load(xa, 0), Ok(Some(Entry::Pointer(ptr(1)))));
        assert_eq!(img.load(xa, 1), Ok(None));

        img.set_head(xa, xa_mk_value(42));
        assert_eq!(img.walk(xa), Ok(std::vec![(0, Entry::Value(42))]));
    }

    #[test]
    fn retry_zero_and_sibling_in_head() {
        let mut img = Image::new();
        let xa = img.xarray();
        for head in [XA_RETRY_ENTRY, XA_ZERO_ENTRY] {
            img.set_head(xa, head);
            assert_eq!(img.walk(xa), Ok(Vec::new()));
            assert_eq!(img.load(xa, 0), Ok(None));
        }
        let at = img.head_at(xa);
        for head in [xa_mk_sibling(0), xa_mk_internal(100)] {
            img.set_head(xa, head);
            assert_eq!(img.walk(xa), Err(malformed("xarray entry", at)));
            assert_eq!(img.load(xa, 0), Err(malformed("xarray entry", at)));
        }
    }

    #[test]
    fn single_level_node() {
        let mut img = Image::new();
        let xa = img.xarray();
        for i in [5, 0, 63] {
            img.xa_store(xa, i, ptr(i).get());
        }
        let root = xa_to_node(img.head(xa));
        assert_eq!(img.shift_of(root), 0);
        assert_eq!(
            img.walk(xa),
            Ok(std::vec![
                (0, Entry::Pointer(ptr(0))),
                (5, Entry::Pointer(ptr(5))),
                (63, Entry::Pointer(ptr(63))),
            ])
        );
        assert_eq!(img.load(xa, 5), Ok(Some(Entry::Pointer(ptr(5)))));
        assert_eq!(img.load(xa, 6), Ok(None));
        assert_eq!(img.load(xa, 64), Ok(None));
        // xas_alloc() does not set a root's offset: a stale one is fine.
        img.put_u8(root.checked_add(1).unwrap(), 17);
        assert_eq!(img.walk(xa).map(|v| v.len()), Ok(3));
    }

    #[test]
    fn multi_level_sparse() {
        let mut img = Image::new();
        let xa = img.xarray();
        let indexes = [262_143, 1, 70_000, 100, 4095, 4096];
        for i in indexes {
            img.xa_store(xa, i, ptr(i).get());
        }
        assert_eq!(img.shift_of(xa_to_node(img.head(xa))), 12);
        let mut want: Vec<_> = indexes
            .iter()
            .map(|&i| (i, Entry::Pointer(ptr(i))))
            .collect();
        want.sort_by_key(|&(i, _)| i);
        assert_eq!(img.walk(xa), Ok(want));
        assert_eq!(img.load(xa, 70_000), Ok(Some(Entry::Pointer(ptr(70_000)))));
        assert_eq!(img.load(xa, 70_001), Ok(None));
        assert_eq!(img.load(xa, 262_144), Ok(None));
    }

    #[test]
    fn huge_indexes_under_a_shift_60_root() {
        let mut img = Image::new();
        let xa = img.xarray();
        let indexes = [u64::MAX, 0, 1 << 63, u64::MAX - 1];
        for i in indexes {
            img.xa_store(xa, i, xa_mk_value(i >> 1));
        }
        assert_eq!(img.shift_of(xa_to_node(img.head(xa))), 60);
        assert_eq!(
            img.walk(xa),
            Ok(std::vec![
                (0, Entry::Value(0)),
                (1 << 63, Entry::Value(1 << 62)),
                (u64::MAX - 1, Entry::Value((u64::MAX - 1) >> 1)),
                (u64::MAX, Entry::Value(u64::MAX >> 1)),
            ])
        );
        assert_eq!(
            img.load(xa, u64::MAX),
            Ok(Some(Entry::Value(u64::MAX >> 1)))
        );
    }

    #[test]
    fn root_slot_past_u64_max() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, u64::MAX, ptr(1).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 16, ptr(2).get());
        let got: Vec<_> = xa_for_each(&img.kernel(), xa, &img.off, XaLimits::default()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok((u64::MAX, Entry::Pointer(ptr(1)))));
        assert_eq!(got[1], Err(malformed("xarray entry", img.slot(root, 16))));
    }

    #[test]
    fn multi_index_entries_yield_once() {
        let mut img = Image::new();
        let xa = img.xarray();
        let root = img.xa_node(6, None);
        img.set_head(xa, xa_mk_node(root));
        // An order-7 entry over 64..=191: slot 1 and a sibling in slot 2.
        img.set_slot(root, 1, ptr(1).get());
        img.set_slot(root, 2, xa_mk_sibling(1));
        // An order-2 entry over 4..=7 in a leaf.
        let leaf = img.xa_node(0, Some((root, 0)));
        img.set_slot(root, 0, xa_mk_node(leaf));
        img.set_slot(leaf, 4, xa_mk_value(9));
        for s in 5..8 {
            img.set_slot(leaf, s, xa_mk_sibling(4));
        }
        assert_eq!(
            img.walk(xa),
            Ok(std::vec![
                (4, Entry::Value(9)),
                (64, Entry::Pointer(ptr(1)))
            ])
        );
        assert_eq!(img.load(xa, 6), Ok(Some(Entry::Value(9))));
        assert_eq!(img.load(xa, 150), Ok(Some(Entry::Pointer(ptr(1)))));
        assert_eq!(img.load(xa, 192), Ok(None));
    }

    #[test]
    fn sibling_pointing_at_or_after_its_own_slot() {
        for target in [3, 4] {
            let mut img = Image::new();
            let xa = img.xarray();
            let root = img.xa_node(0, None);
            img.set_head(xa, xa_mk_node(root));
            img.set_slot(root, 3, xa_mk_sibling(target));
            let at = img.slot(root, 3);
            assert_eq!(img.walk(xa), Err(malformed("xarray entry", at)));
            assert_eq!(img.load(xa, 3), Err(malformed("xarray entry", at)));
        }
    }

    #[test]
    fn sibling_of_a_node_is_malformed_for_load() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 64, ptr(1).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 2, xa_mk_sibling(1));
        assert_eq!(img.walk(xa), Ok(std::vec![(64, Entry::Pointer(ptr(1)))]));
        assert_eq!(
            img.load(xa, 128),
            Err(malformed("xarray entry", img.slot(root, 1)))
        );
    }

    #[test]
    fn retry_and_zero_entries_skipped() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 1, ptr(1).get());
        img.xa_store(xa, 4, ptr(4).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 2, XA_RETRY_ENTRY);
        img.set_slot(root, 3, XA_ZERO_ENTRY);
        assert_eq!(
            img.walk(xa),
            Ok(std::vec![
                (1, Entry::Pointer(ptr(1))),
                (4, Entry::Pointer(ptr(4)))
            ])
        );
        assert_eq!(img.load(xa, 2), Ok(None));
        assert_eq!(img.load(xa, 3), Ok(None));
    }

    #[test]
    fn unknown_internal_entry() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 1, ptr(1).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 7, xa_mk_internal(258));
        let at = img.slot(root, 7);
        assert_eq!(img.walk(xa), Err(malformed("xarray entry", at)));
        assert_eq!(img.load(xa, 7), Err(malformed("xarray entry", at)));
    }

    #[test]
    fn self_referencing_node() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 70, ptr(70).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 5, xa_mk_node(root));
        let e = img.walk(xa).unwrap_err();
        assert_eq!(e, malformed("xa_node.shift", root));
        assert_eq!(
            e.to_string(),
            "malformed xa_node.shift at kva 0xffff888001000040"
        );
        assert_eq!(img.load(xa, 5 << 6), Err(malformed("xa_node.shift", root)));

        // A leaf pointing at itself would have to sit at shift -6.
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 3, ptr(3).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 9, xa_mk_node(root));
        assert_eq!(img.walk(xa), Err(malformed("xa_node.shift", root)));
    }

    #[test]
    fn slot_pointing_to_its_parent() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 5000, ptr(1).get());
        let root = xa_to_node(img.head(xa));
        let mid = xa_to_node(img.get_u64(img.slot(root, 1)));
        img.set_slot(mid, 30, xa_mk_node(root));
        assert_eq!(img.walk(xa), Err(malformed("xa_node.shift", root)));
    }

    #[test]
    fn two_slots_pointing_to_the_same_child() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 64 + 3, ptr(3).get());
        let root = xa_to_node(img.head(xa));
        let child = img.get_u64(img.slot(root, 1));
        img.set_slot(root, 2, child);
        let got: Vec<_> = xa_for_each(&img.kernel(), xa, &img.off, XaLimits::default()).collect();
        assert_eq!(
            got,
            std::vec![
                Ok((67, Entry::Pointer(ptr(3)))),
                Err(malformed("xa_node.offset", xa_to_node(child))),
            ]
        );
        assert_eq!(
            img.load(xa, 128 + 3),
            Err(malformed("xa_node.offset", xa_to_node(child)))
        );
    }

    #[test]
    fn wrong_shift() {
        for shift in [7, 66, 255] {
            let mut img = Image::new();
            let xa = img.xarray();
            let root = img.xa_node(shift, None);
            img.set_head(xa, xa_mk_node(root));
            assert_eq!(img.walk(xa), Err(malformed("xa_node.shift", root)));
            assert_eq!(img.load(xa, 0), Err(malformed("xa_node.shift", root)));
        }
        // A child two levels down instead of one.
        let mut img = Image::new();
        let xa = img.xarray();
        let root = img.xa_node(12, None);
        img.set_head(xa, xa_mk_node(root));
        let child = img.xa_node(0, Some((root, 0)));
        img.set_slot(root, 0, xa_mk_node(child));
        assert_eq!(img.walk(xa), Err(malformed("xa_node.shift", child)));
    }

    #[test]
    fn wrong_offset_or_parent() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 64 * 5, ptr(5).get());
        let root = xa_to_node(img.head(xa));
        let child = xa_to_node(img.get_u64(img.slot(root, 5)));
        img.put_u8(child.checked_add(1).unwrap(), 4);
        assert_eq!(img.walk(xa), Err(malformed("xa_node.offset", child)));
        img.put_u8(child.checked_add(1).unwrap(), 5);
        img.put_u64(child.checked_add(8).unwrap(), 0);
        assert_eq!(img.walk(xa), Err(malformed("xa_node.parent", child)));
        assert_eq!(
            img.load(xa, 64 * 5),
            Err(malformed("xa_node.parent", child))
        );
        // A root must not claim a parent.
        img.put_u64(child.checked_add(8).unwrap(), root.get());
        img.put_u64(root.checked_add(8).unwrap(), child.get());
        assert_eq!(img.walk(xa), Err(malformed("xa_node.parent", root)));
    }

    #[test]
    fn node_pointer_outside_memory() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 1, ptr(1).get());
        let root = xa_to_node(img.head(xa));
        let far = Kva(0xffff_c900_dead_0000);
        img.set_slot(root, 2, xa_mk_node(far));
        let e = Error::NotMapped { kva: far, level: 0 };
        let got: Vec<_> = xa_for_each(&img.kernel(), xa, &img.off, XaLimits::default()).collect();
        assert_eq!(got, std::vec![Ok((1, Entry::Pointer(ptr(1)))), Err(e)]);
        assert_eq!(img.load(xa, 2 << 6), Ok(None));
        // The head itself outside memory.
        let away = Kva(0x1000);
        assert_eq!(
            xa_for_each(&img.kernel(), away, &img.off, XaLimits::default()).next(),
            Err(Error::NotMapped {
                kva: Kva(0x1008),
                level: 0
            })
        );
    }

    #[test]
    fn budget_exceeded() {
        let mut img = Image::new();
        let xa = img.xarray();
        for i in [1, 100, 5000] {
            img.xa_store(xa, i, ptr(i).get());
        }
        // Index 1 started a leaf root; 100 and 5000 grew it twice.
        assert_eq!(img.nodes.len(), 6);
        let nodes = |max_nodes| XaLimits {
            max_nodes,
            ..XaLimits::default()
        };
        assert_eq!(img.walk_with(xa, nodes(6)).map(|v| v.len()), Ok(3));
        let mid = xa_to_node(img.get_u64(img.slot(xa_to_node(img.head(xa)), 1)));
        let leaf = xa_to_node(img.get_u64(img.slot(mid, 14)));
        assert_eq!(
            img.walk_with(xa, nodes(5)),
            Err(Error::limit("xa_node", leaf, 5))
        );
        let entries = XaLimits {
            max_entries: 2,
            ..XaLimits::default()
        };
        let got: Vec<_> = xa_for_each(&img.kernel(), xa, &img.off, entries).collect();
        assert_eq!(got.len(), 3);
        assert!(got[..2].iter().all(Result::is_ok));
        assert!(matches!(
            got[2],
            Err(Error::Limit {
                what: "xarray entry",
                limit: 2,
                ..
            })
        ));
    }

    #[test]
    fn fused_after_error() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.xa_store(xa, 1, ptr(1).get());
        let root = xa_to_node(img.head(xa));
        img.set_slot(root, 2, xa_mk_internal(300));
        img.set_slot(root, 3, ptr(3).get());
        let k = img.kernel();
        let mut it = xa_for_each(&k, xa, &img.off, XaLimits::default());
        assert_eq!(it.next(), Ok(Some((1, Entry::Pointer(ptr(1))))));
        assert!(it.next().is_err());
        assert_eq!(it.next(), Ok(None));
        assert_eq!(Iterator::next(&mut it), None);
    }

    #[test]
    fn unsupported_node_layout() {
        let mut img = Image::new();
        let xa = img.xarray();
        img.off.xa_node.nr_slots = 16;
        assert_eq!(img.walk(xa), Err(Error::unsupported("xa_node.slots", xa)));
        img.off.xa_node.nr_slots = 64;
        img.off.xa_node.size = 64;
        assert_eq!(img.walk(xa), Err(Error::unsupported("xa_node", xa)));
        assert_eq!(img.load(xa, 0), Err(Error::unsupported("xa_node", xa)));
    }

    #[test]
    fn idr_with_a_base() {
        let mut img = Image::new();
        let idr = img.idr(100);
        for i in [0, 1, 65] {
            img.xa_store(idr, i, ptr(i).get());
        }
        let k = img.kernel();
        let got: Result<Vec<_>> = idr_for_each(&k, idr, &img.off, XaLimits::default()).collect();
        assert_eq!(
            got,
            Ok(std::vec![(100, ptr(0)), (101, ptr(1)), (165, ptr(65))])
        );
        assert_eq!(idr_find(&k, idr, 165, &img.off), Ok(Some(ptr(65))));
        assert_eq!(idr_find(&k, idr, 102, &img.off), Ok(None));
        assert_eq!(idr_find(&k, idr, 1, &img.off), Ok(None));
    }

    #[test]
    fn idr_id_above_int_max() {
        let mut img = Image::new();
        let idr = img.idr(0x7fff_fff0);
        img.xa_store(idr, 0x0f, ptr(1).get());
        img.xa_store(idr, 0x10, ptr(2).get());
        let root = xa_to_node(img.head(idr));
        let k = img.kernel();
        let got: Vec<_> = idr_for_each(&k, idr, &img.off, XaLimits::default()).collect();
        assert_eq!(
            got,
            std::vec![
                Ok((0x7fff_ffff, ptr(1))),
                Err(malformed("idr id", img.slot(root, 0x10))),
            ]
        );
    }

    #[test]
    fn idr_value_entry() {
        let mut img = Image::new();
        let idr = img.idr(0);
        img.xa_store(idr, 3, xa_mk_value(3));
        let root = xa_to_node(img.head(idr));
        let k = img.kernel();
        let mut it = idr_for_each(&k, idr, &img.off, XaLimits::default());
        assert_eq!(it.next(), Err(malformed("idr entry", img.slot(root, 3))));
        assert_eq!(it.next(), Ok(None));
        assert_eq!(
            idr_find(&k, idr, 3, &img.off),
            Err(malformed("idr entry", img.slot(root, 3)))
        );
    }

    #[test]
    fn idr_outside_memory() {
        let img = Image::new();
        let k = img.kernel();
        let mut it = idr_for_each(&k, Kva(u64::MAX - 4), &img.off, XaLimits::default());
        assert_eq!(it.next(), Err(malformed("idr", Kva(u64::MAX - 4))));
        assert_eq!(it.next(), Ok(None));
        assert_eq!(
            idr_find(&k, Kva(u64::MAX - 4), 0, &img.off),
            Err(malformed("idr", Kva(u64::MAX - 4)))
        );
    }

    fn index() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..64,
            0u64..5000,
            0u64..(1 << 24),
            any::<u64>(),
            (u64::MAX - 200)..=u64::MAX,
        ]
    }

    fn entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            (1u64..(1 << 62)).prop_map(|p| Entry::Pointer(Kva(p << 2))),
            (0u64..(1 << 63)).prop_map(Entry::Value),
        ]
    }

    /// Values a corrupted slot or `parent` most likely holds.
    fn hostile_word(img: &Image, pick: prop::sample::Index, n: u64) -> u64 {
        let node = *pick.get(&img.nodes);
        match n % 8 {
            0 => xa_mk_node(node),
            1 => node.get(),
            2 => xa_mk_sibling((n >> 8) as u8 & 63),
            3 => XA_RETRY_ENTRY,
            4 => XA_ZERO_ENTRY,
            5 => xa_mk_internal(n >> 8),
            6 => 0,
            _ => n,
        }
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(entry in any::<u64>()) {
            let d = decode_entry(entry);
            prop_assert_eq!(d.encode(), entry);
            let kinds = [
                entry == 0,
                entry != 0 && entry & 3 == 0,
                xa_is_value(entry),
                xa_is_node(entry),
                xa_is_sibling(entry),
                xa_is_retry(entry),
                xa_is_zero(entry),
            ];
            prop_assert!(kinds.iter().filter(|&&k| k).count() <= 1);
            prop_assert_eq!(
                matches!(d, XaEntry::Internal(_)),
                kinds.iter().all(|&k| !k)
            );
        }

        /// Random sparse index sets, stored like the kernel does, come back
        /// exactly, and `xa_load` agrees with the model everywhere.
        #[test]
        fn built_trees_iterate_back(
            model in proptest::collection::btree_map(index(), entry(), 0..80),
            probes in proptest::collection::vec(index(), 8),
        ) {
            let mut img = Image::new();
            let xa = img.xarray();
            for (&i, &e) in &model {
                img.xa_store(xa, i, raw(e));
            }
            let want: Vec<_> = model.iter().map(|(&i, &e)| (i, e)).collect();
            prop_assert_eq!(img.walk(xa), Ok(want));
            for i in probes.iter().chain(model.keys()) {
                prop_assert_eq!(img.load(xa, *i), Ok(model.get(i).copied()));
            }
            let idr = img.idr(0);
            let ptrs: BTreeMap<u64, Kva> = model
                .range(..=IDR_MAX_ID)
                .filter_map(|(&i, &e)| match e {
                    Entry::Pointer(p) => Some((i, p)),
                    Entry::Value(_) => None,
                })
                .collect();
            for (&i, &p) in &ptrs {
                img.xa_store(idr, i, p.get());
            }
            let k = img.kernel();
            let got: Result<Vec<_>> = idr_for_each(&k, idr, &img.off, XaLimits::default()).collect();
            let want: Vec<_> = ptrs.iter().map(|(&i, &p)| (i as u32, p)).collect();
            prop_assert_eq!(got, Ok(want));
        }

        /// Whatever is written over nodes, walks and loads neither panic nor
        /// outrun their budget, and the walk stays fused after an error.
        #[test]
        fn corrupt_nodes_stay_bounded(
            model in proptest::collection::btree_map(index(), entry(), 1..40),
            hits in proptest::collection::vec(
                (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u64>(), 0u8..4),
                1..10,
            ),
            max_nodes in 1u64..48,
            max_entries in 0u64..48,
            probes in proptest::collection::vec(index(), 4),
        ) {
            let mut img = Image::new();
            let xa = img.xarray();
            for (&i, &e) in &model {
                img.xa_store(xa, i, raw(e));
            }
            if img.nodes.is_empty() {
                img.xa_store(xa, 1, ptr(1).get());
            }
            for (at, pick, n, kind) in hits {
                let node = *at.get(&img.nodes);
                let word = hostile_word(&img, pick, n);
                match kind {
                    0 => img.put_u8(node.checked_add(n % 576).unwrap(), (n >> 32) as u8),
                    1 => img.set_slot(node, (n >> 16) as u8 & 63, word),
                    2 => img.put_u64(node.checked_add(8).unwrap(), word),
                    _ => img.put_u8(node, (n % 72) as u8),
                }
            }
            let k = Counting { inner: img.kernel(), reads: Cell::new(0) };
            let limits = XaLimits { max_nodes, max_entries };
            let mut it = xa_for_each(&k, xa, &img.off, limits);
            let mut calls = 0u64;
            let mut last = 0u64;
            loop {
                calls += 1;
                prop_assert!(calls <= max_entries + 1);
                match it.next() {
                    Ok(Some((i, _))) => {
                        prop_assert!(calls == 1 || i > last);
                        last = i;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        prop_assert_eq!(it.next(), Ok(None));
                        break;
                    }
                }
            }
            // Per node: shift, parent, offset, slots, and slots again on the way up.
            prop_assert!(k.reads.get() <= 5 * max_nodes + 1);
            for i in probes {
                k.reads.set(0);
                let _ = xa_load(&k, xa, i, &img.off);
                prop_assert!(k.reads.get() <= 4 * XA_MAX_DEPTH as u64 + 64 + 1);
            }
        }
    }
}
