//! Debian kernel images for the test bed: resolve the current package of each kernel
//! line at run time, download and unpack it into the cache, and extract the
//! uncompressed `vmlinux` (for PVH boots) from the bzImage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt::Apt;
use crate::{cache, run, Fallible};

/// A kernel line the test bed covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Short name: "6.1", "6.12".
    pub name: &'static str,
    /// The Debian suite that carries it.
    pub suite: &'static str,
    /// Package versions of this line start with this.
    pub version_prefix: &'static str,
}

/// The lines every real-kernel test runs against.
pub const LINES: [Line; 2] = [
    Line {
        name: "6.1",
        suite: "bookworm",
        version_prefix: "6.1.",
    },
    Line {
        name: "6.12",
        suite: "bookworm-backports",
        version_prefix: "6.12.",
    },
];

/// An unpacked kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub line: Line,
    /// `uname -r` of the kernel (e.g. "6.1.0-50-cloud-amd64").
    pub release: String,
    /// The package it came from.
    pub package: String,
    pub bzimage: PathBuf,
    /// The uncompressed ELF kernel, extracted from the bzImage payload.
    pub vmlinux: PathBuf,
    /// `lib/modules/<release>` of the package.
    pub modules: PathBuf,
}

/// The meta package whose dependency names the current image package.
const META: &str = "linux-image-cloud-amd64";

/// Resolve, download and unpack the current kernel of each line.
pub fn fetch_all() -> Fallible<Vec<Kernel>> {
    let root = cache::root().join("kernels");
    let suites: Vec<&str> = LINES.iter().map(|l| l.suite).collect();
    let apt = Apt::new(&root.join("apt"), &suites)?;
    // Lists are refreshed each run (point releases vanish from the archive); a
    // failed refresh with lists from before is not fatal: cached kernels still work.
    if let Err(e) = apt.update() {
        if !apt.has_lists() {
            return Err(e);
        }
        eprintln!("test bed: apt-get update failed, using the lists from before: {e}");
    }
    LINES.iter().map(|l| fetch(&apt, &root, *l)).collect()
}

fn fetch(apt: &Apt, root: &Path, line: Line) -> Fallible<Kernel> {
    let versions = apt.versions(META)?;
    let (_, depends) = versions
        .iter()
        .filter(|(v, _)| v.starts_with(line.version_prefix))
        .max_by(|a, b| deb_version_cmp(&a.0, &b.0))
        .ok_or_else(|| format!("no {META} {}* in {}", line.version_prefix, line.suite))?;
    // "linux-image-6.1.0-50-cloud-amd64 (= 6.1.176-1)"
    let image = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| format!("{META}: no image in Depends: {depends}"))?;
    let release = image.trim_start_matches("linux-image-").to_string();
    let package = format!("{image}-unsigned");
    let dir = root.join(&release);
    let done = dir.join(".unpacked");
    if !done.exists() {
        let deb = apt.download(&package, &root.join("debs"))?;
        let tree = dir.join("tree");
        let _ = fs::remove_dir_all(&tree);
        fs::create_dir_all(&tree)?;
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree))?;
        let bzimage = tree.join(format!("boot/vmlinuz-{release}"));
        extract_vmlinux(&bzimage, &dir.join("vmlinux"))?;
        fs::write(&done, &package)?;
    }
    Ok(Kernel {
        line,
        release: release.clone(),
        package,
        bzimage: dir.join(format!("tree/boot/vmlinuz-{release}")),
        vmlinux: dir.join("vmlinux"),
        modules: dir.join(format!("tree/lib/modules/{release}")),
    })
}

/// Order Debian versions well enough for one kernel line: numeric runs compare as
/// numbers, everything else bytewise, `~` sorts first.
fn deb_version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, String)> {
        let mut v: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match v.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => v.push((digit, c.to_string())),
            }
        }
        v
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                x.1.parse::<u64>()
                    .unwrap_or(0)
                    .cmp(&y.1.parse::<u64>().unwrap_or(0))
            }
            _ => x.1.replace('~', "\0").cmp(&y.1.replace('~', "\0")),
        };
        if o.is_ne() {
            return o;
        }
    }
    // The longer one wins, unless what it has more of starts with `~`.
    let tilde = |rest: &[(bool, String)]| rest.first().is_some_and(|p| p.1.starts_with('~'));
    match pa.len().cmp(&pb.len()) {
        std::cmp::Ordering::Greater if tilde(&pa[pb.len()..]) => std::cmp::Ordering::Less,
        std::cmp::Ordering::Less if tilde(&pb[pa.len()..]) => std::cmp::Ordering::Greater,
        o => o,
    }
}

/// Extract the ELF kernel from a bzImage: the setup header's `payload_offset` and
/// `payload_length` (Documentation/arch/x86/boot.rst, protocol 2.08+) locate the
/// compressed payload after the real-mode setup sectors.
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> Fallible<()> {
    let img = fs::read(bzimage)?;
    let u32_at = |off: usize| -> Fallible<u32> {
        let b = img
            .get(off..off + 4)
            .ok_or_else(|| format!("{}: truncated setup header", bzimage.display()))?;
        Ok(u32::from_le_bytes(b.try_into()?))
    };
    let setup_sects = match img.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(format!("{}: not a bzImage", bzimage.display()).into()),
    };
    if img.get(0x202..0x206) != Some(b"HdrS") {
        return Err(format!("{}: no HdrS setup header", bzimage.display()).into());
    }
    let start = (setup_sects + 1) * 512 + u32_at(0x248)? as usize;
    let len = u32_at(0x24c)? as usize;
    let payload = img
        .get(start..start + len)
        .ok_or_else(|| format!("{}: payload outside the file", bzimage.display()))?;
    // scripts/Makefile.lib (`*_with_size`) appends the uncompressed size as 4
    // bytes; the decompressors would take them for a broken second frame.
    let stream = payload
        .get(..len.saturating_sub(4))
        .ok_or_else(|| format!("{}: empty payload", bzimage.display()))?;
    let tmp = out.with_extension("payload");
    fs::write(&tmp, stream)?;
    let tool = match stream.get(..4) {
        Some([0x28, 0xb5, 0x2f, 0xfd]) => "zstd",
        Some([0x02, 0x21, 0x4c, 0x18]) => "lz4",
        Some([0xfd, b'7', b'z', b'X']) => "xz",
        other => {
            return Err(format!(
                "{}: unknown payload compression {other:02x?}",
                bzimage.display()
            )
            .into())
        }
    };
    let data = run_bytes(Command::new(tool).args(["-d", "-c"]).arg(&tmp))?;
    fs::write(out, data)?;
    fs::remove_file(&tmp)?;
    if fs::read(out)?.get(..4) != Some(b"\x7fELF") {
        return Err(format!("{}: payload is not an ELF kernel", bzimage.display()).into());
    }
    Ok(())
}

impl Kernel {
    /// A module of this kernel, decompressed into `dest`: `name` like
    /// "kernel/drivers/firmware/qemu_fw_cfg".
    pub fn module(&self, name: &str, dest: &Path) -> Fallible<PathBuf> {
        let base = self.modules.join(name);
        let file = Path::new(name)
            .file_name()
            .ok_or("module name")?
            .to_string_lossy()
            .to_string();
        let out = dest.join(format!("{file}.ko"));
        let plain = base.with_extension("ko");
        if plain.exists() {
            fs::copy(&plain, &out)?;
            return Ok(out);
        }
        for (ext, tool) in [("ko.xz", "xz"), ("ko.zst", "zstd"), ("ko.gz", "gzip")] {
            let packed = base.with_extension(ext);
            if packed.exists() {
                let data = run_bytes(Command::new(tool).arg("-dc").arg(&packed))?;
                fs::write(&out, data)?;
                return Ok(out);
            }
        }
        Err(format!("module {name} not in {}", self.modules.display()).into())
    }
}

fn run_bytes(cmd: &mut Command) -> Fallible<Vec<u8>> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn debian_versions_order() {
        assert_eq!(deb_version_cmp("6.1.176-1", "6.1.99-1"), Greater);
        assert_eq!(deb_version_cmp("6.12.95-1~bpo12+1", "6.12.95-1"), Less);
        assert_eq!(deb_version_cmp("6.12.9-1", "6.12.10-1"), Less);
        assert_eq!(deb_version_cmp("6.1.1-1", "6.1.1-1"), Equal);
    }
}
