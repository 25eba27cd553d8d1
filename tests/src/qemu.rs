//! Boot one test-bed guest under QEMU, wait for its agent's manifest, then stop it
//! over QMP and keep its memory: an ELF core from `dump-guest-memory` and the raw
//! RAM file QEMU ran the guest in.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::Fallible;

/// How the kernel is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// bzImage through the Linux boot protocol, KASLR on; `la57` gives 5-level paging.
    BzImage { la57: bool },
    /// The uncompressed vmlinux through its PVH entry: 4-level, no KASLR.
    Pvh,
}

impl Boot {
    pub fn name(self) -> &'static str {
        match self {
            Boot::BzImage { la57: true } => "bzimage-la57",
            Boot::BzImage { la57: false } => "bzimage-4level",
            Boot::Pvh => "pvh",
        }
    }
}

/// Guest RAM size; the RAM file is exactly this big.
pub const MEM_MIB: u64 = 512;
/// Online vCPUs; more CPUs are possible (hot-pluggable) than online.
pub const ONLINE_CPUS: u32 = 2;
pub const POSSIBLE_CPUS: u32 = 4;
/// How long a guest may take from start to a complete manifest (software
/// emulation, two guests per two cores).
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// What to boot.
pub struct Spec<'a> {
    pub kernel: &'a Path,
    pub boot: Boot,
    pub initrd: &'a Path,
    pub seed: u64,
    /// Where the guest's files go.
    pub dir: &'a Path,
}

/// The files a finished guest leaves behind.
pub struct Artifacts {
    pub elf: PathBuf,
    pub ram: PathBuf,
    pub manifest: Vec<u8>,
    pub console: PathBuf,
    pub boot_time: Duration,
    /// What the live step returned, or why it failed.
    pub live: Option<Result<String, String>>,
}

/// Waits up to a timeout for a console line starting with a prefix, and returns
/// the rest of that line.
pub type WaitLine<'a> = dyn Fn(&str, Duration) -> Fallible<String> + 'a;

/// Work on the running guest after its memory was dumped: gets the RAM file the
/// guest runs in and a [`WaitLine`]; its result is kept in [`Artifacts::live`].
pub type LiveStep<'a> = dyn Fn(&Path, &WaitLine<'_>) -> Fallible<String> + 'a;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boot, wait for the manifest, dump, quit.
pub fn run_guest(
    spec: &Spec<'_>,
    manifest_end: &str,
    live: Option<&LiveStep<'_>>,
) -> Fallible<Artifacts> {
    let dir = spec.dir;
    fs::create_dir_all(dir)?;
    // The guest runs in `ram-live.bin`; `ram.bin` is its copy at the moment of
    // the ELF dump, so both images hold the same frozen state.
    let ram = dir.join("ram.bin");
    let ram_live = dir.join("ram-live.bin");
    let elf = dir.join("dump.elf");
    let debugcon = dir.join("debugcon.out");
    let console = dir.join("console.log");
    let qmp = dir.join("qmp.sock");
    for f in [&ram, &ram_live, &elf, &debugcon, &console, &qmp] {
        let _ = fs::remove_file(f);
    }
    let cpu = match spec.boot {
        // cx16=off: QEMU 7.2's software emulation of CMPXCHG16B with a %gs
        // prefix (SLUB's per-CPU fast path since 6.x, this_cpu_try_cmpxchg128)
        // corrupts EFLAGS now and then, and 6.12 guests died of it in about one
        // boot in four (double faults in kmem_cache_alloc). Without CX16 the
        // kernel takes its locked slow path; 10 of 10 boots were clean.
        Boot::BzImage { la57: false } => "max,la57=off,cx16=off",
        _ => "max,cx16=off",
    };
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg,thread=single", "-cpu", cpu])
        .args(["-m", &format!("{MEM_MIB}M")])
        .args(["-smp", &format!("{ONLINE_CPUS},maxcpus={POSSIBLE_CPUS}")])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-object")
        .arg(format!(
            "memory-backend-file,id=mem,size={MEM_MIB}M,mem-path={},share=on",
            ram_live.display()
        ))
        .args(["-machine", "pc,memory-backend=mem"])
        .arg("-kernel")
        .arg(spec.kernel)
        .arg("-initrd")
        .arg(spec.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet bpfmem.seed={}",
            spec.seed
        ))
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-debugcon")
        .arg(format!("file:{}", debugcon.display()))
        .args(["-device", "vmcoreinfo"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = Kill(
        cmd.spawn()
            .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?,
    );
    let manifest = wait_for_manifest(&mut child.0, &debugcon, &console, manifest_end)?;
    let boot_time = start.elapsed();

    let mut q = Qmp::connect(&qmp)?;
    q.execute("stop", json!({}))?;
    q.execute(
        "dump-guest-memory",
        json!({"paging": false, "protocol": format!("file:{}", elf.display())}),
    )?;
    // A stopped guest writes nothing: copy its RAM as it was at the dump.
    fs::copy(&ram_live, &ram).map_err(|e| format!("copying the RAM file: {e}"))?;
    // The images are taken; now the guest may run again and be changed.
    let live = match live {
        Some(step) => {
            q.execute("cont", json!({}))?;
            let seen = fs::read_to_string(&console).map_or(0, |c| c.len());
            let wait = |prefix: &str, timeout: Duration| wait_line(&console, seen, prefix, timeout);
            let r = step(&ram_live, &wait).map_err(|e| e.to_string());
            q.execute("stop", json!({}))?;
            // A guest kernel that crashed meanwhile (software emulation does,
            // now and then) made the live step meaningless: boot again.
            let text = fs::read_to_string(&console).unwrap_or_default();
            if let Some(line) = text
                .get(seen..)
                .unwrap_or_default()
                .lines()
                .find(|l| is_kernel_crash(l))
            {
                return Err(
                    format!("guest kernel crashed during the live step: {}", line.trim()).into(),
                );
            }
            Some(r)
        }
        None => None,
    };
    // QEMU may close the socket before it answers `quit`; its exit status is
    // what counts.
    let _ = q.execute("quit", json!({}));
    let status = child.0.wait()?;
    let _ = fs::remove_file(&ram_live);
    if !status.success() {
        return Err(format!("qemu exited with {status} after quit").into());
    }
    Ok(Artifacts {
        elf,
        ram,
        manifest,
        console,
        boot_time,
        live,
    })
}

/// The rest of the first console line after byte `from` that starts with
/// `prefix`, waiting up to `timeout`.
fn wait_line(console: &Path, from: usize, prefix: &str, timeout: Duration) -> Fallible<String> {
    let start = Instant::now();
    loop {
        let text = fs::read_to_string(console).unwrap_or_default();
        let fresh = text.get(from..).unwrap_or_default();
        // Only whole lines: the file may end in the middle of one being written.
        let fresh = fresh.rfind('\n').map_or("", |end| &fresh[..end]);
        if let Some(rest) = fresh
            .lines()
            .find_map(|l| l.trim_end().strip_prefix(prefix))
        {
            return Ok(rest.to_string());
        }
        if let Some(line) = fresh.lines().find(|l| is_kernel_crash(l)) {
            return Err(format!("guest kernel crashed: {}", line.trim()).into());
        }
        if start.elapsed() > timeout {
            return Err(format!("no console line '{prefix}...' within {timeout:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A console line that says the guest kernel crashed.
pub fn is_kernel_crash(line: &str) -> bool {
    [
        "Oops:",
        "Kernel panic",
        "BUG:",
        "general protection fault",
        "double fault",
    ]
    .iter()
    .any(|w| line.contains(w))
}

fn wait_for_manifest(
    child: &mut Child,
    debugcon: &Path,
    console: &Path,
    end: &str,
) -> Fallible<Vec<u8>> {
    let start = Instant::now();
    loop {
        if let Ok(data) = fs::read(debugcon) {
            if data.ends_with(end.as_bytes()) {
                let len = data.len() - end.len();
                let mut data = data;
                data.truncate(len);
                return Ok(data);
            }
        }
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!(
                "qemu exited ({status}) before the guest was ready: {err}\nconsole:\n{}",
                tail(console, 30)
            )
            .into());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "guest not ready after {READY_TIMEOUT:?}; console:\n{}",
                tail(console, 30)
            )
            .into());
        }
        let text = fs::read_to_string(console).unwrap_or_default();
        if text.contains("BPFMEM-FATAL") {
            return Err(format!("guest agent failed; console:\n{}", tail(console, 30)).into());
        }
        // A kernel that oopsed may limp on or hang; either way its memory is no
        // longer a healthy kernel's. Give up on it at once.
        if let Some(line) = text.lines().find(|l| is_kernel_crash(l)) {
            return Err(format!("guest kernel crashed: {}", line.trim()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal QMP client (docs/interop/qmp-spec.rst).
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(sock: &Path) -> Fallible<Qmp> {
        let stream =
            UnixStream::connect(sock).map_err(|e| format!("QMP {}: {e}", sock.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut q = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("QMP: unexpected greeting {greeting}").into());
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Fallible<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err("QMP: connection closed".into());
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Run a command and wait for its answer, skipping events.
    pub fn execute(&mut self, cmd: &str, args: Value) -> Fallible<Value> {
        let msg = json!({"execute": cmd, "arguments": args});
        writeln!(self.writer, "{msg}").map_err(|e| format!("QMP {cmd}: {e}"))?;
        loop {
            let v = self.read().map_err(|e| format!("QMP {cmd}: {e}"))?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(format!("QMP {cmd}: {e}").into());
            }
        }
    }
}
