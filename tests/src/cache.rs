//! Where the test bed keeps what it downloads and generates: outside the repository,
//! because kernel packages and memory images must never be committed.

use std::path::PathBuf;

/// The cache root: `$BPFMEM_CACHE`, else `$XDG_CACHE_HOME/bpfmem-testbed`, else
/// `~/.cache/bpfmem-testbed`.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("BPFMEM_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    base.join("bpfmem-testbed")
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
