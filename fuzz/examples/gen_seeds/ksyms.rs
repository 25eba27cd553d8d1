//! kallsyms tables as `scripts/kallsyms.c` writes them (greedy token
//! compression, one- or two-byte name lengths, markers every 256 names,
//! relative or absolute-percpu offsets, or absolute addresses), in the 6.1 or
//! 6.4+ order. A port of the core crate's test builder.

use bpfmem_core::kallsyms::AddressMode;
use bpfmem_core::vmcoreinfo::KallsymsSymbols;

pub const START_KERNEL: u64 = 0xffff_ffff_8100_0000;

pub struct Sym {
    pub kind: u8,
    pub name: Vec<u8>,
    pub addr: u64,
}

pub fn sym(kind: u8, name: &str, addr: u64) -> Sym {
    Sym {
        kind,
        name: name.as_bytes().to_vec(),
        addr,
    }
}

/// An x86-64 SMP kernel's symbols: per-CPU ones at 0, then `_text` at
/// `__START_KERNEL + kaslr`, a long name, and `extra` filler symbols.
pub fn kernel_syms(kaslr: u64, percpu: bool, extra: usize) -> Vec<Sym> {
    let text = START_KERNEL + kaslr;
    let mut v = Vec::new();
    if percpu {
        v.push(sym(b'A', "fixed_percpu_data", 0));
        v.push(sym(b'A', "__per_cpu_start", 0));
        v.push(sym(b'A', "cpu_number", 0x2_1f28));
        v.push(sym(b'A', "__per_cpu_end", 0x3_4000));
    }
    v.push(sym(b'T', "_text", text));
    v.push(sym(b'T', "startup_64", text));
    v.push(sym(b'T', "__bpf_prog_run", text + 0x1_2340));
    for i in 0..extra {
        v.push(sym(
            b't',
            &format!("bpf_helper_{i}"),
            text + 0x2_0000 + 0x40 * i as u64,
        ));
    }
    let long = format!("a_very_long_symbol_name_{}", "x".repeat(150));
    v.push(sym(b'T', &long, text + 0x80_0000));
    v.push(sym(b'T', "_etext", text + 0x100_0000));
    v.push(sym(b'd', "map_idr", text + 0x200_0000));
    v.push(sym(b'd', "prog_idr", text + 0x200_0040));
    v.push(sym(b'D', "page_offset_base", text + 0x200_0080));
    v.push(sym(b'b', "map_idr_lock", text + 0x280_0000));
    v.push(sym(b'B', "_end", text + 0x300_0000));
    v
}

fn token_strings() -> Vec<Vec<u8>> {
    (0..=255u8)
        .map(|code| match code {
            0x20..=0x7e => vec![code],
            0x80 => b"__".to_vec(),
            0x81 => b"bpf_".to_vec(),
            0x82 => b"map".to_vec(),
            0x83 => b"_idr".to_vec(),
            0x84 => b"Tbpf_".to_vec(),
            0x85 => b"t__".to_vec(),
            0x86 => b"helper_".to_vec(),
            _ => format!("{{{code:02x}}}").into_bytes(),
        })
        .collect()
}

fn compress(tokens: &[Vec<u8>], text: &[u8]) -> Vec<u8> {
    let mut codes = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (code, t) = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty() && rest.starts_with(t))
            .max_by_key(|(_, t)| t.len())
            .expect("a token for every byte");
        codes.push(code as u8);
        rest = &rest[t.len()..];
    }
    codes
}

fn is_percpu(addr: u64) -> bool {
    addr <= i32::MAX as u64
}

/// Which `write_src()` order: 6.1 (offsets first) or 6.4+ (offsets last).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    V6_1,
    V6_4,
}

/// The tables in one image at `base`, and what VMCOREINFO says of them.
pub fn build(
    syms: &[Sym],
    mode: AddressMode,
    order: Order,
    base: u64,
) -> (Vec<u8>, KallsymsSymbols) {
    let tokens = token_strings();
    let relative_base = match mode {
        AddressMode::Absolute => 0,
        AddressMode::Relative => syms.first().map_or(0, |s| s.addr),
        AddressMode::AbsolutePercpu => syms
            .iter()
            .find(|s| !is_percpu(s.addr))
            .map_or(0, |s| s.addr),
    };
    let mut names = Vec::new();
    let mut offsets = Vec::new();
    for s in syms {
        let mut text = vec![s.kind];
        text.extend_from_slice(&s.name);
        let codes = compress(&tokens, &text);
        offsets.push(names.len() as u32);
        if codes.len() <= 0x7f {
            names.push(codes.len() as u8);
        } else {
            names.push((codes.len() & 0x7f) as u8 | 0x80);
            names.push((codes.len() >> 7) as u8);
        }
        names.extend_from_slice(&codes);
    }
    let markers: Vec<u8> = offsets
        .iter()
        .step_by(256)
        .flat_map(|o| o.to_le_bytes())
        .collect();
    let mut token_table = Vec::new();
    let mut token_index = Vec::new();
    for t in &tokens {
        token_index.extend_from_slice(&(token_table.len() as u16).to_le_bytes());
        token_table.extend_from_slice(t);
        token_table.push(0);
    }
    let addrs: Vec<u8> = syms
        .iter()
        .flat_map(|s| match mode {
            AddressMode::Absolute => s.addr.to_le_bytes().to_vec(),
            AddressMode::Relative => ((s.addr - relative_base) as u32).to_le_bytes().to_vec(),
            AddressMode::AbsolutePercpu if is_percpu(s.addr) => {
                (s.addr as u32).to_le_bytes().to_vec()
            }
            AddressMode::AbsolutePercpu => {
                let off = (i128::from(relative_base) - i128::from(s.addr) - 1) as i32;
                (off as u32).to_le_bytes().to_vec()
            }
        })
        .collect();
    let relative = mode != AddressMode::Absolute;
    let mut bytes = Vec::new();
    let mut append = |blob: &[u8]| {
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
        let at = bytes.len() as u64;
        bytes.extend_from_slice(blob);
        base + at
    };
    let num = (syms.len() as u32).to_le_bytes();
    let rb = relative_base.to_le_bytes();
    let (a, r, n, nm, mk, tt, ti);
    match order {
        Order::V6_1 => {
            a = append(&addrs);
            r = if relative { Some(append(&rb)) } else { None };
            n = append(&num);
            nm = append(&names);
            mk = append(&markers);
            tt = append(&token_table);
            ti = append(&token_index);
        }
        Order::V6_4 => {
            n = append(&num);
            nm = append(&names);
            mk = append(&markers);
            tt = append(&token_table);
            ti = append(&token_index);
            a = append(&addrs);
            r = if relative { Some(append(&rb)) } else { None };
        }
    }
    let mut k = KallsymsSymbols::default();
    k.num_syms = Some(n);
    k.names = Some(nm);
    k.markers = Some(mk);
    k.token_table = Some(tt);
    k.token_index = Some(ti);
    k.offsets = relative.then_some(a);
    k.relative_base = r;
    k.addresses = (!relative).then_some(a);
    (bytes, k)
}
