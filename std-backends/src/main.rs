//! `bpfmem`: read BPF state from a kernel's memory.

use std::process::ExitCode;

use bpfmem::Image;
use bpfmem_core::Pa;
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "bpfmem",
    version,
    about = "Read Linux BPF state from kernel memory",
    after_help = "Examples:\n  bpfmem --core guest.elf kernel show\n  bpfmem --ram guest-ram.bin -j kernel show"
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
    #[command(subcommand)]
    object: Object,
}

#[derive(Subcommand)]
enum Object {
    /// What discovery found about the kernel.
    Kernel {
        #[command(subcommand)]
        verb: KernelVerb,
    },
}

#[derive(Subcommand)]
enum KernelVerb {
    /// Show release, KASLR offset, phys_base, paging mode and where VMCOREINFO came from.
    Show,
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

fn kernel_show(cli: &Cli) -> Result<(), String> {
    let image = open(cli)?;
    let (info, origin) = image
        .vmcoreinfo()
        .map_err(|e| format!("{}: VMCOREINFO: {e}", image.path().display()))?;
    let levels = match info.pgtable_l5_enabled() {
        Some(true) => Some(5),
        Some(false) => Some(4),
        None => None,
    };
    if cli.json || cli.pretty {
        let v = json!({
            "release": info.osrelease(),
            "page_size": info.page_size(),
            "kaslr_offset": info.kernel_offset(),
            "phys_base": info.phys_base(),
            "paging_levels": levels,
            "vmcoreinfo": origin.to_string(),
        });
        let out = if cli.pretty {
            serde_json::to_string_pretty(&v)
        } else {
            serde_json::to_string(&v)
        };
        println!("{}", out.map_err(|e| e.to_string())?);
    } else {
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
        match levels {
            Some(l) => println!("paging: {l}-level"),
            None => println!("paging: unknown"),
        }
        println!("VMCOREINFO: {origin}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.object {
        Object::Kernel {
            verb: KernelVerb::Show,
        } => kernel_show(&cli),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bpfmem: {e}");
            ExitCode::FAILURE
        }
    }
}
