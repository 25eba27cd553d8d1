//! `struct btf` objects (kernel/bpf/btf.c): the BTF a program or map was
//! loaded with (`BPF_BTF_LOAD`), the kernel's own, and modules'.
//!
//! `btf->data` holds the raw blob as loaded, `data_size` bytes: what
//! `BPF_OBJ_GET_INFO_BY_FD` copies out (`btf_get_info_by_fd()`). Member offsets
//! come from the kernel's BTF ([`BtfOffsets`]); `base_btf` (split BTF) exists
//! since v5.11 and `kernel_btf` since v5.11 as well.

use crate::addr::Kva;
use crate::bpf_prog::IdrObjects;
use crate::error::{Error, Result};
use crate::offsets::{BtfOffsets, Offsets};
use crate::virt::KernelRead;
use crate::xarray::XaLimits;

/// `BTF_MAX_SIZE` (kernel/bpf/btf.c): the largest blob `BPF_BTF_LOAD` takes.
pub const BTF_MAX_SIZE: u32 = 16 * 1024 * 1024;

/// `MODULE_NAME_LEN` on 64-bit kernels (include/linux/module.h): the size of
/// `btf->name`.
pub const BTF_NAME_LEN: usize = 56;

/// One `struct btf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfObject {
    /// Where the `struct btf` is.
    pub kva: Kva,
    /// `btf->id` (`btf_idr`).
    pub id: u32,
    /// `btf->data`.
    pub data: Kva,
    /// `btf->data_size`.
    pub data_size: u32,
    /// `btf->base_btf`: NULL unless split BTF.
    pub base_btf: Kva,
    /// `btf->kernel_btf`.
    pub kernel_btf: bool,
    /// `btf->name`, NUL-padded ("vmlinux", a module name, or empty).
    pub name: [u8; BTF_NAME_LEN],
}

impl BtfObject {
    /// The name up to its first NUL, if it is UTF-8.
    pub fn name(&self) -> &str {
        crate::uapi::obj_name(&self.name)
    }

    /// Copy the raw blob into `buf`, which must be exactly `data_size` bytes.
    pub fn read_data<K: KernelRead + ?Sized>(&self, k: &K, buf: &mut [u8]) -> Result<()> {
        if u64::try_from(buf.len()).ok() != Some(u64::from(self.data_size)) {
            return Err(Error::malformed("btf.data_size", self.kva));
        }
        k.read_kva(self.data, buf)
    }
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off))
        .ok_or(Error::malformed("btf", base))
}

/// Read the `struct btf` at `kva`. A user-loaded blob (not `kernel_btf`) larger
/// than [`BTF_MAX_SIZE`] is impossible and fails with [`Error::Limit`]; so does
/// a kernel blob over 256 MiB.
pub fn read_btf<K: KernelRead + ?Sized>(k: &K, kva: Kva, off: &BtfOffsets) -> Result<BtfObject> {
    if kva.get() == 0 {
        return Err(Error::malformed("btf pointer", kva));
    }
    let mut name = [0u8; BTF_NAME_LEN];
    k.read_kva(field(kva, off.name)?, &mut name)?;
    let kernel_btf = k.read_kva_u8(field(kva, off.kernel_btf)?)? != 0;
    let data_size = k.read_kva_u32(field(kva, off.data_size)?)?;
    // vmlinux BTF is 4-6 MiB; 64 MiB is the cap the std side puts on it too.
    let limit = if kernel_btf { 64 << 20 } else { BTF_MAX_SIZE };
    if data_size > limit {
        return Err(Error::limit("btf.data_size", kva, u64::from(limit)));
    }
    Ok(BtfObject {
        kva,
        id: k.read_kva_u32(field(kva, off.id)?)?,
        data: k.read_ptr(field(kva, off.data)?)?,
        data_size,
        base_btf: k.read_ptr(field(kva, off.base_btf)?)?,
        kernel_btf,
        name,
    })
}

/// Every BTF object in the `struct idr` `btf_idr` at `btf_idr`
/// (kernel/bpf/btf.c), in id order: vmlinux's (id 1 once anything needed it),
/// modules', and those loaded with `BPF_BTF_LOAD`. Each must carry the id of
/// its slot (`btf_alloc_id()` sets both).
pub fn bpf_btf_for_each<'a, K: KernelRead + ?Sized>(
    k: &'a K,
    btf_idr: Kva,
    off: &'a Offsets,
    limits: XaLimits,
) -> IdrObjects<'a, K, BtfObject> {
    IdrObjects::new(
        k,
        btf_idr,
        off,
        limits,
        |k, kva, off| read_btf(k, kva, &off.btf),
        |b| b.id,
        "btf.id",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virt::FlatKernel;

    const OFF: BtfOffsets = BtfOffsets {
        id: 96,
        data: 0,
        data_size: 88,
        name: 168,
        base_btf: 160,
        kernel_btf: 224,
    };

    fn image(data_size: u32, kernel_btf: bool) -> FlatKernel<std::vec::Vec<u8>> {
        let base = Kva(0xffff_8880_0100_0000);
        let mut b = std::vec![0u8; 0x1000];
        b[..8].copy_from_slice(&(base.0 + 0x400).to_le_bytes());
        b[88..92].copy_from_slice(&data_size.to_le_bytes());
        b[96..100].copy_from_slice(&7u32.to_le_bytes());
        b[168..172].copy_from_slice(b"prog");
        b[224] = u8::from(kernel_btf);
        for (i, x) in b[0x400..0x400 + 64].iter_mut().enumerate() {
            *x = i as u8;
        }
        FlatKernel { base, bytes: b }
    }

    #[test]
    fn reads_the_object_and_its_blob() {
        let k = image(64, false);
        let o = read_btf(&k, k.base, &OFF).unwrap();
        assert_eq!((o.id, o.data_size, o.kernel_btf), (7, 64, false));
        assert_eq!(o.name(), "prog");
        assert_eq!(o.base_btf, Kva(0));
        let mut buf = std::vec![0u8; 64];
        o.read_data(&k, &mut buf).unwrap();
        assert_eq!(buf[63], 63);
        assert!(o.read_data(&k, &mut [0u8; 3]).is_err());
    }

    #[test]
    fn btf_idr_walk_reads_every_object_and_checks_ids() {
        use crate::bpf_prog::tests::Image;
        let mut img = Image::new();
        let objs = [
            (1, &b"vmlinux"[..], true, 5_000_000),
            (2, &b"qemu_fw_cfg"[..], true, 900),
            (7, &b""[..], false, 310),
        ];
        for (id, name, kernel_btf, size) in objs {
            let b = img.btf(id, name, kernel_btf, size);
            img.idr_store(id, b);
        }
        let k = img.kernel();
        let got: Result<std::vec::Vec<_>> =
            bpf_btf_for_each(&k, img.idr, &img.off, XaLimits::default()).collect();
        let got: std::vec::Vec<_> = got
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b.id,
                    std::string::String::from(b.name()),
                    b.kernel_btf,
                    b.data_size,
                )
            })
            .collect();
        let want: std::vec::Vec<_> = objs
            .iter()
            .map(|&(id, name, kb, size)| {
                (
                    id,
                    std::string::String::from_utf8(name.to_vec()).unwrap(),
                    kb,
                    size,
                )
            })
            .collect();
        assert_eq!(got, want);

        // Slot 3 holds an object that says it is 4; user BTF over the cap.
        let b = img.btf(4, b"", false, 10);
        img.idr_store(3, b);
        let k = img.kernel();
        let mut it = bpf_btf_for_each(&k, img.idr, &img.off, XaLimits::default());
        assert_eq!(it.next().unwrap().unwrap().id, 1);
        assert_eq!(it.next().unwrap().unwrap().id, 2);
        assert_eq!(it.next(), Err(Error::malformed("btf.id", b)));
        assert_eq!(it.next(), Ok(None));
        let big = img.btf(3, b"", false, BTF_MAX_SIZE + 1);
        img.idr_store(3, big);
        let k = img.kernel();
        let got: Result<std::vec::Vec<_>> =
            bpf_btf_for_each(&k, img.idr, &img.off, XaLimits::default()).collect();
        assert!(matches!(got, Err(Error::Limit { .. })));
    }

    #[test]
    fn impossible_sizes_are_limits() {
        let k = image(BTF_MAX_SIZE + 1, false);
        assert!(matches!(
            read_btf(&k, k.base, &OFF),
            Err(Error::Limit { .. })
        ));
        let k = image(BTF_MAX_SIZE + 1, true);
        assert!(read_btf(&k, k.base, &OFF).is_ok());
        assert!(read_btf(&k, Kva(0), &OFF).is_err());
        assert!(read_btf(&k, Kva(u64::MAX - 8), &OFF).is_err());
    }
}
