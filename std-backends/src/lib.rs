//! Read Linux BPF state from kernel memory: memory-image backends and discovery
//! on top of [`bpfmem_core`].

pub use bpfmem_core as core;
