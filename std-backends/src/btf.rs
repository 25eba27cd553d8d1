//! Structure layouts from the kernel's own BTF.
//!
//! A kernel built with `CONFIG_DEBUG_INFO_BTF` carries a description of all its
//! types between the symbols `__start_BTF` and `__stop_BTF` (the `.BTF` section
//! of `vmlinux`; `/sys/kernel/btf/vmlinux` on a live system). [`offsets_from_btf`]
//! turns it into the [`Offsets`] the core walkers need, once per kernel.
//!
//! The blob comes from the machine being read, so it is hostile: its size is
//! capped ([`MAX_BTF_SIZE`]), its header is checked before anything else looks
//! at it, and it is read in place by `bpfmem_core::btf_types`, whose every
//! offset, length and id is checked, with budgets on every walk over its types
//! (`crate::btf_resolve`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bpfmem_core::offsets::{
    BpfArenaOffsets, BpfArrayOffsets, BpfHtabOffsets, BpfMapOffsets, BpfProgAuxOffsets,
    BpfProgOffsets, BpfStructOpsMapOffsets, BtfOffsets, BucketOffsets, HtabElemOffsets, IdrOffsets,
    VmStructOffsets, XaNodeOffsets, XarrayOffsets,
};
use bpfmem_core::{KernelRead, Kva, Offsets};

use crate::btf_resolve::{Resolver, StructDef};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BTF_MAGIC` (include/uapi/linux/btf.h), as a little-endian kernel stores it.
pub const BTF_MAGIC: u16 = 0xeb9f;

/// The largest BTF blob read or parsed. vmlinux BTF is 4-6 MiB on
/// distribution kernels (v6.1 - v6.18); ten times that is still a kernel.
pub const MAX_BTF_SIZE: u64 = 64 << 20;

/// `sizeof(struct btf_header)`.
const BTF_HEADER_LEN: u32 = 24;
/// The largest section-name string table read from an ELF file.
const MAX_SHSTRTAB: u64 = 1 << 20;

/// `struct btf_header` (include/uapi/linux/btf.h), little-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
struct BtfHeader {
    magic: U16,
    version: u8,
    flags: u8,
    hdr_len: U32,
    type_off: U32,
    type_len: U32,
    str_off: U32,
    str_len: U32,
}

/// Reading or using BTF failed. `Display` is one line starting `BTF: ` and
/// names what was missing or wrong; it never prints bytes of the blob.
#[derive(Debug)]
#[non_exhaustive]
pub enum BtfError {
    /// The blob is `len` bytes, more than `limit`.
    TooLarge { len: u64, limit: u64 },
    /// The blob is too short (`len` bytes) to hold a BTF header.
    Truncated { len: u64 },
    /// The blob does not start with [`BTF_MAGIC`].
    BadMagic { magic: u16 },
    /// A big-endian BTF blob: not the BTF of a kernel this crate reads.
    BigEndian,
    /// A header field holds a value that no valid blob has.
    BadHeader { field: &'static str, value: u64 },
    /// `btf-rs` rejected the blob.
    Parse { message: String },
    /// `btf-rs` panicked on the blob (a bug in it, caught) while `during`.
    Panicked {
        during: &'static str,
        message: String,
    },
    /// No `struct name` with members.
    NoStruct { name: &'static str },
    /// `count` different complete definitions of `struct name`, and nothing
    /// that says which one the kernel code uses.
    AmbiguousStruct { name: &'static str, count: usize },
    /// `struct strukt` has no member `member`, directly or in an anonymous
    /// struct or union.
    NoMember {
        strukt: &'static str,
        member: &'static str,
    },
    /// A member exists but cannot be used as `problem` says.
    BadMember {
        strukt: &'static str,
        member: &'static str,
        problem: MemberProblem,
    },
    /// A walk over the types of `struct strukt` hit its budget.
    Limit {
        strukt: &'static str,
        what: &'static str,
        limit: u32,
    },
    /// `__stop_BTF` lies below `__start_BTF`.
    BadRange { start: Kva, stop: Kva },
    /// Reading the blob out of kernel memory failed.
    Read { error: bpfmem_core::Error },
    /// The operating system refused `op` on `path`.
    Io {
        path: PathBuf,
        op: &'static str,
        error: io::Error,
    },
    /// `path` is not a BTF file or an ELF file with BTF, because of `what`
    /// (at byte `offset` of it, when known).
    BadFile {
        path: PathBuf,
        offset: Option<u64>,
        what: &'static str,
    },
    /// The ELF file at `path` has no `.BTF` section.
    NoBtfSection { path: PathBuf },
}

/// Why a member that exists cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberProblem {
    /// A bitfield of `bits` bits.
    Bitfield { bits: u32 },
    /// Its offset, in bits from the start of the struct, is not a whole byte.
    NotByteAligned { bit_offset: u64 },
    /// Its offset (`offset` bytes) lies past the end of the struct (`size` bytes).
    OutOfBounds { offset: u64, size: u64 },
    /// Its type should be an array and is not.
    NotArray,
    /// Its array has a number of elements the walkers cannot use.
    BadArrayLength { len: u64 },
    /// Its type id does not exist.
    NoSuchType { id: u32 },
    /// Its type is a chain of typedefs and qualifiers longer than the limit.
    TypeChainTooLong { limit: u32 },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BTF: ")?;
        match self {
            BtfError::TooLarge { len, limit } => {
                write!(f, "{len:#x} bytes exceed the limit of {limit:#x}")
            }
            BtfError::Truncated { len } => write!(
                f,
                "{len} bytes are too short for a BTF header ({BTF_HEADER_LEN} bytes)"
            ),
            BtfError::BadMagic { magic } => {
                write!(f, "bad magic {magic:#06x}, expected {BTF_MAGIC:#06x}")
            }
            BtfError::BigEndian => f.write_str("big-endian BTF is not read"),
            BtfError::BadHeader { field, value } => {
                write!(f, "header field {field} has an impossible value {value:#x}")
            }
            BtfError::Parse { message } => write!(f, "malformed: {message}"),
            BtfError::Panicked { during, message } => write!(
                f,
                "the btf-rs parser panicked while {during} (malformed input): {message}"
            ),
            BtfError::NoStruct { name } => write!(f, "no struct {name} with members"),
            BtfError::AmbiguousStruct { name, count } => {
                write!(f, "{count} different definitions of struct {name}")
            }
            BtfError::NoMember { strukt, member } => {
                write!(f, "struct {strukt} has no member '{member}'")
            }
            BtfError::BadMember {
                strukt,
                member,
                problem,
            } => write!(f, "struct {strukt} member '{member}': {problem}"),
            BtfError::Limit {
                strukt,
                what,
                limit,
            } => write!(f, "struct {strukt}: {what} exceed the limit of {limit}"),
            BtfError::BadRange { start, stop } => {
                write!(f, "__stop_BTF ({stop}) lies below __start_BTF ({start})")
            }
            BtfError::Read { error } => write!(f, "cannot read the kernel's BTF: {error}"),
            BtfError::Io { path, op, error } => {
                write!(f, "{}: {op}: {error}", path.display())
            }
            BtfError::BadFile { path, offset, what } => {
                write!(f, "{}: ", path.display())?;
                if let Some(off) = offset {
                    write!(f, "offset {off:#x}: ")?;
                }
                f.write_str(what)
            }
            BtfError::NoBtfSection { path } => {
                write!(f, "{}: no .BTF section", path.display())
            }
        }
    }
}

impl fmt::Display for MemberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemberProblem::Bitfield { bits } => write!(f, "is a bitfield of {bits} bits"),
            MemberProblem::NotByteAligned { bit_offset } => {
                write!(f, "bit offset {bit_offset} is not byte-aligned")
            }
            MemberProblem::OutOfBounds { offset, size } => write!(
                f,
                "offset {offset:#x} lies past the end of the struct ({size:#x} bytes)"
            ),
            MemberProblem::NotArray => f.write_str("is not an array"),
            MemberProblem::BadArrayLength { len } => {
                write!(f, "array length {len} is not usable")
            }
            MemberProblem::NoSuchType { id } => write!(f, "type id {id} does not exist"),
            MemberProblem::TypeChainTooLong { limit } => {
                write!(f, "more than {limit} typedefs and qualifiers")
            }
        }
    }
}

impl std::error::Error for BtfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BtfError::Read { error } => Some(error),
            BtfError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Check that `blob` is a little-endian BTF blob whose sections lie inside it,
/// with the string table the kernel requires (`btf_parse_str_sec()` in
/// kernel/bpf/btf.c: starts and ends with a NUL).
pub fn check_btf_header(blob: &[u8]) -> Result<(), BtfError> {
    let len = blob.len() as u64;
    if len > MAX_BTF_SIZE {
        return Err(BtfError::TooLarge {
            len,
            limit: MAX_BTF_SIZE,
        });
    }
    let hdr = check_header_prefix(blob, len)?;
    // In range: check_header_prefix checked str_off + str_len against len.
    let start = u64::from(hdr.hdr_len.get()) + u64::from(hdr.str_off.get());
    let end = start + u64::from(hdr.str_len.get());
    let strings = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| blob.get(s..e))
        .unwrap_or_default();
    if strings.first() != Some(&0) || strings.last() != Some(&0) {
        return Err(BtfError::BadHeader {
            field: "str_off (string table does not start and end with NUL)",
            value: u64::from(hdr.str_off.get()),
        });
    }
    Ok(())
}

/// Check the header at the start of `prefix` for a blob of `total_len` bytes.
fn check_header_prefix(prefix: &[u8], total_len: u64) -> Result<BtfHeader, BtfError> {
    let (hdr, _) =
        BtfHeader::read_from_prefix(prefix).map_err(|_| BtfError::Truncated { len: total_len })?;
    match hdr.magic.get() {
        BTF_MAGIC => {}
        m if m == BTF_MAGIC.swap_bytes() => return Err(BtfError::BigEndian),
        magic => return Err(BtfError::BadMagic { magic }),
    }
    if hdr.version != 1 {
        return Err(BtfError::BadHeader {
            field: "version",
            value: hdr.version.into(),
        });
    }
    if hdr.flags != 0 {
        return Err(BtfError::BadHeader {
            field: "flags",
            value: hdr.flags.into(),
        });
    }
    let hdr_len = u64::from(hdr.hdr_len.get());
    if hdr_len < u64::from(BTF_HEADER_LEN) || hdr_len > total_len {
        return Err(BtfError::BadHeader {
            field: "hdr_len",
            value: hdr_len,
        });
    }
    // u32 + u32 + u32 cannot overflow a u64.
    let sections = [
        (
            "type_off + type_len",
            hdr.type_off.get(),
            hdr.type_len.get(),
        ),
        ("str_off + str_len", hdr.str_off.get(), hdr.str_len.get()),
    ];
    for (field, off, len) in sections {
        let end = hdr_len + u64::from(off) + u64::from(len);
        if end > total_len {
            return Err(BtfError::BadHeader { field, value: end });
        }
    }
    Ok(hdr)
}

/// Read the kernel's BTF, the bytes from `__start_BTF` to `__stop_BTF`, and
/// check its header.
pub fn read_kernel_btf<K: KernelRead>(k: &K, start: Kva, stop: Kva) -> Result<Vec<u8>, BtfError> {
    let len = stop
        .offset_from(start)
        .ok_or(BtfError::BadRange { start, stop })?;
    if len > MAX_BTF_SIZE {
        return Err(BtfError::TooLarge {
            len,
            limit: MAX_BTF_SIZE,
        });
    }
    // Check the header before reading megabytes on the word of two symbols.
    let mut hdr = [0u8; BTF_HEADER_LEN as usize];
    if len < u64::from(BTF_HEADER_LEN) {
        return Err(BtfError::Truncated { len });
    }
    k.read_kva(start, &mut hdr)
        .map_err(|error| BtfError::Read { error })?;
    check_header_prefix(&hdr, len)?;
    // len <= MAX_BTF_SIZE, which fits a usize.
    let mut blob = vec![0u8; usize::try_from(len).unwrap_or_default()];
    k.read_kva(start, &mut blob)
        .map_err(|error| BtfError::Read { error })?;
    check_btf_header(&blob)?;
    Ok(blob)
}

const ELFMAG: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const SHT_NOBITS: u32 = 8;

/// `Elf64_Ehdr` (include/uapi/linux/elf.h), little-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
struct Elf64Ehdr {
    e_ident: [u8; 16],
    e_type: U16,
    e_machine: U16,
    e_version: U32,
    e_entry: U64,
    e_phoff: U64,
    e_shoff: U64,
    e_flags: U32,
    e_ehsize: U16,
    e_phentsize: U16,
    e_phnum: U16,
    e_shentsize: U16,
    e_shnum: U16,
    e_shstrndx: U16,
}

/// `Elf64_Shdr`, little-endian.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
struct Elf64Shdr {
    sh_name: U32,
    sh_type: U32,
    sh_flags: U64,
    sh_addr: U64,
    sh_offset: U64,
    sh_size: U64,
    sh_link: U32,
    sh_info: U32,
    sh_addralign: U64,
    sh_entsize: U64,
}

/// Load BTF from a file: raw BTF (`/sys/kernel/btf/vmlinux`, magic at offset
/// 0) or the `.BTF` section of a little-endian ELF64 file (`vmlinux`). Only the
/// headers and the section are read, so a `vmlinux` with full debug info is
/// fine.
pub fn load_btf_file(path: impl AsRef<Path>) -> Result<Vec<u8>, BtfError> {
    let path = path.as_ref();
    let io_err = |op: &'static str| {
        move |error| BtfError::Io {
            path: path.to_path_buf(),
            op,
            error,
        }
    };
    let bad = |offset: Option<u64>, what: &'static str| BtfError::BadFile {
        path: path.to_path_buf(),
        offset,
        what,
    };
    let mut file = File::open(path).map_err(io_err("cannot open"))?;
    let meta = file.metadata().map_err(io_err("cannot stat"))?;
    if !meta.is_file() {
        return Err(bad(None, "not a regular file"));
    }
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|_| bad(Some(0), "too short for BTF or ELF"))?;
    let blob = if magic == ELFMAG {
        let mut f = FileAt {
            file,
            len: meta.len(),
            path,
        };
        elf_btf_section(&mut f)?
    } else if magic[..2] == BTF_MAGIC.to_le_bytes() {
        // sysfs reports the true size of /sys/kernel/btf/vmlinux, but read to
        // the end anyway, never past the limit.
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("cannot seek"))?;
        let mut blob = Vec::new();
        file.take(MAX_BTF_SIZE + 1)
            .read_to_end(&mut blob)
            .map_err(io_err("cannot read"))?;
        blob
    } else {
        return Err(bad(
            Some(0),
            "neither raw BTF (magic 0xeb9f) nor an ELF file",
        ));
    };
    check_btf_header(&blob)?;
    Ok(blob)
}

/// A file of known length, read at offsets.
struct FileAt<'a> {
    file: File,
    len: u64,
    path: &'a Path,
}

impl FileAt<'_> {
    fn bad(&self, offset: u64, what: &'static str) -> BtfError {
        BtfError::BadFile {
            path: self.path.to_path_buf(),
            offset: Some(offset),
            what,
        }
    }

    /// `len` bytes at `offset`, which must lie inside the file; `len` is
    /// capped by the caller.
    fn read(&mut self, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>, BtfError> {
        let inside = offset.checked_add(len).is_some_and(|end| end <= self.len);
        let n = usize::try_from(len).ok().filter(|_| inside);
        let n = n.ok_or_else(|| self.bad(offset, what))?;
        let mut buf = vec![0u8; n];
        let io = |error| BtfError::Io {
            path: self.path.to_path_buf(),
            op: "cannot read",
            error,
        };
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }
}

/// The `.BTF` section of an ELF file.
fn elf_btf_section(f: &mut FileAt<'_>) -> Result<Vec<u8>, BtfError> {
    let ehdr_len = std::mem::size_of::<Elf64Ehdr>() as u64;
    let raw = f.read(0, ehdr_len, "ELF header runs past the end of the file")?;
    let ehdr = Elf64Ehdr::read_from_bytes(&raw).map_err(|_| f.bad(0, "bad ELF header"))?;
    if ehdr.e_ident[4] != ELFCLASS64 {
        return Err(f.bad(4, "not an ELFCLASS64 file"));
    }
    if ehdr.e_ident[5] != ELFDATA2LSB {
        return Err(f.bad(5, "not a little-endian ELF file"));
    }
    let shentsize = std::mem::size_of::<Elf64Shdr>() as u64;
    if u64::from(ehdr.e_shentsize.get()) != shentsize {
        return Err(f.bad(0x3a, "e_shentsize is not sizeof(Elf64_Shdr)"));
    }
    // e_shnum == 0 is also how extended numbering starts (more than 0xff00
    // sections); vmlinux has a few dozen.
    let shnum = ehdr.e_shnum.get();
    if shnum == 0 {
        return Err(f.bad(0x3c, "no section headers"));
    }
    let shstrndx = ehdr.e_shstrndx.get();
    if shstrndx >= shnum {
        return Err(f.bad(0x3e, "e_shstrndx is not a section"));
    }
    let shoff = ehdr.e_shoff.get();
    let table = f.read(
        shoff,
        u64::from(shnum) * shentsize,
        "section header table runs past the end of the file",
    )?;
    let shdrs = <[Elf64Shdr]>::ref_from_bytes(&table)
        .map_err(|_| f.bad(shoff, "bad section header table"))?;
    let names = shdrs
        .get(usize::from(shstrndx))
        .ok_or_else(|| f.bad(shoff, "e_shstrndx is not a section"))?;
    if names.sh_size.get() > MAX_SHSTRTAB {
        return Err(f.bad(names.sh_offset.get(), "section name table is too large"));
    }
    let names = f.read(
        names.sh_offset.get(),
        names.sh_size.get(),
        "section name table runs past the end of the file",
    )?;
    let is_btf = |sh: &&Elf64Shdr| {
        usize::try_from(sh.sh_name.get())
            .ok()
            .and_then(|at| names.get(at..))
            .is_some_and(|name| name.starts_with(b".BTF\0"))
    };
    let sh = shdrs
        .iter()
        .find(is_btf)
        .ok_or_else(|| BtfError::NoBtfSection {
            path: f.path.to_path_buf(),
        })?;
    let (offset, size) = (sh.sh_offset.get(), sh.sh_size.get());
    if sh.sh_type.get() == SHT_NOBITS {
        return Err(f.bad(offset, ".BTF section has no file data (SHT_NOBITS)"));
    }
    if size > MAX_BTF_SIZE {
        return Err(BtfError::TooLarge {
            len: size,
            limit: MAX_BTF_SIZE,
        });
    }
    f.read(offset, size, ".BTF section runs past the end of the file")
}

/// Read a kernel's BTF (the bytes from [`read_kernel_btf`] or
/// [`load_btf_file`]) in place and resolve every layout the walkers use. Call
/// it once per kernel: it indexes the whole blob (a few milliseconds for a
/// 5 MiB vmlinux BTF).
pub fn offsets_from_btf(blob: &[u8]) -> Result<Offsets, BtfError> {
    check_btf_header(blob)?;
    resolve_offsets(&Resolver::new(blob)?)
}

fn resolve_offsets(r: &Resolver<'_>) -> Result<Offsets, BtfError> {
    let mut o = Offsets::default();

    let idr = r.require_struct("idr", None)?;
    o.idr = IdrOffsets {
        idr_rt: r.require(&idr, "idr_rt")?,
        idr_base: r.require(&idr, "idr_base")?,
    };
    let xarray = r.require_struct("xarray", Some((&idr, "idr_rt", 0)))?;
    o.xarray = XarrayOffsets {
        xa_head: r.require(&xarray, "xa_head")?,
    };

    let xa_node = r.require_struct("xa_node", None)?;
    // XA_CHUNK_SIZE is 1 << XA_CHUNK_SHIFT, 64 (16 with CONFIG_BASE_SMALL).
    let nr_slots = r.array_len(&xa_node, "slots")?;
    if !(nr_slots.is_power_of_two() && (2..=64).contains(&nr_slots)) {
        return Err(BtfError::BadMember {
            strukt: "xa_node",
            member: "slots",
            problem: MemberProblem::BadArrayLength { len: nr_slots },
        });
    }
    o.xa_node = XaNodeOffsets {
        shift: r.require(&xa_node, "shift")?,
        offset: r.require(&xa_node, "offset")?,
        count: r.require(&xa_node, "count")?,
        parent: r.require(&xa_node, "parent")?,
        slots: r.require(&xa_node, "slots")?,
        nr_slots: nr_slots as u32,
        size: xa_node.size(),
    };

    let bpf_map = r.require_struct("bpf_map", None)?;
    o.bpf_map = BpfMapOffsets {
        map_type: r.require(&bpf_map, "map_type")?,
        key_size: r.require(&bpf_map, "key_size")?,
        value_size: r.require(&bpf_map, "value_size")?,
        max_entries: r.require(&bpf_map, "max_entries")?,
        map_flags: r.require(&bpf_map, "map_flags")?,
        map_extra: r.require(&bpf_map, "map_extra")?,
        id: r.require(&bpf_map, "id")?,
        name: r.require(&bpf_map, "name")?,
        btf: r.require(&bpf_map, "btf")?,
        btf_key_type_id: r.require(&bpf_map, "btf_key_type_id")?,
        btf_value_type_id: r.require(&bpf_map, "btf_value_type_id")?,
        btf_vmlinux_value_type_id: r.require(&bpf_map, "btf_vmlinux_value_type_id")?,
        size: bpf_map.size(),
    };

    let btf = r.require_struct("btf", Some((&bpf_map, "btf", 1)))?;
    o.btf = BtfOffsets {
        id: r.require(&btf, "id")?,
        data: r.require(&btf, "data")?,
        data_size: r.require(&btf, "data_size")?,
        name: r.require(&btf, "name")?,
        base_btf: r.require(&btf, "base_btf")?,
        kernel_btf: r.require(&btf, "kernel_btf")?,
    };

    let array = r.require_struct("bpf_array", None)?;
    o.bpf_array = BpfArrayOffsets {
        map: r.require(&array, "map")?,
        elem_size: r.require(&array, "elem_size")?,
        index_mask: r.require(&array, "index_mask")?,
        value: r.require(&array, "value")?,
        ptrs: r.require(&array, "ptrs")?,
        pptrs: r.require(&array, "pptrs")?,
        size: array.size(),
    };

    let htab = r.require_struct("bpf_htab", None)?;
    o.bpf_htab = BpfHtabOffsets {
        map: r.require(&htab, "map")?,
        buckets: r.require(&htab, "buckets")?,
        elems: r.require(&htab, "elems")?,
        n_buckets: r.require(&htab, "n_buckets")?,
        elem_size: r.require(&htab, "elem_size")?,
        size: htab.size(),
    };
    let bucket = r.require_struct("bucket", Some((&htab, "buckets", 1)))?;
    o.bucket = BucketOffsets {
        head: r.require(&bucket, "head")?,
        size: bucket.size(),
    };
    // `struct htab_elem *__percpu *extra_elems`.
    let elem = r.require_struct("htab_elem", Some((&htab, "extra_elems", 2)))?;
    o.htab_elem = HtabElemOffsets {
        hash_node: r.require(&elem, "hash_node")?,
        hash: r.require(&elem, "hash")?,
        key: r.require(&elem, "key")?,
        ptr_to_pptr: r.offset(&elem, "ptr_to_pptr")?,
        size: elem.size(),
    };

    let arena = r.find_struct("bpf_arena", None)?;
    let vm_struct = r.require_struct("vm_struct", arena.as_ref().map(|a| (a, "kern_vm", 1)))?;
    o.vm_struct = VmStructOffsets {
        addr: r.require(&vm_struct, "addr")?,
        vm_size: r.require(&vm_struct, "size")?,
        pages: r.require(&vm_struct, "pages")?,
        nr_pages: r.require(&vm_struct, "nr_pages")?,
        size: vm_struct.size(),
    };
    o.bpf_arena = match &arena {
        Some(a) => Some(BpfArenaOffsets {
            map: r.require(a, "map")?,
            kern_vm: r.require(a, "kern_vm")?,
            user_vm_start: r.require(a, "user_vm_start")?,
            user_vm_end: r.require(a, "user_vm_end")?,
            size: a.size(),
        }),
        None => None,
    };

    o.bpf_struct_ops_map = match r.find_struct("bpf_struct_ops_map", None)? {
        Some(s) => {
            let value = r.require_struct("bpf_struct_ops_value", Some((&s, "kvalue", 0)))?;
            let (value_refcnt, value_state) = struct_ops_common(r, &value)?;
            // bpf_struct_ops_map_sys_lookup_elem() reports kvalue.refcnt in
            // v6.1 and max(map->refcnt - map->usercnt, 0) from v6.4, whose
            // series also added struct bpf_struct_ops_link.
            let has_link = match r.find_struct("bpf_struct_ops_link", None) {
                Ok(link) => link.is_some(),
                Err(BtfError::AmbiguousStruct { .. }) => true,
                Err(e) => return Err(e),
            };
            let (map_refcnt, map_usercnt) = if has_link {
                (
                    Some(r.require(&bpf_map, "refcnt")?),
                    Some(r.require(&bpf_map, "usercnt")?),
                )
            } else {
                (None, None)
            };
            Some(BpfStructOpsMapOffsets {
                map: r.require(&s, "map")?,
                st_ops: r.offset(&s, "st_ops")?,
                st_ops_desc: r.offset(&s, "st_ops_desc")?,
                uvalue: r.require(&s, "uvalue")?,
                kvalue: r.require(&s, "kvalue")?,
                value_data: r.require(&value, "data")?,
                value_refcnt,
                value_state,
                map_refcnt,
                map_usercnt,
                btf: r.offset(&s, "btf")?,
                size: s.size(),
            })
        }
        None => None,
    };

    // include/linux/bpf.h: both exist wherever bpf_map does (CONFIG_BPF_SYSCALL).
    let prog = r.require_struct("bpf_prog", None)?;
    o.bpf_prog = BpfProgOffsets {
        r#type: r.require(&prog, "type")?,
        len: r.require(&prog, "len")?,
        jited_len: r.require(&prog, "jited_len")?,
        tag: r.require(&prog, "tag")?,
        aux: r.require(&prog, "aux")?,
        size: prog.size(),
    };
    let aux = r.require_struct("bpf_prog_aux", Some((&prog, "aux", 1)))?;
    o.bpf_prog_aux = BpfProgAuxOffsets {
        used_map_cnt: r.require(&aux, "used_map_cnt")?,
        id: r.require(&aux, "id")?,
        func_cnt: r.require(&aux, "func_cnt")?,
        func: r.require(&aux, "func")?,
        used_maps: r.require(&aux, "used_maps")?,
        prog: r.require(&aux, "prog")?,
        load_time: r.require(&aux, "load_time")?,
        name: r.require(&aux, "name")?,
        btf: r.require(&aux, "btf")?,
        size: aux.size(),
    };

    Ok(o)
}

/// Offsets of `refcnt` and `state` in `struct bpf_struct_ops_value`
/// (kernel/bpf/bpf_struct_ops.c): members of its own through v6.8
/// (`BPF_STRUCT_OPS_COMMON_VALUE`), of the named member `common` (`struct
/// bpf_struct_ops_common_value`, include/linux/bpf.h) from v6.9.
fn struct_ops_common(r: &Resolver<'_>, value: &StructDef) -> Result<(u32, u32), BtfError> {
    if let (Some(refcnt), Some(state)) = (r.offset(value, "refcnt")?, r.offset(value, "state")?) {
        return Ok((refcnt, state));
    }
    let base = r.require(value, "common")?;
    let common = r.require_struct("bpf_struct_ops_common_value", Some((value, "common", 0)))?;
    let at = |member: &'static str| -> Result<u32, BtfError> {
        let inner = r.require(&common, member)?;
        let size = u64::from(value.size());
        match base.checked_add(inner) {
            Some(off) if u64::from(off) <= size => Ok(off),
            _ => Err(BtfError::BadMember {
                strukt: value.name,
                member: "common",
                problem: MemberProblem::OutOfBounds {
                    offset: u64::from(base) + u64::from(inner),
                    size,
                },
            }),
        }
    };
    Ok((at("refcnt")?, at("state")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf_resolve::{MAX_ANON_DEPTH, MAX_MEMBER_VISITS};
    use bpfmem_core::virt::FlatKernel;

    const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

    /// A little-endian BTF blob built by hand (include/uapi/linux/btf.h).
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    const KIND_INT: u32 = 1;
    const KIND_PTR: u32 = 2;
    const KIND_ARRAY: u32 = 3;
    const KIND_STRUCT: u32 = 4;
    const KIND_UNION: u32 = 5;
    const KIND_FWD: u32 = 7;
    const KIND_TYPEDEF: u32 = 8;

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn put(&mut self, words: &[u32]) -> u32 {
            for w in words {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        }

        fn info(kind: u32, vlen: u32, kflag: bool) -> u32 {
            (u32::from(kflag) << 31) | (kind << 24) | vlen
        }

        fn int(&mut self, name: &str, bytes: u32) -> u32 {
            let n = self.str(name);
            self.put(&[n, Self::info(KIND_INT, 0, false), bytes, bytes * 8])
        }

        fn ptr(&mut self, to: u32) -> u32 {
            self.put(&[0, Self::info(KIND_PTR, 0, false), to])
        }

        fn typedef(&mut self, name: &str, to: u32) -> u32 {
            let n = self.str(name);
            self.put(&[n, Self::info(KIND_TYPEDEF, 0, false), to])
        }

        fn fwd(&mut self, name: &str) -> u32 {
            let n = self.str(name);
            self.put(&[n, Self::info(KIND_FWD, 0, false), 0])
        }

        fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
            self.put(&[0, Self::info(KIND_ARRAY, 0, false), 0, elem, index, n])
        }

        /// A struct or union; members are (name, type, bit offset); with
        /// `kflag`, the offset word carries a bitfield size in its top byte.
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            kflag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let n = self.str(name);
            let mut words = vec![n, Self::info(kind, members.len() as u32, kflag), size];
            for &(mname, ty, off) in members {
                let mn = self.str(mname);
                words.extend_from_slice(&[mn, ty, off]);
            }
            self.put(&words)
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(KIND_STRUCT, name, size, false, members)
        }

        fn union(&mut self, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(KIND_UNION, "", size, false, members)
        }

        fn finish(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for w in [
                BTF_HEADER_LEN,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A BTF with every struct the walkers use, laid out like v6.12 (where the
    /// host's BTF is not at hand), some members behind anonymous unions.
    fn minimal() -> Builder {
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
        // `work` and `rcu` in an anonymous union, as in v5.x bpf_map.
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
        // bpf_array: value/ptrs/pptrs in anonymous structs in an anonymous union.
        let s_value = b.composite(
            KIND_STRUCT,
            "",
            0,
            false,
            &[("", u32_, 0), ("value", flex, 0)],
        );
        let s_ptrs = b.composite(
            KIND_STRUCT,
            "",
            0,
            false,
            &[("", u32_, 0), ("ptrs", ptr_flex, 0)],
        );
        let s_pptrs = b.composite(
            KIND_STRUCT,
            "",
            0,
            false,
            &[("", u32_, 0), ("pptrs", ptr_flex, 0)],
        );
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
        let fnode = b.composite(
            KIND_STRUCT,
            "",
            16,
            false,
            &[("padding", void_ptr, 0), ("fnode", void_ptr, 64)],
        );
        let u1 = b.union(16, &[("hash_node", u64_, 0), ("", fnode, 0)]);
        let u2 = b.union(24, &[("ptr_to_pptr", void_ptr, 0), ("lru_node", u64_, 0)]);
        b.strukt(
            "htab_elem",
            48,
            &[
                ("", u1, 0),
                ("", u2, 128),
                ("hash", u32_, 320),
                ("key", flex, 384),
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
        add_bpf_prog(&mut b);
        b
    }

    /// `struct bpf_prog` and `struct bpf_prog_aux` as in v6.12 (pahole of
    /// Debian's 6.12 vmlinux), `tag` behind an anonymous union as in v6.18,
    /// the bitfields before `type` included.
    fn add_bpf_prog(b: &mut Builder) {
        let u8_ = b.int("u8", 1);
        let u16_ = b.int("u16", 2);
        let u32_ = b.int("u32", 4);
        let u64_ = b.int("u64", 8);
        let int = b.int("int", 4);
        let char_ = b.int("char", 1);
        let tag = b.array(u8_, int, 8);
        let digest = b.array(u8_, int, 32);
        let name = b.array(char_, int, 16);
        let vp = b.ptr(0);
        let tag_union = b.union(32, &[("digest", digest, 0), ("tag", tag, 0)]);
        let aux_fwd = b.fwd("bpf_prog_aux");
        let aux_ptr = b.ptr(aux_fwd);
        let prog = b.composite(
            KIND_STRUCT,
            "bpf_prog",
            72,
            true,
            &[
                ("pages", u16_, 0),
                ("jited", u16_, (1 << 24) | 16),
                ("jit_requested", u16_, (1 << 24) | 17),
                ("type", u32_, 32),
                ("expected_attach_type", u32_, 64),
                ("len", u32_, 96),
                ("jited_len", u32_, 128),
                ("", tag_union, 160),
                ("aux", aux_ptr, 448),
            ],
        );
        let prog_ptr = b.ptr(prog);
        let prog_ptr_ptr = b.ptr(prog_ptr);
        b.strukt(
            "bpf_prog_aux",
            1128,
            &[
                ("refcnt", u64_, 0),
                ("used_map_cnt", u32_, 64),
                ("id", u32_, 256),
                ("func_cnt", u32_, 288),
                ("real_func_cnt", u32_, 320),
                ("func", prog_ptr_ptr, 8 * 216),
                ("used_maps", vp, 8 * 872),
                ("prog", prog_ptr, 8 * 920),
                ("load_time", u64_, 8 * 936),
                ("name", name, 8 * 968),
                ("btf", vp, 8 * 1016),
            ],
        );
    }

    #[test]
    fn minimal_btf_resolves_through_anonymous_unions() {
        let o = offsets_from_btf(&minimal().finish()).unwrap();
        assert_eq!(o.xarray.xa_head, 8);
        assert_eq!((o.idr.idr_rt, o.idr.idr_base), (0, 16));
        assert_eq!(
            (o.xa_node.slots, o.xa_node.nr_slots, o.xa_node.size),
            (40, 64, 576)
        );
        assert_eq!(
            (o.bpf_map.map_type, o.bpf_map.btf, o.bpf_map.name),
            (24, 80, 96)
        );
        assert_eq!(o.bpf_map.size, 248);
        assert_eq!((o.btf.id, o.btf.data_size, o.btf.name), (96, 88, 168));
        let a = o.bpf_array;
        assert_eq!(
            (a.value, a.ptrs, a.pptrs, a.elem_size, a.size),
            (264, 264, 264, 248, 264)
        );
        assert_eq!((o.bpf_htab.buckets, o.bpf_htab.n_buckets), (376, 760));
        assert_eq!((o.bucket.head, o.bucket.size), (0, 16));
        let e = o.htab_elem;
        assert_eq!(
            (e.hash_node, e.hash, e.key, e.ptr_to_pptr, e.size),
            (0, 40, 48, Some(16), 48)
        );
        assert_eq!((o.vm_struct.vm_size, o.vm_struct.nr_pages), (16, 44));
        assert_eq!(o.bpf_arena, None);
        assert_eq!(o.bpf_struct_ops_map, None);
        let p = o.bpf_prog;
        assert_eq!(
            (p.r#type, p.len, p.jited_len, p.tag, p.aux, p.size),
            (4, 12, 16, 20, 56, 72)
        );
        let a = o.bpf_prog_aux;
        assert_eq!((a.used_map_cnt, a.id, a.func_cnt, a.func), (8, 32, 36, 216));
        assert_eq!((a.used_maps, a.prog, a.load_time), (872, 920, 936));
        assert_eq!((a.name, a.btf, a.size), (968, 1016, 1128));
    }

    /// A kernel whose `bpf_prog_aux` lacks a member the program reader needs
    /// is refused by name, not read with a zero offset.
    #[test]
    fn bpf_prog_aux_without_load_time_is_refused() {
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let u8_ = b.int("unsigned char", 1);
        let int = b.int("int", 4);
        let vp = b.ptr(0);
        let tag = b.array(u8_, int, 8);
        let aux = b.strukt("bpf_prog_aux", 64, &[("id", u32_, 0), ("prog", vp, 64)]);
        let aux_ptr = b.ptr(aux);
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
        let blob = b.finish();
        let r = Resolver::new(&blob).unwrap();
        let prog = r.require_struct("bpf_prog", None).unwrap();
        let aux = r
            .require_struct("bpf_prog_aux", Some((&prog, "aux", 1)))
            .unwrap();
        assert_eq!(r.require(&prog, "tag").unwrap(), 20);
        assert_eq!(r.require(&aux, "prog").unwrap(), 8);
        assert_eq!(
            r.require(&aux, "load_time").unwrap_err().to_string(),
            "BTF: struct bpf_prog_aux has no member 'load_time'"
        );
    }

    /// `struct bpf_struct_ops_map` as in v6.1 (`refcnt` and `state` members of
    /// `bpf_struct_ops_value`, no `bpf_struct_ops_link`) and v6.12 (`common`,
    /// a link), plus `common` moved off offset 0 and out of bounds.
    #[test]
    fn struct_ops_value_common_in_both_shapes() {
        let build = |shape: u32, common_at: u32| {
            let mut b = minimal();
            let u8_ = b.int("char", 1);
            let u32_ = b.int("unsigned int", 4);
            let int = b.int("int", 4);
            let flex = b.array(u8_, int, 0);
            let vp = b.ptr(0);
            let value = if shape == 601 {
                b.strukt(
                    "bpf_struct_ops_value",
                    64,
                    &[
                        ("refcnt", u32_, 0),
                        ("state", u32_, 32),
                        ("data", flex, 512),
                    ],
                )
            } else {
                let common = b.strukt(
                    "bpf_struct_ops_common_value",
                    8,
                    &[("refcnt", u32_, 0), ("state", u32_, 32)],
                );
                b.strukt(
                    "bpf_struct_ops_value",
                    64,
                    &[("common", common, common_at), ("data", flex, 512)],
                )
            };
            if shape == 601 {
                b.strukt(
                    "bpf_struct_ops_map",
                    448,
                    &[
                        ("map", vp, 0),
                        ("st_ops", vp, 8 * 272),
                        ("uvalue", vp, 8 * 328),
                        ("kvalue", value, 8 * 384),
                    ],
                );
            } else {
                b.strukt(
                    "bpf_struct_ops_map",
                    512,
                    &[
                        ("map", vp, 0),
                        ("st_ops_desc", vp, 8 * 264),
                        ("btf", vp, 8 * 392),
                        ("uvalue", vp, 8 * 400),
                        ("kvalue", value, 8 * 448),
                    ],
                );
                b.strukt("bpf_struct_ops_link", 96, &[("map", vp, 512)]);
            }
            offsets_from_btf(&b.finish())
        };
        let s = build(601, 0).unwrap().bpf_struct_ops_map.unwrap();
        assert_eq!((s.st_ops, s.st_ops_desc, s.btf), (Some(272), None, None));
        assert_eq!((s.uvalue, s.kvalue, s.size), (328, 384, 448));
        assert_eq!((s.value_refcnt, s.value_state, s.value_data), (0, 4, 64));
        assert_eq!((s.map_refcnt, s.map_usercnt), (None, None));

        let s = build(612, 0).unwrap().bpf_struct_ops_map.unwrap();
        assert_eq!(
            (s.st_ops, s.st_ops_desc, s.btf),
            (None, Some(264), Some(392))
        );
        assert_eq!((s.uvalue, s.kvalue, s.size), (400, 448, 512));
        assert_eq!((s.value_refcnt, s.value_state, s.value_data), (0, 4, 64));
        assert_eq!((s.map_refcnt, s.map_usercnt), (Some(144), Some(152)));

        let s = build(612, 8 * 16).unwrap().bpf_struct_ops_map.unwrap();
        assert_eq!((s.value_refcnt, s.value_state), (16, 20));

        let e = build(612, 8 * 62).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BTF: struct bpf_struct_ops_value member 'common': offset 0x42 lies past \
             the end of the struct (0x40 bytes)"
        );
    }

    #[test]
    fn forward_declarations_and_duplicates_are_skipped() {
        let mut b = minimal();
        // A second, identical xarray (dedup leftovers) and a forward one.
        let u32_ = b.int("unsigned int", 4);
        let vp = b.ptr(0);
        b.fwd("xarray");
        b.strukt(
            "xarray",
            16,
            &[
                ("xa_lock", u32_, 0),
                ("xa_flags", u32_, 32),
                ("xa_head", vp, 64),
            ],
        );
        assert_eq!(offsets_from_btf(&b.finish()).unwrap().xarray.xa_head, 8);
    }

    #[test]
    fn ambiguous_struct_is_resolved_through_its_user() {
        let mut b = minimal();
        // bcache's `struct bucket`, as if built in, after the one bpf_htab uses.
        let u64_ = b.int("long unsigned int", 8);
        b.strukt("bucket", 8, &[("prio", u64_, 0), ("head", u64_, 32)]);
        let o = offsets_from_btf(&b.finish()).unwrap();
        assert_eq!((o.bucket.head, o.bucket.size), (0, 16));

        // With nothing to choose by, it is an error that names the struct.
        let mut b = minimal();
        let u64_ = b.int("long unsigned int", 8);
        b.strukt("xa_node", 8, &[("shift", u64_, 0)]);
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BTF: 2 different definitions of struct xa_node"
        );
    }

    #[test]
    fn missing_struct_and_member_are_named() {
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        b.strukt("xarray", 16, &[("xa_flags", u32_, 32)]);
        b.strukt("idr", 24, &[("idr_rt", 2, 0), ("idr_base", u32_, 128)]);
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert_eq!(e.to_string(), "BTF: struct xarray has no member 'xa_head'");
        assert!(matches!(
            e,
            BtfError::NoMember {
                strukt: "xarray",
                member: "xa_head"
            }
        ));

        let mut b = Builder::new();
        b.fwd("idr");
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert_eq!(e.to_string(), "BTF: no struct idr with members");
    }

    #[test]
    fn bitfield_and_unaligned_members_are_rejected() {
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let xarray = b.strukt("xarray", 16, &[("xa_head", u32_, 64)]);
        // kind_flag: offset word = bitfield size << 24 | bit offset.
        b.composite(
            KIND_STRUCT,
            "idr",
            24,
            true,
            &[("idr_rt", xarray, 0), ("idr_base", u32_, (3 << 24) | 128)],
        );
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BTF: struct idr member 'idr_base': is a bitfield of 3 bits"
        );

        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let xarray = b.strukt("xarray", 16, &[("xa_head", u32_, 64)]);
        b.strukt("idr", 24, &[("idr_rt", xarray, 0), ("idr_base", u32_, 129)]);
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BTF: struct idr member 'idr_base': bit offset 129 is not byte-aligned"
        );

        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let xarray = b.strukt("xarray", 16, &[("xa_head", u32_, 64)]);
        b.strukt(
            "idr",
            24,
            &[("idr_rt", xarray, 0), ("idr_base", u32_, 8 * 25)],
        );
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert!(matches!(
            e,
            BtfError::BadMember {
                problem: MemberProblem::OutOfBounds {
                    offset: 25,
                    size: 24
                },
                ..
            }
        ));
    }

    #[test]
    fn self_containing_anonymous_union_hits_the_depth_limit() {
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        // [2] is an anonymous union whose only member is itself.
        let me = b.next_id;
        b.union(8, &[("", me, 0)]);
        b.strukt("idr", 24, &[("", me, 0), ("idr_base", u32_, 128)]);
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert!(matches!(
            e,
            BtfError::Limit {
                strukt: "idr",
                limit: MAX_ANON_DEPTH,
                ..
            }
        ));
    }

    #[test]
    fn wide_anonymous_dag_hits_the_visit_budget() {
        // Each level is a union of 16 copies of the level below: 16^8 paths.
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let mut level = b.union(4, &[("leaf", u32_, 0)]);
        for _ in 0..7 {
            let members = vec![("", level, 0); 16];
            level = b.union(4, &members);
        }
        b.strukt("idr", 24, &[("", level, 0)]);
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert!(matches!(
            e,
            BtfError::Limit {
                limit: MAX_MEMBER_VISITS,
                ..
            }
        ));
    }

    #[test]
    fn typedef_cycle_hits_the_chain_limit() {
        let mut b = Builder::new();
        let me = b.next_id;
        b.typedef("loop", me);
        b.strukt("xarray", 16, &[("xa_head", me, 64)]);
        b.strukt("idr", 24, &[("idr_rt", 2, 0), ("idr_base", me, 128)]);
        let mut b2 = minimal();
        let me = b2.next_id;
        b2.typedef("loop", me);
        // xa_node.slots is looked through; make a second xa_node impossible to
        // pick, so use a fresh BTF where slots is the loop.
        let _ = b2;
        let mut b3 = Builder::new();
        let u32_ = b3.int("unsigned int", 4);
        let x = b3.strukt("xarray", 16, &[("xa_head", u32_, 64)]);
        b3.strukt("idr", 24, &[("idr_rt", x, 0), ("idr_base", u32_, 128)]);
        let me = b3.next_id;
        b3.typedef("loop", me);
        b3.strukt("xa_node", 576, &[("slots", me, 320)]);
        let e = offsets_from_btf(&b3.finish()).unwrap_err();
        assert!(matches!(
            e,
            BtfError::BadMember {
                strukt: "xa_node",
                member: "slots",
                problem: MemberProblem::TypeChainTooLong { .. },
            }
        ));
    }

    #[test]
    fn dangling_type_id_is_an_error() {
        let mut b = Builder::new();
        let u32_ = b.int("unsigned int", 4);
        let x = b.strukt("xarray", 16, &[("xa_head", u32_, 64)]);
        b.strukt("idr", 24, &[("idr_rt", x, 0), ("idr_base", u32_, 128)]);
        b.strukt("xa_node", 576, &[("", 999, 0), ("slots", u32_, 320)]);
        let e = offsets_from_btf(&b.finish()).unwrap_err();
        assert!(matches!(
            e,
            BtfError::BadMember {
                problem: MemberProblem::NoSuchType { id: 999 },
                ..
            }
        ));
    }

    #[test]
    fn bad_headers_are_errors() {
        let good = minimal().finish();
        assert!(check_btf_header(&good).is_ok());
        assert!(matches!(
            check_btf_header(&good[..10]),
            Err(BtfError::Truncated { len: 10 })
        ));
        let mut be = good.clone();
        be[..2].copy_from_slice(&BTF_MAGIC.to_be_bytes());
        assert!(matches!(check_btf_header(&be), Err(BtfError::BigEndian)));
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(matches!(
            check_btf_header(&bad),
            Err(BtfError::BadMagic { .. })
        ));
        let mut v2 = good.clone();
        v2[2] = 2;
        assert_eq!(
            check_btf_header(&v2).unwrap_err().to_string(),
            "BTF: header field version has an impossible value 0x2"
        );
        // A string section that runs past the end.
        let mut long = good.clone();
        long[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            check_btf_header(&long),
            Err(BtfError::BadHeader {
                field: "str_off + str_len",
                ..
            })
        ));
        // hdr_len shorter than the header.
        let mut short = good.clone();
        short[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            check_btf_header(&short),
            Err(BtfError::BadHeader {
                field: "hdr_len",
                ..
            })
        ));
        // A string table that does not end with NUL.
        let mut unterminated = good.clone();
        if let Some(last) = unterminated.last_mut() {
            *last = b'x';
        }
        assert!(check_btf_header(&unterminated).is_err());
        assert!(offsets_from_btf(&unterminated).is_err());
    }

    /// Every prefix and many single-byte corruptions of a small valid blob give
    /// an error or offsets, never a panic (the catch_unwind backstop counts as
    /// a failure here).
    #[test]
    fn truncated_and_corrupted_blobs_do_not_panic() {
        let good = minimal().finish();
        for n in 0..good.len() {
            match offsets_from_btf(&good[..n]) {
                Err(BtfError::Panicked { during, message }) => {
                    panic!("btf-rs panicked on a {n}-byte prefix while {during}: {message}")
                }
                Ok(_) => panic!("a {n}-byte prefix parsed"),
                Err(_) => {}
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut blob = good.clone();
            let at = (seed as usize) % blob.len();
            blob[at] = (seed >> 32) as u8;
            if i % 3 == 0 {
                let at2 = ((seed >> 16) as usize) % blob.len();
                blob[at2] ^= 0xff;
            }
            if let Err(BtfError::Panicked { during, message }) = offsets_from_btf(&blob) {
                panic!("btf-rs panicked on corruption {i} while {during}: {message}");
            }
        }
    }

    #[test]
    fn oversized_blob_is_refused_before_parsing() {
        let big = vec![0u8; MAX_BTF_SIZE as usize + 1];
        assert!(matches!(
            offsets_from_btf(&big),
            Err(BtfError::TooLarge { .. })
        ));
    }

    #[test]
    fn read_kernel_btf_checks_range_size_and_magic() {
        let blob = minimal().finish();
        let base = Kva(0xffff_ffff_8240_0000);
        let end = base.checked_add(blob.len() as u64).unwrap();
        let k = FlatKernel {
            base,
            bytes: blob.clone(),
        };
        assert_eq!(read_kernel_btf(&k, base, end).unwrap(), blob);
        assert!(matches!(
            read_kernel_btf(&k, end, base),
            Err(BtfError::BadRange { .. })
        ));
        let huge = base.checked_add(MAX_BTF_SIZE + 1).unwrap();
        assert!(matches!(
            read_kernel_btf(&k, base, huge),
            Err(BtfError::TooLarge { .. })
        ));
        // The header promises more than __stop_BTF allows.
        let short = base.checked_add(100).unwrap();
        assert!(matches!(
            read_kernel_btf(&k, base, short),
            Err(BtfError::BadHeader { .. })
        ));
        // Past what the kernel has mapped: a read error, after the header.
        let past = end.checked_add(4096).unwrap();
        let mut longer = blob.clone();
        // str_len grows by the 4096 bytes that are not there.
        let str_len = u32::from_le_bytes(blob[20..24].try_into().unwrap());
        longer[20..24].copy_from_slice(&(str_len + 4096).to_le_bytes());
        let k2 = FlatKernel {
            base,
            bytes: longer,
        };
        assert!(matches!(
            read_kernel_btf(&k2, base, past),
            Err(BtfError::Read { .. })
        ));
        let zeros = FlatKernel {
            base,
            bytes: vec![0u8; 64],
        };
        let stop = base.checked_add(64).unwrap();
        assert!(matches!(
            read_kernel_btf(&zeros, base, stop),
            Err(BtfError::BadMagic { magic: 0 })
        ));
    }

    /// An ELF64 file with a `.BTF` section holding `btf`.
    fn elf_with_btf(btf: &[u8]) -> Vec<u8> {
        let names = b"\0.text\0.BTF\0.shstrtab\0";
        let mut out = vec![0u8; 64];
        let btf_off = out.len() as u64;
        out.extend_from_slice(btf);
        let names_off = out.len() as u64;
        out.extend_from_slice(names);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let shoff = out.len() as u64;
        let shdr = |name: u32, ty: u32, off: u64, size: u64| Elf64Shdr {
            sh_name: name.into(),
            sh_type: ty.into(),
            sh_flags: 0.into(),
            sh_addr: 0.into(),
            sh_offset: off.into(),
            sh_size: size.into(),
            sh_link: 0.into(),
            sh_info: 0.into(),
            sh_addralign: 1.into(),
            sh_entsize: 0.into(),
        };
        for sh in [
            shdr(0, 0, 0, 0),
            shdr(1, 1, 0, 0),
            shdr(7, 1, btf_off, btf.len() as u64),
            shdr(12, 3, names_off, names.len() as u64),
        ] {
            out.extend_from_slice(sh.as_bytes());
        }
        let mut ident = [0u8; 16];
        ident[..4].copy_from_slice(&ELFMAG);
        ident[4] = ELFCLASS64;
        ident[5] = ELFDATA2LSB;
        ident[6] = 1;
        let ehdr = Elf64Ehdr {
            e_ident: ident,
            e_type: 2.into(),
            e_machine: 62.into(),
            e_version: 1.into(),
            e_entry: 0.into(),
            e_phoff: 0.into(),
            e_shoff: shoff.into(),
            e_flags: 0.into(),
            e_ehsize: 64.into(),
            e_phentsize: 56.into(),
            e_phnum: 0.into(),
            e_shentsize: 64.into(),
            e_shnum: 4.into(),
            e_shstrndx: 3.into(),
        };
        out[..64].copy_from_slice(ehdr.as_bytes());
        out
    }

    #[test]
    fn load_btf_file_reads_raw_and_elf() {
        let dir = tempfile::tempdir().unwrap();
        let btf = minimal().finish();
        let raw = dir.path().join("vmlinux.btf");
        std::fs::write(&raw, &btf).unwrap();
        assert_eq!(load_btf_file(&raw).unwrap(), btf);

        let elf = dir.path().join("vmlinux");
        let image = elf_with_btf(&btf);
        std::fs::write(&elf, &image).unwrap();
        assert_eq!(load_btf_file(&elf).unwrap(), btf);

        // The .BTF section points past the end of the file.
        let mut cut = image.clone();
        let shoff = image.len() - 4 * 64;
        let btf_sh = shoff + 2 * 64;
        cut[btf_sh + 24..btf_sh + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
        std::fs::write(&elf, &cut).unwrap();
        let e = load_btf_file(&elf).unwrap_err();
        assert!(
            e.to_string()
                .contains(".BTF section runs past the end of the file"),
            "{e}"
        );

        // No .BTF: rename it.
        let mut renamed = image.clone();
        let names_at = 64 + btf.len();
        renamed[names_at + 7..names_at + 11].copy_from_slice(b".XYZ");
        std::fs::write(&elf, &renamed).unwrap();
        assert!(matches!(
            load_btf_file(&elf),
            Err(BtfError::NoBtfSection { .. })
        ));

        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"hello world").unwrap();
        assert_eq!(
            load_btf_file(&junk).unwrap_err().to_string(),
            format!(
                "BTF: {}: offset 0x0: neither raw BTF (magic 0xeb9f) nor an ELF file",
                junk.display()
            )
        );
        assert!(matches!(
            load_btf_file(dir.path().join("absent")),
            Err(BtfError::Io { .. })
        ));
        assert!(matches!(
            load_btf_file(dir.path()),
            Err(BtfError::BadFile { .. })
        ));
    }

    #[test]
    fn error_is_std_error_with_source() {
        use std::error::Error as _;
        let e = BtfError::Read {
            error: bpfmem_core::Error::NotMapped {
                kva: Kva(0xffff_ffff_8240_0000),
                level: 1,
            },
        };
        assert!(e.source().is_some());
        assert_eq!(
            e.to_string(),
            "BTF: cannot read the kernel's BTF: kva 0xffffffff82400000 is not mapped \
             (level-1 page-table entry not present)"
        );
    }

    fn host_btf() -> Option<Vec<u8>> {
        match load_btf_file(HOST_BTF) {
            Ok(blob) => Some(blob),
            // The CI machine's kernel has BTF: there, a missing file fails.
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
                panic!("{HOST_BTF}: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: {e}");
                None
            }
        }
    }

    #[test]
    fn host_btf_resolves_every_offset() {
        let Some(blob) = host_btf() else { return };
        let o = offsets_from_btf(&blob).unwrap();
        // xa_node has not changed since v4.20 (include/linux/xarray.h).
        assert_eq!(
            (
                o.xa_node.shift,
                o.xa_node.offset,
                o.xa_node.count,
                o.xa_node.parent
            ),
            (0, 1, 2, 8)
        );
        assert_eq!(
            (o.xa_node.slots, o.xa_node.nr_slots, o.xa_node.size),
            (40, 64, 576)
        );
        assert_eq!((o.xarray.xa_head, o.idr.idr_rt, o.idr.idr_base), (8, 0, 16));
        assert_eq!(o.bpf_array.map, 0);
        assert_eq!(o.bpf_htab.map, 0);
        assert_eq!((o.bucket.head, o.bucket.size), (0, 16));
        assert_eq!((o.htab_elem.hash_node, o.htab_elem.key), (0, 48));
        assert!(o.bpf_map.size > o.bpf_map.btf_vmlinux_value_type_id);
        // struct bpf_prog has begun the same way since v4.x.
        let p = o.bpf_prog;
        assert_eq!((p.r#type, p.len, p.jited_len, p.tag), (4, 12, 16, 20));
        assert!(o.bpf_prog_aux.size > o.bpf_prog_aux.btf);
        eprintln!("{o:#?}");
    }
}
