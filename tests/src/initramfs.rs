//! A tiny `cpio -H newc` writer for the guest's initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst).

use std::io::Write;

/// One archive member.
pub enum Member<'a> {
    Dir(&'a str),
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    /// A character device node.
    Char {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, rdev: (u32, u32), name: &str) {
    let namesize = name.len() + 1;
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        namesize as u32,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        write!(out, "{f:08x}").expect("write to Vec");
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The archive bytes for `members`, in order, with the trailer.
pub fn build(members: &[Member<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let ino = i as u32 + 1;
        match *m {
            Member::Dir(path) => header(&mut out, ino, 0o040755, 0, (0, 0), path),
            Member::File { path, mode, data } => {
                header(&mut out, ino, 0o100000 | mode, data.len(), (0, 0), path);
                out.extend_from_slice(data);
                pad4(&mut out);
            }
            Member::Char { path, major, minor } => {
                header(&mut out, ino, 0o020600, 0, (major, minor), path)
            }
        }
    }
    header(&mut out, 0, 0, 0, (0, 0), "TRAILER!!!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let a = build(&[Member::File {
            path: "init",
            mode: 0o755,
            data: b"abc",
        }]);
        assert!(a.starts_with(b"070701"));
        // 110-byte header, "init\0" padded to 116, 3 data bytes padded to 120.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..119], b"abc");
        assert_eq!(&a[120..126], b"070701");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(a.len() % 4, 0);
    }
}
