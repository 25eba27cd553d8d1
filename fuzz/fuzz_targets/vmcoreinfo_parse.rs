//! VMCOREINFO text parsing: arbitrary bytes as a note's desc.
#![no_main]

use bpfmem_core::vmcoreinfo::VmcoreInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = VmcoreInfo::from_note_desc(data) {
        // Every accessor must be total on whatever parsed.
        let _ = (info.osrelease(), info.page_size(), info.kernel_offset());
        let _ = (info.phys_base(), info.init_top_pgt(), info.pgtable_l5_enabled());
        for (k, v) in info.entries() {
            let _ = (info.get(k), v.len());
        }
    }
});
