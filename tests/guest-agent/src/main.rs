//! The test-bed guest agent: `/init` of the guest's initramfs.
//!
//! As PID 1 it mounts /proc, /sys and /dev, loads the modules in
//! `/modules/order`, creates the maps of [`plan::MAPS`] with contents from the
//! `bpfmem.seed=` kernel parameter, dumps every map in the system and the BTF
//! objects of those maps through `bpf(2)`, writes that manifest to the
//! `isa-debugcon` port (0xe9) followed by [`MANIFEST_END`], prints [`READY`] on
//! the console and sleeps forever (init must not exit). If it cannot, it prints `BPFMEM-FATAL: <why>` instead of READY.
//!
//! `--host-selftest [--seed N]` does the map work on the machine it runs on,
//! without mounts, modules or debugcon, prints the manifest JSON on stdout and
//! exits.

mod bpf;
mod debugcon;
mod maps;
mod objects;
mod selfread;
mod sys;
mod truth;
mod vmlinux;

use std::io::{self, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::panic;
use std::path::Path;

use bpfmem_guest_agent::manifest::{Hex, Manifest, FATAL, MANIFEST_VERSION, POKE_SEEN};
use bpfmem_guest_agent::plan;
use bpfmem_guest_agent::{MANIFEST_END, READY};

use debugcon::{Console, DebugCon};

/// Where the initramfs keeps modules to load.
const MODULES_DIR: &str = "/modules";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--host-selftest") {
        std::process::exit(host_selftest(&args[1..]));
    }
    if std::process::id() != 1 {
        eprintln!("bpfmem-guest-agent: runs as init (PID 1) of a test-bed guest; on a host use --host-selftest");
        std::process::exit(2);
    }
    // A panic in PID 1 would take the kernel down with it: report it and stay.
    if panic::catch_unwind(run_init).is_err() {
        Console::open().line(&format!("{FATAL}: the agent panicked"));
    }
    loop {
        std::thread::park();
    }
}

/// Everything the agent gathers, in both modes, with what must stay alive:
/// the maps it made and its program.
fn gather(
    seed: u64,
    notes: Vec<String>,
    modules: Vec<String>,
) -> (Manifest, Vec<maps::Created>, Option<OwnedFd>) {
    let mut notes = notes;
    let possible_cpus =
        sys::read_cpu_list("/sys/devices/system/cpu/possible").unwrap_or_else(|e| {
            notes.push(e);
            Vec::new()
        });
    let online_cpus = sys::read_cpu_list("/sys/devices/system/cpu/online").unwrap_or_else(|e| {
        notes.push(e);
        Vec::new()
    });
    let nr_cpus = u32::try_from(possible_cpus.len()).ok().filter(|&n| n > 0);

    let created = maps::create_all(seed, nr_cpus, &mut notes);
    let prog = objects::load_agent_prog(&created, &mut notes);
    let maps = truth::dump_all(nr_cpus, &created, &mut notes);
    let btfs = truth::dump_btfs(&maps, &mut notes);
    let progs = objects::dump_progs(&mut notes);
    let btf_objects = objects::dump_btf_objects(&mut notes);
    notes.extend(
        maps::check_against_plan(seed, nr_cpus, &created, &maps, &btfs)
            .into_iter()
            .chain(objects::check(prog.is_some(), &maps, &progs, &btf_objects))
            .map(|p| format!("check: {p}")),
    );
    let release = sys::release(&mut notes);
    let kallsyms = sys::read_kallsyms(&mut notes);
    // Only a guest reads itself: a host may lack kcore or hold other maps.
    let (kcore, devmem) = if std::process::id() == 1 {
        (Some(selfread::kcore(&maps)), Some(selfread::devmem(&maps)))
    } else {
        (None, None)
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        seed,
        release,
        possible_cpus,
        online_cpus,
        kallsyms,
        maps,
        btfs,
        progs,
        btf_objects,
        kcore,
        devmem,
        modules,
        notes,
    };
    (manifest, created, prog)
}

/// PID 1 mode. Returns only to sleep.
fn run_init() {
    let mut notes = Vec::new();
    for (fstype, target) in [
        (c"proc", "/proc"),
        (c"sysfs", "/sys"),
        (c"devtmpfs", "/dev"),
    ] {
        if let Err(e) = sys::mount(fstype, target) {
            notes.push(e);
        }
    }
    sys::ensure_stdio();
    let mut console = Console::open();
    console.line("bpfmem-agent: started");

    let seed = match std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| e.to_string())
        .and_then(|c| sys::parse_seed(&c))
    {
        Ok(seed) => seed.unwrap_or(sys::DEFAULT_SEED),
        Err(e) => {
            notes.push(format!("/proc/cmdline: {e}; seed {}", sys::DEFAULT_SEED));
            sys::DEFAULT_SEED
        }
    };
    let modules = sys::load_modules(Path::new(MODULES_DIR), &mut notes);

    // `created` keeps the maps alive: they die with their last descriptor.
    let (manifest, created, prog) = gather(seed, notes, modules);
    let created_count = created.len();
    console.line(&format!(
        "bpfmem-agent: seed {seed}, created {created_count} of {} maps, {} maps, {} programs and {} BTF objects in the system, {} notes",
        plan::MAPS.len(),
        manifest.maps.len(),
        manifest.progs.len(),
        manifest.btf_objects.len(),
        manifest.notes.len()
    ));
    for note in &manifest.notes {
        console.line(&format!("bpfmem-agent: note: {note}"));
    }

    let written = match DebugCon::open() {
        Ok(port) => write_manifest(port, &manifest),
        Err(e) => {
            console.line(&format!(
                "bpfmem-agent: ioperm(0xe9): {}; manifest goes to the console",
                sys::errno_text(&e)
            ));
            write_manifest(console.writer(), &manifest)
        }
    };
    match (written, created_count) {
        (Err(e), _) => console.line(&format!("{FATAL}: writing the manifest: {e}")),
        (Ok(()), 0) => console.line(&format!(
            "{FATAL}: no map could be created (see the manifest notes)"
        )),
        (Ok(()), _) => {
            console.line(READY);
            watch_poke(&created, &mut console);
        }
    }
    // Keep the maps and the program until the guest is killed.
    std::mem::forget(created);
    std::mem::forget(prog);
}

/// Watch the [`plan::POKE`] map forever and report every value that changes and
/// then holds still for one more poll (the host may write a value in pieces).
fn watch_poke(created: &[maps::Created], console: &mut Console) {
    let Some(c) = created
        .iter()
        .find(|c| plan::MAPS.get(c.index as usize).map(|m| m.name) == Some(plan::POKE))
    else {
        console.line("bpfmem-agent: no poke map to watch");
        return;
    };
    let map = c
        .fd()
        .try_clone()
        .and_then(|fd| bpf::map_info(&fd).and_then(|info| bpf::Map::new(fd, &info, 1)));
    let map = match map {
        Ok(m) => m,
        Err(e) => {
            console.line(&format!("bpfmem-agent: poke map: {}", sys::errno_text(&e)));
            return;
        }
    };
    let read = |key: u32| -> Option<Vec<u8>> {
        let mut v = vec![0u8; map.value_buf()];
        map.lookup(&key.to_le_bytes(), &mut v)
            .ok()
            .filter(|&found| found)?;
        Some(v)
    };
    let entries = plan::MAPS
        .iter()
        .find(|m| m.name == plan::POKE)
        .map_or(0, |m| m.max_entries);
    let mut churn = created
        .iter()
        .find(|c| plan::MAPS.get(c.index as usize).map(|m| m.name) == Some(plan::CHURN))
        .and_then(|c| c.fd().try_clone().ok())
        .and_then(|fd| {
            bpf::map_info(&fd)
                .and_then(|info| bpf::Map::new(fd, &info, 1))
                .ok()
        });
    let mut known: Vec<Option<Vec<u8>>> = (0..entries).map(read).collect();
    let mut changed: Vec<Option<Vec<u8>>> = vec![None; known.len()];
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        for key in 0..entries {
            let i = key as usize;
            let now = read(key);
            if now == known[i] {
                changed[i] = None;
                continue;
            }
            if changed[i].is_some() && changed[i] == now {
                let hex = now.clone().map(|v| Hex(v).to_string()).unwrap_or_default();
                console.line(&format!("{POKE_SEEN} {key} {hex}"));
                known[i] = now;
                changed[i] = None;
                // The host wrote, so the images are taken: start the churn.
                if let Some(churn) = churn.take() {
                    std::thread::spawn(move || churn_forever(churn));
                }
            } else {
                changed[i] = now;
            }
        }
    }
}

/// Rewrite the [`plan::CHURN`] hash forever: every step updates (or inserts)
/// one key and deletes another, values from [`plan::churn_value`].
fn churn_forever(map: bpf::Map) {
    let mut state = 0x0063_6875_726e_u64;
    let mut generation = 0u64;
    loop {
        let r = bpfmem_guest_agent::splitmix64(&mut state);
        let key = (r as u32) % plan::CHURN_KEYS;
        generation = generation.wrapping_add(1);
        let _ = map.update(&key.to_le_bytes(), &plan::churn_value(key, generation), 0);
        let gone = ((r >> 32) as u32) % plan::CHURN_KEYS;
        let _ = map.delete(&gone.to_le_bytes());
    }
}

/// Compact JSON, then [`MANIFEST_END`].
fn write_manifest(out: impl Write, manifest: &Manifest) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    serde_json::to_writer(&mut w, manifest).map_err(io::Error::other)?;
    w.write_all(MANIFEST_END.as_bytes())?;
    w.flush()
}

/// `--host-selftest [--seed N]`: the map work on this machine; JSON on stdout.
fn host_selftest(args: &[String]) -> i32 {
    let seed = match args {
        [] => sys::DEFAULT_SEED,
        [flag, n] if flag == "--seed" => match sys::parse_seed(&format!("bpfmem.seed={n}")) {
            Ok(Some(seed)) => seed,
            _ => {
                eprintln!("bad seed {n:?}");
                return 2;
            }
        },
        _ => {
            eprintln!("usage: bpfmem-guest-agent --host-selftest [--seed N]");
            return 2;
        }
    };
    let (manifest, created, _prog) = gather(seed, Vec::new(), Vec::new());
    for note in &manifest.notes {
        eprintln!("note: {note}");
    }
    for p in &manifest.progs {
        eprintln!(
            "prog {}: {:?}, type {}, tag {}, load_time {}, jited {} bytes, xlated {} bytes, btf {}, map ids {:?}",
            p.id, p.name, p.prog_type, p.tag, p.load_time, p.jited_len, p.xlated_len, p.btf_id, p.map_ids
        );
    }
    for b in &manifest.btf_objects {
        eprintln!(
            "btf object {}: name {:?}, kernel_btf {}, {} bytes",
            b.id, b.name, b.kernel_btf, b.size
        );
    }
    for b in &manifest.btfs {
        eprintln!(
            "btf {}: name {:?}, kernel_btf {}, {} bytes",
            b.id,
            b.name,
            b.kernel_btf,
            b.data.0.len()
        );
    }
    let problems = manifest
        .notes
        .iter()
        .filter(|n| n.starts_with("check: "))
        .count();
    eprintln!(
        "created {} of {} maps; {} maps in the system; {problems} disagree with the plan",
        created.len(),
        plan::MAPS.len(),
        manifest.maps.len()
    );
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let r = serde_json::to_writer(&mut out, &manifest)
        .map_err(io::Error::other)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match r {
        Ok(()) if problems == 0 && created.len() == plan::MAPS.len() => 0,
        Ok(()) => 1,
        Err(e) => {
            eprintln!("writing the manifest: {e}");
            1
        }
    }
}
