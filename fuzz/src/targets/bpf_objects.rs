//! The other BPF objects in the image: `bpf_prog_for_each` and `read_prog`
//! (`struct bpf_prog` and its `bpf_prog_aux`), `bpf_btf_for_each` and
//! `read_btf` (`struct btf`), and `read_kernel_btf` (the kernel's own BTF
//! between `__start_BTF` and `__stop_BTF`).
//!
//! Checks: IDR walks yield at most their budget, in increasing id order, each
//! object carrying its slot's id and equal to a direct read of it, then stay
//! ended; `ProgInfo` is consistent (`xlated_len` is 8 bytes per
//! instruction, at most 64 map ids); a BTF object's blob reads whole; a
//! kernel BTF blob has the size its symbols say and a valid header.

use bpfmem::btf::{check_btf_header, read_kernel_btf, MAX_BTF_SIZE};
use bpfmem_core::bpf_prog::{bpf_prog_for_each, read_prog, MAX_USED_MAPS};
use bpfmem_core::btf::{bpf_btf_for_each, read_btf, BTF_MAX_SIZE};
use bpfmem_core::xarray::XaLimits;
use bpfmem_core::Kva;

use crate::layouts::OffsetsWire;
use crate::mem::{drive, Holes, Layout, Mem, DEFAULT_BASES};
use crate::wire_struct;

/// The largest blob this target reads (the library allows [`MAX_BTF_SIZE`]).
pub const MAX_BLOB: u64 = 1 << 20;

wire_struct! {
    /// Addresses are XORed with the first run's address.
    pub struct Input {
        pub layout: Layout,
        pub off: OffsetsWire,
        pub prog_idr: u64,
        pub btf_idr: u64,
        pub max_nodes: u16,
        pub max_entries: u16,
        pub prog: u64,
        pub btf: u64,
        pub start_btf: u64,
        pub stop_btf: u64,
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub progs: u64,
    pub btfs: u64,
    pub kernel_btf: bool,
}

pub fn run(input: &Input, payload: &[u8]) -> Seen {
    let off = input.off.decode();
    let k = Mem::new(&input.layout, payload, Holes::NONE);
    let base = input.layout.base[0] ^ DEFAULT_BASES[0];
    let at = |raw: u64| Kva(raw ^ base);
    let limits = XaLimits {
        max_nodes: u64::from(input.max_nodes ^ 0x100),
        max_entries: u64::from(input.max_entries ^ 0x100),
    };
    let mut seen = Seen::default();

    let mut last = None;
    let mut it = bpf_prog_for_each(&k, at(input.prog_idr), &off, limits);
    let (n, _) = drive(
        "bpf_prog_for_each",
        limits.max_entries,
        || it.next(),
        |_, p| {
            assert!(last.is_none_or(|l| p.id > l));
            last = Some(p.id);
            assert_eq!(read_prog(&k, p.kva, &off).as_ref(), Ok(p));
        },
    );
    seen.progs = n;
    if let Ok(p) = read_prog(&k, at(input.prog), &off) {
        assert!(p.nr_map_ids as usize <= MAX_USED_MAPS);
        assert_eq!(p.map_ids().len(), p.nr_map_ids as usize);
        let len = k
            .peek_u32(p.kva.checked_add(u64::from(off.bpf_prog.len)).unwrap())
            .unwrap();
        assert_eq!(u64::from(p.xlated_len), u64::from(len) * 8);
        let _ = (p.name(), p.prog_type.to_string(), p.prog_type.name());
    }

    let mut last = None;
    let mut it = bpf_btf_for_each(&k, at(input.btf_idr), &off, limits);
    let (n, _) = drive(
        "bpf_btf_for_each",
        limits.max_entries,
        || it.next(),
        |_, b| {
            assert!(last.is_none_or(|l| b.id > l));
            last = Some(b.id);
            assert_eq!(read_btf(&k, b.kva, &off.btf).as_ref(), Ok(b));
        },
    );
    seen.btfs = n;
    if let Ok(b) = read_btf(&k, at(input.btf), &off.btf) {
        let limit = if b.kernel_btf {
            256 << 20
        } else {
            BTF_MAX_SIZE
        };
        assert!(b.data_size <= limit);
        let _ = b.name();
        if u64::from(b.data_size) <= MAX_BLOB {
            let mut blob = vec![0u8; b.data_size as usize];
            if b.read_data(&k, &mut blob).is_ok() {
                let mut direct = vec![0u8; blob.len()];
                k.peek(b.data, &mut direct).unwrap();
                assert_eq!(blob, direct);
            }
            assert!(b
                .read_data(&k, &mut [0u8; 1][..usize::from(b.data_size != 1)])
                .is_err());
        }
    }

    let (start, stop) = (at(input.start_btf), at(input.stop_btf));
    if stop.offset_from(start).is_some_and(|len| len <= MAX_BLOB) {
        if let Ok(blob) = read_kernel_btf(&k, start, stop) {
            assert_eq!(Some(blob.len() as u64), stop.offset_from(start));
            assert!(blob.len() as u64 <= MAX_BTF_SIZE);
            check_btf_header(&blob).expect("read_kernel_btf checked it");
            seen.kernel_btf = true;
        }
    }
    seen
}
