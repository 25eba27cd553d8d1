//! kallsyms: the kernel's own symbol table, decoded from the tables linked into
//! its image, at the addresses VMCOREINFO gives (`SYMBOL(kallsyms_*)`, since 6.0).
//!
//! `scripts/kallsyms.c` (`write_src()`) compresses every vmlinux symbol into
//! `.rodata`; `kernel/kallsyms.c` decodes it. What both 6.1 and 6.12 write and
//! read:
//!
//! - `kallsyms_num_syms` (`unsigned int`): how many symbols.
//! - `kallsyms_names` (`u8[]`): one entry per symbol, in address order: a length,
//!   then that many token codes. Since 6.1 (commit 73bbb94466fd "kallsyms: support
//!   "big" kernel symbols") a length byte with bit 7 set takes a second byte,
//!   `len = (b0 & 0x7f) | b1 << 7` (two-byte ULEB128, at most 0x3fff). Kernels
//!   before 6.1 kept names under 128 bytes, so their lengths read the same.
//! - `kallsyms_token_table` (`char[]`): 256 NUL-terminated strings, and
//!   `kallsyms_token_index` (`u16[256]`), the offset of each in the table: code
//!   `c` expands to the string at `token_table + token_index[c]`.
//! - A name expands to its type (`T`, `t`, `D`, `b`, `A`...) followed by the name
//!   proper, at most `KSYM_NAME_LEN - 1` bytes (`KSYM_NAME_LEN` is 512 since 6.1,
//!   commit b8a94bfb3395); `kallsyms_expand_symbol()` skips the type.
//! - `kallsyms_markers` (`unsigned int[]`, `.long` in `write_src()`): the offset
//!   in `kallsyms_names` of every 256th name. VMCOREINFO does not export it; when a
//!   caller has it, the walk checks it.
//! - `kallsyms_offsets` (`int[]`) with `kallsyms_relative_base` (`unsigned long`),
//!   or, without CONFIG_KALLSYMS_BASE_RELATIVE, `kallsyms_addresses`
//!   (`unsigned long[]`): see [`AddressMode`].
//!
//! 6.1 emits offsets, relative base, count, names, markers, then the tokens; 6.4
//! (commit 404bad70fcf7 "scripts/kallsyms: change the output order") moved the
//! offsets and relative base after the tokens. Either way `kallsyms_names` ends
//! before `kallsyms_token_table`, which bounds it here. (Debian's 6.1.0-50 also has
//! 6.2's `kallsyms_seqs_of_names` between markers and tokens; 6.12 puts it last.)
//!
//! Lookups by name: since 6.2 (commit 60443c88f3a8 "kallsyms: Improve the
//! performance of kallsyms_lookup_name()") `kallsyms_seqs_of_names` (`u8[3 *
//! num_syms]`, big-endian 24-bit symbol indexes) lists the symbols sorted by
//! name (`strcmp` of the name without its type, then address), and the kernel
//! binary-searches it. VMCOREINFO exports neither it nor the markers, but
//! `write_src()` places both where lookups can find them from the tables
//! it does export; a candidate is used only after its markers agree with the
//! names. Without one (6.1 upstream), or when a search fails to read, lookups
//! scan linearly like 6.1's `kallsyms_lookup_name()`.
//!
//! Every length, token offset and table index read from memory is checked:
//! compressed names are at most [`KSYM_NAME_LEN`] bytes and must lie inside the
//! names table, expanded names at most `KSYM_NAME_LEN - 1`, symbol counts at most
//! [`MAX_SYMS`], and the names table at most [`MAX_NAMES_BYTES`].

use core::cmp::Ordering;
use core::fmt;

use crate::addr::Kva;
use crate::error::{Error, Location, Result};
use crate::virt::KernelRead;
use crate::vmcoreinfo::KallsymsSymbols;

/// `KSYM_NAME_LEN` (include/linux/kallsyms.h, 512 since 6.1): a name and its NUL.
pub const KSYM_NAME_LEN: usize = 512;

/// The most symbols a table may claim. Real kernels have 80k to 200k.
pub const MAX_SYMS: u32 = 2_000_000;

/// The most bytes of `kallsyms_names` a walk reads. Real tables are 1 to 3 MiB.
pub const MAX_NAMES_BYTES: u64 = 64 << 20;

/// The longest name proper: `KSYM_NAME_LEN` less the NUL.
const MAX_NAME: usize = KSYM_NAME_LEN - 1;

/// The most token codes one name may have. `scripts/kallsyms.c` never emits a
/// token that expands to nothing, so a name of at most `KSYM_NAME_LEN` characters
/// (type included) has at most that many codes.
const MAX_COMPRESSED: usize = KSYM_NAME_LEN;

/// Bytes of the token table kept in [`Kallsyms`]. Real tables are about 1 KiB
/// (920 bytes in Debian's 6.1, 1021 in its 6.12); tokens beyond are read when used.
const TOKEN_CACHE: usize = 4096;

/// Bytes of `kallsyms_names` read at a time. At least a whole compressed name
/// (two length bytes and [`MAX_COMPRESSED`] codes).
const NAMES_BUF: usize = 4096;
const _: () = assert!(NAMES_BUF >= MAX_COMPRESSED + 2);

/// Bytes of `kallsyms_offsets` / `kallsyms_addresses` read at a time by the walk.
const ADDRS_BUF: usize = 1024;

/// Step of the token-table reads.
const TOKEN_STEP: usize = 256;

/// `__START_KERNEL` on x86-64: where `_text` is linked with the default
/// `CONFIG_PHYSICAL_START` (16 MiB), before the KASLR offset.
const START_KERNEL: u64 = 0xffff_ffff_8100_0000;

const WHAT_NUM_SYMS: &str = "kallsyms_num_syms";
const WHAT_NAMES: &str = "kallsyms_names";
const WHAT_NAME: &str = "kallsyms name";
const WHAT_MARKERS: &str = "kallsyms_markers";
const WHAT_TOKEN_TABLE: &str = "kallsyms_token_table";
const WHAT_ADDRS: &str = "kallsyms_offsets";
const WHAT_TEXT: &str = "kallsyms _text";
const WHAT_SEQS: &str = "kallsyms_seqs_of_names";

/// Where `write_src()` put `kallsyms_markers` and `kallsyms_seqs_of_names`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NameIndex {
    markers: Kva,
    seqs: Kva,
}

/// `ALGN` on 64-bit: `.balign 8`.
fn align8(v: u64) -> Option<u64> {
    v.checked_add(7).map(|v| v & !7)
}

/// How `kallsyms_sym_address()` turns a table entry into an address.
///
/// - [`Absolute`](AddressMode::Absolute): `kallsyms_addresses[i]`, without
///   CONFIG_KALLSYMS_BASE_RELATIVE. No x86-64 kernel uses it; it is gone since
///   6.11 (commit 64e166099b69 "kallsyms: get rid of code for absolute kallsyms").
/// - [`Relative`](AddressMode::Relative): `kallsyms_relative_base +
///   (u32)kallsyms_offsets[i]`.
/// - [`AbsolutePercpu`](AddressMode::AbsolutePercpu): with
///   CONFIG_KALLSYMS_ABSOLUTE_PERCPU (`default X86_64 && SMP` in init/Kconfig in
///   6.1 and 6.12, removed in 6.15 by commit 01157ddc58dc), an offset `>= 0` is the
///   address itself (the per-CPU symbols, linked at 0) and a negative one is
///   `kallsyms_relative_base - 1 - offset`.
///
/// Nothing in the image says which of the last two a kernel uses;
/// [`Kallsyms::new`] finds out from `_text`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressMode {
    /// `kallsyms_addresses[i]`.
    Absolute,
    /// `kallsyms_relative_base + (u32)kallsyms_offsets[i]`.
    Relative,
    /// `kallsyms_offsets[i]` when `>= 0`, else
    /// `kallsyms_relative_base - 1 - kallsyms_offsets[i]`.
    AbsolutePercpu,
}

impl AddressMode {
    /// Bytes per table entry.
    const fn entry_size(self) -> u64 {
        match self {
            AddressMode::Absolute => 8,
            AddressMode::Relative | AddressMode::AbsolutePercpu => 4,
        }
    }
}

/// `kallsyms_sym_address()` for a table `entry` (an `unsigned long`, or an `int`
/// zero-extended from its 32 bits). `None` when the sum leaves the address space:
/// the kernel's arithmetic would wrap, but no kernel emits such an entry.
fn sym_address(mode: AddressMode, relative_base: u64, entry: u64) -> Option<u64> {
    match mode {
        AddressMode::Absolute => Some(entry),
        AddressMode::Relative => relative_base.checked_add(entry & 0xffff_ffff),
        AddressMode::AbsolutePercpu => {
            let offset = entry as u32 as i32;
            match u64::try_from(offset) {
                Ok(absolute) => Some(absolute),
                Err(_) => relative_base
                    .checked_sub(1)?
                    .checked_add(u64::from(offset.unsigned_abs())),
            }
        }
    }
}

/// One token: where it starts in `kallsyms_token_table` and how long it is.
#[derive(Clone, Copy, Debug, Default)]
struct Token {
    off: u16,
    len: u16,
}

/// A checked view of a kernel's kallsyms tables: their addresses, the symbol
/// count, the address mode, and a copy of the token table.
///
/// It holds no reference to memory: every walk reads through the [`KernelRead`]
/// it is given, which must be the image `new` read.
#[derive(Clone)]
pub struct Kallsyms {
    num_syms: u32,
    names: Kva,
    /// Bytes of `kallsyms_names` a walk may read.
    names_size: u64,
    markers: Option<Kva>,
    /// The sorted-by-name index, where one was found.
    name_index: Option<NameIndex>,
    token_table: Kva,
    /// `kallsyms_offsets` or `kallsyms_addresses`.
    addrs: Kva,
    relative_base: u64,
    mode: AddressMode,
    tokens: [Token; 256],
    /// Whether every token expands to at least one byte (true of every real
    /// table), which bounds a name's codes by its length.
    tokens_nonempty: bool,
    /// The first `cached` bytes of `kallsyms_token_table`.
    cache: [u8; TOKEN_CACHE],
    cached: usize,
}

impl Kallsyms {
    /// Read and check the tables `syms` points to, and find the address mode.
    ///
    /// Fails with [`Error::NotFound`] when `syms` lacks a table this needs
    /// (`names`, `num_syms`, `token_table`, `token_index`, and `offsets` with
    /// `relative_base` or else `addresses`), [`Error::Limit`] when `num_syms`
    /// exceeds [`MAX_SYMS`], [`Error::Malformed`] when a token is not
    /// NUL-terminated within `KSYM_NAME_LEN` bytes, and with the read error when
    /// a table is not readable.
    ///
    /// With `kallsyms_offsets`, the mode is the one under which `_text` is at
    /// `__START_KERNEL + kernel_offset` (`KERNELOFFSET` from VMCOREINFO; this
    /// assumes x86-64's default `CONFIG_PHYSICAL_START` of 16 MiB), or, with no
    /// `kernel_offset`, at `kallsyms_relative_base` (the lowest relative symbol,
    /// which is `_text` on x86-64). Finding `_text` is a scan of the
    /// names up to it (the first few hundred on x86-64). Use
    /// [`Kallsyms::with_mode`] when neither applies.
    pub fn new<K: KernelRead + ?Sized>(
        k: &K,
        syms: &KallsymsSymbols,
        kernel_offset: Option<u64>,
    ) -> Result<Self> {
        let mut ks = Self::load(k, syms, None)?;
        if ks.mode != AddressMode::Absolute {
            ks.mode = ks.detect_mode(k, kernel_offset)?;
        }
        Ok(ks)
    }

    /// [`Kallsyms::new`] with a known address mode: [`AddressMode::Absolute`]
    /// reads `kallsyms_addresses`, the others `kallsyms_offsets` and
    /// `kallsyms_relative_base`.
    pub fn with_mode<K: KernelRead + ?Sized>(
        k: &K,
        syms: &KallsymsSymbols,
        mode: AddressMode,
    ) -> Result<Self> {
        Self::load(k, syms, Some(mode))
    }

    /// How many symbols the table has (`kallsyms_num_syms`).
    pub fn num_syms(&self) -> u32 {
        self.num_syms
    }

    /// How table entries become addresses.
    pub fn mode(&self) -> AddressMode {
        self.mode
    }

    /// The address of the first symbol named `name` (the lowest, as the table is
    /// in address order), like `kallsyms_lookup_name()`; `None` if there is none.
    /// Names are compared whole, without the type and without stripping
    /// compiler suffixes (`.llvm.`, `.cold`).
    ///
    /// A binary search of `kallsyms_seqs_of_names` where the kernel has it,
    /// else a linear scan of `kallsyms_names`: each name is expanded only as
    /// far as it matches. Fails on the first malformed or unreadable name the
    /// scan meets.
    pub fn lookup<K: KernelRead + ?Sized>(&self, k: &K, name: &str) -> Result<Option<u64>> {
        let mut out = [None];
        self.lookup_many(k, &[name], &mut out)?;
        Ok(out[0])
    }

    /// The address of symbol number `index` (`kallsyms_sym_address()`).
    pub fn sym_address<K: KernelRead + ?Sized>(&self, k: &K, index: u32) -> Result<u64> {
        let (at, entry) = self.entry(k, index)?;
        sym_address(self.mode, self.relative_base, entry).ok_or(Error::malformed(WHAT_ADDRS, at))
    }

    /// Where entry `index` of `kallsyms_offsets` / `kallsyms_addresses` is, and
    /// what it holds.
    fn entry<K: KernelRead + ?Sized>(&self, k: &K, index: u32) -> Result<(Kva, u64)> {
        let at = self.entry_kva(index)?;
        let entry = match self.mode {
            AddressMode::Absolute => k.read_kva_u64(at)?,
            AddressMode::Relative | AddressMode::AbsolutePercpu => u64::from(k.read_kva_u32(at)?),
        };
        Ok((at, entry))
    }

    /// Every symbol, in table (address) order. The walk stops for good after its
    /// first error.
    pub fn iter<'a, K: KernelRead + ?Sized>(&'a self, k: &'a K) -> SymIter<'a, K> {
        SymIter {
            ks: self,
            k,
            names: Names::new(),
            addrs: Addrs::new(),
            index: 0,
            done: false,
        }
    }

    fn load<K: KernelRead + ?Sized>(
        k: &K,
        syms: &KallsymsSymbols,
        mode: Option<AddressMode>,
    ) -> Result<Self> {
        let need = |v: Option<u64>, what: &'static str| v.map(Kva).ok_or(Error::NotFound { what });
        let num_syms_at = need(syms.num_syms, "VMCOREINFO SYMBOL(kallsyms_num_syms)")?;
        let names = need(syms.names, "VMCOREINFO SYMBOL(kallsyms_names)")?;
        let token_table = need(syms.token_table, "VMCOREINFO SYMBOL(kallsyms_token_table)")?;
        let token_index = need(syms.token_index, "VMCOREINFO SYMBOL(kallsyms_token_index)")?;
        let relative = (syms.offsets, syms.relative_base);
        let (mode, addrs, relative_base) = match (mode, relative, syms.addresses) {
            (Some(AddressMode::Absolute), _, Some(a)) | (None, (None, _) | (_, None), Some(a)) => {
                (AddressMode::Absolute, Kva(a), 0)
            }
            (Some(AddressMode::Absolute), _, None) => {
                return Err(Error::NotFound {
                    what: "VMCOREINFO SYMBOL(kallsyms_addresses)",
                })
            }
            (mode, (Some(offsets), Some(base)), _) => {
                // Until `detect_mode` decides, `Relative` only sizes the entries.
                let mode = mode.unwrap_or(AddressMode::Relative);
                (mode, Kva(offsets), k.read_kva_u64(Kva(base))?)
            }
            (_, (None, _), _) => {
                return Err(Error::NotFound {
                    what: "VMCOREINFO SYMBOL(kallsyms_offsets)",
                })
            }
            (_, (_, None), _) => {
                return Err(Error::NotFound {
                    what: "VMCOREINFO SYMBOL(kallsyms_relative_base)",
                })
            }
        };

        let num_syms = k.read_kva_u32(num_syms_at)?;
        if num_syms > MAX_SYMS {
            return Err(Error::limit(
                WHAT_NUM_SYMS,
                num_syms_at,
                u64::from(MAX_SYMS),
            ));
        }
        // 6.1 and 6.12 both place the token table after the names.
        let names_size = match token_table.offset_from(names) {
            Some(gap) if gap > 0 => gap.min(MAX_NAMES_BYTES),
            _ => MAX_NAMES_BYTES,
        };

        let mut ks = Kallsyms {
            num_syms,
            names,
            names_size,
            markers: syms.markers.map(Kva),
            name_index: None,
            token_table,
            addrs,
            relative_base,
            mode,
            tokens: [Token::default(); 256],
            tokens_nonempty: true,
            cache: [0; TOKEN_CACHE],
            cached: 0,
        };
        ks.load_tokens(k, token_index)?;

        // The other tables must be readable where a walk starts and ends. Only
        // read the entries: until `detect_mode` decides, an absolute-percpu
        // kernel's negative offsets would overflow as relative ones.
        if num_syms > 0 {
            k.read_kva_u8(names)?;
            ks.entry(k, 0)?;
            ks.entry(k, num_syms.saturating_sub(1))?;
        }
        ks.name_index = ks.find_name_index(k, syms);
        Ok(ks)
    }

    /// Whether lookups by name binary-search `kallsyms_seqs_of_names`.
    pub fn has_name_index(&self) -> bool {
        self.name_index.is_some()
    }

    /// Find `kallsyms_markers` and `kallsyms_seqs_of_names` where
    /// `write_src()` puts them (each table `ALGN`ed): exported by VMCOREINFO;
    /// 6.4+ (`num_syms, names, markers, token_table, token_index, offsets,
    /// relative_base, seqs_of_names`): the markers end at the token table and
    /// the index follows `kallsyms_relative_base`; 6.2-6.3 and Debian's 6.1
    /// (`offsets, relative_base, num_syms, names, markers, seqs_of_names,
    /// token_table, token_index`): the index ends at the token table, the
    /// markers at the index. The first candidate whose markers check out.
    fn find_name_index<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        syms: &KallsymsSymbols,
    ) -> Option<NameIndex> {
        let n = u64::from(self.num_syms);
        let markers_len = align8(n.div_ceil(256).checked_mul(4)?)?;
        let seqs_len = align8(n.checked_mul(3)?)?;
        let tt = self.token_table.get();
        let exported = syms.markers.map(Kva);
        let v6_4 = || {
            Some(NameIndex {
                markers: exported.or(tt.checked_sub(markers_len).map(Kva))?,
                seqs: Kva(align8(syms.relative_base?.checked_add(8)?)?),
            })
        };
        let v6_2 = || {
            let seqs = tt.checked_sub(seqs_len)?;
            Some(NameIndex {
                markers: exported.or(seqs.checked_sub(markers_len).map(Kva))?,
                seqs: Kva(seqs),
            })
        };
        let candidates = [
            syms.seqs_of_names.and_then(|s| {
                Some(NameIndex {
                    markers: exported?,
                    seqs: Kva(s),
                })
            }),
            v6_4(),
            v6_2(),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|c| self.index_checks_out(k, c).unwrap_or(false))
    }

    /// Whether `ix` looks like the real tables: the first markers are where the
    /// names put them, and the index's first and last entries are symbols.
    fn index_checks_out<K: KernelRead + ?Sized>(&self, k: &K, ix: &NameIndex) -> Result<bool> {
        if self.num_syms == 0 {
            return Ok(false);
        }
        let marker = |i: u64| -> Result<u64> {
            let at = ix
                .markers
                .checked_add(i.wrapping_mul(4))
                .ok_or(Error::malformed(WHAT_MARKERS, ix.markers))?;
            Ok(u64::from(k.read_kva_u32(at)?))
        };
        if marker(0)? != 0 {
            return Ok(false);
        }
        let mut walk = Names::new();
        let checked = self.num_syms.min(256 * 4);
        for index in 0..checked {
            if index & 0xff == 0 && marker(u64::from(index >> 8))? != walk.next {
                return Ok(false);
            }
            walk.next_name(self, k)?;
        }
        // A permutation sorted by name, at 17 points spread over the index:
        // distinct entries (a run of zeros is not an index), names in order.
        let last = u64::from(self.num_syms.saturating_sub(1));
        let mut prev = Symbol::empty();
        let mut other = Names::new();
        let mut sampled = [(u32::MAX, u32::MAX); 17];
        for (step, slot) in (0..=16u64).zip(0..) {
            let i = u32::try_from(last.saturating_mul(step) / 16).unwrap_or(u32::MAX);
            let seq = self.seq(k, ix, i)?;
            if sampled.iter().any(|&(j, s)| s == seq && j != i) {
                return Ok(false);
            }
            if let Some(s) = sampled.get_mut(slot) {
                *s = (i, seq);
            }
            let codes = self.codes_at(k, ix, seq, &mut other)?;
            if step > 0 && self.name_cmp(k, codes, prev.name())? == Ordering::Less {
                return Ok(false);
            }
            // Errors here only reject the candidate: no location needed.
            self.decode_name(k, codes, 0, &mut prev)?;
        }
        Ok(true)
    }

    /// Entry `i` of `kallsyms_seqs_of_names` (`get_symbol_seq()`), checked
    /// to be a symbol.
    fn seq<K: KernelRead + ?Sized>(&self, k: &K, ix: &NameIndex, i: u32) -> Result<u32> {
        let at = ix
            .seqs
            .checked_add(u64::from(i).wrapping_mul(3))
            .ok_or(Error::malformed(WHAT_SEQS, ix.seqs))?;
        let mut b = [0u8; 3];
        k.read_kva(at, &mut b)?;
        let seq = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        if seq < self.num_syms {
            Ok(seq)
        } else {
            Err(Error::malformed(WHAT_SEQS, at))
        }
    }

    /// The codes of name `index`: from its marker, past the names before it.
    fn codes_at<'w, K: KernelRead + ?Sized>(
        &self,
        k: &K,
        ix: &NameIndex,
        index: u32,
        walk: &'w mut Names,
    ) -> Result<&'w [u8]> {
        let at = ix
            .markers
            .checked_add(u64::from(index >> 8).wrapping_mul(4))
            .ok_or(Error::malformed(WHAT_MARKERS, ix.markers))?;
        walk.next = u64::from(k.read_kva_u32(at)?);
        for _ in 0..index & 0xff {
            walk.next_name(self, k)?;
        }
        walk.next_name(self, k)
    }

    /// `kallsyms_lookup_names()`: binary-search the index for the first
    /// symbol named `want` (the lowest address among equal names).
    fn search_index<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        ix: &NameIndex,
        want: &[u8],
        walk: &mut Names,
    ) -> Result<Option<u32>> {
        let (mut lo, mut hi) = (0u32, self.num_syms);
        while lo < hi {
            // lo < hi <= num_syms: neither overflows.
            let mid = lo.wrapping_add(hi.wrapping_sub(lo) / 2);
            let seq = self.seq(k, ix, mid)?;
            let codes = self.codes_at(k, ix, seq, walk)?;
            if self.name_cmp(k, codes, want)? == Ordering::Less {
                lo = mid.wrapping_add(1);
            } else {
                hi = mid;
            }
        }
        if lo >= self.num_syms {
            return Ok(None);
        }
        let seq = self.seq(k, ix, lo)?;
        let codes = self.codes_at(k, ix, seq, walk)?;
        Ok((self.name_cmp(k, codes, want)? == Ordering::Equal).then_some(seq))
    }

    /// How the name (without its type) of compressed `codes` compares with
    /// `want`, as `strcmp`.
    fn name_cmp<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        codes: &[u8],
        want: &[u8],
    ) -> Result<Ordering> {
        let mut typed = false;
        let mut pos = 0usize;
        let mut ord = Ordering::Equal;
        self.expand(k, codes, |mut token| {
            if !typed {
                match token.split_first() {
                    Some((_, rest)) => {
                        typed = true;
                        token = rest;
                    }
                    None => return true,
                }
            }
            let rest = want.get(pos..).unwrap_or_default();
            let n = token.len().min(rest.len());
            let (mine, theirs) = (
                token.get(..n).unwrap_or_default(),
                rest.get(..n).unwrap_or_default(),
            );
            ord = mine.cmp(theirs);
            if ord == Ordering::Equal && token.len() > rest.len() {
                ord = Ordering::Greater;
            }
            pos = pos.saturating_add(n);
            ord == Ordering::Equal
        })?;
        if ord == Ordering::Equal && pos < want.len() {
            ord = Ordering::Less;
        }
        Ok(ord)
    }

    /// Read `kallsyms_token_index`, cache the start of `kallsyms_token_table`,
    /// and measure every token.
    fn load_tokens<K: KernelRead + ?Sized>(&mut self, k: &K, token_index: Kva) -> Result<()> {
        let mut index = [0u8; 512];
        k.read_kva(token_index, &mut index)?;
        let offs = index.chunks_exact(2).map(|b| {
            u16::from_le_bytes([
                b.first().copied().unwrap_or(0),
                b.get(1).copied().unwrap_or(0),
            ])
        });

        // Cache up to the longest possible end of the last token, stopping at the
        // first page that does not read.
        let last = offs.clone().max().unwrap_or(0);
        let want = usize::from(last)
            .saturating_add(KSYM_NAME_LEN + 1)
            .min(TOKEN_CACHE);
        while self.cached < want {
            let end = self.cached.saturating_add(TOKEN_STEP).min(want);
            let Some(chunk) = self.cache.get_mut(self.cached..end) else {
                break;
            };
            let at = self
                .token_table
                .checked_add(self.cached as u64)
                .ok_or(Error::malformed(WHAT_TOKEN_TABLE, self.token_table))?;
            if k.read_kva(at, chunk).is_err() {
                break;
            }
            self.cached = end;
        }

        for (code, off) in offs.enumerate() {
            let len = self.token_len(k, off)?;
            self.tokens_nonempty &= len > 0;
            if let Some(t) = self.tokens.get_mut(code) {
                *t = Token { off, len };
            }
        }
        Ok(())
    }

    /// The length of the NUL-terminated token at `off`, from the cache or,
    /// past it, from memory. A token longer than a name is malformed.
    fn token_len<K: KernelRead + ?Sized>(&self, k: &K, off: u16) -> Result<u16> {
        let start = usize::from(off);
        let at = self
            .token_table
            .checked_add(u64::from(off))
            .ok_or(Error::malformed(WHAT_TOKEN_TABLE, self.token_table))?;
        let window = start.saturating_add(KSYM_NAME_LEN + 1);
        if let Some(cached) = self.cache.get(start..self.cached.min(window)) {
            if let Some(len) = memchr::memchr(0, cached) {
                return u16::try_from(len).map_err(|_| Error::malformed(WHAT_TOKEN_TABLE, at));
            }
            if self.cached >= window {
                return Err(Error::malformed(WHAT_TOKEN_TABLE, at));
            }
        }
        // Not (wholly) cached: look for the NUL in small reads.
        let mut buf = [0u8; 64];
        let mut len = 0usize;
        while len <= KSYM_NAME_LEN {
            let here = at
                .checked_add(len as u64)
                .ok_or(Error::malformed(WHAT_TOKEN_TABLE, at))?;
            k.read_kva(here, &mut buf)?;
            if let Some(n) = memchr::memchr(0, &buf) {
                let total = len.saturating_add(n);
                if total > KSYM_NAME_LEN {
                    break;
                }
                return u16::try_from(total).map_err(|_| Error::malformed(WHAT_TOKEN_TABLE, at));
            }
            len = len.saturating_add(buf.len());
        }
        Err(Error::malformed(WHAT_TOKEN_TABLE, at))
    }

    /// Decide between [`AddressMode::Relative`] and
    /// [`AddressMode::AbsolutePercpu`] by where each puts `_text`.
    fn detect_mode<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        kernel_offset: Option<u64>,
    ) -> Result<AddressMode> {
        let index = self
            .index_of(k, b"_text")?
            .ok_or(Error::NotFound { what: WHAT_TEXT })?;
        let (at, entry) = self.entry(k, index)?;
        let want = match kernel_offset {
            Some(offset) => START_KERNEL.wrapping_add(offset),
            None => self.relative_base,
        };
        let fits = |mode| sym_address(mode, self.relative_base, entry) == Some(want);
        match (
            fits(AddressMode::AbsolutePercpu),
            fits(AddressMode::Relative),
        ) {
            (true, false) => Ok(AddressMode::AbsolutePercpu),
            (false, true) => Ok(AddressMode::Relative),
            _ => Err(Error::malformed(WHAT_TEXT, at)),
        }
    }

    /// The addresses of the first symbols named `names[i]`, into `out[i]`
    /// (`None` for names the table lacks): by binary search of
    /// `kallsyms_seqs_of_names` where the kernel has one that checked out,
    /// else (or if a search fails to read) in one pass over the table that
    /// ends once every name is found, expanding only names whose length (the
    /// sum of their tokens' lengths) fits one of the names sought.
    pub fn lookup_many<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        names: &[&str],
        out: &mut [Option<u64>],
    ) -> Result<()> {
        out.iter_mut().for_each(|o| *o = None);
        let mut walk = Names::new();
        if let Some(ix) = self.name_index {
            if self.search_all(k, &ix, names, out, &mut walk).is_ok() {
                // The index checked out against the names, and the kernel's own
                // kallsyms_lookup_name() trusts it: a name it lacks is not in
                // the table.
                return Ok(());
            }
            // An index that does not read is not used: the scan below finds
            // what it would have.
            walk = Names::new();
        }
        let mut left = out
            .iter()
            .zip(names)
            .filter(|(o, n)| o.is_none() && !n.is_empty() && n.len() <= MAX_NAME)
            .count();
        let mut addrs = Addrs::new();
        let mut index = 0u32;
        while left > 0 && index < self.num_syms {
            self.check_marker(k, index, walk.next)?;
            let codes = walk.next_name(self, k)?;
            // Type letter included.
            let len = codes.iter().fold(0usize, |acc, &c| {
                let t = self.tokens.get(usize::from(c)).copied().unwrap_or_default();
                acc.saturating_add(usize::from(t.len))
            });
            for (o, n) in out.iter_mut().zip(names) {
                if o.is_none()
                    && n.len().saturating_add(1) == len
                    && self.name_is(k, codes, n.as_bytes())?
                {
                    *o = Some(addrs.get(self, k, index)?);
                    left = left.saturating_sub(1);
                }
            }
            index = index.saturating_add(1);
        }
        Ok(())
    }

    /// [`Kallsyms::lookup_many`] through the name index: every name searched,
    /// until one search fails.
    fn search_all<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        ix: &NameIndex,
        names: &[&str],
        out: &mut [Option<u64>],
        walk: &mut Names,
    ) -> Result<()> {
        for (o, n) in out.iter_mut().zip(names) {
            if n.is_empty() || n.len() > MAX_NAME {
                continue;
            }
            if let Some(index) = self.search_index(k, ix, n.as_bytes(), walk)? {
                *o = Some(self.sym_address(k, index)?);
            }
        }
        Ok(())
    }

    /// The index of the first symbol named `want`.
    fn index_of<K: KernelRead + ?Sized>(&self, k: &K, want: &[u8]) -> Result<Option<u32>> {
        if want.is_empty() || want.len() > MAX_NAME {
            return Ok(None);
        }
        let mut names = Names::new();
        for index in 0..self.num_syms {
            self.check_marker(k, index, names.next)?;
            let codes = names.next_name(self, k)?;
            // With no empty token, every code adds a byte to the type and name.
            if self.tokens_nonempty && codes.len() > want.len().saturating_add(1) {
                continue;
            }
            if self.name_is(k, codes, want)? {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// Whether the compressed name `codes` expands to a type and then `want`
    /// (not empty); stops at the first byte that differs.
    fn name_is<K: KernelRead + ?Sized>(&self, k: &K, codes: &[u8], want: &[u8]) -> Result<bool> {
        Ok(!want.is_empty() && self.name_cmp(k, codes, want)? == Ordering::Equal)
    }

    /// Expand `codes`, read at `at` in `kallsyms_names`, into `sym`'s type and name.
    fn decode_name<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        codes: &[u8],
        at: u64,
        sym: &mut Symbol,
    ) -> Result<()> {
        let mut kind = None;
        let mut len = 0usize;
        let mut too_long = false;
        self.expand(k, codes, |mut token| {
            if kind.is_none() {
                match token.split_first() {
                    Some((&c, rest)) => {
                        kind = Some(c);
                        token = rest;
                    }
                    None => return true,
                }
            }
            let end = len.saturating_add(token.len());
            match sym.name.get_mut(len..end).filter(|_| end <= MAX_NAME) {
                Some(dst) => {
                    dst.copy_from_slice(token);
                    len = end;
                    true
                }
                None => {
                    too_long = true;
                    false
                }
            }
        })?;
        let name_at = self.names_kva(at);
        if too_long {
            return Err(Error::limit(WHAT_NAME, name_at, MAX_NAME as u64));
        }
        sym.kind = kind.ok_or(Error::malformed(WHAT_NAMES, name_at))?;
        sym.len =
            u16::try_from(len).map_err(|_| Error::limit(WHAT_NAME, name_at, MAX_NAME as u64))?;
        Ok(())
    }

    /// Hand `sink` the expansion of each code in turn, until it returns `false`.
    fn expand<K: KernelRead + ?Sized>(
        &self,
        k: &K,
        codes: &[u8],
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Result<()> {
        for &code in codes {
            let t = self
                .tokens
                .get(usize::from(code))
                .copied()
                .unwrap_or_default();
            let start = usize::from(t.off);
            let end = start.saturating_add(usize::from(t.len));
            let go = match self.cache.get(start..end).filter(|_| end <= self.cached) {
                Some(token) => sink(token),
                None => {
                    let mut buf = [0u8; KSYM_NAME_LEN];
                    let token = buf
                        .get_mut(..usize::from(t.len))
                        .ok_or(Error::malformed(WHAT_TOKEN_TABLE, self.token_table))?;
                    let at = self
                        .token_table
                        .checked_add(u64::from(t.off))
                        .ok_or(Error::malformed(WHAT_TOKEN_TABLE, self.token_table))?;
                    k.read_kva(at, token)?;
                    sink(token)
                }
            };
            if !go {
                break;
            }
        }
        Ok(())
    }

    /// Check `kallsyms_markers[index / 256]` against the walk, when known.
    fn check_marker<K: KernelRead + ?Sized>(&self, k: &K, index: u32, off: u64) -> Result<()> {
        let Some(markers) = self.markers else {
            return Ok(());
        };
        if index & 0xff != 0 {
            return Ok(());
        }
        let at = markers
            .checked_add(u64::from(index.wrapping_shr(8)).wrapping_mul(4))
            .ok_or(Error::malformed(WHAT_MARKERS, markers))?;
        if u64::from(k.read_kva_u32(at)?) == off {
            Ok(())
        } else {
            Err(Error::malformed(WHAT_MARKERS, at))
        }
    }

    fn entry_kva(&self, index: u32) -> Result<Kva> {
        u64::from(index)
            .checked_mul(self.mode.entry_size())
            .and_then(|off| self.addrs.checked_add(off))
            .ok_or(Error::malformed(WHAT_ADDRS, self.addrs))
    }

    /// Where offset `at` of `kallsyms_names` is, for errors.
    fn names_kva(&self, at: u64) -> Location {
        match self.names.checked_add(at) {
            Some(kva) => Location::Kva(kva),
            None => Location::Kva(self.names),
        }
    }
}

impl fmt::Debug for Kallsyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kallsyms")
            .field("num_syms", &self.num_syms)
            .field("names", &self.names)
            .field("names_size", &self.names_size)
            .field("markers", &self.markers)
            .field("token_table", &self.token_table)
            .field("addrs", &self.addrs)
            .field("relative_base", &format_args!("{:#x}", self.relative_base))
            .field("mode", &self.mode)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

/// A window on `kallsyms_names`, read [`NAMES_BUF`] bytes at a time.
struct Names {
    buf: [u8; NAMES_BUF],
    /// Table offset of `buf[0]`.
    base: u64,
    /// Bytes of `buf` read.
    filled: usize,
    /// Table offset of the next name.
    next: u64,
}

impl Names {
    const fn new() -> Self {
        Names {
            buf: [0; NAMES_BUF],
            base: 0,
            filled: 0,
            next: 0,
        }
    }

    /// The codes of the next name; moves past it.
    fn next_name<K: KernelRead + ?Sized>(&mut self, ks: &Kallsyms, k: &K) -> Result<&[u8]> {
        let at = self.next;
        let bad = || Error::malformed(WHAT_NAMES, ks.names_kva(at));
        let b0 = self.byte(ks, k, at)?;
        let (head, len) = if b0 & 0x80 != 0 {
            let b1 = self.byte(ks, k, at.checked_add(1).ok_or_else(bad)?)?;
            (2u64, u16::from(b0 & 0x7f) | u16::from(b1).wrapping_shl(7))
        } else {
            (1u64, u16::from(b0))
        };
        let len = usize::from(len);
        if len == 0 || len > MAX_COMPRESSED {
            return Err(bad());
        }
        let start = at.checked_add(head).ok_or_else(bad)?;
        let end = start.checked_add(len as u64).ok_or_else(bad)?;
        self.fill(ks, k, at, end)?;
        self.next = end;
        let from = usize::try_from(start.wrapping_sub(self.base)).map_err(|_| bad())?;
        self.buf.get(from..from.saturating_add(len)).ok_or_else(bad)
    }

    fn byte<K: KernelRead + ?Sized>(&mut self, ks: &Kallsyms, k: &K, at: u64) -> Result<u8> {
        let end = at
            .checked_add(1)
            .ok_or(Error::malformed(WHAT_NAMES, ks.names_kva(at)))?;
        self.fill(ks, k, at, end)?;
        usize::try_from(at.wrapping_sub(self.base))
            .ok()
            .and_then(|i| self.buf.get(i).copied())
            .ok_or(Error::malformed(WHAT_NAMES, ks.names_kva(at)))
    }

    /// Make table offsets `at..end` (at most [`NAMES_BUF`] bytes) resident.
    fn fill<K: KernelRead + ?Sized>(
        &mut self,
        ks: &Kallsyms,
        k: &K,
        at: u64,
        end: u64,
    ) -> Result<()> {
        let held = self.base.saturating_add(self.filled as u64);
        if at >= self.base && end <= held {
            return Ok(());
        }
        if end > ks.names_size {
            // A name that runs past the table.
            return Err(Error::malformed(WHAT_NAMES, ks.names_kva(at)));
        }
        // Keep what is already read from `at` on, and read the rest.
        let keep = if at >= self.base && at < held {
            usize::try_from(held.wrapping_sub(at)).unwrap_or(0)
        } else {
            0
        };
        let to = ks.names_size.wrapping_sub(at).min(NAMES_BUF as u64) as usize;
        self.buf
            .copy_within(self.filled.saturating_sub(keep)..self.filled, 0);
        let from = ks
            .names
            .checked_add(at)
            .and_then(|kva| kva.checked_add(keep as u64))
            .ok_or(Error::malformed(WHAT_NAMES, ks.names_kva(at)))?;
        let Some(dst) = self.buf.get_mut(keep..to) else {
            return Err(Error::malformed(WHAT_NAMES, ks.names_kva(at)));
        };
        // Forget the window first: a failed read leaves nothing stale behind.
        self.filled = 0;
        k.read_kva(from, dst)?;
        self.base = at;
        self.filled = to;
        Ok(())
    }
}

/// A window on `kallsyms_offsets` / `kallsyms_addresses`.
struct Addrs {
    buf: [u8; ADDRS_BUF],
    /// Index of the entry at `buf[0]`.
    first: u32,
    /// Entries in `buf`.
    count: u32,
}

impl Addrs {
    const fn new() -> Self {
        Addrs {
            buf: [0; ADDRS_BUF],
            first: 0,
            count: 0,
        }
    }

    fn get<K: KernelRead + ?Sized>(&mut self, ks: &Kallsyms, k: &K, index: u32) -> Result<u64> {
        let size = ks.mode.entry_size();
        let at = ks.entry_kva(index)?;
        if index < self.first || index >= self.first.saturating_add(self.count) {
            let room = (ADDRS_BUF as u64).checked_div(size).unwrap_or(0);
            let count = u64::from(ks.num_syms.saturating_sub(index)).min(room);
            let bytes = count.saturating_mul(size) as usize;
            self.count = 0;
            let dst = self
                .buf
                .get_mut(..bytes)
                .ok_or(Error::malformed(WHAT_ADDRS, at))?;
            k.read_kva(at, dst)?;
            self.first = index;
            self.count = count as u32;
        }
        let from = u64::from(index.wrapping_sub(self.first)).saturating_mul(size) as usize;
        let entry = self
            .buf
            .get(from..from.saturating_add(size as usize))
            .ok_or(Error::malformed(WHAT_ADDRS, at))?;
        let mut raw = [0u8; 8];
        raw.get_mut(..entry.len())
            .ok_or(Error::malformed(WHAT_ADDRS, at))?
            .copy_from_slice(entry);
        sym_address(ks.mode, ks.relative_base, u64::from_le_bytes(raw))
            .ok_or(Error::malformed(WHAT_ADDRS, at))
    }
}

/// One kernel symbol: its name, its type letter and its address.
#[derive(Clone)]
pub struct Symbol {
    name: [u8; KSYM_NAME_LEN],
    len: u16,
    kind: u8,
    addr: u64,
    index: u32,
}

impl Symbol {
    const fn empty() -> Self {
        Symbol {
            name: [0; KSYM_NAME_LEN],
            len: 0,
            kind: 0,
            addr: 0,
            index: 0,
        }
    }

    /// The name, without the type: at most `KSYM_NAME_LEN - 1` bytes.
    pub fn name(&self) -> &[u8] {
        self.name.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The name as text, if it is UTF-8 (kernel names are ASCII).
    pub fn name_str(&self) -> Option<&str> {
        core::str::from_utf8(self.name()).ok()
    }

    /// The type letter `/proc/kallsyms` shows (`T`, `t`, `D`, `d`, `B`, `A`...).
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The position in the table (address order).
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Symbol");
        match self.name_str() {
            Some(name) => d.field("name", &name),
            None => d.field("name", &self.name()),
        };
        d.field("kind", &char::from(self.kind))
            .field("addr", &format_args!("{:#x}", self.addr))
            .field("index", &self.index)
            .finish()
    }
}

impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
            && self.kind == other.kind
            && self.addr == other.addr
            && self.index == other.index
    }
}

impl Eq for Symbol {}

/// The walk of [`Kallsyms::iter`]: at most `num_syms` symbols, stopped for good by
/// the first error.
pub struct SymIter<'a, K: ?Sized> {
    ks: &'a Kallsyms,
    k: &'a K,
    names: Names,
    addrs: Addrs,
    index: u32,
    done: bool,
}

impl<K: KernelRead + ?Sized> SymIter<'_, K> {
    /// The next symbol, `None` at the end, or the error that ended the walk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Symbol>> {
        if self.done || self.index >= self.ks.num_syms {
            self.done = true;
            return Ok(None);
        }
        match self.step() {
            Ok(sym) => {
                self.index = self.index.saturating_add(1);
                Ok(Some(sym))
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Symbol> {
        let (ks, k, index) = (self.ks, self.k, self.index);
        ks.check_marker(k, index, self.names.next)?;
        let at = self.names.next;
        let codes = self.names.next_name(ks, k)?;
        let mut sym = Symbol::empty();
        ks.decode_name(k, codes, at, &mut sym)?;
        sym.addr = self.addrs.get(ks, k, index)?;
        sym.index = index;
        Ok(sym)
    }
}

impl<K: KernelRead + ?Sized> Iterator for SymIter<'_, K> {
    type Item = Result<Symbol>;

    fn next(&mut self) -> Option<Self::Item> {
        SymIter::next(self).transpose()
    }
}

impl<K: KernelRead + ?Sized> core::iter::FusedIterator for SymIter<'_, K> {}

#[cfg(test)]
mod tests;
