//! Per-CPU data on x86-64 SMP kernels.
//!
//! `per_cpu_ptr(ptr, cpu)` (include/linux/percpu-defs.h, `SHIFT_PERCPU_PTR`) is
//! `ptr + __per_cpu_offset[cpu]` (arch/x86/include/asm/percpu.h with
//! `CONFIG_SMP`; include/asm-generic/percpu.h defines the array), unchanged from
//! v4.x through v6.18. A dynamic per-CPU pointer is the chunk address minus the
//! first chunk's base, so it may be "negative": the sum wraps, as in C.

use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::virt::KernelRead;

/// `__per_cpu_offset[]` of one kernel, bounded by `nr_cpu_ids`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerCpu {
    /// Address of `__per_cpu_offset` (an array of `unsigned long`).
    per_cpu_offset: Kva,
    /// `nr_cpu_ids`: CPU numbers at or above it have no offset.
    nr_cpu_ids: u32,
}

impl PerCpu {
    /// Per-CPU offsets at `per_cpu_offset` for CPUs `0..nr_cpu_ids`.
    pub const fn new(per_cpu_offset: Kva, nr_cpu_ids: u32) -> Self {
        PerCpu {
            per_cpu_offset,
            nr_cpu_ids,
        }
    }

    /// `nr_cpu_ids`.
    pub const fn nr_cpu_ids(&self) -> u32 {
        self.nr_cpu_ids
    }

    /// `__per_cpu_offset[cpu]`.
    pub fn offset<K: KernelRead + ?Sized>(&self, k: &K, cpu: u32) -> Result<u64> {
        if cpu >= self.nr_cpu_ids {
            return Err(Error::limit(
                "cpu number",
                self.per_cpu_offset,
                u64::from(self.nr_cpu_ids),
            ));
        }
        let at = u64::from(cpu)
            .checked_mul(8)
            .and_then(|off| self.per_cpu_offset.checked_add(off))
            .ok_or(Error::malformed("__per_cpu_offset", self.per_cpu_offset))?;
        k.read_kva_u64(at)
    }

    /// `per_cpu_ptr(ptr, cpu)`.
    pub fn per_cpu_ptr<K: KernelRead + ?Sized>(&self, k: &K, ptr: Kva, cpu: u32) -> Result<Kva> {
        Ok(ptr.wrapping_add(self.offset(k, cpu)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virt::FlatKernel;

    #[test]
    fn per_cpu_ptr_adds_the_cpus_offset_and_wraps() {
        let base = Kva(0xffff_ffff_8300_0000);
        let mut bytes = std::vec![0u8; 32];
        bytes[..8].copy_from_slice(&0xffff_8880_1000_0000u64.to_le_bytes());
        bytes[8..16].copy_from_slice(&0xffff_8880_1020_0000u64.to_le_bytes());
        let k = FlatKernel { base, bytes };
        let pcpu = PerCpu::new(base, 2);
        assert_eq!(
            pcpu.per_cpu_ptr(&k, Kva(0x2c0a0), 1),
            Ok(Kva(0xffff_8880_1022_c0a0))
        );
        // A chunk below the first one: the pointer is "negative".
        let neg = Kva(0u64.wrapping_sub(0x1000));
        assert_eq!(pcpu.per_cpu_ptr(&k, neg, 0), Ok(Kva(0xffff_8880_0fff_f000)));
        assert!(matches!(
            pcpu.per_cpu_ptr(&k, neg, 2),
            Err(Error::Limit { .. })
        ));
        let far = PerCpu::new(Kva(u64::MAX - 8), 4);
        assert!(far.offset(&k, 3).is_err());
    }
}
