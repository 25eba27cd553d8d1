//! One scratch file per process, for the targets whose library code opens a
//! path (ELF cores, kcore, BTF files). It is unlinked from the start and
//! reached through `/proc/self/fd`, so a fuzzer that dies leaves nothing.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static FILE: OnceLock<(File, PathBuf)> = OnceLock::new();

/// Replace the scratch file's contents with `data` and return its path.
pub fn write(data: &[u8]) -> &'static Path {
    let (file, path) = FILE.get_or_init(|| {
        // tmpfs when there is one: a write there is a copy, not a disk update.
        let shm = std::path::Path::new("/dev/shm");
        let file = if shm.is_dir() {
            tempfile::tempfile_in(shm).or_else(|_| tempfile::tempfile())
        } else {
            tempfile::tempfile()
        };
        let file = file.expect("a temporary file");
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        (file, path)
    });
    file.set_len(0).expect("truncate the scratch file");
    file.write_all_at(data, 0).expect("write the scratch file");
    path
}
