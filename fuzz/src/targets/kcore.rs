//! `/proc/kcore`-format files: `Kcore::open` (headers and notes read with
//! `pread`), its notes, VMCOREINFO note, and physical reads.
//!
//! Checks: regions are sorted, disjoint, non-empty and inside the file; the
//! note walk ends and stays ended; a read inside a region returns the file's
//! bytes there, a read running past a region's end into no region fails, and
//! `next_range` agrees with the regions.

use bpfmem::source::Kcore;
use bpfmem_core::{Pa, PhysRead};

use crate::scratch;

pub fn run(data: &[u8]) -> usize {
    let path = scratch::write(data);
    let Ok(kc) = Kcore::open(path) else { return 0 };
    let regions = kc.regions().to_vec();
    for w in regions.windows(2) {
        assert!(
            w[0].pa.get() + w[0].len <= w[1].pa.get(),
            "{:?} overlaps {:?}",
            w[0],
            w[1]
        );
    }
    let mut notes = kc.notes();
    let mut n = 0usize;
    for note in notes.by_ref() {
        let _ = (note.name.len(), note.desc.len(), note.n_type, note.offset);
        n += 1;
        assert!(
            n <= data.len() / 12 + 1,
            "more notes than the file can hold"
        );
    }
    assert!(notes.next().is_none());
    let _ = kc.vmcoreinfo_note();
    let covered = |pa: u64| {
        regions
            .iter()
            .any(|r| pa >= r.pa.get() && pa - r.pa.get() < r.len)
    };
    for r in &regions {
        assert!(r.len > 0);
        let end = r
            .offset
            .checked_add(r.len)
            .expect("a region inside the file");
        assert!(
            end <= data.len() as u64,
            "region {r:?} past the end of a {}-byte file",
            data.len()
        );
        let take = r.len.min(16) as usize;
        let mut buf = vec![0u8; take];
        kc.read_phys(r.pa, &mut buf)
            .expect("the start of a region reads");
        let at = r.offset as usize;
        assert_eq!(buf[..], data[at..at + take]);
        let last = Pa(r.pa.get() + r.len - 1);
        let mut two = [0u8; 2];
        if !covered(last.get().wrapping_add(1)) {
            assert!(kc.read_phys(last, &mut two).is_err());
        }
        let next = kc.next_range(r.pa).expect("a region is a range");
        assert_eq!(next.start, r.pa);
    }
    regions.len()
}
