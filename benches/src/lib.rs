//! Shared helpers of the benchmarks in `benches/benches`, the allocation test
//! in `benches/tests`, and the live map of `benches/compare`.

pub mod alloc_count;
pub mod live;
pub mod synth;

use std::path::PathBuf;

use bpfmem::{BpfMapAccessor, DiscoverOptions, Image, Kernel};
use bpfmem_core::bpf_map::MapInfo;

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

/// The test-bed image, discovered, or `None` (with a message) without one.
pub fn testbed_kernel() -> Option<Kernel<Image>> {
    let path = testbed_image()?;
    let image = Image::open(&path).expect("open the test-bed image");
    Some(Kernel::open(image, &DiscoverOptions::default()).expect("discover the test-bed kernel"))
}

/// The first map named `name` (the test-bed agent's maps have fixed names).
pub fn map_named(k: &Kernel<Image>, name: &str) -> MapInfo {
    k.list_maps()
        .expect("list maps")
        .into_iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("the test-bed image has no map named {name}"))
}
