//! One type for "a memory image of a kernel", whatever file holds it, and the
//! first discovery step every image needs: its VMCOREINFO.

use std::path::Path;

use bpfmem_core::phys::PhysRange;
use bpfmem_core::vmcoreinfo::{find_vmcoreinfo, VmcoreInfo};
use bpfmem_core::{Error, Pa, PhysRead, PhysWrite};

use crate::error::SourceError;
use crate::kernel::{
    DiscoverOptions, DiscoveryError, DiscoveryErrorKind, Kernel, Step, VmcoreinfoOrigin,
};
use crate::source::{ElfCore, RamFile};

/// A kernel's physical memory: an ELF core or a raw RAM file, or the running
/// host's `/proc/kcore` or `/dev/mem`.
pub enum Image {
    Core(ElfCore),
    Ram(RamFile),
    #[cfg(feature = "kcore")]
    Kcore(crate::source::Kcore),
    #[cfg(feature = "devmem")]
    DevMem(crate::source::DevMem),
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

impl Image {
    /// Open `path`, telling an ELF core from a raw RAM file by its magic. A raw
    /// file is taken to start at physical address 0.
    pub fn open(path: impl AsRef<Path>) -> Result<Image, SourceError> {
        let path = path.as_ref();
        let mut magic = [0u8; 4];
        let is_elf = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == ELF_MAGIC;
        if is_elf {
            ElfCore::open(path).map(Image::Core)
        } else {
            RamFile::open(path, Pa(0)).map(Image::Ram)
        }
    }

    /// The file behind the image.
    pub fn path(&self) -> &Path {
        match self {
            Image::Core(c) => c.path(),
            Image::Ram(r) => r.path(),
            #[cfg(feature = "kcore")]
            Image::Kcore(k) => k.path(),
            #[cfg(feature = "devmem")]
            Image::DevMem(d) => d.path(),
        }
    }

    /// The kernel's VMCOREINFO: the ELF note when the core has a usable one, else
    /// the best copy found in memory.
    pub fn vmcoreinfo(&self) -> bpfmem_core::Result<(VmcoreInfo, VmcoreinfoOrigin)> {
        let note = match self {
            Image::Core(core) => core.vmcoreinfo_note(),
            #[cfg(feature = "kcore")]
            Image::Kcore(k) => k.vmcoreinfo_note(),
            _ => None,
        };
        if let Some(desc) = note {
            if let Ok(info) = VmcoreInfo::from_note_desc(desc) {
                if info.is_complete() {
                    return Ok((info, VmcoreinfoOrigin::ElfNote));
                }
            }
        }
        let found = find_vmcoreinfo(self)?;
        Ok((
            found.info,
            VmcoreinfoOrigin::Memory {
                pa: found.pa,
                framing: found.framing,
            },
        ))
    }
}

impl Kernel<Image> {
    /// Discover the kernel in a memory image: its VMCOREINFO (the ELF note or a
    /// scan of memory), then everything [`Kernel::discover`] finds.
    pub fn open(image: Image, opts: &DiscoverOptions) -> Result<Self, DiscoveryError> {
        let (info, origin) = image.vmcoreinfo().map_err(|e| DiscoveryError {
            step: Step::Vmcoreinfo,
            kind: DiscoveryErrorKind::Memory(e),
        })?;
        Kernel::discover(image, info, origin, opts)
    }
}

impl PhysRead for Image {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> bpfmem_core::Result<()> {
        match self {
            Image::Core(c) => c.read_phys(pa, buf),
            Image::Ram(r) => r.read_phys(pa, buf),
            #[cfg(feature = "kcore")]
            Image::Kcore(k) => k.read_phys(pa, buf),
            #[cfg(feature = "devmem")]
            Image::DevMem(d) => d.read_phys(pa, buf),
        }
    }

    fn prefetch(&self, pa: Pa) {
        match self {
            Image::Core(c) => c.prefetch(pa),
            Image::Ram(r) => r.prefetch(pa),
            _ => {}
        }
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        match self {
            Image::Core(c) => c.next_range(from),
            Image::Ram(r) => r.next_range(from),
            #[cfg(feature = "kcore")]
            Image::Kcore(k) => k.next_range(from),
            #[cfg(feature = "devmem")]
            Image::DevMem(d) => d.next_range(from),
        }
    }
}

impl PhysWrite for Image {
    /// Raw RAM files opened with [`RamFile::open_writable`] take writes; ELF
    /// cores are records of the past, and the live sources are read-only here.
    fn write_phys(&self, pa: Pa, buf: &[u8]) -> bpfmem_core::Result<()> {
        match self {
            Image::Ram(r) => r.write_phys(pa, buf),
            _ => Err(Error::WriteFailed {
                pa,
                len: buf.len() as u64,
            }),
        }
    }
}
