//! ELF core headers and notes: arbitrary bytes as a core file, opened both ways,
//! then every note and a read of every segment's edges.
#![no_main]

use std::io::Write;

use bpfmem::source::ElfCore;
use bpfmem_core::{Pa, PhysRead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write");
    for open in [ElfCore::open, ElfCore::open_truncated] {
        if let Ok(core) = open(f.path()) {
            for n in core.notes() {
                let _ = (n.name.len(), n.desc.len(), n.n_type);
            }
            let _ = core.vmcoreinfo_note();
            let mut buf = [0u8; 16];
            for r in core.regions() {
                let _ = core.read_phys(r.pa, &mut buf);
                let _ = core.read_phys(Pa(r.pa.get().wrapping_add(r.len).wrapping_sub(8)), &mut buf);
            }
        }
    }
});
