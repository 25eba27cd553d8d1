//! Structure layouts out of a kernel's BTF, fast: `bpfmem_core::btf_types`
//! reads the blob in place, one pass indexes type ids and the names of structs
//! and unions (a sorted table of name hashes, no allocation per name), and each
//! lookup then touches the few types it needs. Parsing every type of a 5 MiB
//! vmlinux BTF into owned values took about 100 ms; this takes a few.

use bpfmem_core::btf_types::{kind, BtfMember, BtfType, BtfTypes};

use crate::btf::{BtfError, MemberProblem};

/// How deep anonymous structs and unions may nest around a member.
pub(crate) const MAX_ANON_DEPTH: u32 = 8;
/// Members looked at while resolving one member name (anonymous members
/// included): a DAG of anonymous unions must not make a lookup exponential.
pub(crate) const MAX_MEMBER_VISITS: u32 = 4096;
/// Typedef/const/volatile/restrict/type-tag links followed to reach a type.
const MAX_TYPE_CHAIN: u32 = 16;

/// A complete struct definition and the name it was looked up by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StructDef<'a> {
    pub(crate) name: &'static str,
    ty: BtfType<'a>,
}

impl StructDef<'_> {
    /// `sizeof`.
    pub(crate) fn size(&self) -> u32 {
        self.ty.size_or_type
    }
}

/// Where a member was found: its offset in bits from the start of the
/// outermost struct, and its own BTF member entry.
struct Found {
    bits: u64,
    member: BtfMember,
}

/// Lookups over one blob.
pub(crate) struct Resolver<'a> {
    btf: BtfTypes<'a>,
    /// Type-section offset of each type id, from 1.
    index: Vec<u32>,
    /// Named structs and unions with members: (hash of the name, type id),
    /// sorted.
    by_name: Vec<(u64, u32)>,
}

/// FNV-1a, 64 bits: names are short and this runs once per struct.
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn parse(e: bpfmem_core::Error) -> BtfError {
    BtfError::Parse {
        message: e.to_string(),
    }
}

impl<'a> Resolver<'a> {
    /// Check and index `blob` (whose header [`crate::btf::check_btf_header`]
    /// already accepted).
    pub(crate) fn new(blob: &'a [u8]) -> Result<Self, BtfError> {
        let btf = BtfTypes::new(blob).map_err(parse)?;
        // Bounded by the blob: a type record is at least 12 bytes.
        let mut index = Vec::with_capacity(btf.max_types());
        let mut by_name = Vec::new();
        for t in btf.iter() {
            let t = t.map_err(parse)?;
            index.push(u32::try_from(t.offset).map_err(|_| BtfError::Parse {
                message: format!("type {} at an offset past 4 GiB", t.id),
            })?);
            if (t.kind == kind::STRUCT || t.kind == kind::UNION) && t.vlen > 0 {
                if let Some(name) = btf.name(t.name_off).filter(|n| !n.is_empty()) {
                    by_name.push((name_hash(name), t.id));
                }
            }
        }
        by_name.sort_unstable();
        Ok(Resolver {
            btf,
            index,
            by_name,
        })
    }

    /// Ids of the named structs and unions with members called `name`, in id
    /// order.
    fn named(&self, name: &[u8]) -> impl Iterator<Item = u32> + '_ {
        let h = name_hash(name);
        let from = self.by_name.partition_point(|&(k, _)| k < h);
        self.by_name
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(move |&&(k, _)| k == h)
            .map(|&(_, id)| id)
    }

    fn ty(&self, id: u32) -> Result<BtfType<'a>, BtfError> {
        self.btf.by_id(&self.index, id).map_err(parse)
    }

    fn name(&self, off: u32) -> &'a [u8] {
        self.btf.name(off).unwrap_or_default()
    }

    /// `struct name`, or `None` if the BTF has no definition with members.
    ///
    /// Deduplicated kernel BTF normally has one; identical copies are one. If
    /// it has different ones (a generic name like `bucket` used by two
    /// built-in subsystems), `via` names a pointer or embedded member (and how
    /// many pointers to follow) of a struct already found, whose type says
    /// which one the code uses.
    pub(crate) fn find_struct(
        &self,
        name: &'static str,
        via: Option<(&StructDef<'a>, &'static str, u32)>,
    ) -> Result<Option<StructDef<'a>>, BtfError> {
        let mut defs: Vec<BtfType<'a>> = Vec::new();
        for id in self.named(name.as_bytes()) {
            let t = self.ty(id)?;
            // Another name with the same hash is skipped here.
            if t.kind == kind::STRUCT
                && self.name(t.name_off) == name.as_bytes()
                && !defs.iter().any(|d| same_layout(d, &t))
            {
                defs.push(t);
            }
        }
        if defs.len() > 1 {
            if let Some((parent, member, derefs)) = via {
                if let Some(def) = self.struct_through(parent, member, derefs)? {
                    if defs.iter().any(|d| same_layout(d, &def)) {
                        return Ok(Some(StructDef { name, ty: def }));
                    }
                }
            }
            return Err(BtfError::AmbiguousStruct {
                name,
                count: defs.len(),
            });
        }
        Ok(defs.pop().map(|ty| StructDef { name, ty }))
    }

    /// [`Self::find_struct`], required.
    pub(crate) fn require_struct(
        &self,
        name: &'static str,
        via: Option<(&StructDef<'a>, &'static str, u32)>,
    ) -> Result<StructDef<'a>, BtfError> {
        self.find_struct(name, via)?
            .ok_or(BtfError::NoStruct { name })
    }

    /// The struct that member `member` of `parent` is, after `derefs` pointers;
    /// `None` if that does not lead to a struct with members.
    fn struct_through(
        &self,
        parent: &StructDef<'a>,
        member: &'static str,
        derefs: u32,
    ) -> Result<Option<BtfType<'a>>, BtfError> {
        let Some(found) = self.find_member(parent, member)? else {
            return Ok(None);
        };
        let mut ty = self.strip(parent, member, found.member.type_id)?;
        for _ in 0..derefs {
            if ty.kind != kind::PTR {
                return Ok(None);
            }
            ty = self.strip(parent, member, ty.size_or_type)?;
        }
        Ok((ty.kind == kind::STRUCT && ty.vlen > 0).then_some(ty))
    }

    /// Type `id`, through typedefs, qualifiers and type tags.
    fn strip(
        &self,
        st: &StructDef<'a>,
        member: &'static str,
        mut id: u32,
    ) -> Result<BtfType<'a>, BtfError> {
        let bad = |problem| BtfError::BadMember {
            strukt: st.name,
            member,
            problem,
        };
        for _ in 0..MAX_TYPE_CHAIN {
            let ty = self
                .ty(id)
                .map_err(|_| bad(MemberProblem::NoSuchType { id }))?;
            match ty.kind {
                kind::TYPEDEF | kind::CONST | kind::VOLATILE | kind::RESTRICT | kind::TYPE_TAG => {
                    id = ty.size_or_type
                }
                _ => return Ok(ty),
            }
        }
        Err(bad(MemberProblem::TypeChainTooLong {
            limit: MAX_TYPE_CHAIN,
        }))
    }

    /// Member `name` of `st`, directly or inside anonymous structs and unions
    /// (whose offsets add up), as C sees it.
    fn find_member(
        &self,
        st: &StructDef<'a>,
        name: &'static str,
    ) -> Result<Option<Found>, BtfError> {
        let mut budget = MAX_MEMBER_VISITS;
        self.walk_members(st, &st.ty, name, 0, 0, &mut budget)
    }

    fn walk_members(
        &self,
        st: &StructDef<'a>,
        composite: &BtfType<'a>,
        name: &'static str,
        base_bits: u64,
        depth: u32,
        budget: &mut u32,
    ) -> Result<Option<Found>, BtfError> {
        for m in composite.members() {
            *budget = budget.checked_sub(1).ok_or(BtfError::Limit {
                strukt: st.name,
                what: "members visited",
                limit: MAX_MEMBER_VISITS,
            })?;
            // Below 2^32 * (MAX_ANON_DEPTH + 1): no overflow.
            let bits = base_bits + u64::from(m.bit_offset);
            let mname = self.name(m.name_off);
            if mname == name.as_bytes() {
                return Ok(Some(Found { bits, member: m }));
            }
            if !mname.is_empty() {
                continue;
            }
            let inner = self.strip(st, name, m.type_id)?;
            if inner.kind != kind::STRUCT && inner.kind != kind::UNION {
                continue;
            }
            if depth >= MAX_ANON_DEPTH {
                return Err(BtfError::Limit {
                    strukt: st.name,
                    what: "nested anonymous structs and unions",
                    limit: MAX_ANON_DEPTH,
                });
            }
            let found = self.walk_members(st, &inner, name, bits, depth + 1, budget)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The byte offset of member `name` of `st`, or `None` if it has none.
    pub(crate) fn offset(
        &self,
        st: &StructDef<'a>,
        name: &'static str,
    ) -> Result<Option<u32>, BtfError> {
        let Some(found) = self.find_member(st, name)? else {
            return Ok(None);
        };
        let bad = |problem| BtfError::BadMember {
            strukt: st.name,
            member: name,
            problem,
        };
        if found.member.bitfield_size != 0 {
            return Err(bad(MemberProblem::Bitfield {
                bits: found.member.bitfield_size,
            }));
        }
        if found.bits % 8 != 0 {
            return Err(bad(MemberProblem::NotByteAligned {
                bit_offset: found.bits,
            }));
        }
        let offset = found.bits / 8;
        let size = u64::from(st.size());
        // `<=`: a flexible array member (`htab_elem.key`) sits at the very end.
        match u32::try_from(offset) {
            Ok(off) if offset <= size => Ok(Some(off)),
            _ => Err(bad(MemberProblem::OutOfBounds { offset, size })),
        }
    }

    /// [`Self::offset`], required.
    pub(crate) fn require(&self, st: &StructDef<'a>, name: &'static str) -> Result<u32, BtfError> {
        self.offset(st, name)?.ok_or(BtfError::NoMember {
            strukt: st.name,
            member: name,
        })
    }

    /// The number of elements of array member `name` of `st`.
    pub(crate) fn array_len(
        &self,
        st: &StructDef<'a>,
        name: &'static str,
    ) -> Result<u64, BtfError> {
        let found = self.find_member(st, name)?.ok_or(BtfError::NoMember {
            strukt: st.name,
            member: name,
        })?;
        let ty = self.strip(st, name, found.member.type_id)?;
        match ty.array() {
            Some((_, n)) => Ok(u64::from(n)),
            None => Err(BtfError::BadMember {
                strukt: st.name,
                member: name,
                problem: MemberProblem::NotArray,
            }),
        }
    }
}

/// Two definitions of a struct that lay out the same members the same way.
fn same_layout(a: &BtfType<'_>, b: &BtfType<'_>) -> bool {
    a.size_or_type == b.size_or_type
        && a.vlen == b.vlen
        && a.members().zip(b.members()).all(|(x, y)| {
            x.name_off == y.name_off
                && x.bit_offset == y.bit_offset
                && x.bitfield_size == y.bitfield_size
        })
}
