//! kallsyms from the tables VMCOREINFO names: `Kallsyms::new` (address mode
//! found from `_text`) and `with_mode`, the symbol walk, `lookup`,
//! `sym_address`.
//!
//! Checks: the walk yields at most `num_syms` symbols, numbered 0, 1, 2...,
//! names of at most `KSYM_NAME_LEN - 1` bytes, then stays ended; each
//! symbol's address is `sym_address` of its number; `lookup` of a name the
//! walk yielded finds the first symbol of that name, at its address.

use bpfmem_core::kallsyms::{AddressMode, Kallsyms, KSYM_NAME_LEN, MAX_SYMS};
use bpfmem_core::vmcoreinfo::KallsymsSymbols;

use crate::mem::{drive, Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// Where the tables are linked by default: `.rodata` past the kernel text.
pub const RODATA: u64 = 0xffff_ffff_8200_0000;

/// Which symbols an all-zero `present` means: all but `kallsyms_addresses`
/// and `kallsyms_seqs_of_names`.
pub const DEFAULT_PRESENT: u16 = 0x7f;

wire_struct! {
    /// `syms`: `num_syms`, `names`, `markers`, `token_table`, `token_index`,
    /// `offsets`, `relative_base`, `addresses`, `seqs_of_names`, each XORed
    /// with the first run's address, present where bit `i` of `present ^
    /// DEFAULT_PRESENT` is set. `mode`: 0 `new` with `kernel_offset`, 1 `new`
    /// without, 2.. `with_mode` Absolute, Relative, AbsolutePercpu. `names`:
    /// two NUL-padded names to look up.
    pub struct Input {
        pub layout: Layout,
        pub present: u16,
        pub syms: [u64; 9],
        pub mode: u8,
        pub kernel_offset: u64,
        pub names: [[u8; 16]; 2],
    }
}

impl Input {
    /// The wire form of `syms` for tables in a run at `base`.
    pub fn encode_syms(syms: &KallsymsSymbols, base: u64) -> (u16, [u64; 9]) {
        let all = [
            syms.num_syms,
            syms.names,
            syms.markers,
            syms.token_table,
            syms.token_index,
            syms.offsets,
            syms.relative_base,
            syms.addresses,
            syms.seqs_of_names,
        ];
        let mut present = 0u16;
        let mut out = [0u64; 9];
        for (i, s) in all.iter().enumerate() {
            if let Some(v) = s {
                present |= 1 << i;
                out[i] = v ^ base;
            }
        }
        (present ^ DEFAULT_PRESENT, out)
    }

    fn syms(&self, base: u64) -> KallsymsSymbols {
        let present = self.present ^ DEFAULT_PRESENT;
        let s = |i: usize| (present & (1 << i) != 0).then_some(self.syms[i] ^ base);
        let mut k = KallsymsSymbols::default();
        k.num_syms = s(0);
        k.names = s(1);
        k.markers = s(2);
        k.token_table = s(3);
        k.token_index = s(4);
        k.offsets = s(5);
        k.relative_base = s(6);
        k.addresses = s(7);
        k.seqs_of_names = s(8);
        k
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub symbols: u64,
    pub found: u64,
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let base = input.layout.base[0] ^ DEFAULT_BASES[0];
    let syms = input.syms(base);
    let ks = match input.mode % 5 {
        0 => Kallsyms::new(&k, &syms, Some(input.kernel_offset)),
        1 => Kallsyms::new(&k, &syms, None),
        2 => Kallsyms::with_mode(&k, &syms, AddressMode::Absolute),
        3 => Kallsyms::with_mode(&k, &syms, AddressMode::Relative),
        _ => Kallsyms::with_mode(&k, &syms, AddressMode::AbsolutePercpu),
    };
    let mut seen = Seen::default();
    let Ok(ks) = ks else { return seen };
    assert!(ks.num_syms() <= MAX_SYMS);
    let _ = format!("{ks:?}");

    let mut all: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut it = ks.iter(&k);
    let (n, _) = drive(
        "SymIter",
        u64::from(ks.num_syms()),
        || it.next(),
        |i, s| {
            assert_eq!(u64::from(s.index()), i);
            assert!(s.name().len() < KSYM_NAME_LEN);
            assert_eq!(ks.sym_address(&k, s.index()), Ok(s.addr()));
            if i == 0 {
                let _ = format!("{s:?}");
            }
            all.push((s.name().to_vec(), s.addr()));
        },
    );
    assert!(Iterator::next(&mut it).is_none());
    seen.symbols = n;
    let first = |name: &[u8]| all.iter().find(|(n, _)| n == name).map(|&(_, a)| a);

    // Each lookup is a scan: check the first, a middle and the last name.
    let picks = [0, all.len() / 2, all.len().saturating_sub(1)];
    for &i in picks.iter().take(all.len().min(3)) {
        let Ok(name) = std::str::from_utf8(&all[i].0) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let addr = first(name.as_bytes());
        assert_eq!(ks.lookup(&k, name), Ok(addr), "lookup({name:?})");
        seen.found += 1;
    }
    for raw in &input.names {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        if let Ok(name) = std::str::from_utf8(&raw[..len]) {
            if let Ok(Some(addr)) = ks.lookup(&k, name) {
                if let Some(want) = first(name.as_bytes()) {
                    assert_eq!(addr, want);
                }
            }
        }
    }
    let _ = ks.lookup(&k, "_text");
    seen
}
