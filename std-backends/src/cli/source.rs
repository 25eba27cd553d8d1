//! Where the command reads from: a memory image, the host's /proc/kcore or
//! /dev/mem, or (with no source option) the live kernel through bpf(2).

use std::path::PathBuf;

use bpfmem::source::{DevMem, ElfCore, Kcore, RamFile};
use bpfmem::{BpfMapAccessor, DiscoverOptions, Image, Kernel, LiveBpf};
use bpfmem_core::Pa;

/// The source options, as parsed.
pub struct SourceArgs {
    pub core: Option<PathBuf>,
    pub ram: Option<PathBuf>,
    pub ram_base: u64,
    pub kcore: bool,
    pub devmem: bool,
    pub btf: Option<PathBuf>,
}

/// An opened source.
pub enum Source {
    /// A kernel found in memory.
    Image(Box<Kernel<Image>>),
    /// The running kernel, through bpf(2).
    Live(LiveBpf),
}

impl Source {
    pub fn open(a: &SourceArgs) -> Result<Source, String> {
        let image = match (&a.core, &a.ram, a.kcore, a.devmem) {
            (Some(p), None, false, false) => ElfCore::open(p).map(Image::Core),
            (None, Some(p), false, false) => RamFile::open(p, Pa(a.ram_base)).map(Image::Ram),
            (None, None, true, false) => Kcore::open_proc().map(Image::Kcore),
            (None, None, false, true) => DevMem::open_host().map(Image::DevMem),
            (None, None, false, false) => {
                return LiveBpf::open().map(Source::Live).map_err(|e| e.to_string())
            }
            _ => return Err("give at most one of --core, --ram, --kcore, --devmem".into()),
        }
        .map_err(|e| e.to_string())?;
        let path = image.path().display().to_string();
        let opts = DiscoverOptions {
            btf_file: a.btf.clone(),
        };
        Kernel::open(image, &opts)
            .map(|k| Source::Image(Box::new(k)))
            .map_err(|e| format!("{path}: {e}"))
    }

    /// The map interface of either source.
    pub fn maps(&self) -> &dyn BpfMapAccessor {
        match self {
            Source::Image(k) => k.as_ref(),
            Source::Live(l) => l,
        }
    }

    /// What to put in front of errors: the file, or "bpf(2)".
    pub fn name(&self) -> String {
        match self {
            Source::Image(k) => k.mem().mem().path().display().to_string(),
            Source::Live(_) => "bpf(2)".into(),
        }
    }

    /// `memlock` and `frozen` from the map's fdinfo (kernel/bpf/syscall.c
    /// `bpf_map_show_fdinfo()`), for live maps; a memory image has no fdinfo.
    pub fn fdinfo(&self, id: u32) -> (Option<u64>, Option<u64>) {
        let Source::Live(l) = self else {
            return (None, None);
        };
        let Some(fd) = l.map_fd(id) else {
            return (None, None);
        };
        use std::os::fd::AsRawFd;
        let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            .unwrap_or_default();
        let field = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().parse().ok())?
            })
        };
        (field("memlock"), field("frozen"))
    }
}
