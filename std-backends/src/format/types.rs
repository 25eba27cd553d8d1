//! The type section of a raw BTF blob (include/uapi/linux/btf.h), read in
//! place: one offset per type id, records decoded when asked for. Nothing
//! here trusts the blob: every record, trailing array and name offset is
//! checked against the section it must lie in.

use std::borrow::Cow;

use super::FormatError;
use crate::btf::check_btf_header;

pub(super) const BTF_KIND_UNKN: u32 = 0;
pub(super) const BTF_KIND_INT: u32 = 1;
pub(super) const BTF_KIND_PTR: u32 = 2;
pub(super) const BTF_KIND_ARRAY: u32 = 3;
pub(super) const BTF_KIND_STRUCT: u32 = 4;
pub(super) const BTF_KIND_UNION: u32 = 5;
pub(super) const BTF_KIND_ENUM: u32 = 6;
pub(super) const BTF_KIND_FWD: u32 = 7;
pub(super) const BTF_KIND_TYPEDEF: u32 = 8;
pub(super) const BTF_KIND_VOLATILE: u32 = 9;
pub(super) const BTF_KIND_CONST: u32 = 10;
pub(super) const BTF_KIND_RESTRICT: u32 = 11;
pub(super) const BTF_KIND_FUNC: u32 = 12;
pub(super) const BTF_KIND_FUNC_PROTO: u32 = 13;
pub(super) const BTF_KIND_VAR: u32 = 14;
pub(super) const BTF_KIND_DATASEC: u32 = 15;
pub(super) const BTF_KIND_FLOAT: u32 = 16;
pub(super) const BTF_KIND_DECL_TAG: u32 = 17;
pub(super) const BTF_KIND_TYPE_TAG: u32 = 18;
pub(super) const BTF_KIND_ENUM64: u32 = 19;

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL`.
pub(super) const BTF_INT_SIGNED: u32 = 1;
pub(super) const BTF_INT_CHAR: u32 = 2;
pub(super) const BTF_INT_BOOL: u32 = 4;

/// `KSYM_NAME_LEN` (include/linux/kallsyms.h, v6.1+): the kernel refuses
/// BTF names this long or longer (`btf_name_valid_identifier()`).
const KSYM_NAME_LEN: usize = 512;

/// `sizeof(struct btf_type)`.
const BTF_TYPE_LEN: usize = 12;

/// The kind's name as bpftool's `btf dump` spells it, lower case.
pub(super) fn kind_name(kind: u32) -> &'static str {
    match kind {
        BTF_KIND_UNKN => "void",
        BTF_KIND_INT => "int",
        BTF_KIND_PTR => "ptr",
        BTF_KIND_ARRAY => "array",
        BTF_KIND_STRUCT => "struct",
        BTF_KIND_UNION => "union",
        BTF_KIND_ENUM => "enum",
        BTF_KIND_FWD => "fwd",
        BTF_KIND_TYPEDEF => "typedef",
        BTF_KIND_VOLATILE => "volatile",
        BTF_KIND_CONST => "const",
        BTF_KIND_RESTRICT => "restrict",
        BTF_KIND_FUNC => "func",
        BTF_KIND_FUNC_PROTO => "func_proto",
        BTF_KIND_VAR => "var",
        BTF_KIND_DATASEC => "datasec",
        BTF_KIND_FLOAT => "float",
        BTF_KIND_DECL_TAG => "decl_tag",
        BTF_KIND_TYPE_TAG => "type_tag",
        BTF_KIND_ENUM64 => "enum64",
        _ => "unknown",
    }
}

/// Little-endian u32 at `at` in `b`, if it is there.
fn le32(b: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let s: [u8; 4] = b.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(s))
}

/// The parsed blob: the bytes, where each type starts, where the strings are.
#[derive(Debug, Clone)]
pub(super) struct Types {
    blob: Vec<u8>,
    /// `starts[id - 1]`: offset of type `id`'s `struct btf_type` in `blob`.
    starts: Vec<u32>,
    /// The string section, `blob[str_start..str_end]`.
    str_start: usize,
    str_end: usize,
    /// What libbpf's `btf_ptr_sz()` answers for this blob.
    pub(super) ptr_sz: u64,
}

/// One type: `struct btf_type` and its trailing records.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ty<'a> {
    pub(super) id: u32,
    pub(super) name_off: u32,
    info: u32,
    /// The `size`/`type` union.
    size_or_type: u32,
    /// Bytes after the `struct btf_type` that belong to it.
    extra: &'a [u8],
}

/// `struct btf_member`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BtfMember {
    pub(super) name_off: u32,
    pub(super) r#type: u32,
    pub(super) offset: u32,
}

/// `struct btf_var_secinfo`.
#[derive(Debug, Clone, Copy)]
pub(super) struct VarSecinfo {
    pub(super) r#type: u32,
    pub(super) offset: u32,
}

/// `struct btf_array`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BtfArray {
    pub(super) r#type: u32,
    pub(super) nelems: u32,
}

impl<'a> Ty<'a> {
    /// `void`, type id 0.
    const VOID: Ty<'static> = Ty {
        id: 0,
        name_off: 0,
        info: 0,
        size_or_type: 0,
        extra: &[],
    };

    /// `BTF_INFO_KIND()`.
    pub(super) fn kind(&self) -> u32 {
        (self.info >> 24) & 0x1f
    }

    /// `BTF_INFO_VLEN()`.
    pub(super) fn vlen(&self) -> u32 {
        self.info & 0xffff
    }

    /// `BTF_INFO_KFLAG()`.
    pub(super) fn kflag(&self) -> bool {
        self.info >> 31 == 1
    }

    /// `t->size`.
    pub(super) fn size(&self) -> u32 {
        self.size_or_type
    }

    /// `t->type`.
    pub(super) fn r#type(&self) -> u32 {
        self.size_or_type
    }

    /// The `__u32` after an INT.
    pub(super) fn int_data(&self) -> u32 {
        le32(self.extra, 0).unwrap_or(0)
    }

    /// `btf_is_mod()` (libbpf 1.1, btf.h): the qualifiers and type tags.
    pub(super) fn is_mod(&self) -> bool {
        matches!(
            self.kind(),
            BTF_KIND_VOLATILE | BTF_KIND_CONST | BTF_KIND_RESTRICT | BTF_KIND_TYPE_TAG
        )
    }

    /// `btf_type_is_void()` (libbpf btf.c): void, and FWD as well.
    pub(super) fn is_void(&self) -> bool {
        matches!(self.kind(), BTF_KIND_UNKN | BTF_KIND_FWD)
    }

    pub(super) fn array(&self) -> BtfArray {
        BtfArray {
            r#type: le32(self.extra, 0).unwrap_or(0),
            nelems: le32(self.extra, 8).unwrap_or(0),
        }
    }

    /// The `struct btf_member`s of a STRUCT or UNION.
    pub(super) fn members(&self) -> impl Iterator<Item = BtfMember> + 'a {
        self.extra.chunks_exact(12).map(|c| BtfMember {
            name_off: le32(c, 0).unwrap_or(0),
            r#type: le32(c, 4).unwrap_or(0),
            offset: le32(c, 8).unwrap_or(0),
        })
    }

    /// The `struct btf_enum`s of an ENUM: name and `val`.
    pub(super) fn enums(&self) -> impl Iterator<Item = (u32, i32)> + 'a {
        self.extra
            .chunks_exact(8)
            .map(|c| (le32(c, 0).unwrap_or(0), le32(c, 4).unwrap_or(0) as i32))
    }

    /// The `struct btf_enum64`s of an ENUM64: name, `val_lo32`, `val_hi32`.
    pub(super) fn enum64s(&self) -> impl Iterator<Item = (u32, u32, u32)> + 'a {
        self.extra.chunks_exact(12).map(|c| {
            (
                le32(c, 0).unwrap_or(0),
                le32(c, 4).unwrap_or(0),
                le32(c, 8).unwrap_or(0),
            )
        })
    }

    /// The `struct btf_var_secinfo`s of a DATASEC.
    pub(super) fn secinfos(&self) -> impl Iterator<Item = VarSecinfo> + 'a {
        self.extra.chunks_exact(12).map(|c| VarSecinfo {
            r#type: le32(c, 0).unwrap_or(0),
            offset: le32(c, 4).unwrap_or(0),
        })
    }
}

/// How many bytes follow a `struct btf_type` of `kind` with `vlen` entries
/// (`btf_type_size()`, libbpf btf.c); `None` for a kind that does not exist.
fn extra_len(kind: u32, vlen: u32) -> Option<usize> {
    let vlen = usize::try_from(vlen).ok()?;
    Some(match kind {
        BTF_KIND_INT | BTF_KIND_VAR | BTF_KIND_DECL_TAG => 4,
        BTF_KIND_PTR | BTF_KIND_FWD | BTF_KIND_TYPEDEF | BTF_KIND_VOLATILE | BTF_KIND_CONST
        | BTF_KIND_RESTRICT | BTF_KIND_FUNC | BTF_KIND_FLOAT | BTF_KIND_TYPE_TAG => 0,
        BTF_KIND_ARRAY => 12,
        BTF_KIND_STRUCT | BTF_KIND_UNION | BTF_KIND_DATASEC | BTF_KIND_ENUM64 => {
            vlen.checked_mul(12)?
        }
        BTF_KIND_ENUM | BTF_KIND_FUNC_PROTO => vlen.checked_mul(8)?,
        _ => return None,
    })
}

/// `long_aliases` in libbpf's `determine_ptr_size()` (btf.c, v1.1).
const LONG_ALIASES: [&str; 11] = [
    "long",
    "long int",
    "int long",
    "unsigned long",
    "long unsigned",
    "unsigned long int",
    "unsigned int long",
    "long unsigned int",
    "long int unsigned",
    "int unsigned long",
    "int long unsigned",
];

impl Types {
    /// Check the header (size cap, magic, sections inside the blob, string
    /// table) and index every type record.
    pub(super) fn parse(blob: &[u8]) -> Result<Types, FormatError> {
        check_btf_header(blob).map_err(FormatError::Header)?;
        let field = |at: usize| le32(blob, at).map_or(0, |v| v as usize);
        // check_btf_header() proved hdr_len + off + len <= blob.len() for both
        // sections, so these additions cannot overflow.
        let (hdr_len, type_off, type_len) = (field(4), field(8), field(12));
        let (str_off, str_len) = (field(16), field(20));
        let type_start = hdr_len.saturating_add(type_off);
        let type_end = type_start.saturating_add(type_len);
        let str_start = hdr_len.saturating_add(str_off);
        let str_end = str_start.saturating_add(str_len);
        let section = blob
            .get(type_start..type_end)
            .ok_or(FormatError::Malformed {
                type_id: 0,
                what: "type section outside the blob",
            })?;

        let mut starts = Vec::new();
        let mut at = 0usize;
        while at < section.len() {
            let id = u32::try_from(starts.len())
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or(FormatError::Malformed {
                    type_id: u32::MAX,
                    what: "more types than ids",
                })?;
            let bad = |what| move || FormatError::Malformed { type_id: id, what };
            let info = le32(section, at.saturating_add(4))
                .filter(|_| at.saturating_add(BTF_TYPE_LEN) <= section.len())
                .ok_or_else(bad("record runs past the type section"))?;
            let (kind, vlen) = ((info >> 24) & 0x1f, info & 0xffff);
            let extra = extra_len(kind, vlen).ok_or_else(bad("unknown kind"))?;
            let next = at
                .checked_add(BTF_TYPE_LEN)
                .and_then(|a| a.checked_add(extra))
                .filter(|&n| n <= section.len())
                .ok_or_else(bad("record runs past the type section"))?;
            let abs = type_start
                .checked_add(at)
                .and_then(|a| u32::try_from(a).ok())
                .ok_or_else(bad("record offset does not fit"))?;
            starts.push(abs);
            at = next;
        }
        let mut types = Types {
            blob: blob.to_vec(),
            starts,
            str_start,
            str_end,
            ptr_sz: 8,
        };
        types.ptr_sz = types.determine_ptr_size();
        Ok(types)
    }

    /// `btf__type_by_id()`: id 0 is void.
    pub(super) fn get(&self, id: u32) -> Result<Ty<'_>, FormatError> {
        if id == 0 {
            return Ok(Ty::VOID);
        }
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| self.starts.get(i.wrapping_sub(1)))
            .and_then(|&s| usize::try_from(s).ok())
            .ok_or(FormatError::NoSuchType { id })?;
        // Parse proved the record and its trailing bytes lie in the blob.
        let malformed = || FormatError::Malformed {
            type_id: id,
            what: "record outside the blob",
        };
        let name_off = le32(&self.blob, start).ok_or_else(malformed)?;
        let info = le32(&self.blob, start.saturating_add(4)).ok_or_else(malformed)?;
        let size_or_type = le32(&self.blob, start.saturating_add(8)).ok_or_else(malformed)?;
        let extra_start = start.saturating_add(BTF_TYPE_LEN);
        let len = extra_len((info >> 24) & 0x1f, info & 0xffff).ok_or_else(malformed)?;
        let extra = self
            .blob
            .get(extra_start..extra_start.saturating_add(len))
            .ok_or_else(malformed)?;
        Ok(Ty {
            id,
            name_off,
            info,
            size_or_type,
            extra,
        })
    }

    /// `btf__name_by_offset()`: the NUL-terminated string at `off` in the
    /// string section (lossy UTF-8: valid names are ASCII).
    pub(super) fn name(&self, type_id: u32, off: u32) -> Result<Cow<'_, str>, FormatError> {
        let bad = || FormatError::Malformed {
            type_id,
            what: "name offset outside the string section",
        };
        let start = usize::try_from(off)
            .ok()
            .and_then(|o| self.str_start.checked_add(o))
            .filter(|&s| s < self.str_end)
            .ok_or_else(bad)?;
        let rest = self.blob.get(start..self.str_end).ok_or_else(bad)?;
        let rest = rest.get(..KSYM_NAME_LEN).unwrap_or(rest);
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(FormatError::Malformed {
                type_id,
                what: "name of KSYM_NAME_LEN bytes or more",
            })?;
        Ok(String::from_utf8_lossy(rest.get(..len).unwrap_or_default()))
    }

    /// `determine_ptr_size()` (libbpf btf.c, v1.1): the size of the first INT
    /// of 4 or 8 bytes named like `long`; `btf_ptr_sz()` falls back to
    /// `sizeof(void *)`, 8 where bpftool runs.
    fn determine_ptr_size(&self) -> u64 {
        for idx in 0..self.starts.len() {
            let Some(id) = u32::try_from(idx).ok().and_then(|i| i.checked_add(1)) else {
                break;
            };
            let Ok(t) = self.get(id) else { continue };
            if t.kind() != BTF_KIND_INT || !matches!(t.size(), 4 | 8) {
                continue;
            }
            if let Ok(name) = self.name(id, t.name_off) {
                if LONG_ALIASES.contains(&name.as_ref()) {
                    return u64::from(t.size());
                }
            }
        }
        8
    }
}
