//! Reads of kernel virtual memory. Walkers over kernel structures (xarray, htab,
//! kallsyms tables) read through [`KernelRead`], never through physical addresses,
//! so they do not care how a source translates.

use zerocopy::{FromBytes, IntoBytes};

use crate::addr::Kva;
use crate::error::Result;

/// Read access to a kernel's virtual address space.
pub trait KernelRead {
    /// Fill `buf` from `kva..kva + buf.len()`; reads that cross pages are split
    /// per page by the implementation. Fails if any byte does not translate or is
    /// not in the source. An empty read always succeeds.
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()>;

    /// A hint that `kva` will be read soon (see [`crate::PhysRead::prefetch`]).
    /// Never fails, reads nothing, costs no page walk.
    fn prefetch_kva(&self, kva: Kva) {
        let _ = kva;
    }

    /// Read one byte.
    fn read_kva_u8(&self, kva: Kva) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_kva(kva, &mut b)?;
        Ok(b[0])
    }

    /// Read a little-endian `u16`.
    fn read_kva_u16(&self, kva: Kva) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_kva(kva, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Read a little-endian `u32`.
    fn read_kva_u32(&self, kva: Kva) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_kva(kva, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Read a little-endian `u64`.
    fn read_kva_u64(&self, kva: Kva) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_kva(kva, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a pointer-sized value as a kernel address.
    fn read_ptr(&self, kva: Kva) -> Result<Kva> {
        self.read_kva_u64(kva).map(Kva)
    }

    /// Read a fixed-layout structure.
    fn read_kva_obj<T: FromBytes + IntoBytes>(&self, kva: Kva) -> Result<T>
    where
        Self: Sized,
    {
        let mut obj = T::new_zeroed();
        self.read_kva(kva, obj.as_mut_bytes())?;
        Ok(obj)
    }
}

impl<T: KernelRead + ?Sized> KernelRead for &T {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        (**self).read_kva(kva, buf)
    }

    fn prefetch_kva(&self, kva: Kva) {
        (**self).prefetch_kva(kva)
    }
}

/// A flat run of bytes mapped at `base`: for tests and for callers who already
/// copied a kernel region out.
#[derive(Clone, Copy, Debug)]
pub struct FlatKernel<B> {
    pub base: Kva,
    pub bytes: B,
}

impl<B: AsRef<[u8]>> KernelRead for FlatKernel<B> {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let miss = crate::error::Error::NotMapped { kva, level: 0 };
        let start = usize::try_from(kva.offset_from(self.base).ok_or(miss)?).map_err(|_| miss)?;
        let end = start.checked_add(buf.len()).ok_or(miss)?;
        buf.copy_from_slice(self.bytes.as_ref().get(start..end).ok_or(miss)?);
        Ok(())
    }
}
