//! `bpfmem`: bpftool's map commands, on memory images of a kernel as well as
//! on the live host.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::map::MapSel;
use cli::source::{Source, SourceArgs};
use cli::{Failure, Out};

const EXAMPLES: &str = "Examples:
  bpfmem --core guest.elf map show
  bpfmem --core guest.elf -j map dump id 5
  bpfmem --ram guest-ram.bin map lookup name counters key 1 0 0 0
  bpfmem --core guest.elf prog show
  bpfmem --core guest.elf btf show
  bpfmem --core guest.elf kernel show
  bpfmem map show                      (the live host, through bpf(2))";

#[derive(Parser)]
#[command(
    name = "bpfmem",
    version,
    about = "Read Linux BPF maps out of kernel memory (or the live kernel), bpftool-style",
    after_help = EXAMPLES
)]
struct Cli {
    /// Read an ELF core of the machine (QEMU dump-guest-memory, kdump /proc/vmcore).
    #[arg(long, value_name = "FILE", global = true)]
    core: Option<PathBuf>,
    /// Read a raw guest-RAM file (QEMU memory-backend-file, VMM snapshot memory).
    #[arg(long, value_name = "FILE", global = true)]
    ram: Option<PathBuf>,
    /// Physical address of the RAM file's first byte.
    #[arg(long, value_name = "PA", default_value = "0", value_parser = parse_u64, global = true)]
    ram_base: u64,
    /// Read this host's memory through /proc/kcore (root).
    #[arg(long, global = true)]
    kcore: bool,
    /// Read this host's memory through /dev/mem (root; most kernels forbid it).
    #[arg(long, global = true)]
    devmem: bool,
    /// Structure layouts from this vmlinux or raw BTF file instead of the image's own BTF.
    #[arg(long, visible_alias = "vmlinux", value_name = "FILE", global = true)]
    btf: Option<PathBuf>,
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
    /// BPF maps.
    Map {
        #[command(subcommand)]
        verb: MapVerb,
    },
    /// BPF programs.
    Prog {
        #[command(subcommand)]
        verb: ProgVerb,
    },
    /// BTF objects.
    Btf {
        #[command(subcommand)]
        verb: BtfVerb,
    },
    /// What discovery found about the kernel of a memory image.
    Kernel {
        #[command(subcommand)]
        verb: KernelVerb,
    },
}

#[derive(Subcommand)]
enum MapVerb {
    /// List maps, or the ones named by `id N` or `name NAME`.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  bpfmem --core guest.elf map show\n  bpfmem --ram ram.bin -j map show name counters"
    )]
    Show {
        #[arg(num_args = 0..=2, value_names = ["id|name", "VALUE"])]
        map: Vec<String>,
    },
    /// Every entry of a map (all maps of that name, for `name NAME`).
    #[command(
        after_help = "Examples:\n  bpfmem --core guest.elf map dump id 5\n  bpfmem --core guest.elf -p map dump name counters"
    )]
    Dump {
        #[arg(num_args = 2, value_names = ["id|name", "VALUE"], required = true)]
        map: Vec<String>,
    },
    /// One entry: `map lookup id N key BYTES` (bytes as 1 0x01 01, or `key hex 01 00`).
    #[command(
        after_help = "Examples:\n  bpfmem --core guest.elf map lookup id 5 key 1 0 0 0\n  bpfmem --core guest.elf -j map lookup name counters key hex 01 00 00 00"
    )]
    Lookup {
        #[arg(num_args = 4.., value_names = ["id|name", "VALUE", "key", "BYTES"], required = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ProgVerb {
    /// List programs, or the ones named by `id N` or `name NAME`: type, name,
    /// tag, load time (since boot), translated and JIT sizes, the maps used.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  bpfmem --core guest.elf prog show\n  bpfmem --core guest.elf -j prog show id 3"
    )]
    Show {
        #[arg(num_args = 0..=2, value_names = ["id|name", "VALUE"])]
        prog: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BtfVerb {
    /// List BTF objects (vmlinux, modules, BTF loaded with programs), or `id N`,
    /// with the programs and maps that use each.
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  bpfmem --core guest.elf btf show\n  bpfmem --core guest.elf -j btf show id 1"
    )]
    Show {
        #[arg(num_args = 0..=2, value_names = ["id", "N"])]
        btf: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KernelVerb {
    /// Release, KASLR offset, phys_base, paging mode, direct-map base, possible
    /// CPUs, and where VMCOREINFO and BTF came from.
    #[command(after_help = "Example:\n  bpfmem --core guest.elf kernel show")]
    Show,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

fn run(cli: &Cli, out: &Out) -> Result<(), Failure> {
    let open = || {
        Source::open(&SourceArgs {
            core: cli.core.clone(),
            ram: cli.ram.clone(),
            ram_base: cli.ram_base,
            kcore: cli.kcore,
            devmem: cli.devmem,
            btf: cli.btf.clone(),
        })
        .map_err(Failure::Error)
    };
    match &cli.object {
        Object::Map { verb } => match verb {
            MapVerb::Show { map } => {
                let sel = MapSel::parse(map, true)?;
                cli::map::show(&open()?, &sel, out)
            }
            MapVerb::Dump { map } => {
                let sel = MapSel::parse(map, false)?;
                cli::map::dump(&open()?, &sel, out)
            }
            MapVerb::Lookup { args } => {
                let (map, key) = args.split_at(2.min(args.len()));
                let sel = MapSel::parse(map, false)?;
                cli::map::lookup(&open()?, &sel, key, out)
            }
        },
        Object::Prog {
            verb: ProgVerb::Show { prog },
        } => cli::objects::prog_show(&open()?, prog, out),
        Object::Btf {
            verb: BtfVerb::Show { btf },
        } => cli::objects::btf_show(&open()?, btf, out),
        Object::Kernel {
            verb: KernelVerb::Show,
        } => cli::kernel::show(&open()?, out),
    }
}

fn main() -> ExitCode {
    // Never a panic trace: a bug says one line and exits 1.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("bpfmem: internal error (please report): {what}");
        std::process::exit(1);
    }));
    let cli = Cli::parse();
    let out = Out::new(cli.json, cli.pretty);
    let r = run(&cli, &out).and_then(|()| out.flush());
    match r {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            let _ = out.flush();
            eprintln!("bpfmem: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            let _ = out.flush();
            eprintln!("bpfmem: {e}");
            ExitCode::FAILURE
        }
    }
}
