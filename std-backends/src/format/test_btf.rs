//! Raw BTF for tests, every kind: the unit tests here and
//! `tests/format_bpftool.rs` (which includes this file) build their blobs
//! with it. Type ids count from 1 in the order added.
#![allow(dead_code)]

pub const INT: u32 = 1;
pub const PTR: u32 = 2;
pub const ARRAY: u32 = 3;
pub const STRUCT: u32 = 4;
pub const UNION: u32 = 5;
pub const ENUM: u32 = 6;
pub const FWD: u32 = 7;
pub const TYPEDEF: u32 = 8;
pub const VOLATILE: u32 = 9;
pub const CONST: u32 = 10;
pub const RESTRICT: u32 = 11;
pub const FUNC: u32 = 12;
pub const FUNC_PROTO: u32 = 13;
pub const VAR: u32 = 14;
pub const DATASEC: u32 = 15;
pub const FLOAT: u32 = 16;
pub const DECL_TAG: u32 = 17;
pub const TYPE_TAG: u32 = 18;
pub const ENUM64: u32 = 19;

pub const SIGNED: u32 = 1;
pub const CHAR: u32 = 2;
pub const BOOL: u32 = 4;

/// A struct or union member: name, type, bit offset, bitfield size (0: none;
/// any non-zero one sets the struct's kind_flag).
pub type M<'a> = (&'a str, u32, u32, u32);

#[derive(Default, Clone)]
pub struct Btf {
    pub types: Vec<u8>,
    pub strs: Vec<u8>,
    pub next: u32,
}

fn push32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

impl Btf {
    pub fn new() -> Self {
        Btf {
            types: Vec::new(),
            strs: vec![0],
            next: 1,
        }
    }

    pub fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strs.len() as u32;
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        off
    }

    /// A `struct btf_type` with these fields; trailing records follow.
    pub fn raw(&mut self, name: &str, kind: u32, kflag: bool, vlen: u32, size_or_type: u32) -> u32 {
        let n = self.name(name);
        push32(&mut self.types, n);
        push32(
            &mut self.types,
            (u32::from(kflag) << 31) | (kind << 24) | vlen,
        );
        push32(&mut self.types, size_or_type);
        self.next += 1;
        self.next - 1
    }

    pub fn u32s(&mut self, xs: &[u32]) {
        for &x in xs {
            push32(&mut self.types, x);
        }
    }

    /// An int of `size` bytes, `bits` wide from bit `offset`.
    pub fn int_bits(&mut self, name: &str, size: u32, enc: u32, bits: u32, offset: u32) -> u32 {
        let id = self.raw(name, INT, false, 0, size);
        self.u32s(&[(enc << 24) | (offset << 16) | bits]);
        id
    }

    pub fn int(&mut self, name: &str, size: u32, enc: u32) -> u32 {
        self.int_bits(name, size, enc, size * 8, 0)
    }

    pub fn ptr(&mut self, to: u32) -> u32 {
        self.raw("", PTR, false, 0, to)
    }

    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.raw("", ARRAY, false, 0, 0);
        self.u32s(&[elem, index, n]);
        id
    }

    fn members(&mut self, name: &str, kind: u32, size: u32, ms: &[M<'_>]) -> u32 {
        let kflag = ms.iter().any(|m| m.3 != 0);
        let id = self.raw(name, kind, kflag, ms.len() as u32, size);
        for &(n, t, off, bits) in ms {
            let n = self.name(n);
            let off = if kflag { bits << 24 | off } else { off };
            self.u32s(&[n, t, off]);
        }
        id
    }

    pub fn strukt(&mut self, name: &str, size: u32, ms: &[M<'_>]) -> u32 {
        self.members(name, STRUCT, size, ms)
    }

    pub fn union(&mut self, name: &str, size: u32, ms: &[M<'_>]) -> u32 {
        self.members(name, UNION, size, ms)
    }

    pub fn enumeration(
        &mut self,
        name: &str,
        size: u32,
        signed: bool,
        vals: &[(&str, i32)],
    ) -> u32 {
        let id = self.raw(name, ENUM, signed, vals.len() as u32, size);
        for &(n, v) in vals {
            let n = self.name(n);
            self.u32s(&[n, v as u32]);
        }
        id
    }

    pub fn enum64(&mut self, name: &str, size: u32, signed: bool, vals: &[(&str, u64)]) -> u32 {
        let id = self.raw(name, ENUM64, signed, vals.len() as u32, size);
        for &(n, v) in vals {
            let n = self.name(n);
            self.u32s(&[n, v as u32, (v >> 32) as u32]);
        }
        id
    }

    pub fn fwd(&mut self, name: &str) -> u32 {
        self.raw(name, FWD, false, 0, 0)
    }

    pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.raw(name, TYPEDEF, false, 0, to)
    }

    pub fn volatile(&mut self, to: u32) -> u32 {
        self.raw("", VOLATILE, false, 0, to)
    }

    pub fn konst(&mut self, to: u32) -> u32 {
        self.raw("", CONST, false, 0, to)
    }

    pub fn restrict(&mut self, to: u32) -> u32 {
        self.raw("", RESTRICT, false, 0, to)
    }

    pub fn type_tag(&mut self, name: &str, to: u32) -> u32 {
        self.raw(name, TYPE_TAG, false, 0, to)
    }

    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.raw(name, FLOAT, false, 0, size)
    }

    pub fn func_proto(&mut self, ret: u32, params: &[u32]) -> u32 {
        let id = self.raw("", FUNC_PROTO, false, params.len() as u32, ret);
        for &p in params {
            self.u32s(&[0, p]);
        }
        id
    }

    pub fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.raw(name, FUNC, false, 1, proto)
    }

    /// A global variable (linkage 1).
    pub fn var(&mut self, name: &str, ty: u32) -> u32 {
        let id = self.raw(name, VAR, false, 0, ty);
        self.u32s(&[1]);
        id
    }

    /// Variables: (var type id, offset, size).
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.raw(name, DATASEC, false, vars.len() as u32, size);
        for &(t, off, sz) in vars {
            self.u32s(&[t, off, sz]);
        }
        id
    }

    pub fn decl_tag(&mut self, name: &str, to: u32, component: i32) -> u32 {
        let id = self.raw(name, DECL_TAG, false, 0, to);
        self.u32s(&[component as u32]);
        id
    }

    /// Header, types, strings.
    pub fn blob(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let tl = self.types.len() as u32;
        for v in [24, 0, tl, tl, self.strs.len() as u32] {
            push32(&mut out, v);
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strs);
        out
    }
}
