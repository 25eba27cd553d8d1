//! Ground truth: every map in the system as `bpf(2)` reports it.

use std::collections::BTreeSet;

use bpfmem_core::uapi::{percpu_value_size, BpfMapInfo, MapType};
use bpfmem_guest_agent::manifest::{ArenaPage, BtfManifest, Entry, Hex, MapManifest};
use bpfmem_guest_agent::plan::PAGE_SIZE;

use crate::bpf::{self, Map};
use crate::maps::{ArenaWritten, Created};
use crate::sys::errno_text;

/// Stop walking ids after this many maps.
const MAX_MAPS: usize = 1 << 16;
/// Stop dumping a map after this many keys: a hash map whose keys churn can make
/// `BPF_MAP_GET_NEXT_KEY` start over forever.
const MAX_ENTRIES_PER_MAP: usize = 1 << 21;
/// The largest raw BTF copied into the manifest. Program BTF is kilobytes;
/// vmlinux BTF, which no map's `btf_id` names, is megabytes.
const MAX_BTF_DATA: u32 = 1 << 20;
/// Name buffer for `bpf_btf_info::name`: module names are shorter
/// (`MODULE_NAME_LEN`, 56).
const BTF_NAME_BUF: usize = 64;

/// Walk `map_idr` through `BPF_MAP_GET_NEXT_ID` and dump every map. `created`
/// supplies the arena pages the agent wrote.
pub fn dump_all(
    nr_cpus: Option<u32>,
    created: &[Created],
    notes: &mut Vec<String>,
) -> Vec<MapManifest> {
    let mut maps = Vec::new();
    let mut start = 0;
    loop {
        if maps.len() >= MAX_MAPS {
            notes.push(format!("stopped after {MAX_MAPS} maps"));
            break;
        }
        let id = match bpf::map_get_next_id(start) {
            Ok(Some(id)) => id,
            Ok(None) => break,
            Err(e) => {
                notes.push(format!(
                    "BPF_MAP_GET_NEXT_ID after {start}: {}",
                    errno_text(&e)
                ));
                break;
            }
        };
        start = id;
        let fd = match bpf::map_get_fd_by_id(id) {
            Ok(fd) => fd,
            // Freed since GET_NEXT_ID.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                notes.push(format!(
                    "map {id}: BPF_MAP_GET_FD_BY_ID: {}",
                    errno_text(&e)
                ));
                continue;
            }
        };
        let info = match bpf::map_info(&fd) {
            Ok(info) => info,
            Err(e) => {
                notes.push(format!(
                    "map {id}: BPF_OBJ_GET_INFO_BY_FD: {}",
                    errno_text(&e)
                ));
                continue;
            }
        };
        let mut m = manifest_from_info(&info);
        m.entries = dump_entries(fd, &info, nr_cpus, notes);
        m.arena_pages = arena_pages(id, created);
        maps.push(m);
    }
    maps
}

/// The C string in a NUL-padded name field.
fn name_of(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn manifest_from_info(info: &BpfMapInfo) -> MapManifest {
    MapManifest {
        id: info.id,
        name: name_of(&info.name),
        map_type: info.r#type,
        type_name: MapType(info.r#type).to_string(),
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
        map_extra: info.map_extra,
        btf_id: info.btf_id,
        btf_key_type_id: info.btf_key_type_id,
        btf_value_type_id: info.btf_value_type_id,
        btf_vmlinux_value_type_id: info.btf_vmlinux_value_type_id,
        btf_vmlinux_id: info.btf_vmlinux_id,
        entries: Vec::new(),
        arena_pages: Vec::new(),
    }
}

/// The BTF object of every map with one (`btf_id`), each once, by ascending id.
pub fn dump_btfs(maps: &[MapManifest], notes: &mut Vec<String>) -> Vec<BtfManifest> {
    let ids: BTreeSet<u32> = maps
        .iter()
        .map(|m| m.btf_id)
        .filter(|&id| id != 0)
        .collect();
    ids.into_iter()
        .filter_map(|id| match dump_btf(id, notes) {
            Ok(b) => Some(b),
            Err(e) => {
                notes.push(format!("BTF {id}: {e}"));
                None
            }
        })
        .collect()
}

/// `BPF_BTF_GET_FD_BY_ID`, then `BPF_OBJ_GET_INFO_BY_FD` twice: once for the
/// size, once with a buffer that size.
fn dump_btf(id: u32, notes: &mut Vec<String>) -> Result<BtfManifest, String> {
    let fd = bpf::btf_get_fd_by_id(id)
        .map_err(|e| format!("BPF_BTF_GET_FD_BY_ID: {}", errno_text(&e)))?;
    let info_err = |e: std::io::Error| format!("BPF_OBJ_GET_INFO_BY_FD: {}", errno_text(&e));
    let mut name = [0u8; BTF_NAME_BUF];
    let sized = bpf::btf_info(&fd, &mut [], &mut name).map_err(info_err)?;
    let mut data = Vec::new();
    if sized.btf_size > MAX_BTF_DATA {
        notes.push(format!(
            "BTF {id}: {} bytes, more than the {MAX_BTF_DATA} copied: data left out",
            sized.btf_size
        ));
    } else {
        data = vec![0u8; usize::try_from(sized.btf_size).unwrap_or(0)];
        let full = bpf::btf_info(&fd, &mut data, &mut name).map_err(info_err)?;
        if full.btf_size != sized.btf_size {
            return Err(format!(
                "size changed from {} to {} bytes",
                sized.btf_size, full.btf_size
            ));
        }
    }
    Ok(BtfManifest {
        id: sized.id,
        name: name_of(&name),
        kernel_btf: sized.kernel_btf != 0,
        data: Hex(data),
    })
}

/// Every key through `BPF_MAP_GET_NEXT_KEY`, each looked up with
/// `BPF_MAP_LOOKUP_ELEM`; sorted by key bytes. Maps without keys (arena, queue,
/// ring buffers) have no entries.
fn dump_entries(
    fd: std::os::fd::OwnedFd,
    info: &BpfMapInfo,
    nr_cpus: Option<u32>,
    notes: &mut Vec<String>,
) -> Vec<Entry> {
    let t = MapType(info.r#type);
    let label = format!("map {} ({})", info.id, name_of(&info.name));
    if info.key_size == 0 || t == MapType::ARENA {
        return Vec::new();
    }
    let percpu = t.is_percpu();
    let nr_cpus = match (percpu, nr_cpus) {
        (true, None) => {
            notes.push(format!(
                "{label}: not dumped: number of possible CPUs unknown"
            ));
            return Vec::new();
        }
        (_, n) => n.unwrap_or(1),
    };
    let map = match Map::new(fd, info, nr_cpus) {
        Ok(map) => map,
        Err(e) => {
            notes.push(format!("{label}: {}", errno_text(&e)));
            return Vec::new();
        }
    };
    let value_size = usize::try_from(info.value_size).unwrap_or(usize::MAX);
    let stride = percpu_value_size(info.value_size)
        .and_then(|s| usize::try_from(s).ok())
        .unwrap_or(0);

    let mut entries = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    let mut next = vec![0u8; map.key_size()];
    let mut value = vec![0u8; map.value_buf()];
    let (mut lookup_failed, mut first_error) = (0usize, None);
    loop {
        if entries.len() >= MAX_ENTRIES_PER_MAP {
            notes.push(format!(
                "{label}: stopped after {MAX_ENTRIES_PER_MAP} entries"
            ));
            break;
        }
        match map.next_key(key.as_deref(), &mut next) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // Types without key iteration (e.g. bloom filters) say so here.
                if key.is_some() || !is_unsupported(&e) {
                    notes.push(format!("{label}: BPF_MAP_GET_NEXT_KEY: {}", errno_text(&e)));
                }
                break;
            }
        }
        match map.lookup(&next, &mut value) {
            Ok(true) => entries.push(entry(&next, &value, percpu, nr_cpus, stride, value_size)),
            // Deleted between the two calls (LRU eviction).
            Ok(false) => {}
            Err(e) => {
                lookup_failed += 1;
                first_error.get_or_insert_with(|| errno_text(&e));
            }
        }
        key = Some(next.clone());
    }
    if let Some(e) = first_error {
        notes.push(format!(
            "{label}: BPF_MAP_LOOKUP_ELEM failed for {lookup_failed} keys, first: {e}"
        ));
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | 524)
    )
}

/// One entry from a lookup buffer: per-CPU buffers hold `nr_cpus` values of
/// `value_size` bytes at multiples of `stride`.
fn entry(
    key: &[u8],
    buf: &[u8],
    percpu: bool,
    nr_cpus: u32,
    stride: usize,
    value_size: usize,
) -> Entry {
    if percpu {
        let values = (0..nr_cpus)
            .map(|p| {
                let start = usize::try_from(p)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(stride);
                let v = buf
                    .get(start..)
                    .map(|b| &b[..value_size.min(b.len())])
                    .unwrap_or(&[]);
                Hex(v.to_vec())
            })
            .collect();
        Entry {
            key: Hex(key.to_vec()),
            value: None,
            values: Some(values),
        }
    } else {
        let v = &buf[..value_size.min(buf.len())];
        Entry {
            key: Hex(key.to_vec()),
            value: Some(Hex(v.to_vec())),
            values: None,
        }
    }
}

/// The pages the agent wrote to arena `id`, read back through its mapping.
fn arena_pages(id: u32, created: &[Created]) -> Vec<ArenaPage> {
    let Some(ArenaWritten {
        mapping,
        base,
        pages,
    }) = created
        .iter()
        .find(|c| c.id == id)
        .and_then(|c| c.arena.as_ref())
    else {
        return Vec::new();
    };
    pages
        .iter()
        .filter_map(|&p| {
            let data = mapping.read_page(p)?;
            let user_addr = base.checked_add(u64::from(p).checked_mul(PAGE_SIZE)?)?;
            Some(ArenaPage {
                user_addr,
                data: Hex(data),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percpu_entry_split() {
        let mut buf = vec![0u8; 32];
        buf[..12].fill(1);
        buf[16..28].fill(2);
        let e = entry(&[9, 0, 0, 0], &buf, true, 2, 16, 12);
        assert_eq!(e.values.unwrap(), vec![Hex(vec![1; 12]), Hex(vec![2; 12])]);
        let e = entry(&[9], &buf, false, 1, 0, 8);
        assert_eq!(e.value.unwrap(), Hex(vec![1; 8]));
    }

    #[test]
    fn names() {
        assert_eq!(name_of(b"hash\0\0\0\0"), "hash");
        assert_eq!(name_of(b"full_sixteen_chr"), "full_sixteen_chr");
    }
}
