//! The guest system around the agent: mounts, kernel command line, modules, CPU
//! lists, kallsyms.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bpfmem_guest_agent::manifest::KALLSYMS_WANTED;

/// Seed when the command line names none.
pub const DEFAULT_SEED: u64 = 1;

/// `EINVAL (Invalid argument)`-style text for an OS error.
pub fn errno_text(e: &io::Error) -> String {
    let Some(n) = e.raw_os_error() else {
        return e.to_string();
    };
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTSUP => "EOPNOTSUPP",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYREJECTED => "EKEYREJECTED",
        // The kernel-internal ENOTSUPP (include/linux/errno.h) leaks out of bpf(2).
        524 => "ENOTSUPP",
        _ => return e.to_string(),
    };
    let text = e.to_string();
    // std's text is "Invalid argument (os error 22)"; keep the words only.
    let words = text.split(" (os error").next().unwrap_or(&text);
    format!("{name} ({words})")
}

/// Mount `fstype` on `target` (created if missing). `Ok` if something is
/// mounted there already (EBUSY).
pub fn mount(fstype: &CStr, target: &str) -> Result<(), String> {
    fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    let c_target = CString::new(target).map_err(|e| e.to_string())?;
    // SAFETY: all pointers are NUL-terminated strings that outlive the call;
    // `data` may be null.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            c_target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        Ok(())
    } else {
        Err(format!(
            "mount {} on {target}: {}",
            fstype.to_string_lossy(),
            errno_text(&e)
        ))
    }
}

/// Make sure descriptors 0, 1 and 2 are open, on `/dev/console`: without a
/// console node in the initramfs the kernel starts init with none of them, and
/// the first files opened would become stdout and stderr.
pub fn ensure_stdio() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let Ok(f) = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/console")
        else {
            return;
        };
        use std::os::fd::IntoRawFd;
        let raw = f.into_raw_fd();
        if raw != fd {
            // SAFETY: `raw` is ours; dup2 onto a descriptor that is not open.
            unsafe {
                libc::dup2(raw, fd);
                libc::close(raw);
            }
        }
    }
}

/// The `bpfmem.seed=N` value of a kernel command line (decimal or `0x` hex).
pub fn parse_seed(cmdline: &str) -> Result<Option<u64>, String> {
    for word in cmdline.split_whitespace() {
        if let Some(v) = word.strip_prefix("bpfmem.seed=") {
            let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            return parsed
                .map(Some)
                .map_err(|e| format!("bad bpfmem.seed={v}: {e}"));
        }
    }
    Ok(None)
}

/// Parse a kernel CPU list such as `0-3` or `0,2-3` (`cpulist_parse()` format).
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, String> {
    // More CPUs than any kernel config allows (NR_CPUS <= 8192).
    const MAX_CPUS: usize = 1 << 16;
    let s = s.trim();
    let mut cpus = Vec::new();
    if s.is_empty() {
        return Ok(cpus);
    }
    for part in s.split(',') {
        let bad = || format!("bad CPU list {s:?}");
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse::<u32>().map_err(|_| bad())?,
                hi.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let c = part.parse::<u32>().map_err(|_| bad())?;
                (c, c)
            }
        };
        let ascending = cpus.last().is_none_or(|&last| lo > last);
        let fits = hi
            .checked_sub(lo)
            .and_then(|n| usize::try_from(n).ok())
            .is_some_and(|n| n < MAX_CPUS.saturating_sub(cpus.len()));
        if !ascending || !fits {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    Ok(cpus)
}

/// Read and parse a sysfs CPU list file.
pub fn read_cpu_list(path: &str) -> Result<Vec<u32>, String> {
    let s = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse_cpu_list(&s).map_err(|e| format!("{path}: {e}"))
}

/// One `/proc/kallsyms` line: `ffffffff81000000 T _text` or, for a module
/// symbol, with a trailing `[module]`. Returns the address and the name.
pub fn parse_kallsyms_line(line: &str) -> Option<(u64, &str)> {
    let mut it = line.split_whitespace();
    let addr = u64::from_str_radix(it.next()?, 16).ok()?;
    let _kind = it.next()?;
    let name = it.next()?;
    Some((addr, name))
}

/// The [`KALLSYMS_WANTED`] symbols in `reader`, first match for each.
pub fn scan_kallsyms(reader: impl BufRead) -> io::Result<BTreeMap<String, u64>> {
    let mut found = BTreeMap::new();
    for line in reader.lines() {
        let line = line?;
        if let Some((addr, name)) = parse_kallsyms_line(&line) {
            if KALLSYMS_WANTED.contains(&name) && !found.contains_key(name) {
                found.insert(name.to_string(), addr);
                if found.len() == KALLSYMS_WANTED.len() {
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// The wanted symbols of this kernel; notes when they are missing or hidden.
pub fn read_kallsyms(notes: &mut Vec<String>) -> BTreeMap<String, u64> {
    let found = match fs::File::open("/proc/kallsyms")
        .map(BufReader::new)
        .and_then(scan_kallsyms)
    {
        Ok(found) => found,
        Err(e) => {
            notes.push(format!("/proc/kallsyms: {}", errno_text(&e)));
            return BTreeMap::new();
        }
    };
    if !found.is_empty() && found.values().all(|&a| a == 0) {
        notes.push("/proc/kallsyms: addresses are hidden (kptr_restrict)".to_string());
    }
    let missing: Vec<&str> = KALLSYMS_WANTED
        .iter()
        .copied()
        .filter(|n| !found.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        notes.push(format!("/proc/kallsyms lacks: {}", missing.join(", ")));
    }
    found
}

/// `uname -r`.
pub fn release(notes: &mut Vec<String>) -> String {
    match fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(s) => s.trim().to_string(),
        Err(e) => {
            notes.push(format!("/proc/sys/kernel/osrelease: {e}"));
            String::new()
        }
    }
}

/// Load the modules named in `dir/order`, one file name per line, with
/// `init_module(2)`. Returns the names loaded (or already present).
pub fn load_modules(dir: &Path, notes: &mut Vec<String>) -> Vec<String> {
    let order = match fs::read_to_string(dir.join("order")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            notes.push(format!("{}/order: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut loaded = Vec::new();
    for file in order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = file.strip_suffix(".ko").unwrap_or(file).to_string();
        let image = match fs::read(dir.join(file)) {
            Ok(image) => image,
            Err(e) => {
                notes.push(format!("module {file}: read: {e}"));
                continue;
            }
        };
        match init_module(&image) {
            Ok(()) => loaded.push(name),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => loaded.push(name),
            Err(e) => notes.push(format!("module {file}: init_module: {}", errno_text(&e))),
        }
    }
    loaded
}

fn init_module(image: &[u8]) -> io::Result<()> {
    let params: &CStr = c"";
    // SAFETY: `image` is readable for its length and `params` is a NUL-terminated
    // string; the kernel copies both before returning.
    let r = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len(),
            params.as_ptr(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3\n").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("0-1,4-5,7\n").unwrap(), vec![0, 1, 4, 5, 7]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("2,1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("0-").is_err());
        assert!(parse_cpu_list("0-4294967295").is_err());
    }

    #[test]
    fn kallsyms_lines() {
        assert_eq!(
            parse_kallsyms_line("ffffffff81000000 T _text"),
            Some((0xffff_ffff_8100_0000, "_text"))
        );
        assert_eq!(
            parse_kallsyms_line("ffffffffc0a01000 t foo_init\t[foo]"),
            Some((0xffff_ffff_c0a0_1000, "foo_init"))
        );
        assert_eq!(
            parse_kallsyms_line("0000000000000000 D map_idr"),
            Some((0, "map_idr"))
        );
        assert_eq!(parse_kallsyms_line("zz T x"), None);
        assert_eq!(parse_kallsyms_line("ffff T"), None);
    }

    #[test]
    fn kallsyms_scan_keeps_first_match() {
        let text = "ffffffff81000000 T _text\n\
                    ffffffff82000000 d map_idr\n\
                    ffffffff83000000 d map_idr\n\
                    ffffffff84000000 t unrelated\n\
                    garbage\n";
        let found = scan_kallsyms(text.as_bytes()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found["_text"], 0xffff_ffff_8100_0000);
        assert_eq!(found["map_idr"], 0xffff_ffff_8200_0000);
    }

    #[test]
    fn seeds() {
        assert_eq!(
            parse_seed("console=ttyS0 bpfmem.seed=42 quiet"),
            Ok(Some(42))
        );
        assert_eq!(parse_seed("bpfmem.seed=0x10"), Ok(Some(16)));
        assert_eq!(parse_seed("console=ttyS0"), Ok(None));
        assert!(parse_seed("bpfmem.seed=x").is_err());
    }

    #[test]
    fn errno_texts() {
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::EINVAL)),
            "EINVAL (Invalid argument)"
        );
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::E2BIG)),
            "E2BIG (Argument list too long)"
        );
    }
}
