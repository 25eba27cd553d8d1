//! The guest reads its own memory with bpfmem (`/proc/kcore`, `/dev/mem`) and
//! compares what that finds with what `bpf(2)` reported: the live-source half of
//! the test bed, run where those files exist.

use std::time::Instant;

use bpfmem::source::{DevMem, Kcore};
use bpfmem::{
    ArenaPageData, BpfMapAccessor, DiscoverOptions, Entry as MemEntry, Image, Kernel, SourceError,
};
use bpfmem_core::uapi::MapType;
use bpfmem_guest_agent::manifest::{MapManifest, SelfRead};

/// At most this many differences are reported per source.
const MAX_PROBLEMS: usize = 20;

/// Read `maps` back through `/proc/kcore`.
pub fn kcore(maps: &[MapManifest]) -> SelfRead {
    check("/proc/kcore", Kcore::open_proc().map(Image::Kcore), maps)
}

/// Read `maps` back through `/dev/mem`.
pub fn devmem(maps: &[MapManifest]) -> SelfRead {
    check("/dev/mem", DevMem::open_host().map(Image::DevMem), maps)
}

fn check(source: &str, image: Result<Image, SourceError>, maps: &[MapManifest]) -> SelfRead {
    let start = Instant::now();
    let mut r = SelfRead {
        source: source.to_string(),
        ..SelfRead::default()
    };
    let k = match image
        .map_err(|e| e.to_string())
        .and_then(|i| Kernel::open(i, &DiscoverOptions::default()).map_err(|e| e.to_string()))
    {
        Ok(k) => k,
        Err(e) => {
            r.error = Some(e);
            return r;
        }
    };
    let listed = match k.list_maps() {
        Ok(l) => l,
        Err(e) => {
            r.error = Some(format!("listing maps: {e}"));
            return r;
        }
    };
    let mut problem = |p: String| {
        if r.problems.len() < MAX_PROBLEMS {
            r.problems.push(p);
        }
    };
    for m in maps {
        let Some(info) = listed.iter().find(|i| i.id == m.id) else {
            problem(format!("map {} ({}) not found", m.id, m.name));
            continue;
        };
        if (info.name(), info.map_type.0, info.key_size, info.value_size)
            != (&m.name[..], m.map_type, m.key_size, m.value_size)
        {
            problem(format!("map {} ({}): attributes differ", m.id, m.name));
        }
        r.maps += 1;
        if MapType(m.map_type) == MapType::ARENA {
            match arena(&k, m.id) {
                Ok(pages) => {
                    let want: Vec<(u64, Vec<u8>)> = m
                        .arena_pages
                        .iter()
                        .map(|p| (p.user_addr, p.data.0.clone()))
                        .collect();
                    if pages != want {
                        problem(format!("map {} ({}): arena pages differ", m.id, m.name));
                    }
                    r.entries += pages.len() as u64;
                }
                Err(e) => problem(format!("map {} ({}): {e}", m.id, m.name)),
            }
            continue;
        }
        let got: Result<Vec<MemEntry>, _> = k.entries(m.id).and_then(|it| it.collect());
        let mut got = match got {
            Ok(g) => g,
            Err(e) => {
                problem(format!("map {} ({}): {e}", m.id, m.name));
                continue;
            }
        };
        got.sort_by(|a, b| a.key.cmp(&b.key));
        let want: Vec<(Vec<u8>, Vec<u8>)> = m
            .entries
            .iter()
            .map(|e| {
                let value = match (&e.value, &e.values) {
                    (Some(v), _) => v.0.clone(),
                    (None, Some(per_cpu)) => per_cpu.iter().flat_map(|v| v.0.clone()).collect(),
                    (None, None) => Vec::new(),
                };
                (e.key.0.clone(), value)
            })
            .collect();
        let got: Vec<(Vec<u8>, Vec<u8>)> = got.into_iter().map(|e| (e.key, e.value)).collect();
        if got != want {
            problem(format!(
                "map {} ({}): {} entries read, {} reported, contents differ",
                m.id,
                m.name,
                got.len(),
                want.len()
            ));
        }
        r.entries += got.len() as u64;
    }
    r.ok = r.problems.is_empty();
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    r
}

fn arena(k: &Kernel<Image>, id: u32) -> Result<Vec<(u64, Vec<u8>)>, bpfmem::AccessError> {
    let mut pages = k.arena_pages(id)?;
    let mut p = ArenaPageData {
        user_addr: 0,
        data: Vec::new(),
    };
    let mut out = Vec::new();
    while pages.next_into(&mut p)? {
        out.push((p.user_addr, p.data.clone()));
    }
    Ok(out)
}
