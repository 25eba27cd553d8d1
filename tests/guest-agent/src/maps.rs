//! Create the maps of [`plan::MAPS`] and fill them from the seed.

use std::os::fd::OwnedFd;

use bpfmem_core::uapi::{
    percpu_value_size, MapCreateAttr, MapType, BPF_ANY, BPF_NOEXIST, BPF_OBJ_NAME_LEN,
};
use bpfmem_guest_agent::manifest::{Entry, MapManifest};
use bpfmem_guest_agent::plan::{self, MapSpec, ARENA_PAGES_WRITTEN};

use crate::bpf::{self, ArenaMapping, Map};
use crate::sys::errno_text;

/// A map the agent made. Holding it keeps the map alive: a map dies with its
/// last descriptor.
pub struct Created {
    /// Index in [`plan::MAPS`].
    pub index: u32,
    /// Map id.
    pub id: u32,
    /// For an arena: its mapping and the pages written.
    pub arena: Option<ArenaWritten>,
    _fd: OwnedFd,
}

/// The user side of an arena the agent wrote to.
pub struct ArenaWritten {
    /// The mapping at `map_extra`.
    pub mapping: ArenaMapping,
    /// `map_extra`.
    pub base: u64,
    /// Pages written, ascending.
    pub pages: Vec<u32>,
}

/// Create every planned map. `nr_cpus` is the number of possible CPUs, `None`
/// if unknown (per-CPU maps are then skipped: their buffers would be unsized).
/// Failures become notes.
pub fn create_all(seed: u64, nr_cpus: Option<u32>, notes: &mut Vec<String>) -> Vec<Created> {
    let mut created = Vec::new();
    for (index, spec) in (0u32..).zip(plan::MAPS.iter()) {
        match create_one(seed, index, spec, nr_cpus) {
            Ok((c, mut more)) => {
                notes.append(&mut more);
                created.push(c);
            }
            Err(note) => notes.push(note),
        }
    }
    created
}

fn create_attr(spec: &MapSpec) -> MapCreateAttr {
    let mut map_name = [0u8; BPF_OBJ_NAME_LEN];
    let n = spec.name.len().min(BPF_OBJ_NAME_LEN - 1);
    map_name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
    MapCreateAttr {
        map_type: spec.map_type.0,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.map_flags,
        map_name,
        map_extra: spec.map_extra,
        ..MapCreateAttr::default()
    }
}

/// One map: `Ok` with the map and any notes about its contents, or `Err` with
/// the note saying why there is no map.
fn create_one(
    seed: u64,
    index: u32,
    spec: &MapSpec,
    nr_cpus: Option<u32>,
) -> Result<(Created, Vec<String>), String> {
    let name = spec.name;
    let percpu = spec.map_type.is_percpu();
    let nr_cpus = match (percpu, nr_cpus) {
        (true, None) => return Err(format!("{name}: skipped: number of possible CPUs unknown")),
        (_, n) => n.unwrap_or(1),
    };
    let fd = bpf::map_create(&create_attr(spec)).map_err(|e| {
        let hint = if spec.map_type == MapType::ARENA && e.raw_os_error() == Some(libc::EINVAL) {
            " (arena maps need Linux 6.9+)"
        } else {
            ""
        };
        format!("{name}: BPF_MAP_CREATE: {}{hint}", errno_text(&e))
    })?;
    let info = bpf::map_info(&fd)
        .map_err(|e| format!("{name}: BPF_OBJ_GET_INFO_BY_FD: {}", errno_text(&e)))?;
    let id = info.id;
    let mut notes = Vec::new();

    if spec.map_type == MapType::ARENA {
        let mapping = ArenaMapping::map(&fd, spec.map_extra, spec.max_entries)
            .map_err(|e| format!("{name}: mmap at {:#x}: {}", spec.map_extra, errno_text(&e)))?;
        let mut pages = Vec::new();
        for page in ARENA_PAGES_WRITTEN {
            match mapping.write_page(page, &plan::arena_page(seed, index, page)) {
                Ok(()) => pages.push(page),
                Err(e) => notes.push(format!("{name}: write page {page}: {}", errno_text(&e))),
            }
        }
        let arena = ArenaWritten {
            mapping,
            base: spec.map_extra,
            pages,
        };
        return Ok((
            Created {
                index,
                id,
                arena: Some(arena),
                _fd: fd,
            },
            notes,
        ));
    }

    let map = Map::new(fd, &info, nr_cpus).map_err(|e| format!("{name}: {}", errno_text(&e)))?;
    let flags = if spec.is_array() {
        BPF_ANY
    } else {
        BPF_NOEXIST
    };
    let stride = usize::try_from(percpu_value_size(spec.value_size).unwrap_or(0)).unwrap_or(0);
    let mut value_buf = vec![0u8; map.value_buf()];
    let (mut failed, mut first_error) = (0usize, None);
    for entry in plan::expected_entries(seed, index, spec, nr_cpus) {
        fill_value_buf(&entry, stride, &mut value_buf);
        if let Err(e) = map.update(&entry.key.0, &value_buf, flags) {
            failed += 1;
            first_error.get_or_insert_with(|| errno_text(&e));
        }
    }
    if let Some(e) = first_error {
        notes.push(format!(
            "{name}: BPF_MAP_UPDATE_ELEM failed for {failed} entries, first: {e}"
        ));
    }
    Ok((
        Created {
            index,
            id,
            arena: None,
            _fd: map.into_fd(),
        },
        notes,
    ))
}

/// Lay an entry's value(s) out as `bpf(2)` wants them: per-CPU values at
/// multiples of `stride`.
fn fill_value_buf(entry: &Entry, stride: usize, buf: &mut [u8]) {
    buf.fill(0);
    if let Some(v) = &entry.value {
        let n = v.0.len().min(buf.len());
        buf[..n].copy_from_slice(&v.0[..n]);
    }
    for (p, v) in entry.values.iter().flatten().enumerate() {
        let start = p.saturating_mul(stride);
        if let Some(dst) = buf.get_mut(start..).and_then(|b| b.get_mut(..v.0.len())) {
            dst.copy_from_slice(&v.0);
        }
    }
}

/// Compare what `bpf(2)` reported for the maps the agent made with what the
/// plan says they hold; one line per disagreeing map.
pub fn check_against_plan(
    seed: u64,
    nr_cpus: Option<u32>,
    created: &[Created],
    truth: &[MapManifest],
) -> Vec<String> {
    let mut problems = Vec::new();
    for c in created {
        let Some(spec) = usize::try_from(c.index)
            .ok()
            .and_then(|i| plan::MAPS.get(i))
        else {
            continue;
        };
        let name = spec.name;
        let Some(m) = truth.iter().find(|m| m.id == c.id) else {
            problems.push(format!("{name}: map {} missing from the dump", c.id));
            continue;
        };
        if (
            m.name.as_str(),
            m.map_type,
            m.key_size,
            m.value_size,
            m.max_entries,
            m.map_flags,
            m.map_extra,
        ) != (
            name,
            spec.map_type.0,
            spec.key_size,
            spec.value_size,
            spec.max_entries,
            spec.map_flags,
            spec.map_extra,
        ) {
            problems.push(format!("{name}: bpf_map_info differs from the plan"));
        }
        if spec.map_type == MapType::ARENA {
            let expect: Vec<_> = ARENA_PAGES_WRITTEN
                .iter()
                .map(|&p| {
                    (
                        spec.map_extra + u64::from(p) * plan::PAGE_SIZE,
                        plan::arena_page(seed, c.index, p),
                    )
                })
                .collect();
            let got: Vec<_> = m
                .arena_pages
                .iter()
                .map(|p| (p.user_addr, p.data.0.clone()))
                .collect();
            if got != expect {
                problems.push(format!("{name}: arena pages differ from the plan"));
            }
            continue;
        }
        let expect = plan::expected_entries(seed, c.index, spec, nr_cpus.unwrap_or(1));
        if m.entries != expect {
            let differing = m
                .entries
                .iter()
                .zip(&expect)
                .filter(|(a, b)| a != b)
                .count();
            problems.push(format!(
                "{name}: dump differs from the plan: {} entries, {} expected, {differing} of the common prefix differ",
                m.entries.len(),
                expect.len()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfmem_guest_agent::manifest::Hex;

    #[test]
    fn percpu_values_land_at_stride() {
        let e = Entry {
            key: Hex(vec![0; 4]),
            value: None,
            values: Some(vec![Hex(vec![1; 12]), Hex(vec![2; 12])]),
        };
        let mut buf = vec![0xffu8; 32];
        fill_value_buf(&e, 16, &mut buf);
        assert_eq!(&buf[..12], &[1; 12]);
        assert_eq!(&buf[12..16], &[0; 4]);
        assert_eq!(&buf[16..28], &[2; 12]);
        assert_eq!(&buf[28..], &[0; 4]);
    }

    #[test]
    fn create_attr_names() {
        let a = create_attr(&plan::MAPS[9]);
        assert_eq!(&a.map_name[..14], b"lru_pcpu_hash\0");
        assert_eq!(a.map_type, MapType::LRU_PERCPU_HASH.0);
    }
}
