//! The harness behind the fuzz targets in `fuzz_targets/`: input encoding,
//! memory models, layouts, and one module per target with its input and its
//! checks. The seed generator (`examples/gen_seeds.rs`) builds inputs with
//! the same types and runs them through the same checks.
//!
//! Structured targets read a fixed header of integers (`arbitrary`'s
//! encoding, see [`wire`]) and then a payload of memory. Header fields are
//! mostly XORed with a realistic default, so that all-zero bytes mean "the
//! kernel's layout, the usual addresses", and the fuzzer starts deep.

pub mod layouts;
pub mod mem;
pub mod scratch;
pub mod wire;

pub mod targets {
    pub mod arena;
    pub mod array;
    pub mod bpf_map;
    pub mod bpf_objects;
    pub mod btf_format;
    pub mod btf_offsets;
    pub mod discover;
    pub mod elf_core;
    pub mod htab;
    pub mod kallsyms;
    pub mod kcore;
    pub mod page_walk;
    pub mod struct_ops;
    pub mod vmcoreinfo;
    pub mod xarray;
}
