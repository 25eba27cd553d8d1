//! The live write round trip: while a test-bed guest runs, the host writes a new
//! value into an array map through the guest's RAM file (bpfmem's
//! `write_array_value`), and the guest agent reads it back through `bpf(2)` and
//! prints it (`BPFMEM-POKE-SEEN <key> <hex>`).

use std::path::Path;
use std::time::{Duration, Instant};

use bpfmem::source::RamFile;
use bpfmem::{BpfMapAccessor, DiscoverOptions, Entry, Image, Kernel};
use bpfmem_core::array::Array;
use bpfmem_core::paging::PAGE_SIZE;
use bpfmem_core::Pa;
use bpfmem_guest_agent::manifest::{Hex, POKE_SEEN};
use bpfmem_guest_agent::plan::{is_churn_value, CHURN, CHURN_KEYS, POKE};
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
    /// Reading the running guest while it rewrites its `churn` hash.
    #[serde(default)]
    pub churn: Option<Churn>,
}

/// Walks of the `churn` hash in the RAM file of a guest that keeps rewriting
/// it (inserts, updates, deletes from another CPU).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Churn {
    /// Whole walks of the map.
    pub walks: u64,
    /// Walks that ended without an error.
    pub complete: u64,
    /// Distinct errors that ended the other walks (the structure changed under
    /// the walk), at most a few.
    pub errors: Vec<String>,
    /// Entries seen, over all walks.
    pub entries: u64,
    /// Values torn by a concurrent update (a key's value that is not a whole
    /// `churn_value`); reported here, as the library cannot know.
    pub torn_values: u64,
    /// Entries with a key or value nobody wrote.
    pub foreign: u64,
    /// The longest walk, in milliseconds.
    pub max_walk_ms: u64,
    /// The most entries one walk returned.
    pub max_entries: u64,
}

/// How long the churn is read.
const CHURN_READ: Duration = Duration::from_secs(5);

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
    // The agent starts its churn when it sees the write.
    let churn = read_churn(&k)?;
    let before = map_entries_before()?;
    if churn.max_entries <= before {
        return Err(format!(
            "the guest's churn never showed ({} entries at most, {before} before it)",
            churn.max_entries
        )
        .into());
    }
    let report = Poke {
        id: map.id,
        key,
        kva: kva.get(),
        crosses_page: true,
        written: Hex(written),
        seen,
        churn: Some(churn),
    };
    Ok(serde_json::to_string(&report)?)
}

/// Entries the plan put in the churn map before the churn started.
fn map_entries_before() -> Fallible<u64> {
    let spec = bpfmem_guest_agent::plan::MAPS
        .iter()
        .find(|m| m.name == CHURN)
        .ok_or("no churn map in the plan")?;
    Ok(u64::from(spec.entries))
}

/// Walk the `churn` hash of the running guest again and again for
/// [`CHURN_READ`], checking every value that comes back.
fn read_churn<M: bpfmem_core::PhysRead>(k: &Kernel<M>) -> Fallible<Churn> {
    let map = k
        .list_maps()?
        .into_iter()
        .find(|m| m.name() == CHURN)
        .ok_or("the guest has no churn map")?;
    let mut c = Churn::default();
    let start = Instant::now();
    while start.elapsed() < CHURN_READ {
        // The page tables of a running kernel change too: translate afresh.
        k.mem().flush_cache();
        let walk = Instant::now();
        c.walks += 1;
        let mut n = 0u64;
        let r = k.entries(map.id).and_then(|mut it| {
            let mut e = Entry::default();
            while it.next_into(&mut e)? {
                n += 1;
                let key = match <[u8; 4]>::try_from(&e.key[..]) {
                    Ok(b) => u32::from_le_bytes(b),
                    Err(_) => {
                        c.foreign += 1;
                        continue;
                    }
                };
                if key < CHURN_KEYS {
                    if !is_churn_value(key, &e.value) {
                        c.torn_values += 1;
                    }
                } else {
                    // One of the values the plan put in before the churn, which
                    // never touches keys this large.
                    c.foreign += u64::from(e.value.len() != 16);
                }
            }
            Ok(())
        });
        c.entries += n;
        c.max_entries = c.max_entries.max(n);
        c.max_walk_ms = c.max_walk_ms.max(walk.elapsed().as_millis() as u64);
        match r {
            Ok(()) => c.complete += 1,
            Err(e) => {
                let text = e.to_string();
                if c.errors.len() < 8 && !c.errors.contains(&text) {
                    c.errors.push(text);
                }
            }
        }
    }
    Ok(c)
}
