//! BPF programs: `struct bpf_prog` and `struct bpf_prog_aux` (include/linux/bpf.h)
//! read into a plain [`ProgInfo`], every program in `prog_idr` with
//! [`bpf_prog_for_each`], and [`IdrObjects`], the walk every BPF object IDR
//! shares (`btf_idr`: [`crate::btf::bpf_btf_for_each`]).
//!
//! [`ProgInfo`] holds what `bpf_prog_get_info_by_fd()` (kernel/bpf/syscall.c,
//! v6.1 and v6.12) reports for the fields it has, computed the same way:
//! - `type`, `id`, `tag`, `name`, `load_time`: `prog->type`, `aux->id`,
//!   `prog->tag`, `aux->name`, `aux->load_time` as stored (`load_time` is
//!   `ktime_get_boottime_ns()` taken in `bpf_prog_load()`, so it is exact);
//! - `xlated_prog_len`: `bpf_prog_insn_size(prog)`, `prog->len * sizeof(struct bpf_insn)`;
//! - `jited_prog_len`: `prog->jited_len`, or with subprograms (`aux->func_cnt`
//!   non-zero) the sum of `aux->func[i]->jited_len` over `func_cnt`, in `u32`;
//! - `map_ids`: `aux->used_maps[i]->id` for `i < aux->used_map_cnt`;
//! - `btf_id`: `btf_obj_id(aux->btf)`, 0 without BTF.
//!
//! The syscall reports zero lengths to callers without `CAP_BPF`, and the
//! device's view of offloaded programs; this reads the kernel's own numbers,
//! which are what `root` sees for programs that are not offloaded.
//!
//! Nothing is trusted: `aux->prog` must point back at the program, counts are
//! capped before anything is read on their word ([`MAX_USED_MAPS`],
//! [`BPF_MAX_SUBPROGS`]), and a walk checks that each object carries the id of
//! the IDR slot it was found in.

use core::fmt;
use core::iter::FusedIterator;

use zerocopy::byteorder::little_endian::U64;
use zerocopy::IntoBytes;

use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::offsets::Offsets;
use crate::uapi::{BPF_OBJ_NAME_LEN, BPF_TAG_SIZE};
use crate::virt::KernelRead;
use crate::xarray::{idr_for_each, IdrIter, XaLimits};

/// `MAX_USED_MAPS` (include/linux/bpf_verifier.h, v6.1..v6.18): the most maps
/// the verifier lets one program use. `BPF_PROG_BIND_MAP` (v5.10+) appends to
/// `used_maps` without that check, so a program with more bound maps exists in
/// principle; reading one fails with [`Error::Limit`].
pub const MAX_USED_MAPS: usize = 64;

/// `BPF_MAX_SUBPROGS` (include/linux/bpf_verifier.h): `add_subprog()` refuses
/// more, and `aux->func_cnt` counts only those (hidden subprograms, v6.7+, are
/// in `real_func_cnt`).
pub const BPF_MAX_SUBPROGS: u32 = 256;

/// `sizeof(struct bpf_insn)` (include/uapi/linux/bpf.h).
pub const BPF_INSN_SIZE: u32 = 8;

/// `enum bpf_prog_type`.
///
/// A newtype rather than a Rust enum: the value comes from the kernel, and a
/// newer kernel has types this list does not know.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProgType(pub u32);

impl ProgType {
    /// `BPF_PROG_TYPE_UNSPEC`
    pub const UNSPEC: Self = Self(0);
    /// `BPF_PROG_TYPE_SOCKET_FILTER`
    pub const SOCKET_FILTER: Self = Self(1);
    /// `BPF_PROG_TYPE_KPROBE`
    pub const KPROBE: Self = Self(2);
    /// `BPF_PROG_TYPE_SCHED_CLS`
    pub const SCHED_CLS: Self = Self(3);
    /// `BPF_PROG_TYPE_XDP`
    pub const XDP: Self = Self(6);
    /// `BPF_PROG_TYPE_TRACING`
    pub const TRACING: Self = Self(26);
    /// `BPF_PROG_TYPE_STRUCT_OPS`
    pub const STRUCT_OPS: Self = Self(27);
    /// `BPF_PROG_TYPE_SYSCALL`
    pub const SYSCALL: Self = Self(31);
    /// `BPF_PROG_TYPE_NETFILTER` (v6.4+)
    pub const NETFILTER: Self = Self(32);

    /// `prog_type_name[]` of tools/lib/bpf/libbpf.c, indexed by value.
    const NAMES: [&'static str; 33] = [
        "unspec",
        "socket_filter",
        "kprobe",
        "sched_cls",
        "sched_act",
        "tracepoint",
        "xdp",
        "perf_event",
        "cgroup_skb",
        "cgroup_sock",
        "lwt_in",
        "lwt_out",
        "lwt_xmit",
        "sock_ops",
        "sk_skb",
        "cgroup_device",
        "sk_msg",
        "raw_tracepoint",
        "cgroup_sock_addr",
        "lwt_seg6local",
        "lirc_mode2",
        "sk_reuseport",
        "flow_dissector",
        "cgroup_sysctl",
        "raw_tracepoint_writable",
        "cgroup_sockopt",
        "tracing",
        "struct_ops",
        "ext",
        "lsm",
        "sk_lookup",
        "syscall",
        "netfilter",
    ];

    /// The name bpftool and libbpf print, or `None` for a type this list does
    /// not know.
    pub fn name(self) -> Option<&'static str> {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| Self::NAMES.get(i).copied())
    }
}

impl fmt::Display for ProgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

/// What the kernel knows about one program, as `bpf_prog_info` reports it,
/// plus where the program lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    /// `aux->id` (`prog_idr`).
    pub id: u32,
    /// `prog->type`.
    pub prog_type: ProgType,
    /// `aux->name`, NUL-padded.
    pub name: [u8; BPF_OBJ_NAME_LEN],
    /// `prog->tag`: the first 8 bytes of the SHA-1 (SHA-256 from v6.18) of the
    /// instructions, map fds zeroed.
    pub tag: [u8; BPF_TAG_SIZE],
    /// `aux->load_time`: ns since boot (`CLOCK_BOOTTIME`) at load.
    pub load_time: u64,
    /// `jited_prog_len`: bytes of JITed code, over every subprogram.
    pub jited_len: u32,
    /// `xlated_prog_len`: bytes of translated instructions.
    pub xlated_len: u32,
    /// `btf_id`: the program's BTF object, 0 without one.
    pub btf_id: u32,
    /// `nr_map_ids`: `aux->used_map_cnt`, at most [`MAX_USED_MAPS`].
    pub nr_map_ids: u32,
    /// The ids of the maps used, in `used_maps` order; the first
    /// [`Self::nr_map_ids`] are meaningful, the rest 0.
    pub map_ids: [u32; MAX_USED_MAPS],
    /// Address of the `struct bpf_prog`.
    pub kva: Kva,
}

impl ProgInfo {
    /// The name up to its first NUL, if it is UTF-8.
    pub fn name(&self) -> &str {
        crate::uapi::obj_name(&self.name)
    }

    /// The ids of the maps the program uses.
    pub fn map_ids(&self) -> &[u32] {
        let n = usize::try_from(self.nr_map_ids).unwrap_or(MAX_USED_MAPS);
        self.map_ids.get(..n).unwrap_or(&self.map_ids)
    }
}

fn field(base: Kva, off: u32, what: &'static str) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed(what, base))
}

/// Slot `i` of an array of pointers at `base`.
fn ptr_slot(base: Kva, i: u32, what: &'static str) -> Result<Kva> {
    u64::from(i)
        .checked_mul(8)
        .and_then(|o| base.checked_add(o))
        .ok_or(Error::malformed(what, base))
}

/// `btf_obj_id(btf)`: the id of the `struct btf` at `btf`, 0 for NULL.
pub(crate) fn btf_id_of<K: KernelRead + ?Sized>(k: &K, btf: Kva, off: &Offsets) -> Result<u32> {
    if btf.get() == 0 {
        return Ok(0);
    }
    k.read_kva_u32(field(btf, off.btf.id, "btf")?)
}

/// `bpf_prog_get_info_by_fd()`'s view of the `struct bpf_prog` at `kva`.
pub fn read_prog<K: KernelRead + ?Sized>(k: &K, kva: Kva, off: &Offsets) -> Result<ProgInfo> {
    let p = &off.bpf_prog;
    let a = &off.bpf_prog_aux;
    if kva.get() == 0 {
        return Err(Error::malformed("bpf_prog pointer", kva));
    }
    let aux = k.read_ptr(field(kva, p.aux, "bpf_prog")?)?;
    if aux.get() == 0 {
        return Err(Error::malformed("bpf_prog.aux", kva));
    }
    // bpf_prog_alloc_no_stats() and bpf_prog_realloc() keep aux->prog on the
    // program that owns aux (kernel/bpf/core.c).
    if k.read_ptr(field(aux, a.prog, "bpf_prog_aux")?)? != kva {
        return Err(Error::malformed("bpf_prog_aux.prog", aux));
    }
    let prog_u32 = |o: u32| k.read_kva_u32(field(kva, o, "bpf_prog")?);
    let aux_u32 = |o: u32| k.read_kva_u32(field(aux, o, "bpf_prog_aux")?);

    let mut tag = [0u8; BPF_TAG_SIZE];
    k.read_kva(field(kva, p.tag, "bpf_prog")?, &mut tag)?;
    let mut name = [0u8; BPF_OBJ_NAME_LEN];
    k.read_kva(field(aux, a.name, "bpf_prog_aux")?, &mut name)?;
    let len = prog_u32(p.len)?;
    let xlated_len = len
        .checked_mul(BPF_INSN_SIZE)
        .ok_or(Error::malformed("bpf_prog.len", kva))?;
    let (nr_map_ids, map_ids) = used_map_ids(k, aux, off)?;
    let btf = k.read_ptr(field(aux, a.btf, "bpf_prog_aux")?)?;
    Ok(ProgInfo {
        id: aux_u32(a.id)?,
        prog_type: ProgType(prog_u32(p.r#type)?),
        name,
        tag,
        load_time: k.read_kva_u64(field(aux, a.load_time, "bpf_prog_aux")?)?,
        jited_len: jited_len(k, kva, aux, off)?,
        xlated_len,
        btf_id: btf_id_of(k, btf, off)?,
        nr_map_ids,
        map_ids,
        kva,
    })
}

/// `aux->used_maps[i]->id` for every `i < aux->used_map_cnt`.
fn used_map_ids<K: KernelRead + ?Sized>(
    k: &K,
    aux: Kva,
    off: &Offsets,
) -> Result<(u32, [u32; MAX_USED_MAPS])> {
    let a = &off.bpf_prog_aux;
    let mut ids = [0u32; MAX_USED_MAPS];
    let cnt = k.read_kva_u32(field(aux, a.used_map_cnt, "bpf_prog_aux")?)?;
    let n = usize::try_from(cnt)
        .ok()
        .filter(|&n| n <= MAX_USED_MAPS)
        .ok_or(Error::limit(
            "bpf_prog_aux.used_map_cnt",
            aux,
            MAX_USED_MAPS as u64,
        ))?;
    if n == 0 {
        return Ok((0, ids));
    }
    let used_maps = k.read_ptr(field(aux, a.used_maps, "bpf_prog_aux")?)?;
    if used_maps.get() == 0 {
        return Err(Error::malformed("bpf_prog_aux.used_maps", aux));
    }
    let mut ptrs = [U64::ZERO; MAX_USED_MAPS];
    let ptrs = ptrs
        .get_mut(..n)
        .ok_or(Error::malformed("bpf_prog_aux.used_map_cnt", aux))?;
    k.read_kva(used_maps, ptrs.as_mut_bytes())?;
    for (id, map) in ids.iter_mut().zip(ptrs.iter()) {
        let map = Kva(map.get());
        if map.get() == 0 {
            return Err(Error::malformed("bpf_prog_aux.used_maps", used_maps));
        }
        *id = k.read_kva_u32(field(map, off.bpf_map.id, "bpf_map")?)?;
    }
    Ok((cnt, ids))
}

/// `jited_prog_len`: `prog->jited_len`, or the sum over the subprograms.
fn jited_len<K: KernelRead + ?Sized>(k: &K, prog: Kva, aux: Kva, off: &Offsets) -> Result<u32> {
    let a = &off.bpf_prog_aux;
    let jited = |p: Kva| k.read_kva_u32(field(p, off.bpf_prog.jited_len, "bpf_prog")?);
    let func_cnt = k.read_kva_u32(field(aux, a.func_cnt, "bpf_prog_aux")?)?;
    if func_cnt == 0 {
        return jited(prog);
    }
    if func_cnt > BPF_MAX_SUBPROGS {
        return Err(Error::limit(
            "bpf_prog_aux.func_cnt",
            aux,
            u64::from(BPF_MAX_SUBPROGS),
        ));
    }
    let func = k.read_ptr(field(aux, a.func, "bpf_prog_aux")?)?;
    if func.get() == 0 {
        return Err(Error::malformed("bpf_prog_aux.func", aux));
    }
    let mut total = 0u32;
    for i in 0..func_cnt {
        let sub = k.read_ptr(ptr_slot(func, i, "bpf_prog_aux.func")?)?;
        if sub.get() == 0 {
            return Err(Error::malformed("bpf_prog_aux.func", func));
        }
        // The kernel adds in u32 and so do we, wrap included.
        total = total.wrapping_add(jited(sub)?);
    }
    Ok(total)
}

/// How one kind of object is read out of its IDR slot.
struct Reader<K: ?Sized, T> {
    read: fn(&K, Kva, &Offsets) -> Result<T>,
    id_of: fn(&T) -> u32,
    /// The member that must hold the slot's id (`"bpf_prog_aux.id"`).
    id_field: &'static str,
}

/// A walk over an IDR of BPF objects (`prog_idr`, `btf_idr`): each pointer
/// read as `T`, whose own id must be the id of its slot (the kernel sets both
/// together in `bpf_prog_alloc_id()`, `btf_alloc_id()`, and clears the id when
/// it removes the slot). In id order, stopped for good by the first error.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct IdrObjects<'a, K: ?Sized, T> {
    k: &'a K,
    ids: IdrIter<'a, K>,
    off: &'a Offsets,
    reader: Reader<K, T>,
    done: bool,
}

impl<'a, K: KernelRead + ?Sized, T> IdrObjects<'a, K, T> {
    pub(crate) fn new(
        k: &'a K,
        idr: Kva,
        off: &'a Offsets,
        limits: XaLimits,
        read: fn(&K, Kva, &Offsets) -> Result<T>,
        id_of: fn(&T) -> u32,
        id_field: &'static str,
    ) -> Self {
        IdrObjects {
            k,
            ids: idr_for_each(k, idr, off, limits),
            off,
            reader: Reader {
                read,
                id_of,
                id_field,
            },
            done: false,
        }
    }

    /// The next object, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<T>> {
        if self.done {
            return Ok(None);
        }
        let r = self.step();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    fn step(&mut self) -> Result<Option<T>> {
        let Some((id, kva)) = self.ids.next()? else {
            return Ok(None);
        };
        let t = (self.reader.read)(self.k, kva, self.off)?;
        if (self.reader.id_of)(&t) != id {
            return Err(Error::malformed(self.reader.id_field, kva));
        }
        Ok(Some(t))
    }
}

impl<K: KernelRead + ?Sized, T> Iterator for IdrObjects<'_, K, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        IdrObjects::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized, T> FusedIterator for IdrObjects<'_, K, T> {}

/// `bpf_prog_for_each()` (drgn's helper): every program in the `struct idr`
/// `prog_idr` at `prog_idr`, in id order.
pub fn bpf_prog_for_each<'a, K: KernelRead + ?Sized>(
    k: &'a K,
    prog_idr: Kva,
    off: &'a Offsets,
    limits: XaLimits,
) -> IdrObjects<'a, K, ProgInfo> {
    IdrObjects::new(
        k,
        prog_idr,
        off,
        limits,
        read_prog::<K>,
        |p| p.id,
        "bpf_prog_aux.id",
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use core::cell::Cell;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::offsets::{
        BpfMapOffsets, BpfProgAuxOffsets, BpfProgOffsets, BtfOffsets, IdrOffsets, XaNodeOffsets,
        XarrayOffsets,
    };
    use crate::virt::FlatKernel;
    use crate::xarray::xa_mk_node;

    /// x86-64 layouts of v6.12 (pahole on Debian's 6.12 vmlinux BTF).
    pub(crate) fn offsets() -> Offsets {
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
            bpf_map: BpfMapOffsets {
                id: 56,
                size: 256,
                ..BpfMapOffsets::default()
            },
            btf: BtfOffsets {
                data: 0,
                data_size: 88,
                id: 96,
                base_btf: 160,
                name: 168,
                kernel_btf: 224,
            },
            bpf_prog: BpfProgOffsets {
                r#type: 4,
                len: 12,
                jited_len: 16,
                tag: 20,
                aux: 56,
                size: 72,
            },
            bpf_prog_aux: BpfProgAuxOffsets {
                used_map_cnt: 8,
                id: 32,
                func_cnt: 36,
                func: 216,
                used_maps: 872,
                prog: 920,
                load_time: 936,
                name: 968,
                btf: 1016,
                size: 1128,
            },
            ..Offsets::default()
        }
    }

    pub(crate) const BASE: Kva = Kva(0xffff_8880_0400_0000);

    /// A program to lay out.
    #[derive(Clone, Debug)]
    pub(crate) struct Spec {
        pub id: u32,
        pub prog_type: u32,
        pub name: [u8; 16],
        pub tag: [u8; 8],
        pub load_time: u64,
        pub len: u32,
        pub jited_len: u32,
        /// `jited_len` of each subprogram; empty: none.
        pub subprogs: Vec<u32>,
        pub map_ids: Vec<u32>,
        pub btf_id: Option<u32>,
    }

    impl Spec {
        pub(crate) fn simple(id: u32) -> Self {
            let mut name = [0u8; 16];
            name[..4].copy_from_slice(b"prog");
            Spec {
                id,
                prog_type: 1,
                name,
                tag: [id as u8, 1, 2, 3, 4, 5, 6, 7],
                load_time: 1_000_000 * u64::from(id),
                len: 8,
                jited_len: 60,
                subprogs: Vec::new(),
                map_ids: std::vec![7, 9],
                btf_id: None,
            }
        }
    }

    /// Kernel memory with an IDR and the objects in it, laid out like the
    /// kernel's, growing as objects are added.
    pub(crate) struct Image {
        pub bytes: Vec<u8>,
        pub off: Offsets,
        pub idr: Kva,
        pub root: Kva,
    }

    impl Image {
        /// An IDR (`idr_base` 0, as `DEFINE_IDR`) whose root is a single
        /// shift-0 node: ids 0..64.
        pub(crate) fn new() -> Self {
            let mut img = Image {
                bytes: Vec::new(),
                off: offsets(),
                idr: BASE,
                root: BASE,
            };
            img.idr = img.alloc(24);
            img.root = img.alloc(576);
            img.put_u64(img.idr.checked_add(8).unwrap(), xa_mk_node(img.root));
            img
        }

        pub(crate) fn alloc(&mut self, size: usize) -> Kva {
            let at = self.bytes.len().next_multiple_of(64);
            self.bytes.resize(at + size, 0);
            BASE.checked_add(at as u64).unwrap()
        }

        pub(crate) fn pos(&self, at: Kva) -> usize {
            at.offset_from(BASE).unwrap() as usize
        }

        pub(crate) fn put(&mut self, at: Kva, v: &[u8]) {
            let p = self.pos(at);
            self.bytes[p..p + v.len()].copy_from_slice(v);
        }

        pub(crate) fn put_u32(&mut self, at: Kva, v: u32) {
            self.put(at, &v.to_le_bytes());
        }

        pub(crate) fn put_u64(&mut self, at: Kva, v: u64) {
            self.put(at, &v.to_le_bytes());
        }

        pub(crate) fn at(base: Kva, off: u32) -> Kva {
            base.checked_add(u64::from(off)).unwrap()
        }

        /// Store `ptr` under `id` (below 64).
        pub(crate) fn idr_store(&mut self, id: u32, ptr: Kva) {
            let slot = Self::at(self.root, 40 + 8 * id);
            self.put_u64(slot, ptr.get());
        }

        pub(crate) fn map(&mut self, id: u32) -> Kva {
            let m = self.alloc(256);
            self.put_u32(Self::at(m, self.off.bpf_map.id), id);
            m
        }

        pub(crate) fn btf(&mut self, id: u32, name: &[u8], kernel_btf: bool, size: u32) -> Kva {
            let b = self.alloc(232);
            let o = self.off.btf;
            self.put_u32(Self::at(b, o.id), id);
            self.put_u32(Self::at(b, o.data_size), size);
            self.put(Self::at(b, o.name), name);
            self.put(Self::at(b, o.kernel_btf), &[u8::from(kernel_btf)]);
            b
        }

        /// A `struct bpf_prog` with its aux, maps, subprograms and BTF;
        /// returns the program and its aux.
        pub(crate) fn prog(&mut self, s: &Spec) -> (Kva, Kva) {
            let (p, a) = (self.off.bpf_prog, self.off.bpf_prog_aux);
            let prog = self.alloc(72);
            let aux = self.alloc(1128);
            self.put_u32(Self::at(prog, p.r#type), s.prog_type);
            self.put_u32(Self::at(prog, p.len), s.len);
            self.put_u32(Self::at(prog, p.jited_len), s.jited_len);
            self.put(Self::at(prog, p.tag), &s.tag);
            self.put_u64(Self::at(prog, p.aux), aux.get());
            self.put_u32(Self::at(aux, a.id), s.id);
            self.put_u64(Self::at(aux, a.prog), prog.get());
            self.put_u64(Self::at(aux, a.load_time), s.load_time);
            self.put(Self::at(aux, a.name), &s.name);
            self.put_u32(Self::at(aux, a.used_map_cnt), s.map_ids.len() as u32);
            if !s.map_ids.is_empty() {
                let arr = self.alloc(8 * s.map_ids.len());
                for (i, &id) in s.map_ids.iter().enumerate() {
                    let m = self.map(id);
                    self.put_u64(Self::at(arr, 8 * i as u32), m.get());
                }
                self.put_u64(Self::at(aux, a.used_maps), arr.get());
            }
            if !s.subprogs.is_empty() {
                let arr = self.alloc(8 * s.subprogs.len());
                for (i, &len) in s.subprogs.iter().enumerate() {
                    let sub = self.alloc(72);
                    self.put_u32(Self::at(sub, p.jited_len), len);
                    self.put_u64(Self::at(arr, 8 * i as u32), sub.get());
                }
                self.put_u32(Self::at(aux, a.func_cnt), s.subprogs.len() as u32);
                self.put_u64(Self::at(aux, a.func), arr.get());
            }
            if let Some(id) = s.btf_id {
                let b = self.btf(id, b"", false, 100);
                self.put_u64(Self::at(aux, a.btf), b.get());
            }
            (prog, aux)
        }

        pub(crate) fn kernel(&self) -> FlatKernel<&[u8]> {
            FlatKernel {
                base: BASE,
                bytes: &self.bytes[..],
            }
        }

        fn progs(&self) -> Result<Vec<ProgInfo>> {
            bpf_prog_for_each(&self.kernel(), self.idr, &self.off, XaLimits::default()).collect()
        }
    }

    /// What `bpf_prog_get_info_by_fd()` would say about `s`.
    fn expected(s: &Spec, kva: Kva) -> ProgInfo {
        let mut map_ids = [0u32; MAX_USED_MAPS];
        map_ids[..s.map_ids.len()].copy_from_slice(&s.map_ids);
        let jited_len = if s.subprogs.is_empty() {
            s.jited_len
        } else {
            s.subprogs.iter().fold(0u32, |a, &l| a.wrapping_add(l))
        };
        ProgInfo {
            id: s.id,
            prog_type: ProgType(s.prog_type),
            name: s.name,
            tag: s.tag,
            load_time: s.load_time,
            jited_len,
            xlated_len: s.len * 8,
            btf_id: s.btf_id.unwrap_or(0),
            nr_map_ids: s.map_ids.len() as u32,
            map_ids,
            kva,
        }
    }

    /// Counts reads, to show a walk's work is bounded.
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

    #[test]
    fn prog_type_names_follow_libbpf() {
        assert_eq!(ProgType::SOCKET_FILTER.name(), Some("socket_filter"));
        assert_eq!(ProgType::XDP.name(), Some("xdp"));
        assert_eq!(ProgType::TRACING.name(), Some("tracing"));
        assert_eq!(ProgType::STRUCT_OPS.name(), Some("struct_ops"));
        assert_eq!(ProgType::SYSCALL.name(), Some("syscall"));
        assert_eq!(ProgType::NETFILTER.name(), Some("netfilter"));
        assert_eq!(ProgType(33).name(), None);
        assert_eq!(std::format!("{}", ProgType(99)), "type 99");
        assert_eq!(std::format!("{}", ProgType::KPROBE), "kprobe");
    }

    #[test]
    fn reads_every_field() {
        let mut img = Image::new();
        let mut s = Spec::simple(5);
        s.btf_id = Some(12);
        let (prog, _) = img.prog(&s);
        let got = read_prog(&img.kernel(), prog, &img.off).unwrap();
        assert_eq!(got, expected(&s, prog));
        assert_eq!(got.name(), "prog");
        assert_eq!(got.map_ids(), &[7, 9]);
        assert_eq!((got.xlated_len, got.jited_len, got.btf_id), (64, 60, 12));
    }

    #[test]
    fn no_maps_no_btf() {
        let mut img = Image::new();
        let mut s = Spec::simple(1);
        s.map_ids.clear();
        let (prog, _) = img.prog(&s);
        let got = read_prog(&img.kernel(), prog, &img.off).unwrap();
        assert_eq!(got.map_ids(), &[] as &[u32]);
        assert_eq!(got.btf_id, 0);
        assert_eq!(got, expected(&s, prog));
    }

    #[test]
    fn jited_len_sums_the_subprograms() {
        let mut img = Image::new();
        let mut s = Spec::simple(2);
        s.subprogs = std::vec![100, 23, 7];
        let (prog, _) = img.prog(&s);
        let got = read_prog(&img.kernel(), prog, &img.off).unwrap();
        assert_eq!(got.jited_len, 130);
        // And wraps in u32 like the kernel's sum.
        let mut s = Spec::simple(3);
        s.subprogs = std::vec![u32::MAX, 2];
        let (prog, _) = img.prog(&s);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off).unwrap().jited_len,
            1
        );
    }

    #[test]
    fn all_64_maps() {
        let mut img = Image::new();
        let mut s = Spec::simple(4);
        s.map_ids = (100..164).collect();
        let (prog, _) = img.prog(&s);
        let got = read_prog(&img.kernel(), prog, &img.off).unwrap();
        assert_eq!(got.map_ids(), &s.map_ids[..]);
    }

    #[test]
    fn counts_over_their_caps_are_limits() {
        let mut img = Image::new();
        let (prog, aux) = img.prog(&Spec::simple(4));
        let a = img.off.bpf_prog_aux;
        img.put_u32(Image::at(aux, a.used_map_cnt), 65);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::limit("bpf_prog_aux.used_map_cnt", aux, 64))
        );
        img.put_u32(Image::at(aux, a.used_map_cnt), u32::MAX);
        assert!(matches!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::Limit { .. })
        ));
        img.put_u32(Image::at(aux, a.used_map_cnt), 0);
        img.put_u32(Image::at(aux, a.func_cnt), 257);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::limit("bpf_prog_aux.func_cnt", aux, 256))
        );
    }

    #[test]
    fn aux_must_point_back() {
        let mut img = Image::new();
        let (prog, aux) = img.prog(&Spec::simple(4));
        let (other, _) = img.prog(&Spec::simple(5));
        let off = img.off;
        img.put_u64(Image::at(aux, off.bpf_prog_aux.prog), other.get());
        assert_eq!(
            read_prog(&img.kernel(), prog, &off),
            Err(Error::malformed("bpf_prog_aux.prog", aux))
        );
        img.put_u64(Image::at(prog, off.bpf_prog.aux), 0);
        assert_eq!(
            read_prog(&img.kernel(), prog, &off),
            Err(Error::malformed("bpf_prog.aux", prog))
        );
        assert_eq!(
            read_prog(&img.kernel(), Kva(0), &off),
            Err(Error::malformed("bpf_prog pointer", Kva(0)))
        );
        assert!(read_prog(&img.kernel(), Kva(u64::MAX - 8), &off).is_err());
    }

    #[test]
    fn null_pointers_behind_counts_are_malformed() {
        let mut img = Image::new();
        let mut s = Spec::simple(4);
        s.subprogs = std::vec![1, 2];
        let (prog, aux) = img.prog(&s);
        let a = img.off.bpf_prog_aux;
        let used_maps = Kva(img
            .kernel()
            .read_kva_u64(Image::at(aux, a.used_maps))
            .unwrap());
        img.put_u64(Image::at(used_maps, 8), 0);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::malformed("bpf_prog_aux.used_maps", used_maps))
        );
        img.put_u64(Image::at(aux, a.used_maps), 0);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::malformed("bpf_prog_aux.used_maps", aux))
        );
        img.put_u32(Image::at(aux, a.used_map_cnt), 0);
        img.put_u64(Image::at(aux, a.func), 0);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::malformed("bpf_prog_aux.func", aux))
        );
    }

    #[test]
    fn instruction_count_that_overflows_is_malformed() {
        let mut img = Image::new();
        let mut s = Spec::simple(4);
        s.len = u32::MAX / 8 + 1;
        let (prog, _) = img.prog(&s);
        assert_eq!(
            read_prog(&img.kernel(), prog, &img.off),
            Err(Error::malformed("bpf_prog.len", prog))
        );
    }

    #[test]
    fn walk_checks_ids_against_slots() {
        let mut img = Image::new();
        let specs = [Spec::simple(1), Spec::simple(3), Spec::simple(40)];
        let mut want = Vec::new();
        for s in &specs {
            let (prog, _) = img.prog(s);
            img.idr_store(s.id, prog);
            want.push(expected(s, prog));
        }
        assert_eq!(img.progs(), Ok(want.clone()));

        // Slot 3 holds a program that says it is 4.
        let (prog, aux) = img.prog(&Spec::simple(3));
        img.put_u32(Image::at(aux, img.off.bpf_prog_aux.id), 4);
        img.idr_store(3, prog);
        let k = img.kernel();
        let mut it = bpf_prog_for_each(&k, img.idr, &img.off, XaLimits::default());
        assert_eq!(it.next(), Ok(Some(want[0])));
        assert_eq!(it.next(), Err(Error::malformed("bpf_prog_aux.id", prog)));
        // Fused.
        assert_eq!(it.next(), Ok(None));
        assert_eq!(Iterator::next(&mut it), None);
    }

    #[test]
    fn empty_idr() {
        let mut img = Image::new();
        img.put_u64(Image::at(img.idr, 8), 0);
        assert_eq!(img.progs(), Ok(Vec::new()));
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            any::<u32>(),
            any::<[u8; 16]>(),
            any::<[u8; 8]>(),
            any::<u64>(),
            0u32..(1 << 20),
            any::<u32>(),
            prop::collection::vec(any::<u32>(), 0..6),
            prop::collection::vec(any::<u32>(), 0..=64),
            prop::option::of(1u32..1000),
        )
            .prop_map(
                |(prog_type, name, tag, load_time, len, jited_len, subprogs, map_ids, btf_id)| {
                    Spec {
                        id: 0,
                        prog_type,
                        name,
                        tag,
                        load_time,
                        len,
                        jited_len,
                        subprogs,
                        map_ids,
                        btf_id,
                    }
                },
            )
    }

    proptest! {
        /// Programs laid out like the kernel's come back exactly, in id order.
        #[test]
        fn built_programs_read_back(
            specs in prop::collection::btree_map(1u32..64, spec(), 0..6),
        ) {
            let mut img = Image::new();
            let mut want = Vec::new();
            for (&id, s) in &specs {
                let s = Spec { id, ..s.clone() };
                let (prog, _) = img.prog(&s);
                img.idr_store(id, prog);
                want.push(expected(&s, prog));
            }
            prop_assert_eq!(img.progs(), Ok(want));
        }

        /// Whatever is written over the image, the walk neither panics nor
        /// reads more than its caps allow, and stays fused after an error.
        #[test]
        fn corrupted_programs_stay_bounded(
            specs in prop::collection::btree_map(1u32..64, spec(), 1..4),
            hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>(), 0u8..3), 1..12),
        ) {
            let mut img = Image::new();
            for (&id, s) in &specs {
                let (prog, _) = img.prog(&Spec { id, ..s.clone() });
                img.idr_store(id, prog);
            }
            let len = img.bytes.len();
            for (at, v, kind) in hits {
                let p = at.index(len.saturating_sub(8)).next_multiple_of(4).min(len - 8);
                match kind {
                    0 => img.bytes[p] = v as u8,
                    1 => img.bytes[p..p + 4].copy_from_slice(&(v as u32).to_le_bytes()),
                    // A pointer somewhere into the image.
                    _ => {
                        let ptr = BASE.get() + (v % len as u64);
                        img.bytes[p..p + 8].copy_from_slice(&ptr.to_le_bytes());
                    }
                }
            }
            let k = Counting { inner: img.kernel(), reads: Cell::new(0) };
            let limits = XaLimits { max_nodes: 4, max_entries: 64 };
            let mut it = bpf_prog_for_each(&k, img.idr, &img.off, limits);
            let mut n = 0u64;
            loop {
                match it.next() {
                    Ok(Some(p)) => {
                        n += 1;
                        prop_assert!(p.map_ids().len() <= MAX_USED_MAPS);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        prop_assert_eq!(it.next(), Ok(None));
                        break;
                    }
                }
            }
            // At most 64 programs tried, each with a bounded number of reads:
            // 12 fixed, 2 + 64 for maps, 1 + 2 * 256 for subprograms. Plus the
            // IDR's own: idr_base, xa_head, 4 per node and its slots again.
            prop_assert!(n <= 64);
            let per_prog = 12 + 66 + 1 + 2 * u64::from(BPF_MAX_SUBPROGS);
            prop_assert!(k.reads.get() <= 2 + 5 * 4 + 64 * per_prog);
        }
    }
}
