//! What the test-bed guest agent and the host-side runner share.
//!
//! The agent (`src/main.rs`) runs as init inside a QEMU guest, creates BPF maps
//! with contents derived from a seed ([`plan`]), asks `bpf(2)` what every map in
//! the system holds, and writes that ground truth as a JSON [`manifest::Manifest`]
//! to the `isa-debugcon` port, terminated by [`MANIFEST_END`]. The runner reads it
//! back with the same types.

pub mod btf;
pub mod manifest;
pub mod plan;

pub use manifest::{seeded_bytes, splitmix64, Manifest, MANIFEST_END, READY};
