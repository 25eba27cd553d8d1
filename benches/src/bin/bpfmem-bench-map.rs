//! `bpfmem-bench-map PIN [ENTRIES]`: create a full u64 -> u64 hash of ENTRIES
//! elements (default 1048576) on the host, pin it at PIN (a path in a mounted
//! bpffs) and print its map id. The map lives until PIN is removed. Needs root.
//! Used by `benches/compare/run.sh` for the live comparison with bpftool.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(pin) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bpfmem-bench-map PIN [ENTRIES]");
        return ExitCode::from(2);
    };
    let entries = match args.next().map(|a| a.to_string_lossy().parse::<u32>()) {
        None => 1 << 20,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("bpfmem-bench-map: ENTRIES must be a positive number");
            return ExitCode::from(2);
        }
    };
    let made = bpfmem_benches::live::u64_hash("bench_1m", entries)
        .and_then(|(fd, id)| bpfmem_benches::live::pin(&fd, &pin).map(|()| id));
    match made {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bpfmem-bench-map: {}: {e}", pin.display());
            ExitCode::FAILURE
        }
    }
}
