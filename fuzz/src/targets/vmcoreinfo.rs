//! VMCOREINFO: the text parser (`VmcoreInfo::from_note_desc`) and the scanner
//! over physical memory with holes (`find_vmcoreinfo`).
//!
//! Checks: `OSRELEASE` is not empty and `PAGESIZE` a power of two; `get` is
//! the first line with a key; every accessor is total; what the scanner finds
//! lies in memory the source has.

use bpfmem_core::vmcoreinfo::{find_vmcoreinfo, VmcoreInfo};
use bpfmem_core::{Pa, Region, RegionMap};

fn accessors(info: &VmcoreInfo) {
    let _ = (info.osrelease(), info.page_size(), info.kernel_offset());
    let _ = (
        info.phys_base(),
        info.init_top_pgt(),
        info.pgtable_l5_enabled(),
    );
    let _ = (
        info.swapper_pg_dir(),
        info.kallsyms(),
        info.is_complete(),
        info.text(),
    );
    assert!(info.page_size().is_power_of_two());
    assert!(!info.osrelease().is_empty());
    // Each lookup scans the text: look up the first and last keys only.
    let n = info.entries().count();
    for (i, (k, _)) in info.entries().enumerate() {
        if i != 0 && i + 1 != n {
            continue;
        }
        // `get` is the first line with the key.
        let first = info.entries().find(|&(key, _)| key == k).map(|(_, v)| v);
        assert!(first.is_some());
        assert_eq!(info.get(k), first);
        if let Some((kind, rest)) = k.split_once('(') {
            let name = rest.strip_suffix(')').unwrap_or(rest);
            match kind {
                "SYMBOL" => drop(info.symbol(name)),
                "NUMBER" => drop(info.number(name)),
                "OFFSET" => drop(info.offset(name)),
                "SIZE" => drop(info.size(name)),
                "LENGTH" => drop(info.length(name)),
                _ => {}
            }
        }
    }
}

pub fn parse(data: &[u8]) -> bool {
    match VmcoreInfo::from_note_desc(data) {
        Ok(info) => {
            accessors(&info);
            true
        }
        Err(_) => false,
    }
}

/// The first byte picks where the payload is cut in two, and how big a hole
/// lies between the halves.
pub fn scan(data: &[u8]) -> bool {
    let Some((&cut, bytes)) = data.split_first() else {
        return false;
    };
    let len = bytes.len() as u64;
    let split = (u64::from(cut) * len / 255).min(len);
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
    let Ok(mem) = RegionMap::new(bytes, &regions[..]) else {
        return false;
    };
    let Ok(found) = find_vmcoreinfo(&mem) else {
        return false;
    };
    accessors(&found.info);
    let inside = regions
        .iter()
        .any(|r| found.pa >= r.pa && found.pa.get() - r.pa.get() < r.len);
    assert!(inside, "found at {} outside memory", found.pa);
    true
}
