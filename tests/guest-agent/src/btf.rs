//! The BTF object the agent loads with `BPF_BTF_LOAD` for its maps with BTF:
//! raw BTF as `include/uapi/linux/btf.h` defines it (header, type section,
//! string section; little-endian), built here so that the host can rebuild the
//! same bytes and compare them with what the kernel hands back.
//!
//! The types, by id (0 is `void`):
//!
//! | id | kind    | what                                                    |
//! |----|---------|---------------------------------------------------------|
//! |  1 | INT     | `unsigned int`, 4 bytes                                 |
//! |  2 | INT     | `int`, 4 bytes, signed                                  |
//! |  3 | INT     | `unsigned short`, 2 bytes                               |
//! |  4 | INT     | `unsigned char`, 1 byte                                 |
//! |  5 | INT     | `long long unsigned int`, 8 bytes                       |
//! |  6 | INT     | `char`, 1 byte, signed                                  |
//! |  7 | TYPEDEF | `__u8` -> 4                                             |
//! |  8 | TYPEDEF | `__u16` -> 3                                            |
//! |  9 | TYPEDEF | `__u32` -> 1                                            |
//! | 10 | TYPEDEF | `__s32` -> 2                                            |
//! | 11 | TYPEDEF | `__u64` -> 5                                            |
//! | 12 | ARRAY   | `__u8[2]` (index type 1)                                |
//! | 13 | STRUCT  | `struct bk`, 8 bytes ([`BK_TYPE_ID`])                   |
//! | 14 | ENUM    | `enum state { IDLE = 0, BUSY = 1, DONE = 7 }`, 4 bytes  |
//! | 15 | ARRAY   | `char[4]` (index type 1)                                |
//! | 16 | STRUCT  | `struct bv`, 24 bytes, kind_flag 1 ([`BV_TYPE_ID`])     |
//!
//! ```c
//! struct bk {                 /* 8 bytes */
//!     __u32 pid;              /* byte 0 */
//!     __u16 port;             /* byte 4 */
//!     __u8 tag[2];            /* byte 6 */
//! };
//! struct bv {                 /* 24 bytes */
//!     __u64 count;            /* byte 0 */
//!     __s32 delta;            /* byte 8 */
//!     enum state state;       /* byte 12 */
//!     unsigned int flags:3;   /* bits 128..131: byte 16, bits 0-2 */
//!     unsigned int level:5;   /* bits 131..136: byte 16, bits 3-7 */
//!     char name[4];           /* byte 20 */
//! };
//! ```
//!
//! The kernel checks all of it (`btf_parse()`, kernel/bpf/btf.c, v6.1..v6.18):
//! the string section starts and ends with NUL, sections are contiguous, names
//! of typedefs, structs, members and enumerators are C identifiers, arrays are
//! anonymous with a regular int index type, bitfields need `kind_flag` on their
//! struct, and a map's key and value types must be exactly its key and value
//! sizes (`map_check_btf()`, kernel/bpf/syscall.c).

use zerocopy::little_endian::{I32, U16, U32};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// `BTF_MAGIC`.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// `BTF_VERSION`.
pub const BTF_VERSION: u8 = 1;

/// `BTF_KIND_INT`
pub const BTF_KIND_INT: u32 = 1;
/// `BTF_KIND_ARRAY`
pub const BTF_KIND_ARRAY: u32 = 3;
/// `BTF_KIND_STRUCT`
pub const BTF_KIND_STRUCT: u32 = 4;
/// `BTF_KIND_ENUM`
pub const BTF_KIND_ENUM: u32 = 6;
/// `BTF_KIND_TYPEDEF`
pub const BTF_KIND_TYPEDEF: u32 = 8;

/// `BTF_INT_SIGNED`: encoding bit of a signed int.
pub const BTF_INT_SIGNED: u32 = 1 << 0;

/// `struct bk`, the key type of the map with BTF.
pub const BK_TYPE_ID: u32 = 13;
/// `struct bv`, the value type of the map with BTF.
pub const BV_TYPE_ID: u32 = 16;
/// `sizeof(struct bk)`.
pub const BK_SIZE: u32 = 8;
/// `sizeof(struct bv)`.
pub const BV_SIZE: u32 = 24;

/// `struct btf_header`.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct BtfHeader {
    magic: U16,
    version: u8,
    flags: u8,
    hdr_len: U32,
    /// Offsets are from the end of the header.
    type_off: U32,
    type_len: U32,
    str_off: U32,
    str_len: U32,
}

/// `struct btf_type`; `size_or_type` is the union of `size` and `type`.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct BtfType {
    name_off: U32,
    /// Bits 0-15 `vlen`, 24-28 `kind`, 31 `kind_flag`.
    info: U32,
    size_or_type: U32,
}

/// `struct btf_array`.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct BtfArray {
    r#type: U32,
    index_type: U32,
    nelems: U32,
}

/// `struct btf_member`.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct BtfMember {
    name_off: U32,
    r#type: U32,
    /// Bit offset; with `kind_flag`, `bitfield_size << 24 | bit_offset`.
    offset: U32,
}

/// `struct btf_enum`.
#[derive(IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
struct BtfEnum {
    name_off: U32,
    val: I32,
}

/// `BTF_INFO_ENC(kind, kind_flag, vlen)`.
const fn btf_info(kind: u32, kind_flag: bool, vlen: u16) -> u32 {
    (kind_flag as u32) << 31 | (kind & 0x1f) << 24 | vlen as u32
}

/// `BTF_INT_ENC(encoding, offset, bits)`.
const fn btf_int_enc(encoding: u32, offset: u32, bits: u32) -> u32 {
    encoding << 24 | offset << 16 | bits
}

/// A struct or union member: name, type id, bit offset, bitfield size (0: not
/// a bitfield).
struct Member<'a>(&'a str, u32, u32, u32);

/// Appends types and strings; type ids count from 1 in the order added.
struct Builder {
    types: Vec<u8>,
    strs: Vec<u8>,
    last_id: u32,
}

impl Builder {
    fn new() -> Self {
        Self {
            types: Vec::new(),
            // Offset 0 is the empty name.
            strs: vec![0],
            last_id: 0,
        }
    }

    /// The offset of `s` in the string section, added if new.
    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let mut at = 0;
        for z in self.strs.split(|&b| b == 0) {
            if z == s.as_bytes() {
                return u32::try_from(at).unwrap_or(u32::MAX);
            }
            at += z.len() + 1;
        }
        let off = u32::try_from(self.strs.len()).unwrap_or(u32::MAX);
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        off
    }

    fn push_type(&mut self, name: &str, info: u32, size_or_type: u32) -> u32 {
        let t = BtfType {
            name_off: U32::new(self.name(name)),
            info: U32::new(info),
            size_or_type: U32::new(size_or_type),
        };
        self.types.extend_from_slice(t.as_bytes());
        self.last_id += 1;
        self.last_id
    }

    fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        let id = self.push_type(name, btf_info(BTF_KIND_INT, false, 0), size);
        let enc = U32::new(btf_int_enc(encoding, 0, size * 8));
        self.types.extend_from_slice(enc.as_bytes());
        id
    }

    fn typedef(&mut self, name: &str, ty: u32) -> u32 {
        self.push_type(name, btf_info(BTF_KIND_TYPEDEF, false, 0), ty)
    }

    fn array(&mut self, elem: u32, index_type: u32, nelems: u32) -> u32 {
        let id = self.push_type("", btf_info(BTF_KIND_ARRAY, false, 0), 0);
        let a = BtfArray {
            r#type: U32::new(elem),
            index_type: U32::new(index_type),
            nelems: U32::new(nelems),
        };
        self.types.extend_from_slice(a.as_bytes());
        id
    }

    /// A struct; `kind_flag` is set when any member is a bitfield.
    fn strukt(&mut self, name: &str, size: u32, members: &[Member<'_>]) -> u32 {
        let kind_flag = members.iter().any(|m| m.3 != 0);
        let vlen = u16::try_from(members.len()).unwrap_or(u16::MAX);
        let id = self.push_type(name, btf_info(BTF_KIND_STRUCT, kind_flag, vlen), size);
        for &Member(mname, ty, bit_offset, bitfield_size) in members {
            let m = BtfMember {
                name_off: U32::new(self.name(mname)),
                r#type: U32::new(ty),
                offset: U32::new(bitfield_size << 24 | bit_offset),
            };
            self.types.extend_from_slice(m.as_bytes());
        }
        id
    }

    fn enumeration(&mut self, name: &str, size: u32, values: &[(&str, i32)]) -> u32 {
        let vlen = u16::try_from(values.len()).unwrap_or(u16::MAX);
        let id = self.push_type(name, btf_info(BTF_KIND_ENUM, false, vlen), size);
        for &(vname, val) in values {
            let e = BtfEnum {
                name_off: U32::new(self.name(vname)),
                val: I32::new(val),
            };
            self.types.extend_from_slice(e.as_bytes());
        }
        id
    }

    /// Header, types, strings: no gaps (`btf_check_sec_info()` rejects them).
    fn finish(self) -> Vec<u8> {
        let hdr_len = u32::try_from(std::mem::size_of::<BtfHeader>()).unwrap_or(0);
        let type_len = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
        let str_len = u32::try_from(self.strs.len()).unwrap_or(u32::MAX);
        let h = BtfHeader {
            magic: U16::new(BTF_MAGIC),
            version: BTF_VERSION,
            flags: 0,
            hdr_len: U32::new(hdr_len),
            type_off: U32::new(0),
            type_len: U32::new(type_len),
            str_off: U32::new(type_len),
            str_len: U32::new(str_len),
        };
        let mut out = Vec::with_capacity(self.types.len() + self.strs.len() + 24);
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strs);
        out
    }
}

/// The raw BTF the agent loads; the table in the module docs lists its types.
pub fn blob() -> Vec<u8> {
    let mut b = Builder::new();
    let uint = b.int("unsigned int", 4, 0);
    let int = b.int("int", 4, BTF_INT_SIGNED);
    let ushort = b.int("unsigned short", 2, 0);
    let uchar = b.int("unsigned char", 1, 0);
    let ullong = b.int("long long unsigned int", 8, 0);
    let schar = b.int("char", 1, BTF_INT_SIGNED);
    let u8_ = b.typedef("__u8", uchar);
    let u16_ = b.typedef("__u16", ushort);
    let u32_ = b.typedef("__u32", uint);
    let s32_ = b.typedef("__s32", int);
    let u64_ = b.typedef("__u64", ullong);
    let tag = b.array(u8_, uint, 2);
    let bk = b.strukt(
        "bk",
        BK_SIZE,
        &[
            Member("pid", u32_, 0, 0),
            Member("port", u16_, 32, 0),
            Member("tag", tag, 48, 0),
        ],
    );
    let state = b.enumeration("state", 4, &[("IDLE", 0), ("BUSY", 1), ("DONE", 7)]);
    let name = b.array(schar, uint, 4);
    let bv = b.strukt(
        "bv",
        BV_SIZE,
        &[
            Member("count", u64_, 0, 0),
            Member("delta", s32_, 64, 0),
            Member("state", state, 96, 0),
            Member("flags", uint, 128, 3),
            Member("level", uint, 131, 5),
            Member("name", name, 160, 0),
        ],
    );
    debug_assert_eq!((bk, bv), (BK_TYPE_ID, BV_TYPE_ID));
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use btf_rs::{Btf, BtfType, Type};

    #[test]
    fn header_and_sections() {
        let b = blob();
        assert_eq!(&b[..4], &[0x9f, 0xeb, 1, 0]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (u32_at(4), u32_at(8), u32_at(12), u32_at(16), u32_at(20));
        assert_eq!(hdr_len, 24);
        assert_eq!(type_off, 0);
        assert_eq!(str_off, type_len);
        assert_eq!((hdr_len + str_off + str_len) as usize, b.len());
        let strs = &b[(hdr_len + str_off) as usize..];
        assert_eq!(strs.first(), Some(&0));
        assert_eq!(strs.last(), Some(&0));
        // "state" names both the enum and a member: stored once.
        assert_eq!(strs.windows(6).filter(|w| w == b"state\0").count(), 1);
    }

    /// An independent parser reads back what the module docs promise.
    #[test]
    fn btf_rs_reads_the_promised_types() {
        let btf = Btf::from_bytes(&blob()).unwrap();
        let members = |id: u32| -> Vec<(String, u32, u32, Option<u32>)> {
            let Type::Struct(s) = btf.resolve_type_by_id(id).unwrap() else {
                panic!("type {id} is not a struct");
            };
            s.members
                .iter()
                .map(|m| {
                    (
                        btf.resolve_name(m).unwrap(),
                        m.get_type_id().unwrap(),
                        m.bit_offset(),
                        m.bitfield_size(),
                    )
                })
                .collect()
        };
        assert_eq!(btf.resolve_ids_by_name("bk").unwrap(), vec![BK_TYPE_ID]);
        assert_eq!(btf.resolve_ids_by_name("bv").unwrap(), vec![BV_TYPE_ID]);
        let Type::Struct(bk) = btf.resolve_type_by_id(BK_TYPE_ID).unwrap() else {
            panic!()
        };
        assert_eq!(bk.size(), BK_SIZE as usize);
        let Type::Struct(bv) = btf.resolve_type_by_id(BV_TYPE_ID).unwrap() else {
            panic!()
        };
        assert_eq!(bv.size(), BV_SIZE as usize);
        let s = |x: &str| x.to_string();
        assert_eq!(
            members(BK_TYPE_ID),
            vec![
                (s("pid"), 9, 0, None),
                (s("port"), 8, 32, None),
                (s("tag"), 12, 48, None)
            ]
        );
        assert_eq!(
            members(BV_TYPE_ID),
            vec![
                (s("count"), 11, 0, Some(0)),
                (s("delta"), 10, 64, Some(0)),
                (s("state"), 14, 96, Some(0)),
                (s("flags"), 1, 128, Some(3)),
                (s("level"), 1, 131, Some(5)),
                (s("name"), 15, 160, Some(0)),
            ]
        );
        let Type::Enum(e) = btf.resolve_type_by_id(14).unwrap() else {
            panic!()
        };
        let vals: Vec<(String, u32)> = e
            .members
            .iter()
            .map(|m| (btf.resolve_name(m).unwrap(), m.val()))
            .collect();
        assert_eq!(vals, vec![(s("IDLE"), 0), (s("BUSY"), 1), (s("DONE"), 7)]);
        for (id, name) in [(7, "__u8"), (9, "__u32"), (11, "__u64")] {
            let Type::Typedef(t) = btf.resolve_type_by_id(id).unwrap() else {
                panic!()
            };
            assert_eq!(btf.resolve_name(&t).unwrap(), name);
        }
        let Type::Array(a) = btf.resolve_type_by_id(15).unwrap() else {
            panic!()
        };
        assert_eq!((a.len(), a.get_type_id()), (4, Some(6)));
    }
}
