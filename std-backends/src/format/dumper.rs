//! `btf_dumper_type()` (tools/bpf/bpftool/btf_dumper.c, bpftool 7.1 / Linux
//! v6.1) with libbpf 1.1's `btf__resolve_type()` and `btf__resolve_size()`,
//! over hostile BTF and bytes: every read is bounds-checked, every chain and
//! recursion has a limit, and the output has a budget.
//!
//! bpftool's functions return an error code that makes every enclosing struct,
//! array and DATASEC stop after the member that failed; the ones here return
//! [`Flow::Stop`] for the errors bpftool still prints something for (its
//! `(unsupported-kind` and `(fwd-kind-invalid)` markers), so the tree shows
//! what bpftool shows. Errors where bpftool prints nothing at all, or would
//! read out of bounds or crash, become [`FormatError`]s: kernel-checked BTF
//! never has them.

use super::types::{
    Ty, Types, BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED, BTF_KIND_ARRAY, BTF_KIND_CONST,
    BTF_KIND_DATASEC, BTF_KIND_ENUM, BTF_KIND_ENUM64, BTF_KIND_FLOAT, BTF_KIND_INT, BTF_KIND_PTR,
    BTF_KIND_RESTRICT, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF, BTF_KIND_TYPE_TAG, BTF_KIND_UNION,
    BTF_KIND_UNKN, BTF_KIND_VAR, BTF_KIND_VOLATILE,
};
use super::{FormatError, Formatted, Limits, Marker};

/// `MAX_RESOLVE_DEPTH` (libbpf btf.c): links `btf__resolve_type()` and
/// `btf__resolve_size()` follow before they give up with `-EINVAL`.
const MAX_RESOLVE_DEPTH: u32 = 32;

/// Whether the enclosing dumps go on (bpftool's `ret == 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Go,
    Stop,
}

/// One dump of one key or value.
pub(super) struct Dumper<'a> {
    types: &'a Types,
    data: &'a [u8],
    limits: Limits,
    nodes: u64,
}

impl<'a> Dumper<'a> {
    pub(super) fn new(types: &'a Types, data: &'a [u8], limits: Limits) -> Self {
        Dumper {
            types,
            data,
            limits,
            nodes: 0,
        }
    }

    /// `btf_dumper_type(d, type_id, data)`.
    pub(super) fn dump(&mut self, type_id: u32) -> Result<(Formatted, Flow), FormatError> {
        self.do_type(type_id, 0, 0, 0)
    }

    /// Count one more output node against the budget.
    fn node(&mut self) -> Result<(), FormatError> {
        self.spend(1)
    }

    /// Enter a node at `depth` (0 for the root): fails past `max_depth`, else
    /// the depth of the nodes inside it. Every node of the tree goes through
    /// here, so it has at most `max_depth + 1` levels.
    fn nest(&self, depth: u32) -> Result<u32, FormatError> {
        if depth > self.limits.max_depth {
            return Err(FormatError::Limit {
                what: "nesting depth",
                limit: u64::from(self.limits.max_depth),
            });
        }
        Ok(depth.saturating_add(1))
    }

    /// Count `units` of work against the output budget: a node, 32 bytes of
    /// names or strings, 256 enumerators compared or string bytes scanned.
    /// Hostile BTF can make all of these large without making more nodes.
    fn spend(&mut self, units: u64) -> Result<(), FormatError> {
        self.nodes = self.nodes.saturating_add(units);
        if self.nodes > self.limits.max_nodes {
            return Err(FormatError::Limit {
                what: "output nodes",
                limit: self.limits.max_nodes,
            });
        }
        Ok(())
    }

    /// `len` bytes at `at`, all inside the data.
    fn bytes(&self, type_id: u32, at: u64, len: u64) -> Result<&'a [u8], FormatError> {
        let short = || FormatError::DataTooShort {
            type_id,
            offset: at,
            len,
            have: self.data.len() as u64,
        };
        let start = usize::try_from(at).map_err(|_| short())?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .ok_or_else(short)?;
        self.data.get(start..end).ok_or_else(short)
    }

    /// A little-endian unsigned int of `N` bytes at `at`.
    fn read<const N: usize>(&self, type_id: u32, at: u64) -> Result<[u8; N], FormatError> {
        let b = self.bytes(type_id, at, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// 8 bytes at `at` where bpftool reads a `__u64` or `unsigned long` past
    /// the end of a smaller type (ENUM64 of 1-4 bytes, pointers where libbpf
    /// thinks they are 4 bytes). The first `declared` bytes must be in the
    /// data; bytes past its end read as zero, where bpftool reads whatever
    /// follows its buffer.
    fn overread_u64(&self, type_id: u32, at: u64, declared: u64) -> Result<u64, FormatError> {
        self.bytes(type_id, at, declared.min(8))?;
        let mut out = [0u8; 8];
        let start = usize::try_from(at).unwrap_or(usize::MAX);
        let rest = self.data.get(start..).unwrap_or_default();
        for (o, b) in out.iter_mut().zip(rest) {
            *o = *b;
        }
        Ok(u64::from_le_bytes(out))
    }

    fn ty(&self, id: u32) -> Result<Ty<'a>, FormatError> {
        self.types.get(id)
    }

    /// The name at `off` in the string section, paid for.
    fn name(&mut self, type_id: u32, off: u32) -> Result<String, FormatError> {
        let name = self.types.name(type_id, off)?.into_owned();
        self.spend(name.len() as u64 / 32)?;
        Ok(name)
    }

    fn malformed(type_id: u32, what: &'static str) -> FormatError {
        FormatError::Malformed { type_id, what }
    }

    /// `btf_dumper_do_type()`.
    fn do_type(
        &mut self,
        type_id: u32,
        bit_offset: u8,
        at: u64,
        depth: u32,
    ) -> Result<(Formatted, Flow), FormatError> {
        let depth = self.nest(depth)?;
        let t = self.ty(type_id)?;
        self.node()?;
        let go = |f| Ok((f, Flow::Go));
        match t.kind() {
            BTF_KIND_INT => go(self.int(&t, bit_offset, at)?),
            BTF_KIND_STRUCT | BTF_KIND_UNION => self.strukt(&t, at, depth),
            BTF_KIND_ARRAY => self.array(&t, at, depth),
            BTF_KIND_ENUM => go(self.enumeration(&t, at)?),
            BTF_KIND_ENUM64 => go(self.enum64(&t, at)?),
            BTF_KIND_PTR => go(Formatted::Ptr(self.overread_u64(
                type_id,
                at,
                self.types.ptr_sz,
            )?)),
            BTF_KIND_UNKN => go(Formatted::Marker(Marker {
                type_id,
                kind: BTF_KIND_UNKN,
            })),
            BTF_KIND_TYPEDEF | BTF_KIND_VOLATILE | BTF_KIND_CONST | BTF_KIND_RESTRICT => {
                // btf_dumper_modifier(): the same bit offset, through the chain.
                let actual = self.resolve_type(type_id)?;
                self.do_type(actual, bit_offset, at, depth)
            }
            BTF_KIND_VAR => {
                let name = self.name(type_id, t.name_off)?;
                let (v, flow) = self.do_type(t.r#type(), bit_offset, at, depth)?;
                Ok((Formatted::Object(vec![(name, v)]), flow))
            }
            BTF_KIND_DATASEC => self.datasec(&t, at, depth),
            // FWD: "map key or value can't be forward".
            kind => Ok((Formatted::Marker(Marker { type_id, kind }), Flow::Stop)),
        }
    }

    /// `btf__resolve_type()` (libbpf 1.1): through typedefs, qualifiers, type
    /// tags and VARs, at most [`MAX_RESOLVE_DEPTH`] of them, to a type that is
    /// neither void nor FWD.
    fn resolve_type(&self, mut id: u32) -> Result<u32, FormatError> {
        let start = id;
        let mut t = self.ty(id)?;
        let mut depth = 0u32;
        while depth < MAX_RESOLVE_DEPTH
            && !t.is_void()
            && (t.is_mod() || matches!(t.kind(), BTF_KIND_TYPEDEF | BTF_KIND_VAR))
        {
            id = t.r#type();
            t = self.ty(id)?;
            depth = depth.saturating_add(1);
        }
        if depth == MAX_RESOLVE_DEPTH {
            return Err(FormatError::Limit {
                what: "typedef and qualifier links",
                limit: u64::from(MAX_RESOLVE_DEPTH),
            });
        }
        if t.is_void() {
            return Err(Self::malformed(start, "typedef or qualifier of void"));
        }
        Ok(id)
    }

    /// `btf__resolve_size()` (libbpf 1.1).
    fn resolve_size(&self, type_id: u32) -> Result<u64, FormatError> {
        let too_big = || Self::malformed(type_id, "array size does not fit 32 bits");
        let mut id = type_id;
        let mut nelems: u32 = 1;
        let mut size = None;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let t = self.ty(id)?;
            if t.is_void() {
                break;
            }
            match t.kind() {
                BTF_KIND_INT | BTF_KIND_STRUCT | BTF_KIND_UNION | BTF_KIND_ENUM
                | BTF_KIND_ENUM64 | BTF_KIND_DATASEC | BTF_KIND_FLOAT => {
                    size = Some(u64::from(t.size()));
                    break;
                }
                BTF_KIND_PTR => {
                    size = Some(self.types.ptr_sz);
                    break;
                }
                BTF_KIND_TYPEDEF
                | BTF_KIND_VOLATILE
                | BTF_KIND_CONST
                | BTF_KIND_RESTRICT
                | BTF_KIND_VAR
                | super::types::BTF_KIND_DECL_TAG
                | BTF_KIND_TYPE_TAG => {
                    id = t.r#type();
                }
                BTF_KIND_ARRAY => {
                    let a = t.array();
                    if u32::MAX
                        .checked_div(nelems)
                        .is_some_and(|max| a.nelems > max)
                    {
                        return Err(too_big());
                    }
                    nelems = nelems.wrapping_mul(a.nelems);
                    id = a.r#type;
                }
                _ => return Err(Self::malformed(type_id, "array of a type without a size")),
            }
        }
        let size = size.ok_or_else(|| Self::malformed(type_id, "array element has no size"))?;
        if u32::MAX
            .checked_div(nelems)
            .is_some_and(|max| size > u64::from(max))
        {
            return Err(too_big());
        }
        Ok(size.wrapping_mul(u64::from(nelems)))
    }

    /// `btf_dumper_int()`.
    fn int(&self, t: &Ty<'_>, bit_offset: u8, at: u64) -> Result<Formatted, FormatError> {
        let int_data = t.int_data();
        let nr_bits = int_data & 0xff;
        let int_offset = (int_data >> 16) & 0xff;
        if bit_offset != 0 || int_offset != 0 || nr_bits & 7 != 0 {
            return self.int_bits(t.id, int_data, bit_offset, at);
        }
        if nr_bits == 128 {
            let b = self.read::<16>(t.id, at)?;
            return Ok(Formatted::Hex(u128::from_le_bytes(b)));
        }
        let id = t.id;
        Ok(match (int_data >> 24) & 0x0f {
            0 => match nr_bits {
                64 => Formatted::Unsigned(u64::from_le_bytes(self.read(id, at)?)),
                32 => Formatted::Unsigned(u32::from_le_bytes(self.read(id, at)?).into()),
                16 => Formatted::Unsigned(u16::from_le_bytes(self.read(id, at)?).into()),
                8 => Formatted::Unsigned(self.read::<1>(id, at)?[0].into()),
                _ => return self.int_bits(id, int_data, bit_offset, at),
            },
            BTF_INT_SIGNED => match nr_bits {
                64 => Formatted::Signed(i64::from_le_bytes(self.read(id, at)?)),
                32 => Formatted::Signed(i32::from_le_bytes(self.read(id, at)?).into()),
                16 => Formatted::Signed(i16::from_le_bytes(self.read(id, at)?).into()),
                8 => Formatted::Signed(i8::from_le_bytes(self.read(id, at)?).into()),
                _ => return self.int_bits(id, int_data, bit_offset, at),
            },
            BTF_INT_CHAR => Formatted::Char(self.read::<1>(id, at)?[0]),
            // bpftool 7.1 looks at the first byte only: a 0 followed by
            // non-zero bytes prints false (newer sources read an `int`).
            BTF_INT_BOOL => Formatted::Bool(self.read::<1>(id, at)?[0] != 0),
            _ => return Err(Self::malformed(id, "int encoding")),
        })
    }

    /// `btf_dumper_int_bits()`.
    fn int_bits(
        &self,
        type_id: u32,
        int_data: u32,
        bit_offset: u8,
        at: u64,
    ) -> Result<Formatted, FormatError> {
        let total = u32::from(bit_offset).saturating_add((int_data >> 16) & 0xff);
        let at = at.saturating_add(u64::from(total >> 3));
        self.bitfield(type_id, int_data & 0xff, (total & 7) as u8, at)
    }

    /// `btf_dumper_bitfield()`: `nr_bits` bits from bit `bit_offset` of the
    /// byte at `at`, through `btf_int128_shift()` as x86-64 runs it: a shift
    /// by 64 is a shift by 0 there, so a bitfield that ends exactly at bit 128
    /// (`left_shift_bits == 0`) or is 128 bits wide (`right_shift_bits == 0`)
    /// ORs the two halves together. bpftool 7.1 prints that; so does this.
    fn bitfield(
        &self,
        type_id: u32,
        nr_bits: u32,
        bit_offset: u8,
        at: u64,
    ) -> Result<Formatted, FormatError> {
        let bits_to_copy = u32::from(bit_offset).saturating_add(nr_bits);
        if bits_to_copy > 128 {
            return Err(Self::malformed(type_id, "bitfield runs past 128 bits"));
        }
        let bytes = self.bytes(type_id, at, u64::from(bits_to_copy.div_ceil(8)))?;
        let mut num = [0u8; 16];
        for (n, b) in num.iter_mut().zip(bytes) {
            *n = *b;
        }
        let lower = u64::from_le_bytes(num[..8].try_into().unwrap_or_default());
        let upper = u64::from_le_bytes(num[8..].try_into().unwrap_or_default());
        // Both in 0..=128: bits_to_copy and nr_bits are at most 128.
        let left = 128u32.saturating_sub(bits_to_copy);
        let right = 128u32.saturating_sub(nr_bits);
        let (upper, lower) = int128_shift(upper, lower, left, right);
        Ok(Formatted::Hex(u128::from(upper) << 64 | u128::from(lower)))
    }

    /// `btf_dumper_enum()`: a signed read of 1, 2, 4 or 8 bytes, compared
    /// with each enumerator's signed 32-bit value; unnamed values print as
    /// signed numbers whatever the enum's signedness.
    fn enumeration(&mut self, t: &Ty<'_>, at: u64) -> Result<Formatted, FormatError> {
        let id = t.id;
        let value: i64 = match t.size() {
            8 => i64::from_le_bytes(self.read(id, at)?),
            4 => i32::from_le_bytes(self.read(id, at)?).into(),
            2 => i16::from_le_bytes(self.read(id, at)?).into(),
            1 => i8::from_le_bytes(self.read(id, at)?).into(),
            _ => return Err(Self::malformed(id, "enum size is not 1, 2, 4 or 8")),
        };
        self.spend(u64::from(t.vlen()) / 256)?;
        for (name_off, val) in t.enums() {
            if value == i64::from(val) {
                return Ok(Formatted::String(self.name(id, name_off)?));
            }
        }
        Ok(Formatted::Signed(value))
    }

    /// `btf_dumper_enum64()`: always an 8-byte read, whatever the size, and
    /// `jsonw_int()` for values no enumerator names.
    fn enum64(&mut self, t: &Ty<'_>, at: u64) -> Result<Formatted, FormatError> {
        let value = self.overread_u64(t.id, at, u64::from(t.size()))?;
        let (lo, hi) = (value as u32, (value >> 32) as u32);
        self.spend(u64::from(t.vlen()) / 256)?;
        for (name_off, val_lo32, val_hi32) in t.enum64s() {
            if lo == val_lo32 && hi == val_hi32 {
                return Ok(Formatted::String(self.name(t.id, name_off)?));
            }
        }
        Ok(Formatted::Signed(value as i64))
    }

    /// `btf_dumper_struct()`, for unions too.
    fn strukt(
        &mut self,
        t: &Ty<'a>,
        at: u64,
        depth: u32,
    ) -> Result<(Formatted, Flow), FormatError> {
        let mut members = Vec::new();
        let mut flow = Flow::Go;
        for m in t.members() {
            let (bit_offset, bitfield_size) = if t.kflag() {
                (m.offset & 0xff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            let name = self.name(t.id, m.name_off)?;
            let data_off = at.saturating_add(u64::from(bit_offset >> 3));
            let bits8 = (bit_offset & 7) as u8;
            let value = if bitfield_size != 0 {
                // Any member type: an enum bitfield prints as hex too.
                self.nest(depth)?;
                self.node()?;
                self.bitfield(t.id, bitfield_size, bits8, data_off)?
            } else {
                let (v, f) = self.do_type(m.r#type, bits8, data_off, depth)?;
                flow = f;
                v
            };
            members.push((name, value));
            if flow == Flow::Stop {
                break;
            }
        }
        Ok((Formatted::Object(members), flow))
    }

    /// `is_str_array()`: a non-empty array of 1-byte ints, through qualifiers
    /// but not typedefs, with `BTF_INT_CHAR` encoding or named `char`, whose
    /// bytes are printable ASCII up to a NUL.
    fn is_str_array(&mut self, elem: u32, nelems: u32, at: u64) -> Result<bool, FormatError> {
        if nelems == 0 {
            return Ok(false);
        }
        let Ok(mut t) = self.ty(elem) else {
            return Ok(false);
        };
        let mut links = 0u32;
        while t.is_mod() {
            links = links.saturating_add(1);
            if links > MAX_RESOLVE_DEPTH {
                return Err(FormatError::Limit {
                    what: "qualifier links",
                    limit: u64::from(MAX_RESOLVE_DEPTH),
                });
            }
            let Ok(next) = self.ty(t.r#type()) else {
                return Ok(false);
            };
            t = next;
        }
        if t.kind() != BTF_KIND_INT || t.size() != 1 {
            return Ok(false);
        }
        if (t.int_data() >> 24) & 0x0f != BTF_INT_CHAR
            && self.types.name(t.id, t.name_off)? != "char"
        {
            return Ok(false);
        }
        let mut is_str = false;
        let mut scanned = 0u64;
        for i in 0..u64::from(nelems) {
            scanned = i;
            // A signed char: bytes from 0x80 are negative, so below 0x1f.
            match self.read::<1>(elem, at.saturating_add(i))?[0] {
                0 => {
                    is_str = true;
                    break;
                }
                0x20..=0x7e => {}
                _ => break,
            }
        }
        self.spend(scanned / 256)?;
        Ok(is_str)
    }

    /// `btf_dumper_array()`.
    fn array(&mut self, t: &Ty<'a>, at: u64, depth: u32) -> Result<(Formatted, Flow), FormatError> {
        let a = t.array();
        if self.is_str_array(a.r#type, a.nelems, at)? {
            let start = usize::try_from(at).unwrap_or(usize::MAX);
            let s = self.data.get(start..).unwrap_or_default();
            let len = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            let text = String::from_utf8_lossy(s.get(..len).unwrap_or_default());
            self.spend(len as u64 / 32)?;
            return Ok((Formatted::String(text.into_owned()), Flow::Go));
        }
        let elem_size = self.resolve_size(a.r#type)?;
        let mut items = Vec::new();
        let mut flow = Flow::Go;
        for i in 0..u64::from(a.nelems) {
            // i < 2^32 and elem_size < 2^32: no overflow.
            let off = at.saturating_add(i.saturating_mul(elem_size));
            let (v, f) = self.do_type(a.r#type, 0, off, depth)?;
            items.push(v);
            flow = f;
            if flow == Flow::Stop {
                break;
            }
        }
        Ok((Formatted::Array(items), flow))
    }

    /// `btf_dumper_datasec()`: `{"<section>": [{"<var>": value}, ...]}`. The
    /// object is paid for by [`Self::do_type`]; the array is one more node,
    /// one level deeper.
    fn datasec(
        &mut self,
        t: &Ty<'a>,
        at: u64,
        depth: u32,
    ) -> Result<(Formatted, Flow), FormatError> {
        let name = self.name(t.id, t.name_off)?;
        let depth = self.nest(depth)?;
        self.node()?;
        let mut vars = Vec::new();
        let mut flow = Flow::Go;
        for vsi in t.secinfos() {
            let off = at.saturating_add(u64::from(vsi.offset));
            let (v, f) = self.do_type(vsi.r#type, 0, off, depth)?;
            vars.push(v);
            flow = f;
            if flow == Flow::Stop {
                break;
            }
        }
        Ok((
            Formatted::Object(vec![(name, Formatted::Array(vars))]),
            flow,
        ))
    }
}

/// `btf_int128_shift()` with x86-64 shift semantics (the count taken mod 64):
/// `left` and `right` are in `0..=128`.
fn int128_shift(mut upper: u64, mut lower: u64, left: u32, right: u32) -> (u64, u64) {
    if left >= 64 {
        upper = lower.wrapping_shl(left.wrapping_sub(64));
        lower = 0;
    } else {
        upper = upper.wrapping_shl(left) | lower.wrapping_shr(64u32.wrapping_sub(left));
        lower = lower.wrapping_shl(left);
    }
    if right >= 64 {
        lower = upper.wrapping_shr(right.wrapping_sub(64));
        upper = 0;
    } else {
        lower = lower.wrapping_shr(right) | upper.wrapping_shl(64u32.wrapping_sub(right));
        upper = upper.wrapping_shr(right);
    }
    (upper, lower)
}

#[cfg(test)]
mod tests {
    use super::int128_shift;

    #[test]
    fn int128_shift_masks_like_x86() {
        // Three bits at bit 2 of the first byte.
        assert_eq!(int128_shift(0, 0b1_1100, 123, 125), (0, 0b111));
        // A 128-bit field: both shifts are 0, and x86 ORs the halves.
        assert_eq!(int128_shift(0xf0, 0x0f, 0, 0), (0xff, 0xff));
        // 64 bits at bit 0: left 64, right 64.
        assert_eq!(int128_shift(0, u64::MAX, 64, 64), (0, u64::MAX));
    }
}
