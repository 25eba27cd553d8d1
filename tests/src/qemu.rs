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
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boot, wait for the manifest, dump, quit.
pub fn run_guest(spec: &Spec<'_>, manifest_end: &str) -> Fallible<Artifacts> {
    let dir = spec.dir;
    fs::create_dir_all(dir)?;
    let ram = dir.join("ram.bin");
    let elf = dir.join("dump.elf");
    let debugcon = dir.join("debugcon.out");
    let console = dir.join("console.log");
    let qmp = dir.join("qmp.sock");
    for f in [&ram, &elf, &debugcon, &console, &qmp] {
        let _ = fs::remove_file(f);
    }
    let cpu = match spec.boot {
        Boot::BzImage { la57: false } => "max,la57=off",
        _ => "max",
    };
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg,thread=single", "-cpu", cpu])
        .args(["-m", &format!("{MEM_MIB}M")])
        .args(["-smp", &format!("{ONLINE_CPUS},maxcpus={POSSIBLE_CPUS}")])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-object")
        .arg(format!(
            "memory-backend-file,id=mem,size={MEM_MIB}M,mem-path={},share=on",
            ram.display()
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
    // QEMU may close the socket before it answers `quit`; its exit status is
    // what counts.
    let _ = q.execute("quit", json!({}));
    let status = child.0.wait()?;
    if !status.success() {
        return Err(format!("qemu exited with {status} after quit").into());
    }
    Ok(Artifacts {
        elf,
        ram,
        manifest,
        console,
        boot_time,
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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
        if fs::read_to_string(console).is_ok_and(|c| c.contains("BPFMEM-FATAL")) {
            return Err(format!("guest agent failed; console:\n{}", tail(console, 30)).into());
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
