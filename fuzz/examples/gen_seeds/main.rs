//! Writes the seed corpora: `gen_seeds OUT_DIR [TESTBED_DIR]`.
//!
//! Synthetic seeds come from builders like the core crate's unit tests'.
//! With a test-bed cache (default `~/.cache/bpfmem-testbed`, if present),
//! seeds also come from the guests' images: the pages each walker reads for
//! a real map, the real BTF cut down to the structs the walkers use, a map's
//! own BTF, the real ELF headers, notes and VMCOREINFO. Every seed is run
//! through its target's checks, and what it reached is printed.
//!
//! Run it with `cargo run --release --no-default-features --example gen_seeds`
//! (without the `libfuzzer` feature: this is a normal program).

mod btf;
mod files;
mod img;
mod ksyms;
mod real;
mod synth;

use std::path::{Path, PathBuf};

use bpfmem_fuzz::targets::*;
use bpfmem_fuzz::wire::decode;

pub struct Seeds {
    out: PathBuf,
    pub count: usize,
    pub bytes: usize,
}

/// Run `data` through `target` as its fuzz target would, and say what it saw.
pub fn run(target: &str, data: &[u8]) -> String {
    macro_rules! structured {
        ($m:ident) => {{
            let (h, p) = decode::<$m::Input>(data);
            format!("{:?}", $m::run(&h, p))
        }};
    }
    match target {
        "page_walk" => structured!(page_walk),
        "xarray" => structured!(xarray),
        "bpf_map" => structured!(bpf_map),
        "bpf_objects" => structured!(bpf_objects),
        "array" => structured!(array),
        "htab" => structured!(htab),
        "arena" => structured!(arena),
        "struct_ops" => structured!(struct_ops),
        "kallsyms" => structured!(kallsyms),
        "btf_format" => structured!(btf_format),
        "discover" => structured!(discover),
        "btf_offsets" => format!("{:?}", btf_offsets::run(data)),
        "kcore" => format!("regions {}", kcore::run(data)),
        "elf_core" => format!("regions {}", elf_core::run(data)),
        "vmcoreinfo_parse" => format!("parsed {}", vmcoreinfo::parse(data)),
        "vmcoreinfo_scan" => format!("found {}", vmcoreinfo::scan(data)),
        _ => panic!("no target {target}"),
    }
}

impl Seeds {
    pub fn add(&mut self, target: &str, name: &str, data: Vec<u8>) {
        let seen = run(target, &data);
        println!("{target:>16} {name:<40} {:>7} bytes  {seen}", data.len());
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &data).unwrap();
        self.count += 1;
        self.bytes += data.len();
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(args.next().expect("usage: gen_seeds OUT_DIR [TESTBED_DIR]"));
    let testbed = args.next().map(PathBuf::from).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = Path::new(&home).join(".cache/bpfmem-testbed");
        p.is_dir().then_some(p)
    });
    let mut seeds = Seeds {
        out,
        count: 0,
        bytes: 0,
    };
    synth::all(&mut seeds);
    if let Some(dir) = testbed {
        real::all(&mut seeds, &dir);
    }
    println!("{} seeds, {} bytes", seeds.count, seeds.bytes);
}
