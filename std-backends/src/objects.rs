//! BPF programs and BTF objects through one interface, whoever answers: a
//! kernel found in a memory image ([`Kernel`]) or the live `bpf(2)` syscall
//! ([`crate::LiveBpf`], in `live/objects.rs`). Both list what
//! `BPF_OBJ_GET_INFO_BY_FD` reports for every id of `prog_idr` and `btf_idr`.

use std::fmt;

use bpfmem_core::bpf_prog::ProgInfo;
use bpfmem_core::btf::BtfObject;
use bpfmem_core::PhysRead;

use crate::access::AccessError;
use crate::kernel::Kernel;

/// Which kind of BPF object an [`AccessError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A map (`map_idr`).
    Map,
    /// A program (`prog_idr`).
    Prog,
    /// A BTF object (`btf_idr`).
    Btf,
}

impl ObjectKind {
    /// "programs" or "BTF objects".
    pub const fn plural(self) -> &'static str {
        match self {
            ObjectKind::Map => "maps",
            ObjectKind::Prog => "programs",
            ObjectKind::Btf => "BTF objects",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Map => "map",
            ObjectKind::Prog => "program",
            ObjectKind::Btf => "BTF object",
        })
    }
}

/// One BTF object, as `struct bpf_btf_info` reports it (`btf_get_info_by_fd()`,
/// kernel/bpf/btf.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfInfo {
    /// `btf->id` (`btf_idr`).
    pub id: u32,
    /// `btf->name`: "vmlinux", a module's name, or empty for loaded BTF.
    pub name: String,
    /// `btf_size`: `btf->data_size`, the bytes of raw BTF.
    pub size: u32,
    /// vmlinux or module BTF, not loaded by user space.
    pub kernel_btf: bool,
}

impl From<&BtfObject> for BtfInfo {
    /// The name is cut at its first NUL, as `strlen()` does in the kernel, and
    /// bytes that are not UTF-8 become U+FFFD.
    fn from(b: &BtfObject) -> Self {
        let len = b.name.iter().position(|&c| c == 0).unwrap_or(b.name.len());
        let name = b.name.get(..len).unwrap_or_default();
        BtfInfo {
            id: b.id,
            name: String::from_utf8_lossy(name).into_owned(),
            size: b.data_size,
            kernel_btf: b.kernel_btf,
        }
    }
}

/// What every source of BPF state answers about programs and BTF objects.
pub trait BpfObjectAccessor {
    /// Every program, by ascending id. [`ProgInfo::kva`] is 0 where the
    /// source cannot say (live).
    fn list_progs(&self) -> Result<Vec<ProgInfo>, AccessError>;

    /// Every BTF object, by ascending id.
    fn list_btfs(&self) -> Result<Vec<BtfInfo>, AccessError>;
}

fn mem_err(kind: ObjectKind) -> impl Fn(bpfmem_core::Error) -> AccessError {
    move |error| AccessError::ObjectMemory { kind, error }
}

impl<M: PhysRead> BpfObjectAccessor for Kernel<M> {
    fn list_progs(&self) -> Result<Vec<ProgInfo>, AccessError> {
        self.progs()
            .collect::<Result<_, _>>()
            .map_err(mem_err(ObjectKind::Prog))
    }

    fn list_btfs(&self) -> Result<Vec<BtfInfo>, AccessError> {
        self.btfs()
            .map(|b| b.map(|b| BtfInfo::from(&b)))
            .collect::<Result<_, _>>()
            .map_err(mem_err(ObjectKind::Btf))
    }
}

#[cfg(test)]
mod tests {
    use bpfmem_core::btf::BTF_NAME_LEN;
    use bpfmem_core::{Error, Kva};

    use super::*;

    fn object(name: &[u8]) -> BtfObject {
        let mut n = [0u8; BTF_NAME_LEN];
        n[..name.len()].copy_from_slice(name);
        BtfObject {
            kva: Kva(0xffff_8880_0000_1000),
            id: 3,
            data: Kva(0),
            data_size: 1234,
            base_btf: Kva(0),
            kernel_btf: true,
            name: n,
        }
    }

    #[test]
    fn btf_info_from_the_object() {
        let i = BtfInfo::from(&object(b"qemu_fw_cfg"));
        assert_eq!(
            i,
            BtfInfo {
                id: 3,
                name: "qemu_fw_cfg".into(),
                size: 1234,
                kernel_btf: true
            }
        );
        // A name without NUL is all 56 bytes; bad UTF-8 is replaced, not dropped.
        assert_eq!(BtfInfo::from(&object(&[b'a'; 56])).name.len(), 56);
        assert_eq!(BtfInfo::from(&object(b"x\xffy")).name, "x\u{fffd}y");
    }

    #[test]
    fn errors_name_the_kind() {
        let e = mem_err(ObjectKind::Prog)(Error::malformed(
            "bpf_prog_aux.prog",
            Kva(0xffff_8880_0000_2000),
        ));
        assert_eq!(
            e.to_string(),
            "listing programs: malformed bpf_prog_aux.prog at kva 0xffff888000002000"
        );
        let e = mem_err(ObjectKind::Btf)(Error::NotFound { what: "btf_idr" });
        assert_eq!(e.to_string(), "listing BTF objects: btf_idr not found");
    }
}
