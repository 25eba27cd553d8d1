//! The possible CPUs of the running kernel, from
//! `/sys/devices/system/cpu/possible`: `cpu_possible_mask` printed by the
//! kernel as a list (`cpumap_print_list_to_buf()`, drivers/base/cpu.c), e.g.
//! `0-3,5\n`. Per-CPU values come back from `bpf(2)` in this order, one per
//! CPU in the mask (`for_each_possible_cpu`), and their number is
//! `num_possible_cpus()`, the weight of the same mask.

use std::io::Read;
use std::os::fd::AsRawFd;

use crate::kernel::MAX_CPUS;

/// Where the kernel publishes `cpu_possible_mask`.
pub(crate) const POSSIBLE_PATH: &str = "/sys/devices/system/cpu/possible";

/// `SYSFS_MAGIC` (include/uapi/linux/magic.h).
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Why the list could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpusError {
    /// Reading the file failed with this errno.
    Read(i32),
    /// The file is not sysfs's (a FUSE overlay such as lxcfs can fake it, and
    /// a wrong count would undersize per-CPU buffers).
    NotSysfs,
    /// The text is not a CPU list.
    Malformed(&'static str),
}

/// Parse a kernel CPU list (`bitmap_parselist()` format, as the kernel
/// prints it: ascending, ranges `a-b`, no strides), at most [`MAX_CPUS`] CPUs,
/// each below it.
pub(crate) fn parse_cpu_list(text: &str) -> Result<Vec<u32>, &'static str> {
    let text = text.trim_end_matches('\n');
    if text.is_empty() {
        return Err("empty CPU list");
    }
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let num = |s: &str| -> Result<u32, &'static str> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err("not a CPU number");
            }
            s.parse::<u32>()
                .ok()
                .filter(|&n| n < MAX_CPUS)
                .ok_or("CPU number above NR_CPUS")
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err("descending CPU range");
        }
        if cpus.last().is_some_and(|&last| lo <= last) {
            return Err("CPU list not ascending");
        }
        // Ascending and each below MAX_CPUS: at most MAX_CPUS entries in all.
        cpus.extend(lo..=hi);
    }
    Ok(cpus)
}

/// The possible CPUs, ascending, read from sysfs.
pub(crate) fn possible_cpus() -> Result<Vec<u32>, CpusError> {
    let errno = |e: std::io::Error| CpusError::Read(e.raw_os_error().unwrap_or(libc::EIO));
    let mut f = std::fs::File::open(POSSIBLE_PATH).map_err(errno)?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs writes one `struct statfs` into `st`, which is exactly
    // that large, and reads nothing else of ours.
    if unsafe { libc::fstatfs(f.as_raw_fd(), st.as_mut_ptr()) } < 0 {
        return Err(errno(std::io::Error::last_os_error()));
    }
    // SAFETY: fstatfs succeeded, so it initialised the whole struct (and the
    // zeroed start made every byte initialised already).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on x86-64, i32 elsewhere
    if st.f_type as i64 != SYSFS_MAGIC {
        return Err(CpusError::NotSysfs);
    }
    // The list of 8192 CPUs in the worst layout ("0,2,4,...") is under 40 KiB.
    let mut text = String::new();
    f.by_ref()
        .take(64 << 10)
        .read_to_string(&mut text)
        .map_err(errno)?;
    parse_cpu_list(&text).map_err(CpusError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lists() {
        assert_eq!(parse_cpu_list("0\n").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-3\n").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0-3,5").unwrap(), vec![0, 1, 2, 3, 5]);
        assert_eq!(
            parse_cpu_list("0-1,4-5,8191").unwrap(),
            vec![0, 1, 4, 5, 8191]
        );
    }

    #[test]
    fn rejects_what_the_kernel_never_prints() {
        for bad in [
            "",
            "\n",
            "a",
            "0-",
            "-3",
            "3-1",
            "0,0",
            "2,1",
            "0-3,2",
            "8192",
            "0-8192",
            "1,,2",
            " 0",
            "0 ",
            "0-3:2",
            "+1",
            "99999999999",
        ] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_this_machine() {
        // sysfs is there on every Linux this runs on; the list is never empty.
        let cpus = possible_cpus().unwrap();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }
}
