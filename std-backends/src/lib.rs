//! Read Linux BPF state from kernel memory: memory-image backends and discovery
//! on top of [`bpfmem_core`].

pub use bpfmem_core as core;

pub mod access;
pub mod btf;
pub mod error;
#[cfg(all(feature = "core-file", feature = "ram-file"))]
pub mod image;
pub mod kernel;
#[cfg(feature = "bpf-syscall")]
pub mod live;
#[cfg(any(feature = "core-file", feature = "ram-file", feature = "devmem"))]
pub mod source;

pub use access::{AccessError, ArenaPageData, ArenaPages, BpfMapAccessor, Entries, Entry, MapBtf};
pub use error::{FilePart, SourceError, SourceErrorKind};
#[cfg(all(feature = "core-file", feature = "ram-file"))]
pub use image::Image;
pub use kernel::{DiscoverOptions, DiscoveryError, Kernel, VmcoreinfoOrigin};
#[cfg(feature = "bpf-syscall")]
pub use live::{ArenaPresence, LiveBpf, LiveError};
