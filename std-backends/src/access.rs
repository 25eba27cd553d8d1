//! One interface for reading BPF maps, whoever answers: a kernel found in a
//! memory image ([`Kernel`]) or, through the same trait, the live `bpf(2)`
//! syscall. Maps are named by id (names are not unique). Contents stream:
//! [`Entries`] and [`ArenaPages`] fill buffers the caller reuses, so a
//! million-entry map costs no million allocations.

use std::fmt;

use bpfmem_core::arena::Arena;
use bpfmem_core::array::{Array, ArrayElem, ArrayIter};
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::btf::read_btf;
use bpfmem_core::htab::{detect_pcpu_ptr_at, Htab, HtabIter, HtabLimits, PcpuPtrAt};
use bpfmem_core::paging::{KernelMem, PAGE_SIZE};
use bpfmem_core::percpu::PerCpu;
use bpfmem_core::struct_ops::StructOps;
use bpfmem_core::uapi::MapType;
use bpfmem_core::{Error, KernelRead, Kva, PhysRead, PhysWrite};

use crate::kernel::Kernel;

/// Reading a map failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// No map has this id.
    NoSuchMap { id: u32 },
    /// The map is not of a type the call reads.
    WrongType {
        id: u32,
        map_type: MapType,
        wanted: &'static str,
    },
    /// The key is not below `max_entries`.
    KeyOutOfRange { id: u32, key: u32, max_entries: u32 },
    /// The window `offset..offset + len` is not inside the value.
    WindowOutOfRange {
        id: u32,
        offset: u32,
        len: usize,
        value_size: u32,
    },
    /// The map's per-CPU pointers could be at either of two places and the
    /// image does not say which (see [`bpfmem_core::htab::PcpuPtrAt`]).
    PcpuLayoutUnknown { id: u32 },
    /// Reading kernel memory for map `id` failed.
    Memory { id: u32, error: Error },
    /// The live `bpf(2)` backend failed (the command, the errno, and for
    /// missing privileges what to do).
    #[cfg(feature = "bpf-syscall")]
    Live(crate::live::LiveError),
    /// Listing programs or BTF objects out of kernel memory failed (the error
    /// says where).
    ObjectMemory {
        kind: crate::objects::ObjectKind,
        error: Error,
    },
    /// The live backend failed on program or BTF object `id` (0: the id walk
    /// itself). Missing privileges are [`AccessError::Live`] instead.
    #[cfg(feature = "bpf-syscall")]
    ObjectLive {
        kind: crate::objects::ObjectKind,
        id: u32,
        error: crate::live::LiveError,
    },
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AccessError::NoSuchMap { id } => write!(f, "no map with id {id}"),
            AccessError::WrongType {
                id,
                map_type,
                wanted,
            } => write!(f, "map {id} is a {map_type} map, not {wanted}"),
            AccessError::KeyOutOfRange {
                id,
                key,
                max_entries,
            } => write!(
                f,
                "map {id}: key {key} is out of range (max_entries {max_entries})"
            ),
            AccessError::WindowOutOfRange {
                id,
                offset,
                len,
                value_size,
            } => write!(
                f,
                "map {id}: {len} bytes at offset {offset} do not fit a {value_size}-byte value"
            ),
            AccessError::PcpuLayoutUnknown { id } => write!(
                f,
                "map {id}: cannot tell where this kernel keeps per-CPU pointers in hash elements"
            ),
            AccessError::Memory { id, error } => write!(f, "map {id}: {error}"),
            #[cfg(feature = "bpf-syscall")]
            AccessError::Live(e) => write!(f, "{e}"),
            AccessError::ObjectMemory { kind, error } => {
                write!(f, "listing {}: {error}", kind.plural())
            }
            #[cfg(feature = "bpf-syscall")]
            AccessError::ObjectLive { kind, id: 0, error } => {
                write!(f, "listing {}: {error}", kind.plural())
            }
            #[cfg(feature = "bpf-syscall")]
            AccessError::ObjectLive { kind, id, error } => write!(f, "{kind} {id}: {error}"),
        }
    }
}

impl std::error::Error for AccessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AccessError::Memory { error, .. } => Some(error),
            #[cfg(feature = "bpf-syscall")]
            AccessError::Live(e) => Some(e),
            AccessError::ObjectMemory { error, .. } => Some(error),
            #[cfg(feature = "bpf-syscall")]
            AccessError::ObjectLive { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// One key and its value. For per-CPU maps `value` holds one `value_size`-byte
/// value per possible CPU, in the order of [`BpfMapAccessor::possible_cpus`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Entry {
    /// The per-CPU values of a per-CPU map's entry.
    pub fn percpu_values(&self, value_size: u32) -> std::slice::Chunks<'_, u8> {
        self.value.chunks(value_size.max(1) as usize)
    }
}

/// A stream of map entries.
pub trait Entries {
    /// Overwrite `entry` with the next one; `Ok(false)` at the end. After an
    /// error the stream is over: what came before it is all there is.
    fn next_into(&mut self, entry: &mut Entry) -> Result<bool, AccessError>;
}

impl Iterator for dyn Entries + '_ {
    type Item = Result<Entry, AccessError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut e = Entry::default();
        self.next_into(&mut e)
            .map(|more| more.then_some(e))
            .transpose()
    }
}

/// One present arena page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaPageData {
    /// The address user space and BPF programs use.
    pub user_addr: u64,
    /// Its `PAGE_SIZE` bytes.
    pub data: Vec<u8>,
}

/// A stream of the pages present in an arena, ascending.
pub trait ArenaPages {
    /// Overwrite `page` with the next present page; `Ok(false)` at the end.
    fn next_into(&mut self, page: &mut ArenaPageData) -> Result<bool, AccessError>;
}

/// A map's BTF object, as `BPF_OBJ_GET_INFO_BY_FD` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapBtf {
    /// The BTF object's id.
    pub id: u32,
    /// Its name (empty for BTF loaded by programs).
    pub name: String,
    /// Whether it is the kernel's or a module's BTF.
    pub kernel_btf: bool,
    /// Whether it is split BTF over another (a module's over vmlinux).
    pub split: bool,
    /// The raw blob as loaded.
    pub data: Vec<u8>,
}

/// What every source of BPF map state answers.
pub trait BpfMapAccessor {
    /// Every map, by ascending id.
    fn list_maps(&self) -> Result<Vec<MapInfo>, AccessError>;

    /// The maps listed before an error, and the error: when one map is
    /// broken, the ones before it are still worth showing. Sources that list
    /// all or nothing keep the default.
    fn list_maps_partial(&self) -> (Vec<MapInfo>, Option<AccessError>) {
        match self.list_maps() {
            Ok(maps) => (maps, None),
            Err(e) => (Vec::new(), Some(e)),
        }
    }

    /// The map with this id.
    fn map_info(&self, id: u32) -> Result<MapInfo, AccessError>;

    /// The possible CPUs, ascending: per-CPU values come in this order.
    fn possible_cpus(&self) -> &[u32];

    /// Bytes `offset..offset + buf.len()` of the value of `key` in an ARRAY map,
    /// or of the one value (key 0) of a STRUCT_OPS map.
    fn read_array_value(
        &self,
        id: u32,
        key: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), AccessError>;

    /// The value of `key` in a PERCPU_ARRAY map for every possible CPU:
    /// `value_size` bytes per CPU, in [`BpfMapAccessor::possible_cpus`] order.
    fn read_percpu_array_value(
        &self,
        id: u32,
        key: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), AccessError>;

    /// Every entry of a HASH, LRU_HASH, PERCPU_HASH, LRU_PERCPU_HASH, ARRAY,
    /// PERCPU_ARRAY or STRUCT_OPS map (arrays: every key below `max_entries`;
    /// struct_ops: key 0).
    fn entries(&self, id: u32) -> Result<Box<dyn Entries + '_>, AccessError>;

    /// The pages present in an ARENA map; untouched pages are absent.
    fn arena_pages(&self, id: u32) -> Result<Box<dyn ArenaPages + '_>, AccessError>;

    /// The BTF object the map was created with (`btf_id`), `None` without one.
    fn map_btf(&self, id: u32) -> Result<Option<MapBtf>, AccessError>;
}

/// The largest value read into one buffer: all CPUs' values of a per-CPU
/// map together. Sizes come from the guest; a kernel's own limits (32 KiB per
/// CPU for per-CPU values, 4 MiB for hash values) stay far below.
pub const MAX_VALUE_BYTES: u64 = 64 << 20;

/// The largest struct_ops value: a `struct bpf_struct_ops_<name>` (a few
/// hundred bytes to a few KiB in v6.12).
pub const MAX_STRUCT_OPS_VALUE: u32 = 1 << 20;

/// The largest BTF blob of a map read: `BTF_MAX_SIZE` (kernel/bpf/btf.c).
pub const MAX_MAP_BTF: u32 = bpfmem_core::btf::BTF_MAX_SIZE;

/// `value_size` bytes per value, `n` values: or a limit error naming the map.
fn value_bytes(m: &MapInfo, n: usize) -> Result<usize, AccessError> {
    let total = u64::from(m.value_size).saturating_mul(n as u64);
    if total > MAX_VALUE_BYTES {
        return Err(AccessError::Memory {
            id: m.id,
            error: Error::limit("map value bytes", m.kva, MAX_VALUE_BYTES),
        });
    }
    Ok(total as usize)
}

fn mem_err(id: u32) -> impl Fn(Error) -> AccessError {
    move |error| AccessError::Memory { id, error }
}

/// The map is not of a type the call reads.
pub(crate) fn wrong(m: &MapInfo, wanted: &'static str) -> AccessError {
    AccessError::WrongType {
        id: m.id,
        map_type: m.map_type,
        wanted,
    }
}

/// `key` below `max_entries`.
pub(crate) fn check_key(m: &MapInfo, key: u32) -> Result<(), AccessError> {
    if key < m.max_entries {
        Ok(())
    } else {
        Err(AccessError::KeyOutOfRange {
            id: m.id,
            key,
            max_entries: m.max_entries,
        })
    }
}

/// `offset..offset + len` inside a value.
pub(crate) fn check_window(m: &MapInfo, offset: u32, len: usize) -> Result<(), AccessError> {
    let fits = u64::try_from(len)
        .ok()
        .and_then(|l| u64::from(offset).checked_add(l))
        .is_some_and(|end| end <= u64::from(m.value_size));
    if fits {
        Ok(())
    } else {
        Err(AccessError::WindowOutOfRange {
            id: m.id,
            offset,
            len,
            value_size: m.value_size,
        })
    }
}

impl<M: PhysRead> Kernel<M> {
    /// `__per_cpu_offset` and `nr_cpu_ids`, for per-CPU maps.
    fn per_cpu(&self, id: u32) -> Result<PerCpu, AccessError> {
        let at = self.symbols().per_cpu_offset.ok_or(AccessError::Memory {
            id,
            error: Error::NotFound {
                what: "__per_cpu_offset",
            },
        })?;
        Ok(PerCpu::new(at, self.nr_cpu_ids()))
    }

    /// The value bytes of every possible CPU at `ptr` (a per-CPU pointer).
    fn read_percpu(
        &self,
        id: u32,
        pcpu: &PerCpu,
        ptr: Kva,
        value_size: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), AccessError> {
        let size = value_size as usize;
        let total = u64::from(value_size).saturating_mul(self.possible_cpus().len() as u64);
        if total > MAX_VALUE_BYTES {
            return Err(AccessError::Memory {
                id,
                error: Error::limit("map value bytes", Kva(0), MAX_VALUE_BYTES),
            });
        }
        out.resize(total as usize, 0);
        for (&cpu, chunk) in self.possible_cpus().iter().zip(out.chunks_mut(size)) {
            let at = pcpu
                .per_cpu_ptr(self.mem(), ptr, cpu)
                .map_err(mem_err(id))?;
            self.mem().read_kva(at, chunk).map_err(mem_err(id))?;
        }
        Ok(())
    }

    /// A checked hash table with its per-CPU pointer position settled.
    fn htab(&self, m: &MapInfo) -> Result<Htab, AccessError> {
        let mut htab = Htab::new(self.mem(), m, self.offsets()).map_err(mem_err(m.id))?;
        // Its bucket array must fit the machine.
        let need = u64::from(htab.n_buckets()).saturating_mul(16);
        if self.phys_size() != 0 && need > self.phys_size() {
            return Err(AccessError::Memory {
                id: m.id,
                error: Error::malformed("bpf_htab.n_buckets (larger than memory)", m.kva),
            });
        }
        if htab.is_percpu() && htab.pcpu_ptr_at().is_none() {
            let at = detect_pcpu_ptr_at(
                self.mem(),
                &htab,
                &self.per_cpu(m.id)?,
                self.possible_cpus(),
            )
            .map_err(mem_err(m.id))?
            .ok_or(AccessError::PcpuLayoutUnknown { id: m.id })?;
            htab.set_pcpu_ptr_at(at);
        }
        Ok(htab)
    }

    /// Where a hash table's per-CPU pointers are, as detected from the image
    /// (`None` for maps that are not per-CPU hashes, or when it cannot be told).
    pub fn pcpu_ptr_at(&self, id: u32) -> Result<Option<PcpuPtrAt>, AccessError> {
        let m = self.map_info(id)?;
        if !matches!(m.map_type, MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH) {
            return Ok(None);
        }
        match self.htab(&m) {
            Ok(h) => Ok(h.pcpu_ptr_at()),
            Err(AccessError::PcpuLayoutUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An array's elements must fit the machine: `max_entries` values (or
    /// per-CPU pointers) cannot take more memory than the source has.
    fn fits_memory(&self, m: &MapInfo, a: &Array) -> Result<(), AccessError> {
        let per = if a.is_percpu() {
            8
        } else {
            u64::from(a.elem_size())
        };
        let need = u64::from(m.max_entries).saturating_mul(per);
        if self.phys_size() != 0 && need > self.phys_size() {
            return Err(AccessError::Memory {
                id: m.id,
                error: Error::malformed("bpf_array size (larger than memory)", m.kva),
            });
        }
        Ok(())
    }

    fn htab_limits(&self) -> HtabLimits {
        HtabLimits {
            nr_cpus: u32::try_from(self.possible_cpus().len()).unwrap_or(u32::MAX),
            ..HtabLimits::default()
        }
    }
}

impl<M: PhysRead> BpfMapAccessor for Kernel<M> {
    fn list_maps(&self) -> Result<Vec<MapInfo>, AccessError> {
        match self.list_maps_partial() {
            (maps, None) => Ok(maps),
            (_, Some(e)) => Err(e),
        }
    }

    fn list_maps_partial(&self) -> (Vec<MapInfo>, Option<AccessError>) {
        let mut maps = Vec::new();
        for m in self.maps() {
            match m {
                Ok(m) => maps.push(m),
                Err(error) => {
                    let e = AccessError::ObjectMemory {
                        kind: crate::objects::ObjectKind::Map,
                        error,
                    };
                    return (maps, Some(e));
                }
            }
        }
        (maps, None)
    }

    fn map_info(&self, id: u32) -> Result<MapInfo, AccessError> {
        self.map(id)
            .map_err(mem_err(id))?
            .ok_or(AccessError::NoSuchMap { id })
    }

    fn possible_cpus(&self) -> &[u32] {
        Kernel::possible_cpus(self)
    }

    fn read_array_value(
        &self,
        id: u32,
        key: u32,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<(), AccessError> {
        let m = self.map_info(id)?;
        check_key(&m, key)?;
        check_window(&m, offset, buf.len())?;
        match m.map_type {
            MapType::ARRAY => Array::new(self.mem(), &m, self.offsets())
                .and_then(|a| a.read_value(self.mem(), key, offset, buf))
                .map_err(mem_err(id)),
            MapType::STRUCT_OPS => StructOps::new(&m, self.offsets())
                .and_then(|s| s.read_value(self.mem(), offset, buf))
                .map(drop)
                .map_err(mem_err(id)),
            _ => Err(wrong(&m, "an array or struct_ops map")),
        }
    }

    fn read_percpu_array_value(
        &self,
        id: u32,
        key: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), AccessError> {
        let m = self.map_info(id)?;
        if m.map_type != MapType::PERCPU_ARRAY {
            return Err(wrong(&m, "a percpu_array map"));
        }
        check_key(&m, key)?;
        let a = Array::new(self.mem(), &m, self.offsets()).map_err(mem_err(id))?;
        let pptr = a.pptr(self.mem(), key).map_err(mem_err(id))?;
        self.read_percpu(id, &self.per_cpu(id)?, pptr, m.value_size, out)
    }

    fn entries(&self, id: u32) -> Result<Box<dyn Entries + '_>, AccessError> {
        let m = self.map_info(id)?;
        let per_entry = if m.map_type.is_percpu() {
            self.possible_cpus().len()
        } else {
            1
        };
        value_bytes(&m, per_entry)?;
        match m.map_type {
            MapType::ARRAY | MapType::PERCPU_ARRAY => {
                let a = Array::new(self.mem(), &m, self.offsets()).map_err(mem_err(id))?;
                self.fits_memory(&m, &a)?;
                let pcpu = match m.map_type {
                    MapType::PERCPU_ARRAY => Some(self.per_cpu(id)?),
                    _ => None,
                };
                Ok(Box::new(ArrayEntries {
                    kernel: self,
                    map: m,
                    iter: a.iter(self.mem()),
                    pcpu,
                }))
            }
            MapType::HASH | MapType::LRU_HASH | MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH => {
                let htab = self.htab(&m)?;
                let pcpu = match htab.is_percpu() {
                    true => Some(self.per_cpu(id)?),
                    false => None,
                };
                Ok(Box::new(HtabEntries {
                    kernel: self,
                    map: m,
                    htab,
                    iter: htab.iter(self.mem(), self.htab_limits()),
                    pcpu,
                }))
            }
            MapType::STRUCT_OPS => {
                if m.value_size > MAX_STRUCT_OPS_VALUE {
                    return Err(AccessError::Memory {
                        id,
                        error: Error::limit(
                            "struct_ops value size",
                            m.kva,
                            u64::from(MAX_STRUCT_OPS_VALUE),
                        ),
                    });
                }
                let mut value = vec![0u8; m.value_size as usize];
                self.read_array_value(id, 0, 0, &mut value)?;
                Ok(Box::new(OneEntry(Some(Entry {
                    key: 0u32.to_le_bytes().to_vec(),
                    value,
                }))))
            }
            _ => Err(wrong(&m, "a hash, array or struct_ops map")),
        }
    }

    fn arena_pages(&self, id: u32) -> Result<Box<dyn ArenaPages + '_>, AccessError> {
        let m = self.map_info(id)?;
        if m.map_type != MapType::ARENA {
            return Err(wrong(&m, "an arena map"));
        }
        let arena = Arena::new(self.mem(), &m, self.offsets()).map_err(mem_err(id))?;
        Ok(Box::new(KernelArenaPages {
            kernel: self,
            id,
            pages: arena.pages(self.mem()),
        }))
    }

    fn map_btf(&self, id: u32) -> Result<Option<MapBtf>, AccessError> {
        let m = self.map_info(id)?;
        if m.btf_id == 0 {
            return Ok(None);
        }
        let off = self.offsets();
        let at = m
            .kva
            .checked_add(u64::from(off.bpf_map.btf))
            .ok_or(AccessError::Memory {
                id,
                error: Error::malformed("bpf_map.btf", m.kva),
            })?;
        let ptr = self.mem().read_ptr(at).map_err(mem_err(id))?;
        let btf = read_btf(self.mem(), ptr, &off.btf).map_err(mem_err(id))?;
        // A map's BTF is loaded by user space, whatever its flag says.
        if btf.data_size > MAX_MAP_BTF {
            return Err(AccessError::Memory {
                id,
                error: Error::limit("btf.data_size", ptr, u64::from(MAX_MAP_BTF)),
            });
        }
        let mut data = vec![0u8; btf.data_size as usize];
        btf.read_data(self.mem(), &mut data).map_err(mem_err(id))?;
        Ok(Some(MapBtf {
            id: btf.id,
            name: btf.name().to_string(),
            kernel_btf: btf.kernel_btf,
            split: btf.base_btf.get() != 0,
            data,
        }))
    }
}

/// The one entry of a struct_ops map.
struct OneEntry(Option<Entry>);

impl Entries for OneEntry {
    fn next_into(&mut self, entry: &mut Entry) -> Result<bool, AccessError> {
        match self.0.take() {
            Some(e) => {
                *entry = e;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// [`Entries`] of an array map in a memory image.
struct ArrayEntries<'a, M> {
    kernel: &'a Kernel<M>,
    map: MapInfo,
    iter: ArrayIter<'a, KernelMem<M>>,
    pcpu: Option<PerCpu>,
}

impl<M: PhysRead> Entries for ArrayEntries<'_, M> {
    fn next_into(&mut self, entry: &mut Entry) -> Result<bool, AccessError> {
        let id = self.map.id;
        let Some((key, elem)) = self.iter.next().map_err(mem_err(id))? else {
            return Ok(false);
        };
        entry.key.clear();
        entry.key.extend_from_slice(&key.to_le_bytes());
        match (elem, &self.pcpu) {
            (ArrayElem::Value(kva), _) => {
                entry.value.resize(self.map.value_size as usize, 0);
                self.kernel
                    .mem()
                    .read_kva(kva, &mut entry.value)
                    .map_err(mem_err(id))?;
            }
            (ArrayElem::Pptr(ptr), Some(pcpu)) => {
                self.kernel
                    .read_percpu(id, pcpu, ptr, self.map.value_size, &mut entry.value)?;
            }
            (ArrayElem::Pptr(_), None) => return Err(wrong(&self.map, "a percpu_array map")),
        }
        Ok(true)
    }
}

/// [`Entries`] of a hash map in a memory image.
struct HtabEntries<'a, M> {
    kernel: &'a Kernel<M>,
    map: MapInfo,
    htab: Htab,
    iter: HtabIter<'a, KernelMem<M>>,
    pcpu: Option<PerCpu>,
}

impl<M: PhysRead> Entries for HtabEntries<'_, M> {
    fn next_into(&mut self, entry: &mut Entry) -> Result<bool, AccessError> {
        let id = self.map.id;
        let Some(e) = self.iter.next().map_err(mem_err(id))? else {
            return Ok(false);
        };
        let mem = self.kernel.mem();
        entry.key.resize(self.map.key_size as usize, 0);
        match &self.pcpu {
            None => {
                entry.value.resize(self.map.value_size as usize, 0);
                match self.iter.last_key_value() {
                    // The walk read the whole element already.
                    Some((key, value)) => {
                        entry.key.copy_from_slice(key);
                        entry.value.copy_from_slice(value);
                    }
                    None => self
                        .htab
                        .read_key_value(mem, &e, &mut entry.key, &mut entry.value)
                        .map_err(mem_err(id))?,
                }
            }
            Some(pcpu) => {
                self.htab
                    .read_key(mem, &e, &mut entry.key)
                    .map_err(mem_err(id))?;
                self.kernel.read_percpu(
                    id,
                    pcpu,
                    e.value,
                    self.map.value_size,
                    &mut entry.value,
                )?;
            }
        }
        Ok(true)
    }
}

/// [`ArenaPages`] of an arena in a memory image.
struct KernelArenaPages<'a, M> {
    kernel: &'a Kernel<M>,
    id: u32,
    pages: bpfmem_core::arena::ArenaPages<'a, KernelMem<M>>,
}

impl<M: PhysRead> ArenaPages for KernelArenaPages<'_, M> {
    fn next_into(&mut self, page: &mut ArenaPageData) -> Result<bool, AccessError> {
        let Some(p) = self.pages.next().map_err(mem_err(self.id))? else {
            return Ok(false);
        };
        page.user_addr = p.user_addr;
        page.data.resize(PAGE_SIZE as usize, 0);
        self.kernel
            .mem()
            .read_kva(p.kva, &mut page.data)
            .map_err(mem_err(self.id))?;
        Ok(true)
    }
}

impl<M: PhysWrite> Kernel<M> {
    /// Write `data` at `offset` into the value of `key` in ARRAY map `id`, in
    /// the guest's memory. Checked against `max_entries` and `value_size`; a
    /// value that crosses pages is written page by page, each through its own
    /// translation. Nothing is written if the checks fail; a value may be left
    /// half written if memory refuses a write midway.
    pub fn write_array_value(
        &self,
        id: u32,
        key: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<(), AccessError> {
        let m = self.map_info(id)?;
        if m.map_type != MapType::ARRAY {
            return Err(wrong(&m, "an array map"));
        }
        check_key(&m, key)?;
        check_window(&m, offset, data.len())?;
        let a = Array::new(self.mem(), &m, self.offsets()).map_err(mem_err(id))?;
        let w = a.write_plan(key, offset, data.len()).map_err(mem_err(id))?;
        let mut kva = w.kva;
        let mut rest = data;
        while !rest.is_empty() {
            let (pa, left) = self.mem().translate(kva).map_err(mem_err(id))?;
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
            let (now, later) = rest.split_at(n);
            self.mem().mem().write_phys(pa, now).map_err(mem_err(id))?;
            rest = later;
            kva = kva.checked_add(n as u64).ok_or(AccessError::Memory {
                id,
                error: Error::malformed("array value", kva),
            })?;
        }
        Ok(())
    }
}
