//! Shared helpers of the benchmarks in `benches/benches`.

use std::path::PathBuf;

/// A memory image of the real-kernel test bed to measure on: `$BPFMEM_BENCH_IMAGE`,
/// else the 6.12 PVH guest's RAM file in the test-bed cache (`./tests/run`
/// makes it). `None`, with a message, when there is none.
pub fn testbed_image() -> Option<PathBuf> {
    let path = std::env::var_os("BPFMEM_BENCH_IMAGE")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("BPFMEM_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bpfmem-testbed"))
                })?;
            Some(cache.join("guests/6.12-pvh/ram.bin"))
        })?;
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "no test-bed image at {} (run ./tests/run, or set BPFMEM_BENCH_IMAGE)",
            path.display()
        );
        None
    }
}
