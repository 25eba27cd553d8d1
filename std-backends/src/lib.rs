//! Read Linux BPF state from kernel memory: memory-image backends and discovery
//! on top of [`bpfmem_core`], and the live kernel through `bpf(2)`, behind one
//! map interface, [`BpfMapAccessor`].
//!
//! ```no_run
//! use bpfmem::{BpfMapAccessor, DiscoverOptions, Entry, Image, Kernel};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let k = Kernel::open(Image::open("guest.elf")?, &DiscoverOptions::default())?;
//! for m in k.list_maps()? {
//!     if !m.map_type.is_percpu() && m.key_size > 0 {
//!         let mut entries = k.entries(m.id)?; // streamed, buffers reused
//!         let mut e = Entry::default();
//!         while entries.next_into(&mut e)? {
//!             println!("{} {:02x?} -> {:02x?}", m.name(), e.key, e.value);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub use bpfmem_core as core;

pub mod access;
pub mod btf;
mod btf_resolve;
pub mod error;
#[cfg(feature = "format")]
pub mod format;
#[cfg(all(feature = "core-file", feature = "ram-file"))]
pub mod image;
pub mod kernel;
#[cfg(feature = "bpf-syscall")]
pub mod live;
pub mod objects;
#[cfg(any(feature = "core-file", feature = "ram-file", feature = "devmem"))]
pub mod source;

pub use access::{AccessError, ArenaPageData, ArenaPages, BpfMapAccessor, Entries, Entry, MapBtf};
pub use error::{FilePart, SourceError, SourceErrorKind};
#[cfg(all(feature = "core-file", feature = "ram-file"))]
pub use image::Image;
pub use kernel::{DiscoverOptions, DiscoveryError, Kernel, VmcoreinfoOrigin};
#[cfg(feature = "bpf-syscall")]
pub use live::{ArenaPresence, LiveBpf, LiveError};
