//! `bpfmem`: read BPF state from a kernel's memory.

use std::process::ExitCode;

use bpfmem::{DiscoverOptions, Image, Kernel};
use bpfmem_core::Pa;
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "bpfmem",
    version,
    about = "Read Linux BPF state from kernel memory",
    after_help = "Examples:\n  bpfmem --core guest.elf map show\n  bpfmem --ram guest-ram.bin -j map show id 3\n  bpfmem --core guest.elf kernel show"
)]
struct Cli {
    /// An ELF core of the machine (QEMU dump-guest-memory, kdump /proc/vmcore).
    #[arg(long, value_name = "FILE", conflicts_with = "ram", global = true)]
    core: Option<std::path::PathBuf>,
    /// A raw guest-RAM file (QEMU memory-backend-file, VMM snapshot memory).
    #[arg(long, value_name = "FILE", global = true)]
    ram: Option<std::path::PathBuf>,
    /// Physical address of the RAM file's first byte.
    #[arg(long, value_name = "PA", default_value = "0", value_parser = parse_u64, global = true)]
    ram_base: u64,
    /// JSON output.
    #[arg(short, long, global = true)]
    json: bool,
    /// Pretty-printed JSON output (implies --json).
    #[arg(short, long, global = true)]
    pretty: bool,
    /// Take structure layouts from this vmlinux or raw BTF file instead of the
    /// kernel's own BTF in the image.
    #[arg(long, value_name = "FILE", global = true)]
    btf: Option<std::path::PathBuf>,
    #[command(subcommand)]
    object: Object,
}

#[derive(Subcommand)]
enum Object {
    /// BPF maps.
    Map {
        #[command(subcommand)]
        verb: MapVerb,
    },
    /// What discovery found about the kernel.
    Kernel {
        #[command(subcommand)]
        verb: KernelVerb,
    },
}

#[derive(Subcommand)]
enum KernelVerb {
    /// Show what discovery found: release, KASLR offset, phys_base, paging mode,
    /// direct-map base, possible CPUs, where VMCOREINFO and BTF came from.
    Show,
}

#[derive(Subcommand)]
enum MapVerb {
    /// List BPF maps, or one: `map show id 3`, `map show name counters`.
    #[command(
        after_help = "Examples:\n  bpfmem --core guest.elf map show\n  bpfmem --ram ram.bin -j map show name counters"
    )]
    Show {
        /// `id N` or `name NAME`.
        #[arg(num_args = 0..=2, value_names = ["id|name", "VALUE"])]
        select: Vec<String>,
    },
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

fn open(cli: &Cli) -> Result<Image, String> {
    match (&cli.core, &cli.ram) {
        (Some(path), None) => bpfmem::source::ElfCore::open(path)
            .map(Image::Core)
            .map_err(|e| e.to_string()),
        (None, Some(path)) => bpfmem::source::RamFile::open(path, Pa(cli.ram_base))
            .map(Image::Ram)
            .map_err(|e| e.to_string()),
        _ => Err("give a memory image with --core FILE or --ram FILE (live hosts: not yet)".into()),
    }
}

/// Open the image and discover the kernel in it.
fn kernel(cli: &Cli) -> Result<Kernel<Image>, String> {
    let image = open(cli)?;
    let path = image.path().display().to_string();
    let opts = DiscoverOptions {
        btf_file: cli.btf.clone(),
    };
    Kernel::open(image, &opts).map_err(|e| format!("{path}: {e}"))
}

fn print_json(cli: &Cli, v: &serde_json::Value) -> Result<(), String> {
    let out = if cli.pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    };
    println!("{}", out.map_err(|e| e.to_string())?);
    Ok(())
}

/// A CPU list as the kernel prints one (`0-3,6`).
fn cpu_list(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

fn kernel_show(cli: &Cli) -> Result<(), String> {
    let k = kernel(cli)?;
    let info = k.vmcoreinfo();
    if cli.json || cli.pretty {
        return print_json(
            cli,
            &json!({
                "release": info.osrelease(),
                "page_size": info.page_size(),
                "kaslr_offset": info.kernel_offset(),
                "phys_base": info.phys_base(),
                "paging_levels": k.paging_levels(),
                "page_offset_base": k.page_offset_base().get(),
                "nr_cpu_ids": k.nr_cpu_ids(),
                "possible_cpus": k.possible_cpus(),
                "kallsyms_symbols": k.kallsyms().num_syms(),
                "vmcoreinfo": k.vmcoreinfo_origin().to_string(),
                "btf": k.btf_origin().to_string(),
            }),
        );
    }
    println!("release: {}", info.osrelease());
    println!("page size: {}", info.page_size());
    match info.kernel_offset() {
        Some(o) => println!("KASLR offset: {o:#x}"),
        None => println!("KASLR offset: unknown"),
    }
    match info.phys_base() {
        Some(p) if p < 0 => println!("phys_base: -{:#x}", p.unsigned_abs()),
        Some(p) => println!("phys_base: {p:#x}"),
        None => println!("phys_base: unknown"),
    }
    println!("paging: {}-level", k.paging_levels());
    println!("page_offset_base: {:#x}", k.page_offset_base().get());
    println!(
        "possible CPUs: {} (nr_cpu_ids {})",
        cpu_list(k.possible_cpus()),
        k.nr_cpu_ids()
    );
    println!("kallsyms: {} symbols", k.kallsyms().num_syms());
    println!("VMCOREINFO: {}", k.vmcoreinfo_origin());
    println!("BTF: {}", k.btf_origin());
    Ok(())
}

/// Which maps a verb is about.
enum Select {
    All,
    Id(u32),
    Name(String),
}

fn select(args: &[String]) -> Result<Select, Usage> {
    match args {
        [] => Ok(Select::All),
        [kw, v] if kw == "id" => v
            .parse()
            .map(Select::Id)
            .map_err(|_| Usage(format!("map id must be a number, not '{v}'"))),
        [kw, v] if kw == "name" => Ok(Select::Name(v.clone())),
        _ => Err(Usage(format!(
            "expected 'id N' or 'name NAME', got '{}'",
            args.join(" ")
        ))),
    }
}

/// A usage error: exit status 2.
struct Usage(String);

fn map_show(cli: &Cli, args: &[String]) -> Result<(), Failure> {
    let which = select(args).map_err(Failure::Usage)?;
    let k = kernel(cli).map_err(Failure::Error)?;
    let mut shown = Vec::new();
    let mut walk = k.maps();
    while let Some(m) = walk
        .next()
        .map_err(|e| Failure::Error(format!("{}: map_idr: {e}", k.mem().mem().path().display())))?
    {
        let keep = match &which {
            Select::All => true,
            Select::Id(id) => m.id == *id,
            Select::Name(n) => m.name() == n,
        };
        if keep {
            shown.push(m);
        }
    }
    match &which {
        Select::Id(id) if shown.is_empty() => {
            return Err(Failure::Error(format!("no map with id {id}")))
        }
        Select::Name(n) if shown.is_empty() => {
            return Err(Failure::Error(format!("no map named '{n}'")))
        }
        _ => {}
    }
    if cli.json || cli.pretty {
        let v: Vec<_> = shown.iter().map(map_json).collect();
        // bpftool prints one object for `show id N`, an array otherwise.
        let v = match which {
            Select::Id(_) => v.into_iter().next().unwrap_or_default(),
            _ => serde_json::Value::Array(v),
        };
        return print_json(cli, &v).map_err(Failure::Error);
    }
    for m in &shown {
        let ty = match m.map_type.name() {
            Some(n) => n.to_string(),
            None => format!("type {}", m.map_type.0),
        };
        println!(
            "{}: {ty}  name {}  flags {:#x}",
            m.id,
            m.name(),
            m.map_flags
        );
        println!(
            "\tkey {}B  value {}B  max_entries {}",
            m.key_size, m.value_size, m.max_entries
        );
        if m.btf_id != 0 {
            println!("\tbtf_id {}", m.btf_id);
        }
    }
    Ok(())
}

/// One map as `bpftool -j map show` spells it.
fn map_json(m: &bpfmem_core::bpf_map::MapInfo) -> serde_json::Value {
    let mut v = json!({
        "id": m.id,
        "type": m.map_type.name().map_or_else(|| json!(m.map_type.0), |n| json!(n)),
        "name": m.name(),
        "flags": m.map_flags,
        "bytes_key": m.key_size,
        "bytes_value": m.value_size,
        "max_entries": m.max_entries,
    });
    if m.map_extra != 0 {
        v["map_extra"] = json!(m.map_extra);
    }
    if m.btf_id != 0 {
        v["btf_id"] = json!(m.btf_id);
    }
    v
}

/// How a command failed: usage errors exit 2, everything else 1.
enum Failure {
    Usage(Usage),
    Error(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.object {
        Object::Kernel {
            verb: KernelVerb::Show,
        } => kernel_show(&cli).map_err(Failure::Error),
        Object::Map {
            verb: MapVerb::Show { select },
        } => map_show(&cli, select),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(Usage(e))) => {
            eprintln!("bpfmem: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            eprintln!("bpfmem: {e}");
            ExitCode::FAILURE
        }
    }
}
