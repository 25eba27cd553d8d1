//! Create the maps of [`plan::MAPS`] and fill them from the seed.

use std::os::fd::{AsRawFd, OwnedFd};

use bpfmem_core::uapi::{
    percpu_value_size, MapCreateAttr, MapType, BPF_ANY, BPF_NOEXIST, BPF_OBJ_NAME_LEN,
};
use bpfmem_guest_agent::btf;
use bpfmem_guest_agent::manifest::{BtfManifest, Entry, MapManifest};
use bpfmem_guest_agent::plan::{self, MapBtf, MapSpec, ARENA_PAGES_WRITTEN};

use crate::bpf::{self, ArenaMapping, Map};
use crate::sys::errno_text;
use crate::vmlinux::VmlinuxBtf;

/// A map the agent made. Holding it keeps the map alive: a map dies with its
/// last descriptor.
pub struct Created {
    /// Index in [`plan::MAPS`].
    pub index: u32,
    /// Map id.
    pub id: u32,
    /// The plan's spec with what was decided at run time filled in: the value
    /// size of a struct_ops map.
    pub spec: MapSpec,
    /// `btf_vmlinux_value_type_id` the map was created with (struct_ops), else 0.
    pub vmlinux_value_type_id: u32,
    /// For an arena: its mapping and the pages written.
    pub arena: Option<ArenaWritten>,
    fd: OwnedFd,
}

impl Created {
    /// The map's descriptor.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
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

/// What maps with BTF need, each made once, and only if a planned map needs it.
struct BtfSources {
    /// The agent's own BTF object ([`btf::blob`]), or why there is none.
    own: Option<Result<OwnedFd, String>>,
    /// The kernel's BTF, or why there is none.
    vmlinux: Option<Result<VmlinuxBtf, String>>,
}

impl BtfSources {
    fn load(notes: &mut Vec<String>) -> Self {
        let own = plan::MAPS.iter().any(|m| m.btf != MapBtf::None).then(|| {
            bpf::btf_load(&btf::blob()).map_err(|e| {
                let log = if e.log.is_empty() { "(empty)" } else { &e.log };
                format!("BPF_BTF_LOAD: {}; log: {log}", errno_text(&e.error))
            })
        });
        let vmlinux = plan::MAPS
            .iter()
            .any(|m| matches!(m.btf, MapBtf::VmlinuxValue(_)))
            .then(VmlinuxBtf::open);
        if let Some(Err(e)) = &own {
            notes.push(format!("agent BTF: {e}"));
        }
        if let Some(Err(e)) = &vmlinux {
            notes.push(format!("kernel BTF: {e}"));
        }
        Self { own, vmlinux }
    }

    fn own_fd(&self, name: &str) -> Result<u32, String> {
        match &self.own {
            Some(Ok(fd)) => u32::try_from(fd.as_raw_fd())
                .map_err(|_| format!("{name}: skipped: bad BTF descriptor")),
            _ => Err(format!(
                "{name}: skipped: the agent's BTF did not load (see the agent BTF note)"
            )),
        }
    }

    fn vmlinux(&self, name: &str) -> Result<&VmlinuxBtf, String> {
        match &self.vmlinux {
            Some(Ok(b)) => Ok(b),
            _ => Err(format!(
                "{name}: skipped: no kernel BTF (see the kernel BTF note)"
            )),
        }
    }
}

/// Create every planned map. `nr_cpus` is the number of possible CPUs, `None`
/// if unknown (per-CPU maps are then skipped: their buffers would be unsized).
/// Failures become notes.
pub fn create_all(seed: u64, nr_cpus: Option<u32>, notes: &mut Vec<String>) -> Vec<Created> {
    let sources = BtfSources::load(notes);
    let mut created = Vec::new();
    for (index, spec) in (0u32..).zip(plan::MAPS.iter()) {
        match create_one(seed, index, spec, nr_cpus, &sources) {
            Ok((c, mut more)) => {
                notes.append(&mut more);
                created.push(c);
            }
            Err(note) => notes.push(note),
        }
    }
    // The BTF object lives on in the maps that use it (`map->btf`).
    created
}

/// `BPF_MAP_CREATE` for `spec` (as resolved by [`resolve`]), with the BTF
/// object `btf_fd` (0: none) and a struct_ops value type id (0: none).
fn create_attr(spec: &MapSpec, btf_fd: u32, vmlinux_value_type_id: u32) -> MapCreateAttr {
    let mut map_name = [0u8; BPF_OBJ_NAME_LEN];
    let n = spec.name.len().min(BPF_OBJ_NAME_LEN - 1);
    map_name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
    let (btf_key_type_id, btf_value_type_id) = match spec.btf {
        MapBtf::Own {
            key_type_id,
            value_type_id,
        } => (key_type_id, value_type_id),
        MapBtf::None | MapBtf::VmlinuxValue(_) => (0, 0),
    };
    MapCreateAttr {
        map_type: spec.map_type.0,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.map_flags,
        map_name,
        btf_fd,
        btf_key_type_id,
        btf_value_type_id,
        btf_vmlinux_value_type_id: vmlinux_value_type_id,
        map_extra: spec.map_extra,
        ..MapCreateAttr::default()
    }
}

/// The spec with its run-time parts filled in, and the attr to create it.
fn resolve(spec: &MapSpec, sources: &BtfSources) -> Result<(MapSpec, MapCreateAttr), String> {
    let name = spec.name;
    match spec.btf {
        MapBtf::None => Ok((*spec, create_attr(spec, 0, 0))),
        MapBtf::Own { .. } => Ok((*spec, create_attr(spec, sources.own_fd(name)?, 0))),
        MapBtf::VmlinuxValue(strukt) => {
            let (type_id, size) = sources
                .vmlinux(name)?
                .struct_by_name(strukt)
                .map_err(|e| format!("{name}: skipped: {e}"))?;
            let spec = MapSpec {
                value_size: size,
                ..*spec
            };
            let attr = create_attr(&spec, sources.own_fd(name)?, type_id);
            Ok((spec, attr))
        }
    }
}

/// One map: `Ok` with the map and any notes about its contents, or `Err` with
/// the note saying why there is no map.
fn create_one(
    seed: u64,
    index: u32,
    spec: &MapSpec,
    nr_cpus: Option<u32>,
    sources: &BtfSources,
) -> Result<(Created, Vec<String>), String> {
    let name = spec.name;
    let percpu = spec.map_type.is_percpu();
    let nr_cpus = match (percpu, nr_cpus) {
        (true, None) => return Err(format!("{name}: skipped: number of possible CPUs unknown")),
        (_, n) => n.unwrap_or(1),
    };
    let (spec, attr) = resolve(spec, sources)?;
    let spec = &spec;
    let fd = bpf::map_create(&attr).map_err(|e| {
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
    let vmlinux_value_type_id = attr.btf_vmlinux_value_type_id;
    let mut notes = Vec::new();

    if spec.map_type == MapType::STRUCT_OPS {
        // Left in BPF_STRUCT_OPS_STATE_INIT: an update would register it.
        return Ok((
            Created {
                index,
                id,
                spec: *spec,
                vmlinux_value_type_id,
                arena: None,
                fd,
            },
            notes,
        ));
    }

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
                spec: *spec,
                vmlinux_value_type_id,
                arena: Some(arena),
                fd,
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
            spec: *spec,
            vmlinux_value_type_id,
            arena: None,
            fd: map.into_fd(),
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

/// Compare what `bpf(2)` reported for the maps the agent made, and for their
/// BTF objects, with what the plan says they hold; one line per disagreement.
pub fn check_against_plan(
    seed: u64,
    nr_cpus: Option<u32>,
    created: &[Created],
    truth: &[MapManifest],
    btfs: &[BtfManifest],
) -> Vec<String> {
    let mut problems = Vec::new();
    let own_blob = btf::blob();
    for c in created {
        let spec = &c.spec;
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
        let (key_type_id, value_type_id) = match spec.btf {
            MapBtf::Own {
                key_type_id,
                value_type_id,
            } => (key_type_id, value_type_id),
            MapBtf::None | MapBtf::VmlinuxValue(_) => (0, 0),
        };
        let want = (key_type_id, value_type_id, c.vmlinux_value_type_id);
        let got = (
            m.btf_key_type_id,
            m.btf_value_type_id,
            m.btf_vmlinux_value_type_id,
        );
        if got != want {
            problems.push(format!(
                "{name}: BTF key, value, vmlinux value type ids {got:?}, planned {want:?}"
            ));
        }
        match (spec.btf != MapBtf::None, m.btf_id) {
            (false, 0) => {}
            (false, id) => problems.push(format!("{name}: has BTF object {id}, planned none")),
            (true, 0) => problems.push(format!("{name}: no BTF object")),
            (true, id) => match btfs.iter().find(|b| b.id == id) {
                None => problems.push(format!("{name}: BTF object {id} missing from the dump")),
                Some(b) if b.kernel_btf || b.data.0 != own_blob => problems.push(format!(
                    "{name}: BTF object {id} is not the blob the agent loaded \
                     (kernel_btf {}, {} bytes, {} loaded)",
                    b.kernel_btf,
                    b.data.0.len(),
                    own_blob.len()
                )),
                Some(_) => {}
            },
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

    /// What `bpf(2)` would report for `c`, as the plan has it.
    fn reported(c: &Created, btf_id: u32) -> MapManifest {
        let s = &c.spec;
        let (k, v) = match s.btf {
            MapBtf::Own {
                key_type_id,
                value_type_id,
            } => (key_type_id, value_type_id),
            _ => (0, 0),
        };
        MapManifest {
            id: c.id,
            name: s.name.to_string(),
            map_type: s.map_type.0,
            type_name: s.map_type.to_string(),
            key_size: s.key_size,
            value_size: s.value_size,
            max_entries: s.max_entries,
            map_flags: s.map_flags,
            map_extra: s.map_extra,
            btf_id,
            btf_key_type_id: k,
            btf_value_type_id: v,
            btf_vmlinux_value_type_id: c.vmlinux_value_type_id,
            btf_vmlinux_id: 0,
            entries: plan::expected_entries(3, c.index, s, 1),
            arena_pages: Vec::new(),
        }
    }

    fn created(index: u32, id: u32, value_size: u32, vmlinux_value_type_id: u32) -> Created {
        Created {
            index,
            id,
            spec: MapSpec {
                value_size,
                ..plan::MAPS[index as usize]
            },
            vmlinux_value_type_id,
            arena: None,
            fd: std::fs::File::open("/dev/null").unwrap().into(),
        }
    }

    #[test]
    fn btf_maps_are_checked() {
        let created = vec![created(16, 40, btf::BV_SIZE, 0), created(17, 41, 256, 4321)];
        let good_maps: Vec<_> = created.iter().map(|c| reported(c, 9)).collect();
        let good_btfs = vec![BtfManifest {
            id: 9,
            name: String::new(),
            kernel_btf: false,
            data: Hex(btf::blob()),
        }];
        let check = |maps: &[MapManifest], btfs: &[BtfManifest]| {
            check_against_plan(3, Some(1), &created, maps, btfs)
        };
        assert_eq!(check(&good_maps, &good_btfs), Vec::<String>::new());

        let mut btfs = good_btfs.clone();
        btfs[0].data.0[30] ^= 1;
        assert_eq!(check(&good_maps, &btfs).len(), 2);
        btfs = good_btfs.clone();
        btfs[0].kernel_btf = true;
        assert_eq!(check(&good_maps, &btfs).len(), 2);
        assert_eq!(check(&good_maps, &[]).len(), 2);

        let mut maps = good_maps.clone();
        maps[1].btf_vmlinux_value_type_id = 1;
        maps[0].btf_value_type_id = 1;
        let p = check(&maps, &good_btfs);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("btf_hash: BTF key, value"), "{p:?}");

        maps = good_maps.clone();
        maps[1].entries[0].value.as_mut().unwrap().0[8] = 1;
        maps[0].btf_id = 0;
        let p = check(&maps, &good_btfs);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0], "btf_hash: no BTF object");
        assert!(p[1].starts_with("st_ops: dump differs"), "{p:?}");
    }

    #[test]
    fn create_attr_names() {
        let a = create_attr(&plan::MAPS[9], 0, 0);
        assert_eq!(&a.map_name[..14], b"lru_pcpu_hash\0");
        assert_eq!(a.map_type, MapType::LRU_PERCPU_HASH.0);
        assert_eq!(
            (a.btf_fd, a.btf_key_type_id, a.btf_value_type_id),
            (0, 0, 0)
        );
    }

    #[test]
    fn create_attr_btf() {
        let i = plan::MAPS
            .iter()
            .position(|m| m.name == "btf_hash")
            .unwrap();
        let a = create_attr(&plan::MAPS[i], 7, 0);
        assert_eq!(
            (a.btf_fd, a.btf_key_type_id, a.btf_value_type_id),
            (7, btf::BK_TYPE_ID, btf::BV_TYPE_ID)
        );
        assert_eq!((a.key_size, a.value_size), (btf::BK_SIZE, btf::BV_SIZE));
        let i = plan::MAPS.iter().position(|m| m.name == "st_ops").unwrap();
        let a = create_attr(&plan::MAPS[i], 7, 1234);
        assert_eq!(
            (a.btf_fd, a.btf_key_type_id, a.btf_value_type_id),
            (7, 0, 0)
        );
        assert_eq!(a.btf_vmlinux_value_type_id, 1234);
        assert_eq!(a.map_type, MapType::STRUCT_OPS.0);
    }
}
