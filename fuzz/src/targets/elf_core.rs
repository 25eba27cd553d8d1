//! ELF cores (QEMU `dump-guest-memory`, kdump): `ElfCore::open` and
//! `open_truncated` (mapped), notes, the VMCOREINFO note, `cpu_count`, and
//! physical reads at every region's edges.
//!
//! Checks: regions are sorted, disjoint, non-empty and inside the file; a
//! truncated open records only what lies past the end of the file; the note
//! walk ends and stays ended; a region's first and last bytes read as the
//! file's bytes there.

use bpfmem::source::ElfCore;
use bpfmem_core::{Pa, PhysRead};

use crate::scratch;

pub fn run(data: &[u8]) -> usize {
    let path = scratch::write(data);
    let mut regions = 0;
    for truncated in [false, true] {
        let core = if truncated {
            ElfCore::open_truncated(path)
        } else {
            ElfCore::open(path)
        };
        let Ok(core) = core else { continue };
        let rs = core.regions();
        for w in rs.windows(2) {
            assert!(
                w[0].pa.get() + w[0].len <= w[1].pa.get(),
                "{:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
        if !truncated {
            assert!(core.clipped().is_empty());
        }
        for c in core.clipped() {
            assert!(c.offset + c.len > data.len() as u64);
        }
        let mut notes = core.notes();
        let mut n = 0usize;
        for note in notes.by_ref() {
            let _ = (note.name.len(), note.desc.len(), note.n_type);
            n += 1;
            assert!(
                n <= data.len() / 12 + 1,
                "more notes than the file can hold"
            );
        }
        assert!(notes.next().is_none());
        let _ = (core.vmcoreinfo_note(), core.cpu_count());
        for r in rs {
            assert!(r.len > 0);
            assert!(r.offset + r.len <= data.len() as u64);
            let mut b = [0u8; 1];
            core.read_phys(r.pa, &mut b).expect("a region's first byte");
            assert_eq!(b[0], data[r.offset as usize]);
            core.read_phys(Pa(r.pa.get() + r.len - 1), &mut b)
                .expect("a region's last byte");
            assert_eq!(b[0], data[(r.offset + r.len - 1) as usize]);
        }
        regions += rs.len();
    }
    regions
}
