//! Walk Linux BPF state in kernel memory.
//!
//! Everything here reads through [`PhysRead`], an abstract view of a machine's
//! physical memory, and treats every byte it reads as hostile: walks are bounded,
//! nothing is allocated, and malformed data becomes an [`Error`] that names the
//! structure and the address, never a panic.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo
    )
)]

#[cfg(test)]
extern crate std;

pub mod addr;
pub mod arena;
pub mod array;
pub mod bpf_map;
pub mod bpf_prog;
pub mod btf;
pub mod btf_types;
pub mod error;
pub mod htab;
pub mod kallsyms;
pub mod offsets;
pub mod paging;
pub mod percpu;
pub mod phys;
pub mod struct_ops;
pub mod uapi;
pub mod virt;
pub mod vmcoreinfo;
pub mod xarray;

pub use addr::{Kva, Pa};
pub use error::{Error, Result};
pub use offsets::Offsets;
pub use phys::{Flat, PhysRead, PhysWrite, Region, RegionMap};
pub use virt::KernelRead;
