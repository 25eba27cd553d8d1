//! The live write round trip: while a test-bed guest runs, the host writes a new
//! value into an array map through the guest's RAM file (bpfmem's
//! `write_array_value`), and the guest agent reads it back through `bpf(2)` and
//! prints it (`BPFMEM-POKE-SEEN <key> <hex>`).

use std::path::Path;
use std::time::Duration;

use bpfmem::source::RamFile;
use bpfmem::{BpfMapAccessor, DiscoverOptions, Image, Kernel};
use bpfmem_core::array::Array;
use bpfmem_core::paging::PAGE_SIZE;
use bpfmem_core::Pa;
use bpfmem_guest_agent::manifest::{Hex, POKE_SEEN};
use bpfmem_guest_agent::plan::POKE;
use serde::{Deserialize, Serialize};

use crate::qemu::WaitLine;
use crate::Fallible;

/// How long the agent may take to notice a write (it polls every 50 ms, under
/// software emulation).
const SEEN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one round trip did and saw.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Poke {
    /// Map id of the `poke` map.
    pub id: u32,
    /// The key whose value was rewritten.
    pub key: u32,
    /// Kernel address of that value.
    pub kva: u64,
    /// Whether the value crosses a page boundary (the write was split).
    pub crosses_page: bool,
    /// The bytes written.
    pub written: Hex,
    /// What `bpf(2)` in the guest then returned for the key.
    pub seen: Hex,
}

/// Run the round trip against the running guest whose RAM is `ram`.
pub fn poke(ram: &Path, wait: &WaitLine<'_>) -> Fallible<String> {
    let ram = RamFile::open_writable(ram, Pa(0))?;
    let k = Kernel::open(Image::Ram(ram), &DiscoverOptions::default())?;
    let map = k
        .list_maps()?
        .into_iter()
        .find(|m| m.name() == POKE)
        .ok_or("the guest has no poke map")?;
    // The first value that straddles a page: its two halves live on physical
    // pages that vmalloc placed independently.
    let array = Array::new(k.mem(), &map, k.offsets())?;
    let mut chosen = None;
    for key in 0..map.max_entries {
        let kva = array.value_kva(key)?;
        if kva.page_offset(PAGE_SIZE) + u64::from(map.value_size) > PAGE_SIZE {
            chosen = Some((key, kva));
            break;
        }
    }
    let (key, kva) = chosen.ok_or("no poke value crosses a page")?;
    let mut old = vec![0u8; map.value_size as usize];
    k.read_array_value(map.id, key, 0, &mut old)?;
    let written: Vec<u8> = old.iter().map(|b| !b).collect();
    k.write_array_value(map.id, key, 0, &written)?;
    let rest = wait(&format!("{POKE_SEEN} {key} "), SEEN_TIMEOUT)?;
    let seen: Hex = rest.trim().parse()?;
    let report = Poke {
        id: map.id,
        key,
        kva: kva.get(),
        crosses_page: true,
        written: Hex(written),
        seen,
    };
    Ok(serde_json::to_string(&report)?)
}
