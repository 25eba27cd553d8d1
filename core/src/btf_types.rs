//! A reader of raw BTF (include/uapi/linux/btf.h, Documentation/bpf/btf.rst):
//! the header, the type section as a sequence of `struct btf_type` records with
//! their kind-specific trailers, and the string section.
//!
//! It exists to resolve a few dozen structure layouts out of a kernel's 4-6 MiB
//! of BTF quickly: one pass over the type section builds an id index (in a
//! buffer the caller owns), lookups then touch only the types they need.
//! Nothing is allocated; every length, offset and id is checked against the
//! blob, which comes from the machine being read and is hostile.

use crate::error::{Error, Location, Result};

/// `BTF_MAGIC`.
pub const BTF_MAGIC: u16 = 0xeb9f;

/// `sizeof(struct btf_header)`.
pub const BTF_HEADER_LEN: usize = 24;

/// `sizeof(struct btf_type)`.
const TYPE_LEN: usize = 12;

/// `KSYM_NAME_LEN` (512), the longest name `btf_name_valid_identifier()`
/// (kernel/bpf/btf.c) lets through, NUL included.
pub const BTF_MAX_NAME: usize = 512;

/// `BTF_MAX_TYPE` (include/uapi/linux/btf.h): type ids fit in 20 bits.
pub const BTF_MAX_TYPE: u32 = 0x000f_ffff;

/// `BTF_KIND_*`.
pub mod kind {
    pub const INT: u8 = 1;
    pub const PTR: u8 = 2;
    pub const ARRAY: u8 = 3;
    pub const STRUCT: u8 = 4;
    pub const UNION: u8 = 5;
    pub const ENUM: u8 = 6;
    pub const FWD: u8 = 7;
    pub const TYPEDEF: u8 = 8;
    pub const VOLATILE: u8 = 9;
    pub const CONST: u8 = 10;
    pub const RESTRICT: u8 = 11;
    pub const FUNC: u8 = 12;
    pub const FUNC_PROTO: u8 = 13;
    pub const VAR: u8 = 14;
    pub const DATASEC: u8 = 15;
    pub const FLOAT: u8 = 16;
    pub const DECL_TAG: u8 = 17;
    pub const TYPE_TAG: u8 = 18;
    pub const ENUM64: u8 = 19;
}

const WHAT: &str = "BTF";

fn bad(off: usize) -> Error {
    Error::Malformed {
        what: WHAT,
        at: Location::Offset(off as u64),
    }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *bytes.first()?,
        *bytes.get(1)?,
        *bytes.get(2)?,
        *bytes.get(3)?,
    ]))
}

/// Bytes of kind-specific data after a `struct btf_type` of `kind` with `vlen`
/// entries, or `None` for a kind this reader does not know.
pub const fn trailer_len(kind: u8, vlen: u16) -> Option<usize> {
    let n = vlen as usize;
    Some(match kind {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::PTR
        | kind::FWD
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::FLOAT
        | kind::TYPE_TAG => 0,
        kind::ARRAY => 12,
        // vlen < 2^16, so these cannot overflow.
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => n.wrapping_mul(12),
        kind::ENUM | kind::FUNC_PROTO => n.wrapping_mul(8),
        _ => return None,
    })
}

/// One `struct btf_type` and its trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfType<'a> {
    pub id: u32,
    pub kind: u8,
    pub kind_flag: bool,
    pub vlen: u16,
    pub name_off: u32,
    /// `size` (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT, ENUM64) or `type`
    /// (the others).
    pub size_or_type: u32,
    /// The kind-specific data.
    pub trailer: &'a [u8],
    /// Offset of the record in the type section.
    pub offset: usize,
}

/// One member of a STRUCT or UNION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfMember {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Bitfield width, 0 for a plain member.
    pub bitfield_size: u32,
}

impl<'a> BtfType<'a> {
    /// The members of a STRUCT or UNION (empty for other kinds).
    pub fn members(&self) -> impl Iterator<Item = BtfMember> + 'a {
        let is_composite = self.kind == kind::STRUCT || self.kind == kind::UNION;
        let kind_flag = self.kind_flag;
        let t = if is_composite { self.trailer } else { &[] };
        t.chunks_exact(12).filter_map(move |m| {
            let off = u32_at(m, 8)?;
            let (bit_offset, bitfield_size) = if kind_flag {
                (off & 0x00ff_ffff, off >> 24)
            } else {
                (off, 0)
            };
            Some(BtfMember {
                name_off: u32_at(m, 0)?,
                type_id: u32_at(m, 4)?,
                bit_offset,
                bitfield_size,
            })
        })
    }

    /// An ARRAY's `(element type, nelems)`.
    pub fn array(&self) -> Option<(u32, u32)> {
        (self.kind == kind::ARRAY)
            .then(|| Some((u32_at(self.trailer, 0)?, u32_at(self.trailer, 8)?)))?
    }
}

/// A checked BTF blob.
#[derive(Clone, Copy, Debug)]
pub struct BtfTypes<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset of the type section in the blob, for errors.
    types_at: usize,
    /// The first type id in this blob (1; split BTF continues its base).
    first_id: u32,
}

impl<'a> BtfTypes<'a> {
    /// Check the header of `blob` (little-endian, version 1, sections inside
    /// the blob, a string section that starts and ends with NUL).
    pub fn new(blob: &'a [u8]) -> Result<Self> {
        let field = |off| u32_at(blob, off).ok_or(bad(off));
        let magic = blob
            .get(..2)
            .map(|m| {
                u16::from_le_bytes([
                    m.first().copied().unwrap_or(0),
                    m.get(1).copied().unwrap_or(0),
                ])
            })
            .ok_or(bad(0))?;
        if magic != BTF_MAGIC {
            return Err(if magic == BTF_MAGIC.swap_bytes() {
                Error::unsupported("big-endian BTF", Location::Offset(0))
            } else {
                bad(0)
            });
        }
        if blob.get(2) != Some(&1) || blob.get(3) != Some(&0) {
            return Err(bad(2));
        }
        let hdr_len = field(4)? as usize;
        if hdr_len < BTF_HEADER_LEN {
            return Err(bad(4));
        }
        let section = |off_at: usize, len_at: usize| -> Result<(usize, &'a [u8])> {
            let start = hdr_len
                .checked_add(field(off_at)? as usize)
                .ok_or(bad(off_at))?;
            let end = start
                .checked_add(field(len_at)? as usize)
                .ok_or(bad(len_at))?;
            Ok((start, blob.get(start..end).ok_or(bad(off_at))?))
        };
        let (types_at, types) = section(8, 12)?;
        let (_, strings) = section(16, 20)?;
        if strings.first() != Some(&0) || strings.last() != Some(&0) {
            return Err(bad(16));
        }
        Ok(BtfTypes {
            types,
            strings,
            types_at,
            first_id: 1,
        })
    }

    /// The NUL-terminated string at `off` of the string section, without its
    /// NUL; `None` if `off` is outside it or the string is longer than any
    /// name the kernel accepts ([`BTF_MAX_NAME`]): a search for a NUL that
    /// never comes must not cost the rest of the section on every lookup.
    pub fn name(&self, off: u32) -> Option<&'a [u8]> {
        let rest = self.strings.get(off as usize..)?;
        let window = rest.get(..rest.len().min(BTF_MAX_NAME.saturating_add(1)))?;
        let end = memchr::memchr(0, window)?;
        rest.get(..end)
    }

    /// The type record at `offset` of the type section, as id `id`.
    pub fn type_at(&self, offset: usize, id: u32) -> Result<BtfType<'a>> {
        let err = bad(self.types_at.saturating_add(offset));
        let head = self
            .types
            .get(offset..offset.checked_add(TYPE_LEN).ok_or(err)?)
            .ok_or(err)?;
        let name_off = u32_at(head, 0).ok_or(err)?;
        let info = u32_at(head, 4).ok_or(err)?;
        let size_or_type = u32_at(head, 8).ok_or(err)?;
        let kind = ((info >> 24) & 0x1f) as u8;
        let vlen = (info & 0xffff) as u16;
        let len = trailer_len(kind, vlen).ok_or(err)?;
        let start = offset.checked_add(TYPE_LEN).ok_or(err)?;
        let trailer = self
            .types
            .get(start..start.checked_add(len).ok_or(err)?)
            .ok_or(err)?;
        Ok(BtfType {
            id,
            kind,
            kind_flag: info >> 31 != 0,
            vlen,
            name_off,
            size_or_type,
            trailer,
            offset,
        })
    }

    /// Every type, in id order. Fused: stops for good at the first malformed
    /// record (which it yields as an error).
    pub fn iter(&self) -> TypeIter<'a> {
        TypeIter {
            btf: *self,
            offset: 0,
            id: self.first_id,
            done: false,
        }
    }

    /// Fill `index[i]` with the type-section offset of type id `first_id + i`,
    /// for every type; returns how many there are. Fails if `index` is too
    /// short (a caller sizes it by the blob: at most `type_len / 12` types).
    pub fn build_index(&self, index: &mut [u32]) -> Result<usize> {
        let mut n = 0usize;
        for t in self.iter() {
            let t = t?;
            let slot =
                index
                    .get_mut(n)
                    .ok_or(Error::limit("BTF types", Location::None, n as u64))?;
            *slot = u32::try_from(t.offset).map_err(|_| bad(t.offset))?;
            n = n.saturating_add(1);
        }
        Ok(n)
    }

    /// The most types a blob of this size can hold.
    pub fn max_types(&self) -> usize {
        self.types.len() / TYPE_LEN
    }

    /// Type `id` through an index made by [`BtfTypes::build_index`].
    pub fn by_id(&self, index: &[u32], id: u32) -> Result<BtfType<'a>> {
        let i = id
            .checked_sub(self.first_id)
            .and_then(|i| index.get(i as usize))
            .ok_or(Error::malformed(
                "BTF type id",
                Location::Offset(u64::from(id)),
            ))?;
        self.type_at(*i as usize, id)
    }
}

/// See [`BtfTypes::iter`].
pub struct TypeIter<'a> {
    btf: BtfTypes<'a>,
    offset: usize,
    id: u32,
    done: bool,
}

impl<'a> Iterator for TypeIter<'a> {
    type Item = Result<BtfType<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.btf.types.len() {
            self.done = true;
            return None;
        }
        if self.id > BTF_MAX_TYPE {
            self.done = true;
            return Some(Err(Error::limit(
                "BTF types",
                Location::None,
                u64::from(BTF_MAX_TYPE),
            )));
        }
        match self.btf.type_at(self.offset, self.id) {
            Ok(t) => {
                self.offset = self
                    .offset
                    .saturating_add(TYPE_LEN)
                    .saturating_add(t.trailer.len());
                self.id = self.id.saturating_add(1);
                Some(Ok(t))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for TypeIter<'_> {}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    /// A blob builder: types as (name, info, size_or_type, trailer words).
    pub(crate) fn blob(strings: &[u8], types: &[(u32, u32, u32, &[u32])]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, info, st, tr) in types {
            for v in [*name, *info, *st].iter().chain(tr.iter()) {
                t.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    fn info(kind: u8, vlen: u16, kind_flag: bool) -> u32 {
        (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | u32::from(vlen)
    }

    #[test]
    fn reads_types_members_and_names() {
        // 1: int; 2: struct s { int a; int b:3; } with kind_flag; 3: int[4]
        let strings = b"\0int\0s\0a\0b\0";
        let b = blob(
            strings,
            &[
                (1, info(kind::INT, 0, false), 4, &[32]),
                (
                    5,
                    info(kind::STRUCT, 2, true),
                    8,
                    &[7, 1, 0, 9, 1, (3 << 24) | 32],
                ),
                (0, info(kind::ARRAY, 0, false), 0, &[1, 1, 4]),
            ],
        );
        let btf = BtfTypes::new(&b).unwrap();
        let all: Vec<_> = btf.iter().map(|t| t.unwrap()).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(btf.name(all[1].name_off), Some(&b"s"[..]));
        let m: Vec<_> = all[1].members().collect();
        assert_eq!(m[1].bit_offset, 32);
        assert_eq!(m[1].bitfield_size, 3);
        assert_eq!(all[2].array(), Some((1, 4)));
        let mut index = [0u32; 8];
        assert_eq!(btf.build_index(&mut index), Ok(3));
        assert_eq!(btf.by_id(&index, 2).unwrap().kind, kind::STRUCT);
        assert!(btf.by_id(&index, 0).is_err());
        assert!(btf.build_index(&mut [0u32; 2]).is_err());
    }

    #[test]
    fn string_section_without_nuls_costs_one_name_per_lookup() {
        // Regression: a string section of no NULs made every name lookup
        // search the whole section (hostile suite: btf_string_section_is_garbage).
        let mut strings = std::vec![0u8];
        strings.extend(core::iter::repeat_n(b'a', 100_000));
        strings.push(0);
        let b = blob(&strings, &[(1, info(kind::STRUCT, 0, false), 4, &[])]);
        let btf = BtfTypes::new(&b).unwrap();
        assert_eq!(btf.name(1), None);
        assert_eq!(btf.name(100_001 - 10), Some(&[b'a'; 10][..]));
    }

    #[test]
    fn hostile_blobs_are_errors() {
        let strings = b"\0x\0";
        let good = blob(strings, &[(1, info(kind::INT, 0, false), 4, &[32])]);
        assert!(BtfTypes::new(&good).is_ok());
        for (at, v) in [
            (0usize, 0u8),
            (2, 2),
            (3, 1),
            (4, 3),
            (12, 0xff),
            (20, 0xff),
        ] {
            let mut b = good.clone();
            b[at] = v;
            assert!(BtfTypes::new(&b).is_err(), "byte {at} = {v}");
        }
        assert!(BtfTypes::new(&good[..10]).is_err());
        // An unknown kind, and a struct whose vlen runs past the section.
        let b = blob(strings, &[(1, info(31, 0, false), 4, &[])]);
        assert!(BtfTypes::new(&b).unwrap().iter().any(|t| t.is_err()));
        let b = blob(strings, &[(1, info(kind::STRUCT, 500, false), 4, &[])]);
        let btf = BtfTypes::new(&b).unwrap();
        let mut it = btf.iter();
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(btf) = BtfTypes::new(&bytes) {
                let mut index = [0u32; 64];
                let _ = btf.build_index(&mut index);
                for t in btf.iter().take(100).flatten() {
                    let _ = btf.name(t.name_off);
                    let _ = t.members().count();
                    let _ = t.array();
                }
            }
        }
    }
}
