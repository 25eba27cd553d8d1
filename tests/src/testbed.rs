//! The guest matrix: every kernel line booted every way the test bed covers, each
//! leaving an ELF dump, a raw RAM file and the agent's manifest. Built once per test
//! process and shared by all real-kernel tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bpfmem_guest_agent::manifest::{Manifest, MANIFEST_END};

use crate::initramfs::{self, Member};
use crate::kernels::{self, Kernel};
use crate::poke::{self, Poke};
use crate::qemu::{self, Boot};
use crate::{cache, run, Fallible};

/// One booted and dumped guest.
#[derive(Debug)]
pub struct Guest {
    /// "6.12-bzimage-la57" and the like.
    pub name: String,
    pub kernel: Kernel,
    pub boot: Boot,
    /// ELF core written by QEMU's `dump-guest-memory`.
    pub elf: PathBuf,
    /// The guest's RAM file (file offset == guest physical address).
    pub ram: PathBuf,
    /// What the guest reported through bpf(2) and /proc.
    pub manifest: Manifest,
    /// Start of QEMU to a complete manifest.
    pub boot_time: Duration,
    /// The live write round trip ([`crate::poke`]), run after the images were
    /// taken: what was written and what the guest read back, or why it failed.
    pub poke: Result<Poke, String>,
}

/// The boots every kernel line gets.
pub const BOOTS: [Boot; 3] = [
    Boot::BzImage { la57: true },
    Boot::BzImage { la57: false },
    Boot::Pvh,
];

/// Whether missing QEMU or kernels must fail the tests instead of skipping them:
/// under CI (`CI=true`) or with `BPFMEM_REQUIRE_REAL=1`.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("BPFMEM_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

/// The guests, booting them on first use. `None` means the test bed cannot run
/// here and the caller should return early: that is only allowed outside CI; under
/// CI this panics with the reason, failing the test.
pub fn guests() -> Option<&'static [Guest]> {
    static GUESTS: OnceLock<Result<Vec<Guest>, String>> = OnceLock::new();
    match GUESTS.get_or_init(|| build_all().map_err(|e| e.to_string())) {
        Ok(g) => Some(g),
        Err(e) if required() => panic!("real-kernel test bed unavailable: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: real-kernel test bed unavailable (set CI=true to fail): {e}");
            None
        }
    }
}

/// `BPFMEM_TESTBED_REUSE=any`: see [`boot_one`].
fn reuse_any() -> bool {
    std::env::var("BPFMEM_TESTBED_REUSE").is_ok_and(|v| v == "any")
}

fn build_all() -> Fallible<Vec<Guest>> {
    which("qemu-system-x86_64")?;
    let agent = if reuse_any() {
        PathBuf::new()
    } else {
        build_agent()?
    };
    let kernels = kernels::fetch_all()?;
    let mut jobs = Vec::new();
    for (ki, k) in kernels.iter().enumerate() {
        let initrd = if reuse_any() {
            PathBuf::new()
        } else {
            initrd(k, &agent)?
        };
        for (bi, boot) in BOOTS.iter().enumerate() {
            jobs.push((k, initrd.clone(), *boot, 1000 + (ki * 10 + bi) as u64));
        }
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let job = queue.lock().unwrap().pop();
                let Some((i, (k, initrd, boot, seed))) = job else {
                    break;
                };
                let r = boot_one(k, &initrd, boot, seed, &agent);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn which(tool: &str) -> Fallible<()> {
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}")))
    .map(drop)
    .map_err(|_| format!("{tool} not installed (Debian package qemu-system-x86)").into())
}

/// Build the guest agent as a static binary, in a target directory of its own so
/// the nested cargo does not wait on the lock of the one running the tests.
fn build_agent() -> Fallible<PathBuf> {
    let ws = cache::workspace();
    let target_dir = ws.join("target/guest-agent");
    let triple = "x86_64-unknown-linux-gnu";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(&ws)
        .args(["build", "--release", "--quiet", "-p", "bpfmem-guest-agent"])
        .args(["--target", triple, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR"))?;
    Ok(target_dir.join(triple).join("release/bpfmem-guest-agent"))
}

/// Build the `bpfmem` command (release) for the tests that run it on the
/// test bed's images, once per test process.
pub fn bpfmem_bin() -> Fallible<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let ws = cache::workspace();
        let target_dir = ws.join("target/testbed-cli");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(Command::new(cargo)
            .current_dir(&ws)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "bpfmem",
                "--bin",
                "bpfmem",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("CARGO_TARGET_DIR"))
        .map(|_| target_dir.join("release/bpfmem"))
        .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(Into::into)
}

/// The initramfs for kernel `k`: the agent as /init, and `qemu_fw_cfg` so the
/// kernel hands QEMU its VMCOREINFO note for the ELF dump.
fn initrd(k: &Kernel, agent: &Path) -> Fallible<PathBuf> {
    let dir = cache::root().join("initrd").join(&k.release);
    fs::create_dir_all(&dir)?;
    let fw_cfg = k.module("kernel/drivers/firmware/qemu_fw_cfg", &dir)?;
    let agent = fs::read(agent)?;
    let fw_cfg = fs::read(fw_cfg)?;
    let archive = initramfs::build(&[
        Member::Dir("dev"),
        Member::Char {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
        Member::Dir("proc"),
        Member::Dir("sys"),
        Member::Dir("modules"),
        Member::File {
            path: "modules/qemu_fw_cfg.ko",
            mode: 0o644,
            data: &fw_cfg,
        },
        Member::File {
            path: "modules/order",
            mode: 0o644,
            data: b"qemu_fw_cfg.ko\n",
        },
        Member::File {
            path: "init",
            mode: 0o755,
            data: &agent,
        },
    ]);
    let path = dir.join("initrd.cpio");
    fs::write(&path, archive)?;
    Ok(path)
}

/// FNV-1a, to tell whether a cached guest was made from the same inputs.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Boots a guest may take. Software emulation crashed Debian's 6.12 kernel early
/// in about one boot in four until the test bed turned off CX16 (see
/// [`crate::qemu`]); should a guest kernel still crash, the crash is seen on the
/// console within seconds, reported on stderr, and the boot repeated.
const BOOT_ATTEMPTS: u32 = 5;

fn boot_with_retries(name: &str, spec: &qemu::Spec<'_>) -> Fallible<qemu::Artifacts> {
    let mut attempt = 1;
    loop {
        match qemu::run_guest(spec, MANIFEST_END, Some(&poke::poke)) {
            Ok(a) => return Ok(a),
            Err(e) if attempt < BOOT_ATTEMPTS => {
                let text = e.to_string();
                let why = text
                    .lines()
                    .find(|l| ["Oops", "panic", "BUG:"].iter().any(|w| l.contains(w)))
                    .or_else(|| text.lines().next())
                    .unwrap_or_default();
                eprintln!(
                    "test bed: {name}: boot {attempt} of {BOOT_ATTEMPTS} failed, retrying: {why}"
                );
                attempt += 1;
            }
            Err(e) => {
                return Err(format!("guest {name}: {e} (boot {attempt} of {BOOT_ATTEMPTS})").into())
            }
        }
    }
}

/// Bumped whenever what a boot leaves behind changes, so that
/// `BPFMEM_TESTBED_REUSE=1` does not reuse results of an older test bed.
const STAMP_REVISION: u32 = 4;

fn boot_one(k: &Kernel, initrd: &Path, boot: Boot, seed: u64, agent: &Path) -> Fallible<Guest> {
    let name = format!("{}-{}", k.line.name, boot.name());
    let dir = cache::root().join("guests").join(&name);
    let kernel = match boot {
        Boot::Pvh => &k.vmlinux,
        Boot::BzImage { .. } => &k.bzimage,
    };
    let stamp = if reuse_any() {
        String::new()
    } else {
        format!(
            "r{STAMP_REVISION} {} {} {seed} {:016x}",
            k.package,
            boot.name(),
            fnv(&fs::read(agent)?)
        )
    };
    let stamp_file = dir.join("stamp");
    let manifest_file = dir.join("manifest.json");
    let poke_file = dir.join("poke.json");
    // BPFMEM_TESTBED_REUSE=1 reuses images made from the same inputs (for quick
    // iteration on the tests themselves); by default every run boots afresh.
    // BPFMEM_TESTBED_REUSE=any takes whatever complete guest the cache holds,
    // from any inputs, and never boots (for working on tests while the agent
    // changes); a guest missing from the cache is then an error.
    let any = reuse_any();
    if any && !(stamp_file.exists() && poke_file.exists()) {
        return Err(format!("guest {name}: not in the cache (BPFMEM_TESTBED_REUSE=any)").into());
    }
    let reuse = any
        || std::env::var("BPFMEM_TESTBED_REUSE").is_ok_and(|v| v == "1")
            && fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
            && poke_file.exists();
    let (elf, ram, raw, boot_time, poked) = if reuse {
        (
            dir.join("dump.elf"),
            dir.join("ram.bin"),
            fs::read(&manifest_file)?,
            Duration::ZERO,
            serde_json::from_slice(&fs::read(&poke_file)?)?,
        )
    } else {
        let _ = fs::remove_file(&stamp_file);
        let spec = qemu::Spec {
            kernel,
            boot,
            initrd,
            seed,
            dir: &dir,
        };
        let a = boot_with_retries(&name, &spec)?;
        let poked: Result<String, String> = a.live.unwrap_or(Err("no live step ran".into()));
        fs::write(&manifest_file, &a.manifest)?;
        fs::write(&poke_file, serde_json::to_vec(&poked)?)?;
        fs::write(&stamp_file, &stamp)?;
        eprintln!("test bed: {name} ready in {:.1?}", a.boot_time);
        (a.elf, a.ram, a.manifest, a.boot_time, poked)
    };
    let poke =
        poked.and_then(|json| serde_json::from_str::<Poke>(&json).map_err(|e| e.to_string()));
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| format!("guest {name}: manifest does not parse: {e}"))?;
    Ok(Guest {
        name,
        kernel: k.clone(),
        boot,
        elf,
        ram,
        manifest,
        boot_time,
        poke,
    })
}
