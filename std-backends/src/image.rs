//! One type for "a memory image of a kernel", whatever file holds it, and the
//! first discovery step every image needs: its VMCOREINFO.

use std::path::Path;

use bpfmem_core::phys::PhysRange;
use bpfmem_core::vmcoreinfo::{find_vmcoreinfo, Framing, VmcoreInfo};
use bpfmem_core::{Pa, PhysRead};

use crate::error::SourceError;
use crate::source::{ElfCore, RamFile};

/// A memory image: an ELF core or a raw RAM file.
pub enum Image {
    Core(ElfCore),
    Ram(RamFile),
}

/// Where the VMCOREINFO in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmcoreinfoOrigin {
    /// The ELF core's VMCOREINFO note (QEMU's `-device vmcoreinfo`, kdump).
    ElfNote,
    /// Found by scanning physical memory.
    Memory { pa: Pa, framing: Framing },
}

impl std::fmt::Display for VmcoreinfoOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmcoreinfoOrigin::ElfNote => f.write_str("ELF note"),
            VmcoreinfoOrigin::Memory { pa, framing } => {
                let how = match framing {
                    Framing::Note => "inside a note",
                    Framing::PageAligned => "page aligned",
                    Framing::Bare => "bare text",
                };
                write!(f, "memory at {pa} ({how})")
            }
        }
    }
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
        }
    }

    /// The kernel's VMCOREINFO: the ELF note when the core has a usable one, else
    /// the best copy found in memory.
    pub fn vmcoreinfo(&self) -> bpfmem_core::Result<(VmcoreInfo, VmcoreinfoOrigin)> {
        if let Image::Core(core) = self {
            if let Some(desc) = core.vmcoreinfo_note() {
                if let Ok(info) = VmcoreInfo::from_note_desc(desc) {
                    if info.is_complete() {
                        return Ok((info, VmcoreinfoOrigin::ElfNote));
                    }
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

impl PhysRead for Image {
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> bpfmem_core::Result<()> {
        match self {
            Image::Core(c) => c.read_phys(pa, buf),
            Image::Ram(r) => r.read_phys(pa, buf),
        }
    }

    fn next_range(&self, from: Pa) -> Option<PhysRange> {
        match self {
            Image::Core(c) => c.next_range(from),
            Image::Ram(r) => r.next_range(from),
        }
    }
}
