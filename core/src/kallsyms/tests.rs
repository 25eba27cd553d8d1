//! Tests of the kallsyms decoder, against tables built the way
//! `scripts/kallsyms.c` (`write_src()`, 6.1 and 6.4+) builds them: greedy token
//! compression, one- or two-byte name lengths, markers every 256 names, and
//! `kallsyms_offsets` in both relative encodings or `kallsyms_addresses`.

use std::format;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::virt::FlatKernel;

/// Where the builder links the tables: `.rodata`, past the kernel text.
const RODATA: u64 = 0xffff_ffff_8200_0000;

/// A KASLR offset (`KERNELOFFSET`) for the tests that want one.
const KASLR: u64 = 0x2e00_0000;

// Codes of the multi-byte tokens every built table has. Codes 0x20..=0x7e are
// the printable bytes themselves; the rest are tokens no name here contains.
const TOK_UNDERSCORES: u8 = 0x80;
const TOK_BPF: u8 = 0x81;
const TOK_MAP: u8 = 0x82;
const TOK_IDR: u8 = 0x83;
/// A type and the start of a name in one token, as real tables have.
const TOK_T_BPF: u8 = 0x84;
const TOK_T_UNDERSCORES: u8 = 0x85;

/// The 256 strings of `kallsyms_token_table`. None is empty, as in every table
/// of a real kernel (`optimize_result()` fills all codes).
fn token_strings() -> Vec<Vec<u8>> {
    (0..=255u8)
        .map(|code| match code {
            0x20..=0x7e => vec![code],
            TOK_UNDERSCORES => b"__".to_vec(),
            TOK_BPF => b"bpf_".to_vec(),
            TOK_MAP => b"map".to_vec(),
            TOK_IDR => b"_idr".to_vec(),
            TOK_T_BPF => b"Tbpf_".to_vec(),
            TOK_T_UNDERSCORES => b"t__".to_vec(),
            _ => format!("{{{code:02x}}}").into_bytes(),
        })
        .collect()
}

/// Compress `text` (type, then name) greedily, longest token first. Empty
/// tokens are never used, as `scripts/kallsyms.c` never emits one.
fn compress(tokens: &[Vec<u8>], text: &[u8]) -> Vec<u8> {
    compress_with(&Tokens::new(tokens), text)
}

/// Token codes by first byte, longest token first.
struct Tokens<'a>(Vec<Vec<(u8, &'a [u8])>>);

impl<'a> Tokens<'a> {
    fn new(tokens: &'a [Vec<u8>]) -> Self {
        let mut by_first = vec![Vec::new(); 256];
        for (code, t) in tokens.iter().enumerate() {
            if let Some(&first) = t.first() {
                by_first[usize::from(first)].push((code as u8, &t[..]));
            }
        }
        for list in &mut by_first {
            list.sort_by_key(|&(_, t)| core::cmp::Reverse(t.len()));
        }
        Tokens(by_first)
    }
}

fn compress_with(tokens: &Tokens<'_>, text: &[u8]) -> Vec<u8> {
    let mut codes = Vec::new();
    let mut rest = text;
    while let Some(&first) = rest.first() {
        let &(code, t) = tokens.0[usize::from(first)]
            .iter()
            .find(|(_, t)| rest.starts_with(t))
            .expect("a token for every byte of the name");
        codes.push(code);
        rest = &rest[t.len()..];
    }
    codes
}

/// One input line of `scripts/kallsyms`: `nm -n` order, type, name, address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sym {
    kind: u8,
    name: Vec<u8>,
    addr: u64,
}

fn sym(kind: u8, name: &str, addr: u64) -> Sym {
    Sym {
        kind,
        name: name.as_bytes().to_vec(),
        addr,
    }
}

/// Which `write_src()` output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// 6.1: offsets, relative base, count, names, markers, tokens.
    V6_1,
    /// 6.4+ (commit 404bad70fcf7): count, names, markers, tokens, offsets,
    /// relative base.
    V6_4,
}

/// The tables before layout, for tests to bend before [`Tables::build`].
#[derive(Clone, Debug)]
struct Tables {
    order: Order,
    mode: AddressMode,
    /// What `kallsyms_num_syms` says.
    num_syms: u32,
    /// Compressed names, without their lengths.
    names: Vec<Vec<u8>>,
    /// Token strings, written NUL-terminated.
    tokens: Vec<Vec<u8>>,
    /// `kallsyms_offsets` (as `u32`) or `kallsyms_addresses`.
    entries: Vec<u64>,
    relative_base: u64,
    /// Symbol numbers sorted as `scripts/kallsyms.c`'s `compare_names()`
    /// sorts them: by name without the type, then address.
    by_name: Vec<u32>,
    /// Whether to write `kallsyms_seqs_of_names` (6.2+, Debian's 6.1): after
    /// the markers in [`Order::V6_1`], after the relative base in
    /// [`Order::V6_4`].
    seqs: bool,
}

/// Whether `scripts/kallsyms --absolute-percpu` keeps `addr` absolute: the
/// per-CPU section is linked at 0.
fn is_percpu(addr: u64) -> bool {
    addr <= i32::MAX as u64
}

impl Tables {
    fn new(syms: &[Sym], mode: AddressMode, order: Order) -> Self {
        Self::with_tokens(syms, mode, order, token_strings())
    }

    fn with_tokens(syms: &[Sym], mode: AddressMode, order: Order, tokens: Vec<Vec<u8>>) -> Self {
        assert!(
            syms.windows(2).all(|w| w[0].addr <= w[1].addr),
            "nm -n order"
        );
        let index = Tokens::new(&tokens);
        let names = syms
            .iter()
            .map(|s| {
                let mut text = vec![s.kind];
                text.extend_from_slice(&s.name);
                compress_with(&index, &text)
            })
            .collect();
        // record_relative_base(): the first symbol that is not absolute.
        let relative_base = match mode {
            AddressMode::Absolute => 0,
            AddressMode::Relative => syms.first().map_or(0, |s| s.addr),
            AddressMode::AbsolutePercpu => syms
                .iter()
                .find(|s| !is_percpu(s.addr))
                .map_or(0, |s| s.addr),
        };
        let entries = syms
            .iter()
            .map(|s| match mode {
                AddressMode::Absolute => s.addr,
                AddressMode::Relative => {
                    let offset = s.addr - relative_base;
                    assert!(
                        offset <= u64::from(u32::MAX),
                        "relative offset out of range"
                    );
                    offset
                }
                AddressMode::AbsolutePercpu if is_percpu(s.addr) => s.addr,
                AddressMode::AbsolutePercpu => {
                    let offset = i128::from(relative_base) - i128::from(s.addr) - 1;
                    let offset = i32::try_from(offset).expect("relative offset out of range");
                    assert!(offset < 0);
                    u64::from(offset as u32)
                }
            })
            .collect();
        let mut by_name: Vec<u32> = (0..syms.len() as u32).collect();
        by_name.sort_by_key(|&i| (&syms[i as usize].name, syms[i as usize].addr, i));
        Tables {
            order,
            mode,
            num_syms: u32::try_from(syms.len()).unwrap(),
            names,
            tokens,
            entries,
            relative_base,
            by_name,
            seqs: false,
        }
    }

    /// `kallsyms_names` and the offset of each name in it.
    fn names_blob(&self) -> (Vec<u8>, Vec<u64>) {
        let mut blob = Vec::new();
        let mut offsets = Vec::new();
        for codes in &self.names {
            offsets.push(blob.len() as u64);
            let len = codes.len();
            assert!(len <= 0x3fff, "two-byte ULEB128 at most");
            if len <= 0x7f {
                blob.push(len as u8);
            } else {
                // A "big" symbol (commit 73bbb94466fd).
                blob.push((len & 0x7f) as u8 | 0x80);
                blob.push((len >> 7) as u8);
            }
            blob.extend_from_slice(codes);
        }
        (blob, offsets)
    }

    fn build(&self) -> Image {
        let (names, name_offsets) = self.names_blob();
        let markers: Vec<u8> = name_offsets
            .iter()
            .step_by(256)
            .flat_map(|&off| u32::try_from(off).unwrap().to_le_bytes())
            .collect();
        assert_eq!(self.tokens.len(), 256);
        let mut token_table = Vec::new();
        let mut token_index = Vec::new();
        for token in &self.tokens {
            token_index.extend_from_slice(&u16::try_from(token_table.len()).unwrap().to_le_bytes());
            token_table.extend_from_slice(token);
            token_table.push(0);
        }
        let addrs: Vec<u8> = match self.mode {
            AddressMode::Absolute => self.entries.iter().flat_map(|e| e.to_le_bytes()).collect(),
            _ => self
                .entries
                .iter()
                .flat_map(|&e| u32::try_from(e).unwrap().to_le_bytes())
                .collect(),
        };
        let seqs: Vec<u8> = self
            .by_name
            .iter()
            .flat_map(|&i| {
                let b = i.to_be_bytes();
                [b[1], b[2], b[3]]
            })
            .collect();
        let relative = self.mode != AddressMode::Absolute;
        let relative_base = self.relative_base.to_le_bytes();
        let num_syms = self.num_syms.to_le_bytes();

        let mut bytes = Vec::new();
        let mut at = Layout::default();
        match self.order {
            Order::V6_1 => {
                at.addrs = append(&mut bytes, &addrs);
                at.addrs_end = at.addrs + addrs.len();
                if relative {
                    at.relative_base = append(&mut bytes, &relative_base);
                }
                at.num_syms = append(&mut bytes, &num_syms);
                at.names = append(&mut bytes, &names);
                at.markers = append(&mut bytes, &markers);
                if self.seqs {
                    at.seqs = append(&mut bytes, &seqs);
                }
                at.token_table = append(&mut bytes, &token_table);
                at.token_index = append(&mut bytes, &token_index);
            }
            Order::V6_4 => {
                at.num_syms = append(&mut bytes, &num_syms);
                at.names = append(&mut bytes, &names);
                at.markers = append(&mut bytes, &markers);
                at.token_table = append(&mut bytes, &token_table);
                at.token_index = append(&mut bytes, &token_index);
                at.addrs = append(&mut bytes, &addrs);
                at.addrs_end = at.addrs + addrs.len();
                if relative {
                    at.relative_base = append(&mut bytes, &relative_base);
                }
                if self.seqs {
                    at.seqs = append(&mut bytes, &seqs);
                }
            }
        }
        let kva = |off: usize| RODATA + off as u64;
        let syms = KallsymsSymbols {
            num_syms: Some(kva(at.num_syms)),
            names: Some(kva(at.names)),
            markers: Some(kva(at.markers)),
            token_table: Some(kva(at.token_table)),
            token_index: Some(kva(at.token_index)),
            offsets: relative.then(|| kva(at.addrs)),
            relative_base: relative.then(|| kva(at.relative_base)),
            addresses: (!relative).then(|| kva(at.addrs)),
            seqs_of_names: None,
        };
        Image {
            kernel: FlatKernel {
                base: Kva(RODATA),
                bytes,
            },
            syms,
            at,
            name_offsets,
        }
    }
}

/// `output_label()`: `ALGN` (`.balign 8`), then the table.
fn append(bytes: &mut Vec<u8>, blob: &[u8]) -> usize {
    while bytes.len() % 8 != 0 {
        bytes.push(0);
    }
    let at = bytes.len();
    bytes.extend_from_slice(blob);
    at
}

/// Byte offsets of the tables in [`Image::kernel`].
#[derive(Clone, Copy, Debug, Default)]
struct Layout {
    num_syms: usize,
    names: usize,
    markers: usize,
    token_table: usize,
    token_index: usize,
    addrs: usize,
    addrs_end: usize,
    relative_base: usize,
    seqs: usize,
}

/// Built tables in a flat kernel image, and what VMCOREINFO would say of them.
struct Image {
    kernel: FlatKernel<Vec<u8>>,
    syms: KallsymsSymbols,
    at: Layout,
    /// Offset of each name in `kallsyms_names`.
    name_offsets: Vec<u64>,
}

impl Image {
    fn kva(&self, off: usize) -> u64 {
        RODATA + off as u64
    }

    /// The byte offset in the image of name `index`.
    fn name_at(&self, index: usize) -> usize {
        self.at.names + self.name_offsets[index] as usize
    }

    fn put(&mut self, off: usize, bytes: &[u8]) {
        self.kernel.bytes[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn get_u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.kernel.bytes[off..off + 4].try_into().unwrap())
    }
}

fn build(syms: &[Sym], mode: AddressMode, order: Order) -> Image {
    Tables::new(syms, mode, order).build()
}

/// What a walk yields, as plain values.
type Row = (Vec<u8>, u8, u64, u32);

fn row(s: &Symbol) -> Row {
    (s.name().to_vec(), s.kind(), s.addr(), s.index())
}

fn rows(syms: &[Sym]) -> Vec<Row> {
    syms.iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), s.kind, s.addr, i as u32))
        .collect()
}

fn walk<K: KernelRead + ?Sized>(ks: &Kallsyms, k: &K) -> Result<Vec<Row>> {
    ks.iter(k).map(|s| s.map(|s| row(&s))).collect()
}

/// An x86-64 SMP kernel's symbols: per-CPU ones linked at 0 (type `A`, from
/// `make_percpus_absolute()`), then `_text` at `__START_KERNEL + kaslr`.
fn kernel_syms(kaslr: u64) -> Vec<Sym> {
    let text = START_KERNEL + kaslr;
    vec![
        sym(b'A', "fixed_percpu_data", 0),
        sym(b'A', "__per_cpu_start", 0),
        sym(b'A', "cpu_number", 0x2_1f28),
        sym(b'A', "bpf_bprintf_nest_level", 0x2_3a40),
        sym(b'A', "__per_cpu_end", 0x3_4000),
        sym(b'T', "_text", text),
        sym(b'T', "startup_64", text),
        sym(b'T', "__bpf_prog_run", text + 0x1_2340),
        sym(b't', "__bpf_map_idr_walk", text + 0x1_3000),
        sym(b'T', "bpf_map_get", text + 0x1_4010),
        sym(b'T', "bpf_map_put", text + 0x1_4100),
        sym(b'T', "_etext", text + 0x100_0000),
        sym(b'd', "map_idr", text + 0x200_0000),
        sym(b'd', "prog_idr", text + 0x200_0040),
        sym(b'b', "map_idr_lock", text + 0x280_0000),
        sym(b'B', "_end", text + 0x300_0000),
    ]
}

/// [`kernel_syms`] without the per-CPU symbols: a kernel without
/// CONFIG_KALLSYMS_ABSOLUTE_PERCPU (6.15+, or !SMP).
fn relative_syms(kaslr: u64) -> Vec<Sym> {
    kernel_syms(kaslr)
        .into_iter()
        .filter(|s| !is_percpu(s.addr))
        .collect()
}

/// A kernel that reads only outside `hole`.
struct Holed<'a> {
    inner: &'a FlatKernel<Vec<u8>>,
    hole: core::ops::Range<u64>,
}

impl KernelRead for Holed<'_> {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        let end = kva.0.saturating_add(buf.len() as u64);
        if !buf.is_empty() && kva.0 < self.hole.end && end > self.hole.start {
            return Err(Error::NotMapped { kva, level: 1 });
        }
        self.inner.read_kva(kva, buf)
    }
}

const MODES: [AddressMode; 3] = [
    AddressMode::Absolute,
    AddressMode::Relative,
    AddressMode::AbsolutePercpu,
];
const ORDERS: [Order; 2] = [Order::V6_1, Order::V6_4];

/// The symbols each mode can encode.
fn syms_for(mode: AddressMode) -> Vec<Sym> {
    match mode {
        AddressMode::Relative => relative_syms(0),
        _ => kernel_syms(0),
    }
}

// The builder itself.

#[test]
fn builder_compresses_greedily_and_writes_write_src_layout() {
    let tokens = token_strings();
    assert_eq!(
        compress(&tokens, b"dbpf_map_idr"),
        [b'd', TOK_BPF, TOK_MAP, TOK_IDR]
    );
    assert_eq!(
        compress(&tokens, b"Tbpf_map_get"),
        [TOK_T_BPF, TOK_MAP, b'_', b'g', b'e', b't']
    );
    assert_eq!(compress(&tokens, b"t__x"), [TOK_T_UNDERSCORES, b'x']);

    let syms = [
        sym(b'd', "bpf_map_idr", START_KERNEL),
        sym(b'T', &"x".repeat(200), START_KERNEL + 8),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_4);
    let b = &img.kernel.bytes;
    assert_eq!(img.at.num_syms, 0);
    assert_eq!(img.get_u32(img.at.num_syms), 2);
    assert_eq!(img.at.names, 8);
    assert_eq!(
        b[8..13],
        [4, b'd', TOK_BPF, TOK_MAP, TOK_IDR],
        "one-byte length, then codes"
    );
    // 201 codes: 0x80 | (201 & 0x7f), 201 >> 7.
    assert_eq!(b[13..15], [0xc9, 0x01]);
    assert_eq!(b[15], b'T');
    assert_eq!(img.get_u32(img.at.markers), 0);
    assert_eq!(img.at.token_table % 8, 0);
    assert_eq!(b[img.at.token_table..img.at.token_table + 5], *b"{00}\0");
    // 95 printable bytes, the six named tokens, 155 "{xx}", each with a NUL.
    assert_eq!(
        img.at.token_index,
        img.at.token_table + 95 * 2 + (3 + 5 + 4 + 5 + 6 + 4) + 155 * 5
    );
    assert_eq!(
        u16::from_le_bytes(b[img.at.token_index + 2 * 0x21..][..2].try_into().unwrap()),
        0x20 * 5 + 2
    );
    assert!(img.at.addrs > img.at.token_index);
    assert_eq!(
        u64::from_le_bytes(b[img.at.relative_base..][..8].try_into().unwrap()),
        START_KERNEL
    );
    assert_eq!(img.at.relative_base + 8, b.len());
}

#[test]
fn builder_encodes_absolute_percpu_like_scripts_kallsyms() {
    let t = Tables::new(&kernel_syms(0), AddressMode::AbsolutePercpu, Order::V6_1);
    assert_eq!(t.relative_base, START_KERNEL);
    assert_eq!(t.entries[0], 0);
    assert_eq!(t.entries[2], 0x2_1f28);
    // `_text` is `relative_base - 1 - (-1)`.
    assert_eq!(t.entries[5], 0xffff_ffff);
    assert_eq!(t.entries[15], u64::from((-0x300_0001i32) as u32));
}

// The pure decoder.

#[test]
fn sym_address_follows_kallsyms_sym_address() {
    let base = START_KERNEL;
    assert_eq!(
        sym_address(AddressMode::Absolute, 0, u64::MAX),
        Some(u64::MAX)
    );
    assert_eq!(sym_address(AddressMode::Relative, base, 0), Some(base));
    assert_eq!(
        sym_address(AddressMode::Relative, base, 0x7eff_ffff),
        Some(u64::MAX)
    );
    assert_eq!(sym_address(AddressMode::Relative, base, 0x7f00_0000), None);
    // Only the `int`'s 32 bits count.
    assert_eq!(
        sym_address(AddressMode::Relative, 0x1000, 0xdead_0000_0000_0010),
        Some(0x1010)
    );
    assert_eq!(sym_address(AddressMode::AbsolutePercpu, base, 0), Some(0));
    assert_eq!(
        sym_address(AddressMode::AbsolutePercpu, base, 0x7fff_ffff),
        Some(0x7fff_ffff)
    );
    assert_eq!(
        sym_address(AddressMode::AbsolutePercpu, base, 0xffff_ffff),
        Some(base)
    );
    // The most negative offset, -2^31.
    assert_eq!(
        sym_address(AddressMode::AbsolutePercpu, 0x1_0000_0000, 0x8000_0000),
        Some(0x1_7fff_ffff)
    );
    // From `__START_KERNEL` it would leave the address space.
    assert_eq!(
        sym_address(AddressMode::AbsolutePercpu, base, 0x8000_0000),
        None
    );
    assert_eq!(
        sym_address(AddressMode::AbsolutePercpu, 0, 0xffff_ffff),
        None
    );
    assert_eq!(
        sym_address(AddressMode::AbsolutePercpu, u64::MAX, 0x8000_0000),
        None
    );
}

// Lookups and walks of well-formed tables.

#[test]
fn lookup_finds_first_last_and_token_compressed_names() {
    for mode in MODES {
        for order in ORDERS {
            let syms = syms_for(mode);
            let img = build(&syms, mode, order);
            let ks = Kallsyms::with_mode(&img.kernel, &img.syms, mode).unwrap();
            assert_eq!(ks.num_syms() as usize, syms.len());
            assert_eq!(ks.mode(), mode);
            for s in [&syms[0], syms.last().unwrap()] {
                let name = core::str::from_utf8(&s.name).unwrap();
                assert_eq!(
                    ks.lookup(&img.kernel, name),
                    Ok(Some(s.addr)),
                    "{mode:?} {order:?} {name}"
                );
            }
            let text = START_KERNEL;
            for (name, addr) in [
                ("__bpf_map_idr_walk", text + 0x1_3000),
                ("bpf_map_get", text + 0x1_4010),
                ("map_idr", text + 0x200_0000),
                ("map_idr_lock", text + 0x280_0000),
                ("__bpf_prog_run", text + 0x1_2340),
            ] {
                assert_eq!(
                    ks.lookup(&img.kernel, name),
                    Ok(Some(addr)),
                    "{mode:?} {order:?} {name}"
                );
            }
        }
    }
}

#[test]
fn lookup_of_missing_empty_or_overlong_name_is_none() {
    let syms = kernel_syms(0);
    let img = build(&syms, AddressMode::AbsolutePercpu, Order::V6_4);
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
    let k = &img.kernel;
    for name in [
        "no_such_symbol",
        "",
        "bpf_map",
        "bpf_map_get_",
        "_tex",
        "T_text",
        "map_idr\0",
        "Tbpf_map_get",
    ] {
        assert_eq!(ks.lookup(k, name), Ok(None), "{name:?}");
    }
    assert_eq!(ks.lookup(k, &"a".repeat(KSYM_NAME_LEN)), Ok(None));
}

#[test]
fn lookup_returns_the_lowest_of_duplicate_names() {
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b't', "bpf_map_free", START_KERNEL + 0x100),
        sym(b'T', "bpf_map_free", START_KERNEL + 0x200),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_1);
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
    assert_eq!(
        ks.lookup(&img.kernel, "bpf_map_free"),
        Ok(Some(START_KERNEL + 0x100))
    );
}

#[test]
fn iter_yields_every_symbol_in_order_in_every_mode_and_order() {
    for mode in MODES {
        for order in ORDERS {
            let syms = syms_for(mode);
            let img = build(&syms, mode, order);
            let ks = Kallsyms::with_mode(&img.kernel, &img.syms, mode).unwrap();
            assert_eq!(
                walk(&ks, &img.kernel),
                Ok(rows(&syms)),
                "{mode:?} {order:?}"
            );
            for (i, s) in syms.iter().enumerate() {
                assert_eq!(ks.sym_address(&img.kernel, i as u32), Ok(s.addr));
            }
        }
    }
}

#[test]
fn iter_is_a_fused_std_iterator() {
    let syms = relative_syms(0);
    let img = build(&syms, AddressMode::Relative, Order::V6_4);
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    let mut it = ks.iter(&img.kernel);
    assert_eq!(it.by_ref().count(), syms.len());
    assert!(Iterator::next(&mut it).is_none());
    assert_eq!(it.next(), Ok(None));
    let first = ks.iter(&img.kernel).next().unwrap().unwrap();
    assert_eq!(first.name_str(), Some("_text"));
    assert_eq!(first.kind(), b'T');
    assert_eq!(
        format!("{first:?}"),
        "Symbol { name: \"_text\", kind: 'T', addr: 0xffffffff81000000, index: 0 }"
    );
}

#[test]
fn empty_table_walks_nothing() {
    let mut t = Tables::new(&[], AddressMode::Absolute, Order::V6_4);
    t.num_syms = 0;
    let img = t.build();
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    assert_eq!(walk(&ks, &img.kernel), Ok(vec![]));
    assert_eq!(ks.lookup(&img.kernel, "_text"), Ok(None));
}

#[test]
fn big_symbol_with_two_byte_length_decodes() {
    // 250 codes (type and 249 bytes no token joins): the two-byte form.
    let big = "z".repeat(249);
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b't', &big, START_KERNEL + 0x10),
        sym(b'T', "bpf_map_get", START_KERNEL + 0x20),
    ];
    for order in ORDERS {
        let img = build(&syms, AddressMode::Relative, order);
        let at = img.name_at(1);
        assert_eq!(img.kernel.bytes[at..at + 2], [0x80 | (250 & 0x7f), 1]);
        let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
        assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
        assert_eq!(ks.lookup(&img.kernel, &big), Ok(Some(START_KERNEL + 0x10)));
        assert_eq!(
            ks.lookup(&img.kernel, "bpf_map_get"),
            Ok(Some(START_KERNEL + 0x20))
        );
    }
}

#[test]
fn names_of_ksym_name_len_less_one_bytes_decode() {
    // 511 uncompressed bytes: 512 codes, the most a name may have.
    let plain = "q".repeat(KSYM_NAME_LEN - 1);
    // 511 bytes in 130 codes.
    let packed = format!("{}abc", "bpf_".repeat(127));
    assert_eq!(packed.len(), KSYM_NAME_LEN - 1);
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b'T', &plain, START_KERNEL + 1),
        sym(b'T', &packed, START_KERNEL + 2),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_1);
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
    assert_eq!(ks.lookup(&img.kernel, &plain), Ok(Some(START_KERNEL + 1)));
    assert_eq!(ks.lookup(&img.kernel, &packed), Ok(Some(START_KERNEL + 2)));
}

#[test]
fn name_of_ksym_name_len_bytes_in_few_codes_is_a_limit() {
    // 512 bytes in 129 codes: fits the compressed bound, not the expanded one.
    let long = "bpf_".repeat(128);
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b'T', &long, START_KERNEL + 1),
        sym(b'T', "after", START_KERNEL + 2),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_4);
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    let mut it = ks.iter(&img.kernel);
    assert!(it.next().unwrap().is_some());
    assert_eq!(
        it.next(),
        Err(Error::limit(
            "kallsyms name",
            Kva(img.kva(img.name_at(1))),
            KSYM_NAME_LEN as u64 - 1
        ))
    );
    assert_eq!(it.next(), Ok(None));
    // A lookup compares only as far as the name matches.
    assert_eq!(ks.lookup(&img.kernel, "after"), Ok(Some(START_KERNEL + 2)));
    assert_eq!(ks.lookup(&img.kernel, &long), Ok(None));
}

#[test]
fn name_of_ksym_name_len_plain_bytes_is_malformed() {
    // 512 bytes in 513 codes: more codes than any kernel writes.
    let long = "q".repeat(KSYM_NAME_LEN);
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b'T', &long, START_KERNEL + 1),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_4);
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    let err = Error::malformed("kallsyms_names", Kva(img.kva(img.name_at(1))));
    let mut it = ks.iter(&img.kernel);
    assert!(it.next().unwrap().is_some());
    assert_eq!(it.next(), Err(err));
    assert_eq!(ks.lookup(&img.kernel, "zzz"), Err(err));
}

#[test]
fn empty_tokens_of_unused_codes_still_decode() {
    // A small table leaves codes `optimize_result()` never fills: `.asciz ""`.
    let mut tokens = token_strings();
    for token in &mut tokens[0x86..] {
        token.clear();
    }
    let syms = kernel_syms(0);
    let mut t = Tables::with_tokens(&syms, AddressMode::AbsolutePercpu, Order::V6_1, tokens);
    // Hand-made codes that expand to nothing, before the type and inside a name.
    t.names[6] = [0x90, b'T', 0x91]
        .into_iter()
        .chain(b"startup_64".iter().copied())
        .chain([0xfe])
        .collect();
    let img = t.build();
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
    assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
    assert_eq!(ks.lookup(&img.kernel, "startup_64"), Ok(Some(START_KERNEL)));
    assert_eq!(
        ks.lookup(&img.kernel, "_end"),
        Ok(Some(START_KERNEL + 0x300_0000))
    );
}

#[test]
fn many_symbols_cross_names_and_offsets_windows_and_markers() {
    // More names than one NAMES_BUF and more entries than one ADDRS_BUF.
    let syms: Vec<Sym> = (0..700u64)
        .map(|i| {
            let name = match i {
                0 => "_text".into(),
                _ => format!("bpf_map_{i}_{}", "x".repeat((i * 37 % 240) as usize)),
            };
            sym(b"TtDdBbR"[(i % 7) as usize], &name, START_KERNEL + i * 0x40)
        })
        .collect();
    for mode in [AddressMode::Relative, AddressMode::Absolute] {
        for order in ORDERS {
            let img = build(&syms, mode, order);
            assert!(img.at.markers > img.at.names + 3 * NAMES_BUF);
            let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
            assert_eq!(ks.mode(), mode);
            assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
            for i in [0, 255, 256, 257, 511, 512, 699] {
                let name = core::str::from_utf8(&syms[i].name).unwrap();
                assert_eq!(ks.lookup(&img.kernel, name), Ok(Some(syms[i].addr)));
            }
        }
    }
}

// Address mode detection.

/// The CONFIG_KALLSYMS_ABSOLUTE_PERCPU table of every 6.1 and 6.12 x86-64 SMP
/// kernel: negative offsets of kernel addresses read as `u32` exceed what
/// `relative_base + offset` can hold. `new` once failed on it before it had
/// decided the mode, checking the last entry as if it were relative.
#[test]
fn absolute_percpu_offsets_that_overflow_as_relative_load() {
    for kaslr in [0, KASLR] {
        for order in ORDERS {
            let syms = kernel_syms(kaslr);
            let img = build(&syms, AddressMode::AbsolutePercpu, order);
            let last = img.get_u32(img.at.addrs + 4 * (syms.len() - 1));
            assert!(START_KERNEL.checked_add(u64::from(last)).is_none());
            for offset in [Some(kaslr), None] {
                let ks = Kallsyms::new(&img.kernel, &img.syms, offset).unwrap();
                assert_eq!(ks.mode(), AddressMode::AbsolutePercpu);
                assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
            }
        }
    }
}

#[test]
fn new_picks_absolute_percpu_from_text_and_kernel_offset() {
    let syms = kernel_syms(KASLR);
    let img = build(&syms, AddressMode::AbsolutePercpu, Order::V6_1);
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(KASLR)).unwrap();
    assert_eq!(ks.mode(), AddressMode::AbsolutePercpu);
    assert_eq!(
        ks.lookup(&img.kernel, "_text"),
        Ok(Some(START_KERNEL + KASLR))
    );
    assert_eq!(
        ks.lookup(&img.kernel, "map_idr"),
        Ok(Some(START_KERNEL + KASLR + 0x200_0000))
    );
}

#[test]
fn new_picks_absolute_percpu_from_relative_base_without_kernel_offset() {
    let img = build(
        &kernel_syms(KASLR),
        AddressMode::AbsolutePercpu,
        Order::V6_4,
    );
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    assert_eq!(ks.mode(), AddressMode::AbsolutePercpu);
}

#[test]
fn new_picks_relative_from_text_with_or_without_kernel_offset() {
    for order in ORDERS {
        let syms = relative_syms(KASLR);
        let img = build(&syms, AddressMode::Relative, order);
        for offset in [Some(KASLR), None] {
            let ks = Kallsyms::new(&img.kernel, &img.syms, offset).unwrap();
            assert_eq!(ks.mode(), AddressMode::Relative);
            assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
        }
    }
}

#[test]
fn new_reads_kallsyms_addresses_as_absolute_without_text() {
    let syms = [
        sym(b'A', "fixed_percpu_data", 0),
        sym(b'T', "startup_64", START_KERNEL),
    ];
    let img = build(&syms, AddressMode::Absolute, Order::V6_1);
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(KASLR)).unwrap();
    assert_eq!(ks.mode(), AddressMode::Absolute);
    assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
}

#[test]
fn kernel_offset_that_puts_text_in_neither_mode_is_malformed() {
    for mode in [AddressMode::Relative, AddressMode::AbsolutePercpu] {
        let img = build(&syms_for(mode), mode, Order::V6_4);
        let text = if mode == AddressMode::Relative { 0 } else { 5 };
        let at = Kva(img.kva(img.at.addrs + 4 * text));
        assert_eq!(
            Kallsyms::new(&img.kernel, &img.syms, Some(KASLR)).unwrap_err(),
            Error::malformed("kallsyms _text", at)
        );
    }
}

#[test]
fn table_without_text_cannot_pick_a_mode() {
    let syms = [
        sym(b'T', "startup_64", START_KERNEL),
        sym(b'T', "bpf_map_get", START_KERNEL + 0x100),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_4);
    assert_eq!(
        Kallsyms::new(&img.kernel, &img.syms, None).unwrap_err(),
        Error::NotFound {
            what: "kallsyms _text"
        }
    );
    // With the mode given, nothing needs `_text`.
    let ks = Kallsyms::with_mode(&img.kernel, &img.syms, AddressMode::Relative).unwrap();
    assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
}

#[test]
fn percpu_symbols_decode_to_small_absolute_addresses() {
    let img = build(
        &kernel_syms(KASLR),
        AddressMode::AbsolutePercpu,
        Order::V6_4,
    );
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(KASLR)).unwrap();
    let k = &img.kernel;
    assert_eq!(ks.lookup(k, "fixed_percpu_data"), Ok(Some(0)));
    assert_eq!(ks.lookup(k, "cpu_number"), Ok(Some(0x2_1f28)));
    assert_eq!(ks.lookup(k, "bpf_bprintf_nest_level"), Ok(Some(0x2_3a40)));
    assert_eq!(ks.lookup(k, "__per_cpu_end"), Ok(Some(0x3_4000)));
    let percpu: Vec<Row> = ks
        .iter(k)
        .map(|s| row(&s.unwrap()))
        .filter(|r| r.1 == b'A')
        .collect();
    assert_eq!(percpu.len(), 5);
    assert!(percpu.iter().all(|r| r.2 < 0x4_0000));
}

#[test]
fn missing_vmcoreinfo_symbols_are_not_found() {
    let img = build(&kernel_syms(0), AddressMode::AbsolutePercpu, Order::V6_1);
    let k = &img.kernel;
    type Unset = fn(&mut KallsymsSymbols);
    let cases: [(Unset, &str); 6] = [
        (
            |s| s.num_syms = None,
            "VMCOREINFO SYMBOL(kallsyms_num_syms)",
        ),
        (|s| s.names = None, "VMCOREINFO SYMBOL(kallsyms_names)"),
        (
            |s| s.token_table = None,
            "VMCOREINFO SYMBOL(kallsyms_token_table)",
        ),
        (
            |s| s.token_index = None,
            "VMCOREINFO SYMBOL(kallsyms_token_index)",
        ),
        (|s| s.offsets = None, "VMCOREINFO SYMBOL(kallsyms_offsets)"),
        (
            |s| s.relative_base = None,
            "VMCOREINFO SYMBOL(kallsyms_relative_base)",
        ),
    ];
    for (unset, what) in cases {
        let mut syms = img.syms;
        unset(&mut syms);
        assert_eq!(
            Kallsyms::new(k, &syms, None).unwrap_err(),
            Error::NotFound { what }
        );
    }
    assert_eq!(
        Kallsyms::with_mode(k, &img.syms, AddressMode::Absolute).unwrap_err(),
        Error::NotFound {
            what: "VMCOREINFO SYMBOL(kallsyms_addresses)"
        }
    );
}

// Hostile tables: each ends in an error, never a panic or a hang.

#[test]
fn num_syms_above_max_syms_is_a_limit() {
    let mut t = Tables::new(&kernel_syms(0), AddressMode::AbsolutePercpu, Order::V6_4);
    t.num_syms = MAX_SYMS + 1;
    let img = t.build();
    assert_eq!(
        Kallsyms::new(&img.kernel, &img.syms, None).unwrap_err(),
        Error::limit(
            "kallsyms_num_syms",
            Kva(img.kva(img.at.num_syms)),
            u64::from(MAX_SYMS)
        )
    );
    // MAX_SYMS itself loads only if its last entry reads; here it does not.
    let mut t = Tables::new(&kernel_syms(0), AddressMode::AbsolutePercpu, Order::V6_4);
    t.num_syms = MAX_SYMS;
    let img = t.build();
    assert!(matches!(
        Kallsyms::new(&img.kernel, &img.syms, None),
        Err(Error::NotMapped { .. })
    ));
}

#[test]
fn num_syms_past_the_names_ends_the_walk_in_an_error() {
    let syms = kernel_syms(0);
    for order in ORDERS {
        let mut t = Tables::new(&syms, AddressMode::AbsolutePercpu, order);
        // Two more symbols than names: the walk reads the markers as names.
        t.num_syms += 2;
        t.entries.extend([0, 0]);
        let img = t.build();
        let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
        let mut it = ks.iter(&img.kernel);
        for s in &syms {
            assert_eq!(it.next().unwrap().unwrap().name(), s.name);
        }
        assert!(it.next().is_err());
        assert_eq!(it.next(), Ok(None));
        assert!(ks.lookup(&img.kernel, "not_there").is_err());
    }
}

#[test]
fn zero_length_name_is_malformed() {
    let syms = kernel_syms(0);
    let mut t = Tables::new(&syms, AddressMode::AbsolutePercpu, Order::V6_1);
    t.names[7].clear();
    let img = t.build();
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
    let err = Error::malformed("kallsyms_names", Kva(img.kva(img.name_at(7))));
    let mut it = ks.iter(&img.kernel);
    for _ in 0..7 {
        assert!(it.next().unwrap().is_some());
    }
    assert_eq!(it.next(), Err(err));
    assert_eq!(it.next(), Ok(None));
    assert_eq!(ks.lookup(&img.kernel, "_text"), Ok(Some(START_KERNEL)));
    assert_eq!(ks.lookup(&img.kernel, "_end"), Err(err));
}

#[test]
fn name_whose_length_runs_into_the_token_table_is_malformed() {
    for order in ORDERS {
        let syms = kernel_syms(0);
        let mut img = build(&syms, AddressMode::AbsolutePercpu, order);
        let last = syms.len() - 1;
        let at = img.name_at(last);
        // 0x1ff codes: within KSYM_NAME_LEN, past the end of the table.
        img.put(at, &[0xff, 0x03]);
        assert!(at + 2 + 0x1ff > img.at.token_table);
        let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
        let err = Error::malformed("kallsyms_names", Kva(img.kva(at)));
        let mut it = ks.iter(&img.kernel);
        for _ in 0..last {
            assert!(it.next().unwrap().is_some());
        }
        assert_eq!(it.next(), Err(err));
        assert_eq!(ks.lookup(&img.kernel, "not_there"), Err(err));
    }
}

#[test]
fn two_byte_length_above_ksym_name_len_is_malformed() {
    let syms = kernel_syms(0);
    let mut img = build(&syms, AddressMode::AbsolutePercpu, Order::V6_4);
    let at = img.name_at(0);
    // 0x3fff: the most two bytes say, far past what a name may have.
    img.put(at, &[0xff, 0x7f]);
    let ks = Kallsyms::with_mode(&img.kernel, &img.syms, AddressMode::AbsolutePercpu).unwrap();
    let err = Error::malformed("kallsyms_names", Kva(img.kva(at)));
    assert_eq!(ks.iter(&img.kernel).next(), Err(err));
    assert_eq!(
        Kallsyms::new(&img.kernel, &img.syms, None).unwrap_err(),
        err
    );
}

#[test]
fn name_of_empty_tokens_only_has_no_type_and_is_malformed() {
    let mut tokens = token_strings();
    tokens[0x90].clear();
    let syms = kernel_syms(0);
    let mut t = Tables::with_tokens(&syms, AddressMode::AbsolutePercpu, Order::V6_4, tokens);
    t.names[2] = vec![0x90, 0x90];
    let img = t.build();
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
    let mut it = ks.iter(&img.kernel);
    it.next().unwrap();
    it.next().unwrap();
    assert_eq!(
        it.next(),
        Err(Error::malformed(
            "kallsyms_names",
            Kva(img.kva(img.name_at(2)))
        ))
    );
}

/// Lengthen codes 0x00..0x20 (tokens no name uses) so that the tokens from
/// 0x20 on start past the part of the table `Kallsyms` caches.
fn push_past_the_cache(tokens: &mut [Vec<u8>]) {
    for token in &mut tokens[..0x20] {
        *token = vec![b'y'; 200];
    }
    const { assert!(0x20 * 201 > TOKEN_CACHE) };
}

#[test]
fn token_without_nul_in_ksym_name_len_bytes_is_malformed() {
    let syms = kernel_syms(0);
    for past_cache in [false, true] {
        let mut tokens = token_strings();
        if past_cache {
            push_past_the_cache(&mut tokens);
        }
        tokens[0xc0] = vec![b'x'; KSYM_NAME_LEN + 1];
        let t = Tables::with_tokens(&syms, AddressMode::AbsolutePercpu, Order::V6_1, tokens);
        let img = t.build();
        let off = token_offset(&img, 0xc0);
        assert_eq!(off >= TOKEN_CACHE, past_cache);
        assert_eq!(
            Kallsyms::new(&img.kernel, &img.syms, None).unwrap_err(),
            Error::malformed(
                "kallsyms_token_table",
                Kva(img.kva(img.at.token_table + off))
            )
        );
    }
}

#[test]
fn tokens_past_the_cache_and_of_ksym_name_len_bytes_decode() {
    let syms = kernel_syms(0);
    let mut tokens = token_strings();
    push_past_the_cache(&mut tokens);
    tokens[0xc0] = vec![b'x'; KSYM_NAME_LEN];
    let t = Tables::with_tokens(&syms, AddressMode::AbsolutePercpu, Order::V6_4, tokens);
    let img = t.build();
    // Every printable byte's token is read from memory, not the cache.
    assert!(token_offset(&img, 0x20) >= TOKEN_CACHE);
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    assert_eq!(walk(&ks, &img.kernel), Ok(rows(&syms)));
    assert_eq!(
        ks.lookup(&img.kernel, "bpf_map_put"),
        Ok(Some(START_KERNEL + 0x1_4100))
    );
}

/// `kallsyms_token_index[code]` of a built image.
fn token_offset(img: &Image, code: usize) -> usize {
    let at = img.at.token_index + 2 * code;
    usize::from(u16::from_le_bytes(
        img.kernel.bytes[at..at + 2].try_into().unwrap(),
    ))
}

#[test]
fn token_unterminated_at_the_end_of_memory_fails_to_read() {
    let syms = kernel_syms(0);
    let mut img = build(&syms, AddressMode::AbsolutePercpu, Order::V6_1);
    // Move the token table to the end of memory, without its last NUL.
    let table = img.kernel.bytes[img.at.token_table..img.at.token_index].to_vec();
    let end = table.iter().rposition(|&b| b != 0).unwrap() + 1;
    let moved = img.kernel.bytes.len();
    img.kernel.bytes.extend_from_slice(&table[..end]);
    img.syms.token_table = Some(img.kva(moved));
    assert!(matches!(
        Kallsyms::new(&img.kernel, &img.syms, None),
        Err(Error::NotMapped { .. })
    ));
}

#[test]
fn token_index_pointing_outside_memory_fails_to_read() {
    for order in ORDERS {
        let mut img = build(&kernel_syms(0), AddressMode::AbsolutePercpu, order);
        let at = img.at.token_index + 2 * usize::from(b'e');
        img.put(at, &0xffffu16.to_le_bytes());
        assert!(matches!(
            Kallsyms::new(&img.kernel, &img.syms, None),
            Err(Error::NotMapped { .. })
        ));
    }
}

#[test]
fn token_index_past_the_table_reads_other_tables_as_tokens() {
    // Offsets into `kallsyms_token_index` itself still find a NUL: the walk
    // goes on, with garbage names, and never reads outside memory.
    let syms = kernel_syms(0);
    let mut img = build(&syms, AddressMode::AbsolutePercpu, Order::V6_1);
    // `_` now expands to the NUL that ends index entry 1 (`02 00`): nothing.
    let past = u16::try_from(img.at.token_index - img.at.token_table + 3).unwrap();
    img.put(
        img.at.token_index + 2 * usize::from(b'_'),
        &past.to_le_bytes(),
    );
    let ks = Kallsyms::with_mode(&img.kernel, &img.syms, AddressMode::AbsolutePercpu).unwrap();
    let got = walk(&ks, &img.kernel).unwrap();
    assert_eq!(got.len(), syms.len());
    assert_eq!(got[5].0, b"text");
    assert_eq!(ks.lookup(&img.kernel, "_text"), Ok(None));
    assert_eq!(ks.lookup(&img.kernel, "text"), Ok(Some(START_KERNEL)));
    // And `_text` no longer names `_text`, so nothing says which mode this is.
    assert_eq!(
        Kallsyms::new(&img.kernel, &img.syms, None).unwrap_err(),
        Error::NotFound {
            what: "kallsyms _text"
        }
    );
}

#[test]
fn markers_disagreeing_with_the_walk_are_malformed() {
    let syms: Vec<Sym> = (0..300u64)
        .map(|i| sym(b't', &format!("bpf_sym_{i}"), START_KERNEL + 0x10 * i))
        .collect();
    let img = build(&syms, AddressMode::Relative, Order::V6_4);
    let k = &img.kernel;
    let ks = Kallsyms::with_mode(k, &img.syms, AddressMode::Relative).unwrap();
    assert_eq!(walk(&ks, k), Ok(rows(&syms)));

    // markers[1] one byte off.
    let mut bad = build(&syms, AddressMode::Relative, Order::V6_4);
    let at = bad.at.markers + 4;
    let marker = bad.get_u32(at);
    bad.put(at, &(marker + 1).to_le_bytes());
    let err = Error::malformed("kallsyms_markers", Kva(bad.kva(at)));
    let ks = Kallsyms::with_mode(&bad.kernel, &bad.syms, AddressMode::Relative).unwrap();
    let mut it = ks.iter(&bad.kernel);
    for _ in 0..256 {
        assert!(it.next().unwrap().is_some());
    }
    assert_eq!(it.next(), Err(err));
    assert_eq!(it.next(), Ok(None));
    assert_eq!(
        ks.lookup(&bad.kernel, "bpf_sym_255"),
        Ok(Some(START_KERNEL + 0x10 * 255))
    );
    assert_eq!(ks.lookup(&bad.kernel, "bpf_sym_256"), Err(err));

    // markers[0] not 0.
    let mut bad = build(&syms, AddressMode::Relative, Order::V6_1);
    bad.put(bad.at.markers, &1u32.to_le_bytes());
    let ks = Kallsyms::with_mode(&bad.kernel, &bad.syms, AddressMode::Relative).unwrap();
    assert_eq!(
        ks.iter(&bad.kernel).next(),
        Err(Error::malformed(
            "kallsyms_markers",
            Kva(bad.kva(bad.at.markers))
        ))
    );

    // Without `kallsyms_markers` from VMCOREINFO nothing is checked.
    bad.syms.markers = None;
    let ks = Kallsyms::with_mode(&bad.kernel, &bad.syms, AddressMode::Relative).unwrap();
    assert_eq!(walk(&ks, &bad.kernel), Ok(rows(&syms)));
}

#[test]
fn markers_outside_memory_fail_to_read() {
    let syms: Vec<Sym> = (0..300u64)
        .map(|i| sym(b't', &format!("s{i}"), START_KERNEL + i))
        .collect();
    let mut img = build(&syms, AddressMode::Relative, Order::V6_4);
    img.syms.markers = Some(u64::MAX - 5);
    let ks = Kallsyms::with_mode(&img.kernel, &img.syms, AddressMode::Relative).unwrap();
    let mut it = ks.iter(&img.kernel);
    assert!(matches!(it.next(), Err(Error::NotMapped { .. })));
    assert_eq!(it.next(), Ok(None));
    assert!(matches!(
        ks.lookup(&img.kernel, "s0"),
        Err(Error::NotMapped { .. })
    ));
}

#[test]
fn unreadable_names_table_fails_to_load() {
    let mut img = build(&kernel_syms(0), AddressMode::AbsolutePercpu, Order::V6_4);
    img.syms.names = Some(RODATA - 0x1000);
    assert_eq!(
        Kallsyms::new(&img.kernel, &img.syms, None).unwrap_err(),
        Error::NotMapped {
            kva: Kva(RODATA - 0x1000),
            level: 0
        }
    );
}

#[test]
fn names_table_unreadable_halfway_ends_the_walk_for_good() {
    let syms: Vec<Sym> = (0..600u64)
        .map(|i| {
            sym(
                b'T',
                &format!("bpf_prog_{i}_{}", "y".repeat(40)),
                START_KERNEL + i,
            )
        })
        .collect();
    let img = build(&syms, AddressMode::Relative, Order::V6_1);
    // A hole in the names table, past the first window of it.
    let start = img.kva(img.at.names + 2 * NAMES_BUF);
    let k = Holed {
        inner: &img.kernel,
        hole: start..start + 0x100,
    };
    let ks = Kallsyms::with_mode(&k, &img.syms, AddressMode::Relative).unwrap();
    let mut it = ks.iter(&k);
    let mut n = 0;
    let err = loop {
        match it.next() {
            Ok(Some(s)) => {
                assert_eq!(row(&s), rows(&syms)[n]);
                n += 1;
            }
            Ok(None) => panic!("walked through the hole"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::NotMapped { .. }));
    assert!(n > 0 && n < syms.len());
    assert_eq!(it.next(), Ok(None));
    assert_eq!(it.next(), Ok(None));
    assert!(Iterator::next(&mut it).is_none());
    let first = core::str::from_utf8(&syms[0].name).unwrap();
    assert_eq!(ks.lookup(&k, first), Ok(Some(START_KERNEL)));
    assert!(ks.lookup(&k, "not_there").is_err());
}

#[test]
fn offsets_cut_short_by_the_end_of_memory_fail_to_load() {
    let syms = kernel_syms(0);
    let mut t = Tables::new(&syms, AddressMode::AbsolutePercpu, Order::V6_4);
    // The last entry would lie past `kallsyms_relative_base`, the last table.
    t.num_syms += 3;
    let img = t.build();
    assert!(matches!(
        Kallsyms::new(&img.kernel, &img.syms, None),
        Err(Error::NotMapped { .. })
    ));
}

#[test]
fn relative_offset_leaving_the_address_space_is_malformed() {
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b'T', "_etext", START_KERNEL + 0x10),
    ];
    let mut t = Tables::new(&syms, AddressMode::Relative, Order::V6_1);
    t.relative_base = u64::MAX - 0x8;
    let img = t.build();
    let ks = Kallsyms::with_mode(&img.kernel, &img.syms, AddressMode::Relative);
    let err = Error::malformed("kallsyms_offsets", Kva(img.kva(img.at.addrs + 4)));
    match ks {
        Ok(ks) => {
            let mut it = ks.iter(&img.kernel);
            assert_eq!(it.next().unwrap().unwrap().addr(), u64::MAX - 0x8);
            assert_eq!(it.next(), Err(err));
            assert_eq!(ks.sym_address(&img.kernel, 1), Err(err));
            assert_eq!(ks.lookup(&img.kernel, "_etext"), Err(err));
        }
        Err(e) => assert_eq!(e, err),
    }
}

#[test]
fn sym_address_past_the_table_or_the_address_space_fails() {
    let img = build(&kernel_syms(0), AddressMode::Absolute, Order::V6_4);
    let ks = Kallsyms::new(&img.kernel, &img.syms, None).unwrap();
    assert!(matches!(
        ks.sym_address(&img.kernel, 100_000),
        Err(Error::NotMapped { .. })
    ));
    let mut img = img;
    img.syms.addresses = Some(u64::MAX - 0x100);
    assert!(matches!(
        Kallsyms::new(&img.kernel, &img.syms, None),
        Err(Error::NotMapped { .. })
    ));
}

// Property tests.

const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.$";

/// Names of 1..=300 allowed bytes, with the tokens' strings over-represented:
/// each piece is one of [`NAME_CHARS`] or, one time in five, a token's string.
fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: [&[u8]; 5] = [b"__", b"bpf_", b"map", b"_idr", b"_"];
    (
        proptest::collection::vec(0..NAME_CHARS.len() + 16, 1..240),
        1usize..=300,
    )
        .prop_map(|(pieces, max)| {
            let mut name = Vec::new();
            for p in pieces {
                match NAME_CHARS.get(p) {
                    Some(&c) => name.push(c),
                    None => name.extend_from_slice(PIECES[p % PIECES.len()]),
                }
            }
            name.truncate(max);
            name
        })
}

fn mode_strategy() -> impl Strategy<Value = AddressMode> {
    proptest::sample::select(&MODES[..])
}

fn order_strategy() -> impl Strategy<Value = Order> {
    proptest::sample::select(&ORDERS[..])
}

/// A random table each mode can encode: names, types, sorted addresses, and a
/// `_text` at the relative base.
fn table_strategy(max_syms: usize) -> impl Strategy<Value = (Vec<Sym>, AddressMode, Order)> {
    (
        proptest::collection::vec(
            (
                name_strategy(),
                proptest::sample::select(&b"TtDdRrBbAW"[..]),
                any::<u64>(),
            ),
            1..max_syms,
        ),
        mode_strategy(),
        order_strategy(),
        any::<u64>(),
        any::<proptest::sample::Index>(),
    )
        .prop_map(|(raw, mode, order, base, split)| {
            let n = raw.len();
            let mut addrs: Vec<u64> = raw.iter().map(|r| r.2).collect();
            match mode {
                AddressMode::Absolute => addrs.sort_unstable(),
                AddressMode::Relative => {
                    let base = base % (u64::MAX - u64::from(u32::MAX));
                    for a in &mut addrs {
                        *a = base + (*a & 0xffff_ffff);
                    }
                    addrs.sort_unstable();
                    addrs[0] = base;
                }
                AddressMode::AbsolutePercpu => {
                    // Per-CPU symbols first, then addresses at most 2 GiB
                    // above the base: a kernel-like base, or any other base
                    // the whole range fits above.
                    let (base, span) = if base & 1 == 0 {
                        (
                            START_KERNEL - 0x100_0000 + (base & 0x3fff_f000),
                            0x3fff_ffff,
                        )
                    } else {
                        (0x8000_0000 + base % (u64::MAX - 0x1_0000_0000), 0x7fff_ffff)
                    };
                    let percpu = split.index(n);
                    for (i, a) in addrs.iter_mut().enumerate() {
                        if i >= percpu {
                            *a = base + (*a & span);
                        } else {
                            *a &= 0x7fff_ffff;
                        }
                    }
                    addrs.sort_unstable();
                    addrs[percpu] = base;
                }
            }
            let mut syms: Vec<Sym> = raw
                .into_iter()
                .zip(addrs)
                .map(|((name, kind, _), addr)| Sym { kind, name, addr })
                .collect();
            // `_text` at the relative base, so `new` can pick the mode.
            let text = syms
                .iter()
                .position(|s| !is_percpu(s.addr) || mode == AddressMode::Relative);
            if let Some(text) = text.filter(|_| mode != AddressMode::Absolute) {
                syms[text].kind = b'T';
                syms[text].name = b"_text".to_vec();
            }
            (syms, mode, order)
        })
}

/// Which table a corruption hits.
#[derive(Clone, Copy, Debug)]
enum Region {
    Anywhere,
    NumSyms,
    Names,
    Markers,
    TokenTable,
    TokenIndex,
    Addrs,
    RelativeBase,
}

fn region_range(img: &Image, region: Region) -> core::ops::Range<usize> {
    let at = img.at;
    let len = img.kernel.bytes.len();
    match region {
        Region::Anywhere => 0..len,
        Region::NumSyms => at.num_syms..at.num_syms + 4,
        Region::Names => at.names..at.markers,
        Region::Markers => at.markers..at.token_table,
        Region::TokenTable => at.token_table..at.token_index,
        Region::TokenIndex => at.token_index..at.token_index + 512,
        Region::Addrs => at.addrs..at.addrs_end,
        Region::RelativeBase => at.relative_base..at.relative_base + 8,
    }
}

/// Walk `ks` to its end: at most `num_syms` symbols, then `None` or one error,
/// then `None` for good.
fn walk_bounded<K: KernelRead + ?Sized>(
    ks: &Kallsyms,
    k: &K,
) -> core::result::Result<(), TestCaseError> {
    let mut it = ks.iter(k);
    let mut seen = 0u64;
    loop {
        match it.next() {
            Ok(Some(s)) => {
                seen += 1;
                prop_assert!(seen <= u64::from(ks.num_syms()));
                prop_assert!(s.name().len() < KSYM_NAME_LEN);
            }
            Ok(None) => break,
            Err(_) => {
                prop_assert_eq!(it.next(), Ok(None));
                break;
            }
        }
    }
    prop_assert_eq!(it.next(), Ok(None));
    prop_assert!(Iterator::next(&mut it).is_none());
    Ok(())
}

proptest! {
    #[test]
    fn random_tables_round_trip_through_iter_and_lookup(
        (syms, mode, order) in table_strategy(400),
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 4),
    ) {
        let img = build(&syms, mode, order);
        let k = &img.kernel;
        let ks = Kallsyms::with_mode(k, &img.syms, mode).unwrap();
        prop_assert_eq!(walk(&ks, k), Ok(rows(&syms)));

        let first_text = syms.iter().position(|s| s.name == b"_text");
        let text_is_base = first_text.is_some_and(|i| Some(syms[i].addr) == match mode {
            AddressMode::Absolute => None,
            _ => Some(Tables::new(&syms, mode, order).relative_base),
        });
        if mode == AddressMode::Absolute || text_is_base {
            let ks = Kallsyms::new(k, &img.syms, None).unwrap();
            prop_assert_eq!(ks.mode(), mode);
        }

        let mut indices = vec![0, syms.len() - 1];
        indices.extend(picks.iter().map(|p| p.index(syms.len())));
        for i in indices {
            let name = &syms[i].name;
            let want = syms.iter().find(|s| &s.name == name).unwrap().addr;
            let name = core::str::from_utf8(name).unwrap();
            prop_assert_eq!(ks.lookup(k, name), Ok(Some(want)));
            prop_assert_eq!(ks.sym_address(k, i as u32), Ok(syms[i].addr));
        }
        prop_assert_eq!(ks.lookup(k, "no such symbol"), Ok(None));
    }

    #[test]
    fn corrupted_tables_never_panic_and_walks_end_within_num_syms(
        (syms, mode, order) in table_strategy(300),
        hits in proptest::collection::vec(
            (
                proptest::sample::select(&[
                    Region::Anywhere, Region::NumSyms, Region::Names, Region::Names,
                    Region::Markers, Region::TokenTable, Region::TokenIndex,
                    Region::Addrs, Region::RelativeBase,
                ][..]),
                any::<proptest::sample::Index>(),
                any::<u8>(),
            ),
            1..12,
        ),
        probe in any::<u32>(),
    ) {
        let mut img = build(&syms, mode, order);
        for (region, at, byte) in hits {
            let range = region_range(&img, region);
            if !range.is_empty() {
                let at = range.start + at.index(range.len());
                img.kernel.bytes[at] = byte;
            }
        }
        let k = &img.kernel;
        let name = core::str::from_utf8(&syms[0].name).unwrap();
        for ks in [
            Kallsyms::with_mode(k, &img.syms, mode),
            Kallsyms::new(k, &img.syms, None),
            Kallsyms::new(k, &img.syms, Some(0)),
        ]
        .into_iter()
        .flatten()
        {
            walk_bounded(&ks, k)?;
            let _ = ks.lookup(k, name);
            let _ = ks.lookup(k, "_text");
            let _ = ks.sym_address(k, probe);
            let _ = ks.sym_address(k, ks.num_syms().saturating_sub(1));
        }
    }
}

#[test]
fn lookup_many_agrees_with_lookup_in_one_pass() {
    for mode in MODES {
        for order in ORDERS {
            let syms = syms_for(mode);
            let img = build(&syms, mode, order);
            let ks = Kallsyms::with_mode(&img.kernel, &img.syms, mode).unwrap();
            let first = core::str::from_utf8(&syms[0].name).unwrap();
            let names = [
                "map_idr",
                "__bpf_map_idr_walk",
                "no_such_symbol",
                "",
                first,
                "map_idr_lock",
                "bpf_map_get",
            ];
            let mut out = [Some(7u64); 7];
            ks.lookup_many(&img.kernel, &names, &mut out).unwrap();
            for (name, got) in names.iter().zip(out) {
                assert_eq!(
                    Ok(got),
                    ks.lookup(&img.kernel, name),
                    "{mode:?} {order:?} {name}"
                );
            }
        }
    }
    // The lowest of duplicates, as lookup.
    let syms = [
        sym(b'T', "_text", START_KERNEL),
        sym(b't', "bpf_map_free", START_KERNEL + 0x100),
        sym(b'T', "bpf_map_free", START_KERNEL + 0x200),
    ];
    let img = build(&syms, AddressMode::Relative, Order::V6_1);
    let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
    let mut out = [None];
    ks.lookup_many(&img.kernel, &["bpf_map_free"], &mut out)
        .unwrap();
    assert_eq!(out, [Some(START_KERNEL + 0x100)]);
}

// Lookups through `kallsyms_seqs_of_names`.

/// 700 symbols in address order whose names are not: a name index that
/// answers from the wrong entry finds another address. Names repeat (a
/// static function in several files) with different addresses and types.
fn shuffled_syms() -> Vec<Sym> {
    (0..700u64)
        .map(|i| {
            let name = match i {
                0 => "_text".into(),
                _ if i % 50 == 7 => "cleanup_module".into(),
                _ => format!("f_{:03}_{}", (i * 389) % 700, "y".repeat((i % 13) as usize)),
            };
            sym(b"TtDdBbR"[(i % 7) as usize], &name, START_KERNEL + i * 0x40)
        })
        .collect()
}

/// `syms` built with a name index where `order` puts it, the markers not
/// exported (as from VMCOREINFO).
fn build_indexed(syms: &[Sym], mode: AddressMode, order: Order) -> Image {
    let mut t = Tables::new(syms, mode, order);
    t.seqs = true;
    let mut img = t.build();
    img.syms.markers = None;
    img
}

/// The first symbol named `name`, as a linear scan finds it.
fn first_named(syms: &[Sym], name: &[u8]) -> Option<u64> {
    syms.iter().find(|s| s.name == name).map(|s| s.addr)
}

#[test]
fn lookups_binary_search_the_name_index_of_6_2_and_6_4_layouts() {
    let syms = shuffled_syms();
    for mode in [AddressMode::Relative, AddressMode::AbsolutePercpu] {
        for order in ORDERS {
            let img = build_indexed(&syms, mode, order);
            assert!(img.at.seqs > 0);
            let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
            assert!(ks.has_name_index(), "{mode:?} {order:?}");
            for s in &syms {
                let name = core::str::from_utf8(&s.name).unwrap();
                assert_eq!(
                    ks.lookup(&img.kernel, name),
                    Ok(first_named(&syms, &s.name)),
                    "{mode:?} {order:?} {name}"
                );
            }
            // Names between, before and after the sorted ones.
            for name in ["f_000", "f_0005", "a", "zzz", "cleanup_modul", "_tex", ""] {
                assert_eq!(ks.lookup(&img.kernel, name), Ok(None), "{name}");
            }
            let names = ["cleanup_module", "nope", "_text", "f_389_y"];
            let mut out = [Some(1); 4];
            ks.lookup_many(&img.kernel, &names, &mut out).unwrap();
            let want = names.map(|n| first_named(&syms, n.as_bytes()));
            assert_eq!(out, want, "{mode:?} {order:?}");
            assert_eq!(out[0], Some(START_KERNEL + 7 * 0x40));
        }
    }
}

#[test]
fn tables_without_a_name_index_are_scanned() {
    let syms = shuffled_syms();
    for order in ORDERS {
        let img = build(&syms, AddressMode::Relative, order);
        let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
        assert!(!ks.has_name_index(), "{order:?}");
        assert_eq!(
            ks.lookup(&img.kernel, "cleanup_module"),
            Ok(Some(START_KERNEL + 7 * 0x40))
        );
    }
}

#[test]
fn a_name_index_that_does_not_check_out_is_not_used() {
    let syms = shuffled_syms();
    for order in ORDERS {
        // Zeroed (every entry symbol 0), reversed, and in address order.
        let base = build_indexed(&syms, AddressMode::Relative, order);
        let len = 3 * syms.len();
        let seqs = base.kernel.bytes[base.at.seqs..][..len].to_vec();
        let reversed: Vec<u8> = seqs.chunks(3).rev().flatten().copied().collect();
        let by_address: Vec<u8> = (0..syms.len() as u32)
            .flat_map(|i| {
                let b = i.to_be_bytes();
                [b[1], b[2], b[3]]
            })
            .collect();
        for (what, bytes) in [
            ("zeroed", vec![0; len]),
            ("reversed", reversed),
            ("by address", by_address),
        ] {
            let mut img = build_indexed(&syms, AddressMode::Relative, order);
            let at = img.at.seqs;
            img.put(at, &bytes);
            let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
            assert!(!ks.has_name_index(), "{order:?} {what}");
            for name in ["cleanup_module", "f_389_y", "_text"] {
                assert_eq!(
                    ks.lookup(&img.kernel, name),
                    Ok(first_named(&syms, name.as_bytes())),
                    "{order:?} {what} {name}"
                );
            }
        }
        // Markers that disagree with the names.
        let mut img = build_indexed(&syms, AddressMode::Relative, order);
        let at = img.at.markers + 4;
        let m = img.get_u32(at);
        img.put(at, &(m + 1).to_le_bytes());
        let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
        assert!(!ks.has_name_index(), "{order:?} markers");
    }
}

#[test]
fn an_index_entry_past_the_symbols_falls_back_to_the_scan() {
    // Entry 350, which the sampling skips and where every binary search of
    // 700 starts, points past the table: every search fails to read, and the
    // scan answers instead.
    let syms = shuffled_syms();
    for order in ORDERS {
        let mut img = build_indexed(&syms, AddressMode::Relative, order);
        let at = img.at.seqs + 3 * 350;
        img.put(at, &[0xff, 0xff, 0xff]);
        let ks = Kallsyms::new(&img.kernel, &img.syms, Some(0)).unwrap();
        assert!(ks.has_name_index(), "{order:?}");
        for s in &syms {
            let name = core::str::from_utf8(&s.name).unwrap();
            assert_eq!(
                ks.lookup(&img.kernel, name),
                Ok(first_named(&syms, &s.name)),
                "{order:?} {name}"
            );
        }
    }
}
