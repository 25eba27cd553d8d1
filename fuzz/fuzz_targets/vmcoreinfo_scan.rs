//! The VMCOREINFO scanner over a small physical image with holes: the first byte
//! picks how the input is cut into regions.
#![no_main]

use bpfmem_core::vmcoreinfo::find_vmcoreinfo;
use bpfmem_core::{Pa, Region, RegionMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let len = bytes.len() as u64;
    let split = (u64::from(cut) * len / 255).min(len);
    // Two regions with a hole of `cut` pages between them.
    let regions = [
        Region {
            pa: Pa(0),
            len: split,
            offset: 0,
        },
        Region {
            pa: Pa(split + u64::from(cut) * 4096),
            len: len - split,
            offset: split,
        },
    ];
    if let Ok(mem) = RegionMap::new(bytes, &regions[..]) {
        let _ = find_vmcoreinfo(&mem);
    }
});
