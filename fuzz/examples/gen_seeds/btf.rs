//! BTF blobs: a builder (include/uapi/linux/btf.h), the minimal kernel BTF
//! the std crate's tests use, map-value BTF for the formatter, and a
//! subset of a real kernel's BTF: the structs the walkers need and what they
//! embed, with pointers to anything else cut to forward declarations.

use std::collections::{BTreeMap, HashMap};

pub const KIND_INT: u32 = 1;
pub const KIND_PTR: u32 = 2;
pub const KIND_ARRAY: u32 = 3;
pub const KIND_STRUCT: u32 = 4;
pub const KIND_UNION: u32 = 5;
pub const KIND_ENUM: u32 = 6;
pub const KIND_FWD: u32 = 7;
pub const KIND_TYPEDEF: u32 = 8;
pub const KIND_VOLATILE: u32 = 9;
pub const KIND_CONST: u32 = 10;
pub const KIND_RESTRICT: u32 = 11;
pub const KIND_FUNC_PROTO: u32 = 13;
pub const KIND_VAR: u32 = 14;
pub const KIND_DATASEC: u32 = 15;
pub const KIND_FLOAT: u32 = 16;
pub const KIND_DECL_TAG: u32 = 17;
pub const KIND_TYPE_TAG: u32 = 18;
pub const KIND_ENUM64: u32 = 19;

pub struct Builder {
    pub types: Vec<u8>,
    pub strings: Vec<u8>,
    pub next_id: u32,
}

pub fn info(kind: u32, vlen: u32, kflag: bool) -> u32 {
    (u32::from(kflag) << 31) | (kind << 24) | vlen
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    pub fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    pub fn put(&mut self, words: &[u32]) -> u32 {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn int(&mut self, name: &str, bytes: u32) -> u32 {
        self.int_enc(name, bytes, 0, bytes * 8, 0)
    }

    /// `enc`: 1 signed, 2 char, 4 bool.
    pub fn int_enc(&mut self, name: &str, bytes: u32, enc: u32, bits: u32, offset: u32) -> u32 {
        let n = self.str(name);
        self.put(&[
            n,
            info(KIND_INT, 0, false),
            bytes,
            (enc << 24) | (offset << 16) | bits,
        ])
    }

    pub fn ptr(&mut self, to: u32) -> u32 {
        self.put(&[0, info(KIND_PTR, 0, false), to])
    }

    pub fn link(&mut self, kind: u32, name: &str, to: u32) -> u32 {
        let n = self.str(name);
        self.put(&[n, info(kind, 0, false), to])
    }

    pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.link(KIND_TYPEDEF, name, to)
    }

    pub fn fwd(&mut self, name: &str) -> u32 {
        let n = self.str(name);
        self.put(&[n, info(KIND_FWD, 0, false), 0])
    }

    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        self.put(&[0, info(KIND_ARRAY, 0, false), 0, elem, index, n])
    }

    /// Members are (name, type, bit offset, bitfield size with kflag).
    pub fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let n = self.str(name);
        let mut words = vec![n, info(kind, members.len() as u32, false), size];
        for &(mname, ty, off) in members {
            let mn = self.str(mname);
            words.extend_from_slice(&[mn, ty, off]);
        }
        self.put(&words)
    }

    pub fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(KIND_STRUCT, name, size, members)
    }

    pub fn union(&mut self, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(KIND_UNION, "", size, members)
    }

    /// A struct with bitfields: (name, type, bit offset, bits).
    pub fn bitfields(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        let n = self.str(name);
        let mut words = vec![n, info(KIND_STRUCT, members.len() as u32, true), size];
        for &(mname, ty, off, bits) in members {
            let mn = self.str(mname);
            words.extend_from_slice(&[mn, ty, (bits << 24) | off]);
        }
        self.put(&words)
    }

    pub fn enumeration(
        &mut self,
        name: &str,
        size: u32,
        signed: bool,
        vals: &[(&str, i32)],
    ) -> u32 {
        let n = self.str(name);
        let mut words = vec![n, info(KIND_ENUM, vals.len() as u32, signed), size];
        for &(vn, v) in vals {
            let s = self.str(vn);
            words.extend_from_slice(&[s, v as u32]);
        }
        self.put(&words)
    }

    pub fn enum64(&mut self, name: &str, signed: bool, vals: &[(&str, u64)]) -> u32 {
        let n = self.str(name);
        let mut words = vec![n, info(KIND_ENUM64, vals.len() as u32, signed), 8];
        for &(vn, v) in vals {
            let s = self.str(vn);
            words.extend_from_slice(&[s, v as u32, (v >> 32) as u32]);
        }
        self.put(&words)
    }

    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        let n = self.str(name);
        self.put(&[n, info(KIND_FLOAT, 0, false), size])
    }

    pub fn var(&mut self, name: &str, ty: u32) -> u32 {
        let n = self.str(name);
        self.put(&[n, info(KIND_VAR, 0, false), ty, 1])
    }

    /// Variables: (type, offset, size).
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let n = self.str(name);
        let mut words = vec![n, info(KIND_DATASEC, vars.len() as u32, false), size];
        for &(t, o, s) in vars {
            words.extend_from_slice(&[t, o, s]);
        }
        self.put(&words)
    }

    pub fn finish(&self) -> Vec<u8> {
        blob(&self.types, &self.strings)
    }
}

pub fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for w in [
        24,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(types);
    out.extend_from_slice(strings);
    out
}

/// The std crate's `minimal()`: every struct the walkers use, laid out like
/// v6.12, some members behind anonymous unions.
pub fn minimal() -> Vec<u8> {
    let mut b = Builder::new();
    let u8_ = b.int("unsigned char", 1);
    let u32_ = b.int("unsigned int", 4);
    let u64_ = b.int("long unsigned int", 8);
    let int = b.int("int", 4);
    let void_ptr = b.ptr(0);
    let char_arr = b.array(u8_, int, 16);
    let flex = b.array(u8_, int, 0);
    let ptr_flex = b.array(void_ptr, int, 0);
    let slots = b.array(void_ptr, int, 64);
    let u32_t = b.typedef("u32", u32_);
    let xarray = b.strukt(
        "xarray",
        16,
        &[
            ("xa_lock", u32_, 0),
            ("xa_flags", u32_, 32),
            ("xa_head", void_ptr, 64),
        ],
    );
    b.strukt(
        "idr",
        24,
        &[
            ("idr_rt", xarray, 0),
            ("idr_base", u32_, 128),
            ("idr_next", u32_, 160),
        ],
    );
    b.strukt(
        "xa_node",
        576,
        &[
            ("shift", u8_, 0),
            ("offset", u8_, 8),
            ("count", u8_, 16),
            ("nr_values", u8_, 24),
            ("parent", void_ptr, 64),
            ("array", void_ptr, 128),
            ("slots", slots, 320),
        ],
    );
    let btf_fwd = b.fwd("btf");
    let btf_ptr = b.ptr(btf_fwd);
    let work = b.union(16, &[("work", u64_, 0), ("rcu", u64_, 0)]);
    let bpf_map = b.strukt(
        "bpf_map",
        248,
        &[
            ("ops", void_ptr, 0),
            ("map_type", u32_t, 192),
            ("key_size", u32_t, 224),
            ("value_size", u32_t, 256),
            ("max_entries", u32_t, 288),
            ("map_extra", u64_, 320),
            ("map_flags", u32_t, 384),
            ("id", u32_t, 416),
            ("btf_key_type_id", u32_t, 544),
            ("btf_value_type_id", u32_t, 576),
            ("btf_vmlinux_value_type_id", u32_t, 608),
            ("btf", btf_ptr, 640),
            ("name", char_arr, 768),
            ("refcnt", u64_, 1152),
            ("usercnt", u64_, 1216),
            ("", work, 1280),
        ],
    );
    b.strukt(
        "btf",
        232,
        &[
            ("data", void_ptr, 0),
            ("data_size", u32_, 704),
            ("id", u32_, 768),
            ("base_btf", void_ptr, 1280),
            ("name", char_arr, 1344),
            ("kernel_btf", u8_, 1792),
        ],
    );
    let s_value = b.composite(KIND_STRUCT, "", 0, &[("", u32_, 0), ("value", flex, 0)]);
    let s_ptrs = b.composite(KIND_STRUCT, "", 0, &[("", u32_, 0), ("ptrs", ptr_flex, 0)]);
    let s_pptrs = b.composite(KIND_STRUCT, "", 0, &[("", u32_, 0), ("pptrs", ptr_flex, 0)]);
    let arr_union = b.union(0, &[("", s_value, 0), ("", s_ptrs, 0), ("", s_pptrs, 0)]);
    b.strukt(
        "bpf_array",
        264,
        &[
            ("map", bpf_map, 0),
            ("elem_size", u32_, 1984),
            ("index_mask", u32_, 2016),
            ("aux", void_ptr, 2048),
            ("", arr_union, 2112),
        ],
    );
    let bucket = b.strukt(
        "bucket",
        16,
        &[("head", void_ptr, 0), ("raw_lock", u32_, 64)],
    );
    let bucket_ptr = b.ptr(bucket);
    let elem_fwd = b.fwd("htab_elem");
    let elem_ptr = b.ptr(elem_fwd);
    let elem_ptr_ptr = b.ptr(elem_ptr);
    b.strukt(
        "bpf_htab",
        896,
        &[
            ("map", bpf_map, 0),
            ("buckets", bucket_ptr, 3008),
            ("elems", void_ptr, 3072),
            ("extra_elems", elem_ptr_ptr, 5632),
            ("n_buckets", u32_, 6080),
            ("elem_size", u32_, 6112),
        ],
    );
    let node = b.strukt(
        "hlist_nulls_node",
        16,
        &[("next", void_ptr, 0), ("pprev", void_ptr, 64)],
    );
    let in_union = b.union(
        16,
        &[("hash_node", node, 0), ("ptr_to_pptr", void_ptr, 128)],
    );
    let key_arr = b.array(u8_, int, 0);
    b.strukt(
        "htab_elem",
        48,
        &[
            ("", in_union, 0),
            ("hash", u32_, 320),
            ("key", key_arr, 384),
        ],
    );
    b.strukt(
        "vm_struct",
        72,
        &[
            ("next", void_ptr, 0),
            ("addr", void_ptr, 64),
            ("size", u64_, 128),
            ("pages", void_ptr, 256),
            ("nr_pages", u32_, 352),
        ],
    );
    let vm_ptr = b.ptr(0);
    b.strukt(
        "bpf_arena",
        336,
        &[
            ("map", bpf_map, 0),
            ("user_vm_start", u64_, 1984),
            ("user_vm_end", u64_, 2048),
            ("kern_vm", vm_ptr, 2112),
        ],
    );
    let prog_aux_fwd = b.fwd("bpf_prog_aux");
    let aux_ptr = b.ptr(prog_aux_fwd);
    let tag = b.array(u8_, int, 8);
    b.strukt(
        "bpf_prog",
        72,
        &[
            ("type", u32_, 32),
            ("len", u32_, 96),
            ("jited_len", u32_, 128),
            ("tag", tag, 160),
            ("aux", aux_ptr, 448),
        ],
    );
    b.strukt(
        "bpf_prog_aux",
        1128,
        &[
            ("used_map_cnt", u32_, 64),
            ("id", u32_, 256),
            ("func_cnt", u32_, 288),
            ("func", void_ptr, 1728),
            ("used_maps", void_ptr, 6976),
            ("prog", void_ptr, 7360),
            ("load_time", u64_, 7488),
            ("name", char_arr, 7744),
            ("btf", btf_ptr, 8128),
        ],
    );
    b.finish()
}

/// Map-value BTF for the formatter: one of each kind bpftool prints.
/// Returns the blob and the (key, value) type ids of a few maps over it.
pub fn format_btf() -> (Vec<u8>, Vec<(&'static str, u32, u32)>) {
    let mut b = Builder::new();
    let u8_ = b.int("unsigned char", 1);
    let u32_ = b.int("unsigned int", 4);
    let u64_ = b.int("long long unsigned int", 8);
    let int = b.int_enc("int", 4, 1, 32, 0);
    let ch = b.int_enc("char", 1, 2, 8, 0);
    let boolean = b.int_enc("_Bool", 1, 4, 8, 0);
    let u128_ = b.int("__int128 unsigned", 16);
    let name = b.array(ch, int, 16);
    let bytes = b.array(u8_, int, 6);
    let color = b.enumeration("color", 4, false, &[("RED", 0), ("GREEN", 1), ("BLUE", 7)]);
    let big = b.enum64("big", true, &[("NEG", u64::MAX), ("HUGE", 1 << 40)]);
    let void_ptr = b.ptr(0);
    let cu64 = b.link(KIND_CONST, "", u64_);
    let vu32 = b.link(KIND_VOLATILE, "", u32_);
    let tag = b.link(KIND_TYPE_TAG, "user", u32_);
    let flt = b.float("double", 8);
    let flags = b.bitfields(
        "flags",
        4,
        &[
            ("a", u32_, 0, 1),
            ("b", u32_, 1, 3),
            ("c", u32_, 4, 12),
            ("d", u32_, 16, 16),
        ],
    );
    let inner_bytes = b.array(u8_, int, 8);
    let inner = b.union(8, &[("as_u64", u64_, 0), ("as_bytes", inner_bytes, 0)]);
    let value = b.strukt(
        "value",
        96,
        &[
            ("count", u64_, 0),
            ("name", name, 64),
            ("bytes", bytes, 192),
            ("color", color, 256),
            ("ok", boolean, 288),
            ("sign", int, 320),
            ("big", big, 384),
            ("ptr", void_ptr, 448),
            ("c", cu64, 512),
            ("v", vu32, 576),
            ("t", tag, 608),
            ("f", flags, 640),
            ("u", inner, 704),
        ],
    );
    let key_t = b.typedef("key_t", u32_);
    let var_a = b.var("a", u32_);
    let var_b = b.var("name", name);
    let data = b.datasec(".data", 20, &[(var_a, 0, 4), (var_b, 4, 16)]);
    let fwd = b.fwd("opaque");
    let fwd_ptr = b.ptr(fwd);
    let holder = b.strukt("holder", 24, &[("p", fwd_ptr, 0), ("x", u128_, 64)]);
    let _ = flt;
    let maps = vec![
        ("struct", key_t, value),
        ("int", u32_, int),
        ("datasec", 0, data),
        ("u128", u64_, holder),
        ("float", u32_, flt),
    ];
    (b.finish(), maps)
}

/// Bytes of each record of a raw type section, by kind.
fn record_len(words: &[u8], at: usize) -> Option<usize> {
    let w = |i: usize| -> Option<u32> {
        let o = at + 4 * i;
        Some(u32::from_le_bytes(words.get(o..o + 4)?.try_into().ok()?))
    };
    let info = w(1)?;
    let kind = (info >> 24) & 0x1f;
    let vlen = (info & 0xffff) as usize;
    Some(
        12 + match kind {
            KIND_INT => 4,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION => 12 * vlen,
            KIND_ENUM => 8 * vlen,
            KIND_FUNC_PROTO => 8 * vlen,
            KIND_VAR => 4,
            KIND_DATASEC => 12 * vlen,
            KIND_DECL_TAG => 4,
            KIND_ENUM64 => 12 * vlen,
            _ => 0,
        },
    )
}

struct Ty {
    off: usize,
    len: usize,
}

/// The part of a kernel's BTF the walkers read: the structs `names`, what
/// they embed (struct, union, array and typedef members, recursively), and
/// forward declarations wherever a pointer leads to anything else.
pub fn subset(full: &[u8], names: &[&str]) -> Option<Vec<u8>> {
    let hdr_len = u32::from_le_bytes(full.get(4..8)?.try_into().ok()?) as usize;
    let h = |i: usize| u32::from_le_bytes(full[8 + 4 * i..12 + 4 * i].try_into().unwrap()) as usize;
    let (type_off, type_len, str_off, str_len) = (h(0), h(1), h(2), h(3));
    let types = full.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strs = full.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let mut all = vec![Ty { off: 0, len: 0 }]; // id 0: void
    let mut at = 0;
    while at < types.len() {
        let len = record_len(types, at)?;
        all.push(Ty { off: at, len });
        at += len;
    }
    let word = |id: usize, i: usize| {
        let o = all[id].off + 4 * i;
        u32::from_le_bytes(types[o..o + 4].try_into().unwrap())
    };
    let name_of = |id: usize| {
        let o = word(id, 0) as usize;
        let end = strs[o..].iter().position(|&b| b == 0).unwrap_or(0);
        std::str::from_utf8(&strs[o..o + end]).unwrap_or("")
    };
    let kind_of = |id: usize| (word(id, 1) >> 24) & 0x1f;
    let vlen_of = |id: usize| (word(id, 1) & 0xffff) as usize;

    // Roots: complete structs of those names.
    let mut keep: BTreeMap<usize, ()> = BTreeMap::new();
    let mut fwd: HashMap<usize, ()> = HashMap::new();
    let mut todo: Vec<usize> = (1..all.len())
        .filter(|&id| kind_of(id) == KIND_STRUCT && vlen_of(id) > 0 && names.contains(&name_of(id)))
        .collect();
    while let Some(id) = todo.pop() {
        if id == 0 || keep.contains_key(&id) {
            continue;
        }
        keep.insert(id, ());
        let k = kind_of(id);
        match k {
            KIND_STRUCT | KIND_UNION => {
                for m in 0..vlen_of(id) {
                    todo.push(word(id, 3 + 3 * m + 1) as usize);
                }
            }
            KIND_ARRAY => {
                todo.push(word(id, 3) as usize);
                todo.push(word(id, 4) as usize);
            }
            KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                todo.push(word(id, 2) as usize)
            }
            KIND_PTR => {
                // Follow a pointer only to a root struct (the resolver goes
                // through `bpf_htab.buckets` and such); else cut it.
                let to = word(id, 2) as usize;
                if to != 0 {
                    let target = strip(&all, types, to, &kind_of);
                    let is_root =
                        kind_of(target) == KIND_STRUCT && names.contains(&name_of(target));
                    if is_root {
                        todo.push(to);
                    } else {
                        fwd.insert(id, ());
                    }
                }
            }
            _ => {}
        }
    }
    // New ids, in old order; each cut pointer gets a FWD of its target's name.
    let mut new_id: HashMap<usize, u32> = HashMap::new();
    let mut next = 1u32;
    for &id in keep.keys() {
        new_id.insert(id, next);
        next += 1;
    }
    let mut out_types: Vec<u8> = Vec::new();
    let mut out_strs: Vec<u8> = vec![0];
    let mut str_map: HashMap<u32, u32> = HashMap::new();
    let mut add_str = |o: u32, out_strs: &mut Vec<u8>| -> u32 {
        if o == 0 {
            return 0;
        }
        *str_map.entry(o).or_insert_with(|| {
            let s = &strs[o as usize..];
            let end = s.iter().position(|&b| b == 0).unwrap_or(0);
            let at = out_strs.len() as u32;
            out_strs.extend_from_slice(&s[..end]);
            out_strs.push(0);
            at
        })
    };
    let mut fwds: Vec<(u32, bool)> = Vec::new();
    let remap = |old: u32, new_id: &HashMap<usize, u32>| -> u32 {
        if old == 0 {
            0
        } else {
            new_id.get(&(old as usize)).copied().unwrap_or(0)
        }
    };
    for &id in keep.keys() {
        let t = &all[id];
        let mut rec: Vec<u32> = types[t.off..t.off + t.len]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        rec[0] = add_str(rec[0], &mut out_strs);
        match kind_of(id) {
            KIND_STRUCT | KIND_UNION => {
                for m in 0..vlen_of(id) {
                    rec[3 + 3 * m] = add_str(rec[3 + 3 * m], &mut out_strs);
                    rec[3 + 3 * m + 1] = remap(rec[3 + 3 * m + 1], &new_id);
                }
            }
            KIND_ARRAY => {
                rec[3] = remap(rec[3], &new_id);
                rec[4] = remap(rec[4], &new_id);
            }
            KIND_PTR if fwd.contains_key(&id) => {
                let target = strip(&all, types, word(id, 2) as usize, &kind_of);
                let tname = word(target, 0);
                let union = kind_of(target) == KIND_UNION;
                let n = add_str(tname, &mut out_strs);
                fwds.push((n, union));
                rec[2] = next + fwds.len() as u32 - 1;
            }
            KIND_PTR | KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT
            | KIND_TYPE_TAG => {
                rec[2] = remap(rec[2], &new_id);
            }
            KIND_ENUM | KIND_ENUM64 => {
                let step = if kind_of(id) == KIND_ENUM { 2 } else { 3 };
                for m in 0..vlen_of(id) {
                    rec[3 + step * m] = add_str(rec[3 + step * m], &mut out_strs);
                }
            }
            _ => {}
        }
        for w in rec {
            out_types.extend_from_slice(&w.to_le_bytes());
        }
    }
    for (n, union) in fwds {
        for w in [n, info(KIND_FWD, 0, union), 0] {
            out_types.extend_from_slice(&w.to_le_bytes());
        }
    }
    Some(blob(&out_types, &out_strs))
}

/// Through typedefs and qualifiers.
fn strip(all: &[Ty], types: &[u8], mut id: usize, kind_of: &dyn Fn(usize) -> u32) -> usize {
    for _ in 0..16 {
        if id == 0 || id >= all.len() {
            return 0;
        }
        match kind_of(id) {
            KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                let o = all[id].off + 8;
                id = u32::from_le_bytes(types[o..o + 4].try_into().unwrap()) as usize;
            }
            _ => return id,
        }
    }
    id
}

/// The structs `offsets_from_btf` resolves.
pub const WALKER_STRUCTS: &[&str] = &[
    "idr",
    "xarray",
    "xa_node",
    "bpf_map",
    "btf",
    "bpf_array",
    "bpf_htab",
    "bucket",
    "htab_elem",
    "vm_struct",
    "bpf_arena",
    "bpf_struct_ops_map",
    "bpf_struct_ops_value",
    "bpf_struct_ops_common_value",
    "bpf_struct_ops_link",
    "bpf_prog",
    "bpf_prog_aux",
    "hlist_nulls_node",
    "hlist_nulls_head",
];

/// An ELF64 file with a `.BTF` section (and a `.shstrtab`).
pub fn elf_with_btf(btf: &[u8]) -> Vec<u8> {
    let shstrtab = b"\0.shstrtab\0.BTF\0";
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    f[62..64].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx
    let str_at = f.len() as u64;
    f.extend_from_slice(shstrtab);
    while f.len() % 8 != 0 {
        f.push(0);
    }
    let btf_at = f.len() as u64;
    f.extend_from_slice(btf);
    while f.len() % 8 != 0 {
        f.push(0);
    }
    let shoff = f.len() as u64;
    f[40..48].copy_from_slice(&shoff.to_le_bytes());
    let shdr = |name: u32, ty: u32, off: u64, size: u64| {
        let mut s = vec![0u8; 64];
        s[0..4].copy_from_slice(&name.to_le_bytes());
        s[4..8].copy_from_slice(&ty.to_le_bytes());
        s[24..32].copy_from_slice(&off.to_le_bytes());
        s[32..40].copy_from_slice(&size.to_le_bytes());
        s
    };
    f.extend(shdr(0, 0, 0, 0));
    f.extend(shdr(1, 3, str_at, shstrtab.len() as u64));
    f.extend(shdr(11, 1, btf_at, btf.len() as u64));
    f
}
