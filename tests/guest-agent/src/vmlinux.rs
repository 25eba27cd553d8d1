//! The running kernel's own BTF, for the value types of struct_ops maps.

use std::panic::{self, AssertUnwindSafe};

use btf_rs::{Btf, Type};

/// Where the kernel exposes its BTF (`CONFIG_DEBUG_INFO_BTF`, sysfs mounted).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's BTF, parsed.
pub struct VmlinuxBtf(Btf);

/// Run a `btf-rs` call; its errors and panics become text.
fn guarded<T>(during: &str, call: impl FnOnce() -> btf_rs::Result<T>) -> Result<T, String> {
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{during}: {e}")),
        Err(_) => Err(format!("{during}: the BTF parser panicked")),
    }
}

impl VmlinuxBtf {
    /// Parse [`VMLINUX_BTF`].
    pub fn open() -> Result<Self, String> {
        guarded(&format!("parsing {VMLINUX_BTF}"), || {
            Btf::from_file(VMLINUX_BTF)
        })
        .map(Self)
    }

    /// The type id and size of `struct name`; an error if there is no such
    /// struct, or more than one.
    pub fn struct_by_name(&self, name: &str) -> Result<(u32, u32), String> {
        let ids = guarded("looking up a name", || self.0.resolve_ids_by_name(name))?;
        let mut found = Vec::new();
        for id in ids {
            if let Type::Struct(s) = guarded("resolving a type", || self.0.resolve_type_by_id(id))?
            {
                found.push((id, u32::try_from(s.size()).unwrap_or(u32::MAX)));
            }
        }
        match found[..] {
            [one] => Ok(one),
            [] => Err(format!("{VMLINUX_BTF} has no struct {name}")),
            _ => Err(format!(
                "{VMLINUX_BTF} has {} structs named {name}",
                found.len()
            )),
        }
    }
}
