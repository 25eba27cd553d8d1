//! Hostile images: the test bed's real kernel images, corrupted where the
//! walkers look, the way a malicious guest could leave its memory. Every case
//! must end in bounded time and memory with an error that says what failed, or
//! with a partial result whose error says what was skipped; never a panic, a
//! hang or a huge allocation. Each is checked through the library (in a thread
//! that is timed out, with every allocation watched) and through the `bpfmem`
//! command (one line on stderr, exit status 0 or 1, the same error the library
//! gave).
//!
//! Cases are named after the corruption. The library runs every case on every
//! guest it applies to; the command on one 6.1 and one 6.12 guest
//! ([`CLI_GUESTS`]), from a patched copy of the RAM file.
//!
//! Cases marked `Once a bug:` found one in the library or the command when the
//! suite was written; each stays as the regression test for its fix.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bpfmem::kernel::Step;
use bpfmem::source::{ElfCore, RamFile};
use bpfmem::Image;
use bpfmem_core::arena::Arena;
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::htab::{nulls_marker, Htab, HtabElem};
use bpfmem_core::paging::{KernelMem, PAGE_PSE, PMD_SIZE};
use bpfmem_core::uapi::MapType;
use bpfmem_core::vmcoreinfo::VMCOREINFO_BYTES;
use bpfmem_core::xarray::{xa_mk_internal, xa_mk_node};
use bpfmem_core::{KernelRead, Kva, Pa, PhysRead};
use bpfmem_tests::hostile::*;
use bpfmem_tests::testbed::{self, Guest};

/// Longest a case may take on one guest, library or command.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Largest single allocation a case may make: the cap on the kernel's BTF
/// blob (`bpfmem::btf::MAX_BTF_SIZE`), the largest buffer any image may ask
/// for by design.
const ALLOC_LIMIT: usize = 64 << 20;

/// The guests the command runs on: a 6.1 with 4-level paging and no KASLR,
/// and a 6.12 with 5-level paging and KASLR.
const CLI_GUESTS: [&str; 2] = ["6.1-pvh", "6.12-bzimage-la57"];

// ---------------------------------------------------------------------------
// Watching allocations.

/// The system allocator, noting the largest allocation each thread makes.
struct Watched;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown are not ours to note.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; noting a size touches only a
// const-initialized thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watched = Watched;

// ---------------------------------------------------------------------------
// Running a case.

/// What a case expects of the library on a guest it applies to.
enum Expect {
    /// Discovery fails at one of `steps`, saying each of `says`.
    Discovery {
        steps: &'static [Step],
        says: &'static [&'static str],
    },
    /// Listing stops at map `at` (the maps before it listed), saying each of
    /// `says`; reading `at` by id fails too; every other map reads back as the
    /// guest reported it.
    Listing {
        at: &'static str,
        says: &'static [&'static str],
    },
    /// `map_idr` is unreadable: nothing is listed and every map fails, saying
    /// each of `says`.
    NoMaps { says: &'static [&'static str] },
    /// Listing is complete; reading each of `broken` fails with an error that
    /// names the map and says each of `says`; every other map reads back as the
    /// guest reported it.
    Maps {
        broken: &'static [&'static str],
        says: &'static [&'static str],
    },
    /// Anything else, checked by the function.
    Custom(fn(&Guest, &Outcome) -> Result<(), String>),
}

/// Where to corrupt one guest: the patches, or `None` where the case does not
/// apply (an arena on 6.1).
type Corrupt = fn(&Guest, &Facts, &RamFile) -> Option<Vec<Patch>>;

/// Everything that went wrong in one case, reported together at the end.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn finish(self, case: &str) {
        assert!(
            self.0.is_empty(),
            "{case}: {} problem(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

/// What a run of the library gave: its outcome, how long it took and the
/// largest allocation it made.
struct Timed<T> {
    value: T,
    elapsed: Duration,
    largest: usize,
}

/// Run `work` in a thread of its own, watched: a hang fails the case after
/// [`TIME_LIMIT`] (the thread is left behind) instead of hanging the suite.
fn watched<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> Timed<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        LARGEST.with(|l| l.set(0));
        let start = Instant::now();
        let value = work();
        let elapsed = start.elapsed();
        let largest = LARGEST.with(|l| l.get());
        let _ = tx.send(Timed {
            value,
            elapsed,
            largest,
        });
    });
    match rx.recv_timeout(TIME_LIMIT) {
        Ok(t) => t,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {TIME_LIMIT:?} (a hang)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the library panicked"),
    }
}

/// Discover, list and read every map of `g`'s RAM file with `patches` over it.
///
/// Discovery takes the VMCOREINFO the healthy image gave unless a patch
/// touches a copy of it: scanning RAM for it takes seconds in a build without
/// optimization (memchr is not optimized in test builds), and the command,
/// which always scans, checks the scan on every case anyway.
fn library(g: &'static Guest, patches: Vec<Patch>, what: &str) -> Timed<Outcome> {
    let f = Facts::of(g);
    let touched = f.vmcoreinfo.iter().any(|c| {
        let (lo, hi) = (c.pa.get() - 0x18, c.pa.get() + VMCOREINFO_BYTES as u64);
        patches
            .iter()
            .any(|p| p.pa.get() < hi && p.pa.get() + p.bytes.len() as u64 > lo)
    });
    let info = (!touched).then(|| (f.info.clone(), f.origin));
    watched(what, move || {
        let ram = RamFile::open(&g.ram, Pa(0)).expect("open RAM file");
        read_everything(g, Patched::new(ram, patches), info)
    })
}

fn says_all(text: &str, says: &[&str]) -> bool {
    says.iter().all(|s| text.contains(s))
}

/// Check the library's outcome against what the case expects.
fn check_expect(g: &Guest, o: &Outcome, expect: &Expect, f: &mut Failures) {
    let name = &g.name;
    let reported_but = |o: &Outcome, skip: &[&str], f: &mut Failures| {
        for m in o.maps.iter().filter(|m| !skip.contains(&m.name.as_str())) {
            f.check(m.as_reported, || {
                format!(
                    "{name}: map {} ({}) should read back as reported: {} entries, {:?}",
                    m.id,
                    m.name,
                    m.count,
                    m.error.map(|e| e.to_string())
                )
            });
        }
    };
    match expect {
        Expect::Discovery { steps, says } => match &o.discovery {
            Ok(()) => f.0.push(format!("{name}: discovery succeeded")),
            Err(e) => f.check(
                steps.contains(&e.step) && says_all(&e.to_string(), says),
                || {
                    format!(
                        "{name}: discovery error '{e}' (step {:?}), expected {steps:?} {says:?}",
                        e.step
                    )
                },
            ),
        },
        Expect::Listing { at, says } => {
            if let Err(e) = &o.discovery {
                f.0.push(format!("{name}: discovery failed: {e}"));
                return;
            }
            let broken = o.map(at);
            let before: Vec<u32> = g
                .manifest
                .maps
                .iter()
                .map(|m| m.id)
                .filter(|&id| id < broken.id)
                .collect();
            f.check(o.listed == before, || {
                format!("{name}: listed {:?}, expected {before:?}", o.listed)
            });
            match &o.listing_error {
                None => f.0.push(format!("{name}: the listing did not fail")),
                Some(e) => f.check(says_all(&e.to_string(), says), || {
                    format!("{name}: listing error '{e}', expected {says:?}")
                }),
            }
            match &broken.error {
                None => f.0.push(format!("{name}: map {at} read without error")),
                Some(e) => f.check(says_all(&e.to_string(), says), || {
                    format!("{name}: map {at}: '{e}', expected {says:?}")
                }),
            }
            reported_but(o, &[at], f);
        }
        Expect::NoMaps { says } => {
            if let Err(e) = &o.discovery {
                f.0.push(format!("{name}: discovery failed: {e}"));
                return;
            }
            f.check(o.listed.is_empty(), || {
                format!("{name}: listed {:?}", o.listed)
            });
            match &o.listing_error {
                None => f.0.push(format!("{name}: the listing did not fail")),
                Some(e) => f.check(says_all(&e.to_string(), says), || {
                    format!("{name}: listing error '{e}', expected {says:?}")
                }),
            }
            for m in &o.maps {
                match &m.error {
                    None => {
                        f.0.push(format!("{name}: map {} read without error", m.name))
                    }
                    Some(e) => f.check(says_all(&e.to_string(), says), || {
                        format!("{name}: map {}: '{e}', expected {says:?}", m.name)
                    }),
                }
            }
        }
        Expect::Maps { broken, says } => {
            if let Err(e) = &o.discovery {
                f.0.push(format!("{name}: discovery failed: {e}"));
                return;
            }
            let all: Vec<u32> = g.manifest.maps.iter().map(|m| m.id).collect();
            f.check(o.listed == all && o.listing_error.is_none(), || {
                format!(
                    "{name}: listed {:?} then {:?}, expected all of {all:?}",
                    o.listed,
                    o.listing_error.map(|e| e.to_string())
                )
            });
            for b in *broken {
                let m = o.map(b);
                match &m.error {
                    None => f.0.push(format!(
                        "{name}: map {b} read {} entries without error",
                        m.count
                    )),
                    Some(e) => {
                        let text = e.to_string();
                        f.check(
                            text.starts_with(&format!("map {}: ", m.id)) && says_all(&text, says),
                            || format!("{name}: map {b}: '{text}', expected {says:?}"),
                        )
                    }
                }
            }
            reported_but(o, broken, f);
        }
        Expect::Custom(check) => {
            if let Err(e) = check(g, o) {
                f.0.push(format!("{name}: {e}"));
            }
        }
    }
}

/// One run of the command: exit status, stderr, and the ends of stdout (a
/// corrupted map may print for long).
struct CliRun {
    args: Vec<OsString>,
    code: Option<i32>,
    stderr: String,
    stdout_len: u64,
    stdout_head: String,
    stdout_tail: String,
    /// All of stdout, when it is not huge.
    stdout: Option<Vec<u8>>,
    elapsed: Duration,
}

impl CliRun {
    /// Exit status 0 or 1 (never a signal, never a panic's 101), stderr
    /// empty on success and one `bpfmem: ` line otherwise, without a trace of
    /// a panic, within [`TIME_LIMIT`].
    fn check_hygiene(&self, who: &str, f: &mut Failures) {
        let args = self
            .args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>();
        let what = format!("{who}: bpfmem {}", args.join(" "));
        eprintln!(
            "{what}: exit {:?} in {:.2?}, {} bytes out, {:?}",
            self.code,
            self.elapsed,
            self.stdout_len,
            self.stderr.trim_end()
        );
        f.check(self.elapsed < TIME_LIMIT, || {
            format!("{what}: took {:?}", self.elapsed)
        });
        match self.code {
            Some(0) => f.check(self.stderr.is_empty(), || {
                format!("{what}: exit 0 with stderr {:?}", self.stderr)
            }),
            Some(1) => f.check(
                self.stderr.starts_with("bpfmem: ")
                    && self.stderr.ends_with('\n')
                    && self.stderr.lines().count() == 1
                    && !self.stderr.contains("internal error")
                    && !self.stderr.contains("panicked"),
                || format!("{what}: stderr {:?}", self.stderr),
            ),
            other => f.0.push(format!(
                "{what}: exit status {other:?}, stderr {:?}",
                self.stderr
            )),
        }
    }
}

/// Run `bpfmem ARGS`, killing it after [`TIME_LIMIT`].
fn bpfmem(args: Vec<OsString>) -> CliRun {
    let bin = testbed::bpfmem_bin().expect("building bpfmem");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running bpfmem");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        // All of it up to WHOLE bytes; past that, the first and last KEEP.
        const KEEP: usize = 64 << 10;
        const WHOLE: usize = 64 << 20;
        let (mut head, mut tail, mut len) = (Vec::new(), Vec::new(), 0u64);
        let mut whole = Some(Vec::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            len += n as u64;
            if head.len() < KEEP {
                head.extend_from_slice(&buf[..n.min(KEEP - head.len())]);
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * KEEP {
                tail.drain(..tail.len() - KEEP);
            }
            if let Some(w) = &mut whole {
                w.extend_from_slice(&buf[..n]);
                if w.len() > WHOLE {
                    whole = None;
                }
            }
        }
        (head, tail, len, whole)
    });
    let stderr = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut err).take(1 << 20).read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for bpfmem") {
            break Some(s);
        }
        if start.elapsed() > TIME_LIMIT {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let (head, tail, stdout_len, whole) = stdout.join().unwrap();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    CliRun {
        args,
        code: status.and_then(|s| s.code()),
        stderr,
        stdout_len,
        stdout_head: String::from_utf8_lossy(&head).into_owned(),
        stdout_tail: String::from_utf8_lossy(&tail).into_owned(),
        stdout: whole,
        elapsed,
    }
}

fn ram_args(path: &Path, rest: &[&str]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec!["--ram".into(), path.into()];
    v.extend(rest.iter().map(OsString::from));
    v
}

/// Run the command on the patched RAM file and check that it agrees with the
/// library's outcome `o` for the same patches: the same discovery or listing
/// error, each failing map's error (after the entries read before it), and a
/// full dump of a map the library read whole (the dumps only if `dump`).
fn check_cli(g: &Guest, patches: &[Patch], o: &Outcome, dump: bool, f: &mut Failures) {
    let copy = WorkingCopy::lock(g, patches);
    let path = copy.path().to_path_buf();
    let who = format!("{} (command)", g.name);
    let p = path.display().to_string();

    let show = bpfmem(ram_args(&path, &["map", "show"]));
    show.check_hygiene(&who, f);
    match (&o.discovery, &o.listing_error) {
        (Err(e), _) => f.check(
            show.code == Some(1) && show.stderr == format!("bpfmem: {p}: {e}\n"),
            || {
                format!(
                    "{who}: map show: {:?}, expected the library's '{e}'",
                    show.stderr
                )
            },
        ),
        (Ok(()), Some(e)) => f.check(
            show.code == Some(1) && show.stderr.contains(&e.to_string()),
            || {
                format!(
                    "{who}: map show: {:?}, expected the library's '{e}'",
                    show.stderr
                )
            },
        ),
        (Ok(()), None) => {
            let headers = show
                .stdout_head
                .lines()
                .filter(|l| !l.starts_with('\t'))
                .count();
            f.check(show.code == Some(0) && headers == o.listed.len(), || {
                format!(
                    "{who}: map show listed {headers} maps, the library {}",
                    o.listed.len()
                )
            });
        }
    }
    if o.discovery.is_err() || o.listing_error.is_some() {
        return;
    }
    if !dump {
        return;
    }
    // The maps that failed (two at most), one that read other than reported
    // without failing, and the first that read whole.
    let failed = o.maps.iter().filter(|m| m.error.is_some()).take(2);
    let odd = o
        .maps
        .iter()
        .filter(|m| m.error.is_none() && !m.as_reported)
        .take(1);
    let whole = o.maps.iter().find(|m| m.as_reported);
    for m in failed.chain(odd).chain(whole) {
        let id = m.id.to_string();
        let run = bpfmem(ram_args(&path, &["map", "dump", "id", &id]));
        run.check_hygiene(&who, f);
        match &m.error {
            Some(e) => {
                let want = format!(
                    "bpfmem: {p}: {e} (map {}, after {} entries)\n",
                    m.name, m.count
                );
                f.check(run.code == Some(1) && run.stderr == want, || {
                    format!(
                        "{who}: map dump id {id}: {:?}, expected {want:?}",
                        run.stderr
                    )
                });
                // What was read before the error is on stdout.
                if let Some(out) = &run.stdout {
                    let printed = printed_entries(&String::from_utf8_lossy(out));
                    f.check(printed == m.count, || {
                        format!(
                            "{who}: map dump id {id}: {printed} entries printed before the \
                             error, the library read {}",
                            m.count
                        )
                    });
                }
            }
            None if typed(g, m.id) => {
                // A BTF-typed plain dump (bpftool's: a JSON-like array, no
                // count) has one `"key":` line per entry; one that fell back to
                // bytes ends with the count.
                let plain = String::from_utf8_lossy(run.stdout.as_deref().unwrap_or_default());
                let keys = printed_entries(&plain) as usize;
                let found = format!("Found {} element", m.count);
                f.check(
                    run.code == Some(0)
                        && (keys == m.count as usize || run.stdout_tail.contains(&found)),
                    || {
                        format!(
                            "{who}: map dump id {id}: exit {:?}, {keys} typed entries of {} \
                             ({} bytes: {:?})",
                            run.code,
                            m.count,
                            run.stdout_len,
                            run.stdout_head.chars().take(60).collect::<String>()
                        )
                    },
                );
                // And the JSON dump, every element with its raw bytes.
                let run = bpfmem(ram_args(&path, &["-j", "map", "dump", "id", &id]));
                run.check_hygiene(&who, f);
                let parsed: Option<serde_json::Value> = run
                    .stdout
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok());
                let n = parsed.as_ref().and_then(|v| v.as_array()).map(|a| {
                    a.iter()
                        .filter(|e| e.get("key").is_some() && e.get("value").is_some())
                        .count()
                });
                f.check(run.code == Some(0) && n == Some(m.count as usize), || {
                    format!(
                        "{who}: -j map dump id {id}: exit {:?}, {n:?} elements, {} expected",
                        run.code, m.count
                    )
                });
            }
            None => {
                let want = format!("Found {} element", m.count);
                f.check(
                    run.code == Some(0) && run.stdout_tail.contains(&want),
                    || {
                        let end: String = run.stdout_tail.chars().rev().take(80).collect();
                        format!(
                            "{who}: map dump id {id}: exit {:?}, {} bytes, ends {:?}",
                            run.code,
                            run.stdout_len,
                            end.chars().rev().collect::<String>()
                        )
                    },
                );
            }
        }
    }
}

/// Entries (or arena pages) in a plain `map dump`: lines starting `key:`
/// (bytes), `        "key": ` (BTF-typed) or `page 0x` (arena).
fn printed_entries(plain: &str) -> u64 {
    plain
        .lines()
        .filter(|l| {
            l.starts_with("key:") || l.starts_with("        \"key\": ") || l.starts_with("page 0x")
        })
        .count() as u64
}

/// Whether the command prints map `id` typed by its BTF.
fn typed(g: &Guest, id: u32) -> bool {
    let m = g.manifest.maps.iter().find(|m| m.id == id).unwrap();
    m.btf_id != 0 && m.btf_value_type_id != 0
}

fn guests() -> &'static [Guest] {
    testbed::guests().unwrap_or(&[])
}

/// Run a case on every guest it applies to: the library on each, the
/// command on [`CLI_GUESTS`]. Fails if the case applied to no 6.1 and no 6.12
/// guest at all, or if anything went wrong anywhere.
fn run(name: &str, corrupt: Corrupt, expect: Expect) {
    run_case(name, corrupt, expect, true)
}

/// [`run`], with the command only listing maps: for a case whose dump is
/// hundreds of megabytes that show nothing more.
fn run_without_dumps(name: &str, corrupt: Corrupt, expect: Expect) {
    run_case(name, corrupt, expect, false)
}

fn run_case(name: &str, corrupt: Corrupt, expect: Expect, dump: bool) {
    let guests = guests();
    if guests.is_empty() {
        return;
    }
    let mut f = Failures::default();
    let mut lines = Vec::new();
    for g in guests {
        let facts = Facts::of(g);
        let ram = RamFile::open(&g.ram, Pa(0)).expect("open RAM file");
        let Some(patches) = corrupt(g, facts, &ram) else {
            continue;
        };
        drop(ram);
        lines.push(g.kernel.line.name);
        let t = library(g, patches.clone(), &format!("{name} on {}", g.name));
        let o = &t.value;
        eprintln!(
            "{name}: {}: {:.2?}, largest allocation {} KiB",
            g.name,
            t.elapsed,
            t.largest >> 10
        );
        eprintln!("{name}: {}: {}", g.name, summary(o));
        f.check(t.elapsed < TIME_LIMIT, || {
            format!("{}: took {:?}", g.name, t.elapsed)
        });
        f.check(t.largest <= ALLOC_LIMIT, || {
            format!(
                "{}: allocated {} MiB at once (limit {} MiB)",
                g.name,
                t.largest >> 20,
                ALLOC_LIMIT >> 20
            )
        });
        check_expect(g, o, &expect, &mut f);
        if CLI_GUESTS.contains(&g.name.as_str()) {
            check_cli(g, &patches, o, dump, &mut f);
        }
    }
    // Both kernel lines, but for arenas, which 6.1 does not have.
    let both = lines.contains(&"6.1") && lines.contains(&"6.12");
    f.check(
        both || (name.starts_with("arena_") && lines.contains(&"6.12")),
        || format!("applied to kernel lines {lines:?} only"),
    );
    f.finish(name);
}

/// One line saying what the library did.
fn summary(o: &Outcome) -> String {
    if let Err(e) = &o.discovery {
        return format!("discovery: {e}");
    }
    let mut s = format!("listed {} maps", o.listed.len());
    if let Some(e) = &o.listing_error {
        s.push_str(&format!(", then: {e}"));
    }
    let bad: Vec<String> = o
        .maps
        .iter()
        .filter(|m| !m.as_reported)
        .map(|m| {
            let btf = match &m.btf {
                Some(Err(e)) => format!(" (BTF: {e})"),
                Some(Ok(n)) => format!(" (BTF: {n} bytes)"),
                None => String::new(),
            };
            match &m.error {
                Some(e) => format!("{} after {}: {e}{btf}", m.name, m.count),
                None => format!("{}: {} entries, not as reported{btf}", m.name, m.count),
            }
        })
        .collect();
    if bad.is_empty() {
        s.push_str("; every map as reported");
    } else {
        s.push_str(&format!("; {}", bad.join("; ")));
    }
    s
}

// ---------------------------------------------------------------------------
// Finding things to corrupt.

/// Where `kva` is in physical memory, by the healthy kernel's translation.
fn pa(f: &Facts, ram: &RamFile, kva: Kva) -> Pa {
    pa_of(&f.kmem(ram), kva)
}

/// The physical address of member `off` of the structure at `kva`.
fn field(f: &Facts, ram: &RamFile, kva: Kva, off: u32) -> Pa {
    pa(f, ram, at(kva, off))
}

/// A deterministic run of bytes that are no kernel structure.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Non-canonical under both 4- and 5-level paging.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Present, writable, accessed, dirty: what the kernel's table entries carry.
const TABLE_FLAGS: u64 = 0x63;

/// Replace `key=...` in every VMCOREINFO copy with `key=value`.
fn vmcoreinfo_set(f: &Facts, key: &'static str, value: String) -> Vec<Patch> {
    rewrite_vmcoreinfo(&f.vmcoreinfo, move |text| {
        text.lines()
            .map(|l| match l.split_once('=') {
                Some((k, _)) if k == key => format!("{k}={value}"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
}

/// The manifest's entry count of a map.
fn reported_count(g: &Guest, name: &str) -> usize {
    let m = g.manifest.maps.iter().find(|m| m.name == name).unwrap();
    m.entries.len() + m.arena_pages.len()
}

// ---------------------------------------------------------------------------
// VMCOREINFO.
//
// With no usable copy left, discovery scans all of RAM, which takes seconds in
// a build without optimization (memchr is not optimized in test builds): those
// cases run on the command's guests only.

/// `Some` on the guests the command runs on.
fn cli_guest(g: &Guest) -> Option<()> {
    CLI_GUESTS.contains(&g.name.as_str()).then_some(())
}

#[test]
fn vmcoreinfo_is_garbage() {
    run(
        "vmcoreinfo_is_garbage",
        |g, f, _| {
            cli_guest(g)?;
            Some(
                f.vmcoreinfo
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Patch::new(c.pa, garbage(c.info.text().len(), i as u64 + 7)))
                    .collect(),
            )
        },
        Expect::Discovery {
            steps: &[Step::Vmcoreinfo],
            says: &["VMCOREINFO: VMCOREINFO not found"],
        },
    );
}

#[test]
fn vmcoreinfo_is_truncated() {
    // Every copy ends after PAGESIZE: no SYMBOL( line is left.
    run(
        "vmcoreinfo_is_truncated",
        |g, f, _| {
            cli_guest(g)?;
            Some(rewrite_vmcoreinfo(&f.vmcoreinfo, |text| {
                let end = text.find("PAGESIZE=").unwrap();
                let end = end + text[end..].find('\n').unwrap() + 1;
                text[..end].to_string()
            }))
        },
        Expect::Discovery {
            steps: &[Step::Vmcoreinfo],
            says: &["VMCOREINFO not found"],
        },
    );
}

#[test]
fn vmcoreinfo_phys_base_is_huge() {
    run(
        "vmcoreinfo_phys_base_is_huge",
        |_, f, _| Some(vmcoreinfo_set(f, "NUMBER(phys_base)", i64::MAX.to_string())),
        Expect::Discovery {
            steps: &[Step::Paging],
            says: &["page tables: malformed top-level page table address at pa 0x8000"],
        },
    );
}

#[test]
fn vmcoreinfo_phys_base_is_off_by_two_mib() {
    run(
        "vmcoreinfo_phys_base_is_off_by_two_mib",
        |_, f, _| {
            let pb = f.info.phys_base().unwrap();
            Some(vmcoreinfo_set(
                f,
                "NUMBER(phys_base)",
                (pb + (2 << 20)).to_string(),
            ))
        },
        Expect::Discovery {
            steps: &[Step::Paging],
            says: &["page tables: "],
        },
    );
}

#[test]
fn vmcoreinfo_init_top_pgt_is_not_canonical() {
    run(
        "vmcoreinfo_init_top_pgt_is_not_canonical",
        |_, f, _| {
            Some(vmcoreinfo_set(
                f,
                "SYMBOL(init_top_pgt)",
                format!("{NON_CANONICAL:x}"),
            ))
        },
        Expect::Discovery {
            steps: &[Step::Paging],
            says: &["malformed init_top_pgt at kva 0x8000000000000000"],
        },
    );
}

#[test]
fn vmcoreinfo_has_the_wrong_paging_mode() {
    run(
        "vmcoreinfo_has_the_wrong_paging_mode",
        |_, f, _| {
            let other = if f.levels == 5 { "0" } else { "1" };
            Some(vmcoreinfo_set(
                f,
                "NUMBER(pgtable_l5_enabled)",
                other.into(),
            ))
        },
        Expect::Discovery {
            steps: &[Step::Paging, Step::Kallsyms, Step::DirectMap],
            says: &[],
        },
    );
}

#[test]
fn vmcoreinfo_lacks_the_kallsyms_symbols() {
    run(
        "vmcoreinfo_lacks_the_kallsyms_symbols",
        |_, f, _| {
            Some(rewrite_vmcoreinfo(&f.vmcoreinfo, |text| {
                text.lines()
                    .filter(|l| !l.starts_with("SYMBOL(kallsyms_"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            }))
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["VMCOREINFO SYMBOL(kallsyms_num_syms) not found"],
        },
    );
}

#[test]
fn vmcoreinfo_kallsyms_names_are_not_canonical() {
    run(
        "vmcoreinfo_kallsyms_names_are_not_canonical",
        |_, f, _| {
            Some(vmcoreinfo_set(
                f,
                "SYMBOL(kallsyms_names)",
                format!("{NON_CANONICAL:x}"),
            ))
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["kva 0x8000000000000000 is not canonical"],
        },
    );
}

// ---------------------------------------------------------------------------
// Page tables and the direct map.

/// The entries that map `init_top_pgt` through the kernel image.
fn kernel_image_walk(f: &Facts, ram: &RamFile) -> Vec<PtSlot> {
    page_walk(ram, &f.translator, Kva(f.info.init_top_pgt().unwrap()))
}

#[test]
fn kernel_image_page_table_loops_to_itself() {
    // The top-level entry for the kernel image points back at the top-level table.
    run(
        "kernel_image_page_table_loops_to_itself",
        |_, f, ram| {
            let top = kernel_image_walk(f, ram)[0];
            Some(vec![Patch::u64(top.slot, top.table.get() | TABLE_FLAGS)])
        },
        Expect::Discovery {
            steps: &[Step::Paging],
            says: &["page tables: "],
        },
    );
}

#[test]
fn direct_map_page_table_loops_to_itself() {
    // The top-level entry of the direct map points at the top-level table.
    run(
        "direct_map_page_table_loops_to_itself",
        |_, f, ram| {
            let top = page_walk(ram, &f.translator, f.page_offset_base)[0];
            Some(vec![Patch::u64(top.slot, top.table.get() | TABLE_FLAGS)])
        },
        Expect::Discovery {
            steps: &[Step::DirectMap],
            says: &["direct map: "],
        },
    );
}

#[test]
fn page_table_points_past_ram() {
    run(
        "page_table_points_past_ram",
        |_, f, ram| {
            let top = kernel_image_walk(f, ram)[0];
            Some(vec![Patch::u64(top.slot, (64 << 30) | TABLE_FLAGS)])
        },
        Expect::Discovery {
            steps: &[Step::Paging],
            says: &["read of 8 bytes at pa 0x10", "is outside the memory source"],
        },
    );
}

#[test]
fn top_level_page_table_entry_has_the_huge_page_bit() {
    run(
        "top_level_page_table_entry_has_the_huge_page_bit",
        |_, f, ram| {
            let top = kernel_image_walk(f, ram)[0];
            Some(vec![Patch::u64(top.slot, top.entry | PAGE_PSE)])
        },
        Expect::Discovery {
            steps: &[Step::Paging],
            says: &["page tables: malformed pgd at pa"],
        },
    );
}

#[test]
fn direct_map_base_is_not_canonical() {
    run(
        "direct_map_base_is_not_canonical",
        |_, f, ram| {
            let at = pa(f, ram, f.symbols.page_offset_base.unwrap());
            Some(vec![Patch::u64(at, NON_CANONICAL)])
        },
        Expect::Discovery {
            steps: &[Step::DirectMap],
            says: &["direct map: implausible page_offset_base 0x8000000000000000"],
        },
    );
}

#[test]
fn direct_map_base_is_one_gib_off() {
    run(
        "direct_map_base_is_one_gib_off",
        |_, f, ram| {
            let at = pa(f, ram, f.symbols.page_offset_base.unwrap());
            Some(vec![Patch::u64(at, f.page_offset_base.get() + (1 << 30))])
        },
        Expect::Discovery {
            steps: &[Step::DirectMap],
            says: &["direct map: "],
        },
    );
}

#[test]
fn direct_map_is_not_mapped() {
    run(
        "direct_map_is_not_mapped",
        |_, f, ram| {
            let top = page_walk(ram, &f.translator, f.page_offset_base)[0];
            Some(vec![Patch::u64(top.slot, 0)])
        },
        Expect::Discovery {
            steps: &[Step::DirectMap],
            says: &["direct map: ", "is not mapped"],
        },
    );
}

#[test]
fn page_table_of_hash_buckets_points_at_itself() {
    // The PTE mapping the first page of hash_big's buckets maps its own page
    // table instead: the walk reads page-table entries as buckets.
    run(
        "page_table_of_hash_buckets_points_at_itself",
        |_, f, ram| {
            let k = f.kmem(ram);
            let h = Htab::new(&k, f.map("hash_big"), &f.offsets).unwrap();
            let walk = page_walk(ram, &f.translator, h.buckets());
            let pte = *walk.last().unwrap();
            assert_eq!(pte.level, 1, "hash_big buckets in a huge page");
            Some(vec![Patch::u64(pte.slot, pte.table.get() | TABLE_FLAGS)])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["htab"],
        },
    );
}

#[test]
fn page_middle_directory_of_hash_buckets_points_at_itself() {
    // One level up: the PMD entry maps its own table as a page table. What else
    // lives in those 2 MiB of vmalloc space may break with it.
    run(
        "page_middle_directory_of_hash_buckets_points_at_itself",
        |_, f, ram| {
            let k = f.kmem(ram);
            let h = Htab::new(&k, f.map("hash_big"), &f.offsets).unwrap();
            let walk = page_walk(ram, &f.translator, h.buckets());
            let pmd = walk.iter().find(|s| s.level == 2).unwrap();
            Some(vec![Patch::u64(pmd.slot, pmd.table.get() | TABLE_FLAGS)])
        },
        Expect::Custom(|g, o| {
            let hb = o.map("hash_big");
            if hb.error.is_none() {
                return Err(format!("hash_big read {} entries without error", hb.count));
            }
            let f = Facts::of(g);
            let ram = RamFile::open(&g.ram, Pa(0)).unwrap();
            let k = f.kmem(&ram);
            let h = Htab::new(&k, f.map("hash_big"), &f.offsets).unwrap();
            let region = h.buckets().align_down(PMD_SIZE);
            for m in o.maps.iter().filter(|m| !m.as_reported) {
                let info = f.maps.iter().find(|i| i.id == m.id).unwrap();
                if !touches(f, &k, info, region, PMD_SIZE) {
                    return Err(format!("map {} broke too: {:?}", m.name, m.error));
                }
            }
            Ok(())
        }),
    );
}

/// Whether map `m`'s structure, buckets, elements or values lie in
/// `[region, region + len)`.
fn touches<M: PhysRead>(f: &Facts, k: &KernelMem<M>, m: &MapInfo, region: Kva, len: u64) -> bool {
    let (lo, hi) = (region.get(), region.get() + len);
    let meets = |start: u64, size: u64| start < hi && start + size > lo;
    let mut ranges = vec![(m.kva.get(), 4096)];
    match m.map_type {
        MapType::ARRAY | MapType::PERCPU_ARRAY => {
            let size =
                u64::from(m.value_size.next_multiple_of(8)).max(8) * u64::from(m.max_entries);
            ranges.push((m.kva.get(), 4096 + size));
        }
        MapType::HASH | MapType::LRU_HASH | MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH => {
            let h = Htab::new(k, m, &f.offsets).unwrap();
            ranges.push((h.buckets().get(), u64::from(h.n_buckets()) * 16));
            if let Some(e) = h.elems() {
                ranges.push((e.get(), u64::from(h.elem_size()) * u64::from(m.max_entries)));
            }
        }
        _ => {}
    }
    ranges.into_iter().any(|(s, n)| meets(s, n))
}

// ---------------------------------------------------------------------------
// map_idr's xarray.

/// The slot of `map_idr`'s root node holding map `name`.
fn idr_slot_of(f: &Facts, ram: &RamFile, name: &str) -> Pa {
    let k = f.kmem(ram);
    let (_, root) = map_idr_root(f, &k);
    // A root of shift 0 holds id i in slot i (idr_base 0).
    let id = f.map(name).id;
    let slot = xa_slot(f, root, id);
    assert_eq!(
        read_u64(&k, slot),
        f.map(name).kva.get(),
        "{name}: not in slot {id}"
    );
    pa(f, ram, slot)
}

#[test]
fn xa_node_points_to_itself() {
    run(
        "xa_node_points_to_itself",
        |_, f, ram| {
            let k = f.kmem(ram);
            let (_, root) = map_idr_root(f, &k);
            Some(vec![Patch::u64(
                idr_slot_of(f, ram, "hash"),
                xa_mk_node(root),
            )])
        },
        Expect::Listing {
            at: "hash",
            says: &["malformed xa_node.shift"],
        },
    );
}

/// A made-up root one level above the real one: slot 0 holds the real root,
/// which now names it as its parent. Sound, so everything still reads.
fn fake_parent(f: &Facts, ram: &RamFile) -> (Kva, Vec<Patch>) {
    let k = f.kmem(ram);
    let (head_at, root) = map_idr_root(f, &k);
    let page = free_page(ram, 0);
    let parent = Kva(f.page_offset_base.get() + page.get());
    let x = &f.offsets.xa_node;
    let patches = vec![
        Patch::u8(Pa(page.get() + u64::from(x.shift)), 6),
        Patch::u64(Pa(page.get() + u64::from(x.slots)), xa_mk_node(root)),
        Patch::u64(field(f, ram, root, x.parent), parent.get()),
        Patch::u8(field(f, ram, root, x.offset), 0),
        Patch::u64(pa(f, ram, head_at), xa_mk_node(parent)),
    ];
    (parent, patches)
}

#[test]
fn xa_node_slot_points_to_its_parent() {
    // First the two-level tree alone: every map reads back as reported.
    for g in guests() {
        let f = Facts::of(g);
        let ram = RamFile::open(&g.ram, Pa(0)).unwrap();
        let (_, patches) = fake_parent(f, &ram);
        let o = library(g, patches, "two-level map_idr").value;
        assert!(
            o.listing_error.is_none() && o.maps.iter().all(|m| m.as_reported),
            "{}: the made-up parent alone: {}",
            g.name,
            summary(&o)
        );
    }
    // Then a slot of the real root pointing up at it.
    run(
        "xa_node_slot_points_to_its_parent",
        |_, f, ram| {
            let (parent, mut patches) = fake_parent(f, ram);
            patches.push(Patch::u64(idr_slot_of(f, ram, "hash"), xa_mk_node(parent)));
            Some(patches)
        },
        Expect::Listing {
            at: "hash",
            says: &["malformed xa_node.shift"],
        },
    );
}

#[test]
fn xa_node_parent_is_itself() {
    run(
        "xa_node_parent_is_itself",
        |_, f, ram| {
            let k = f.kmem(ram);
            let (_, root) = map_idr_root(f, &k);
            Some(vec![Patch::u64(
                field(f, ram, root, f.offsets.xa_node.parent),
                root.get(),
            )])
        },
        Expect::NoMaps {
            says: &["malformed xa_node.parent"],
        },
    );
}

#[test]
fn xa_node_shift_is_huge() {
    run(
        "xa_node_shift_is_huge",
        |_, f, ram| {
            let k = f.kmem(ram);
            let (_, root) = map_idr_root(f, &k);
            Some(vec![Patch::u8(
                field(f, ram, root, f.offsets.xa_node.shift),
                0xfa,
            )])
        },
        Expect::NoMaps {
            says: &["malformed xa_node.shift"],
        },
    );
}

#[test]
fn xa_head_is_not_canonical() {
    run(
        "xa_head_is_not_canonical",
        |_, f, ram| {
            let k = f.kmem(ram);
            let (head_at, _) = map_idr_root(f, &k);
            Some(vec![Patch::u64(
                pa(f, ram, head_at),
                xa_mk_node(Kva(NON_CANONICAL | 0x1000)),
            )])
        },
        Expect::NoMaps {
            says: &["is not canonical"],
        },
    );
}

#[test]
fn map_idr_slot_is_not_canonical() {
    run(
        "map_idr_slot_is_not_canonical",
        |_, f, ram| {
            Some(vec![Patch::u64(
                idr_slot_of(f, ram, "hash"),
                NON_CANONICAL | 0x1000,
            )])
        },
        Expect::Listing {
            at: "hash",
            says: &["kva 0x8000000000001", "is not canonical"],
        },
    );
}

#[test]
fn map_idr_slot_points_past_ram() {
    run(
        "map_idr_slot_points_past_ram",
        |_, f, ram| {
            let far = f.page_offset_base.get() + (8 << 30);
            Some(vec![Patch::u64(idr_slot_of(f, ram, "hash"), far)])
        },
        Expect::Listing {
            at: "hash",
            says: &["is outside the memory source"],
        },
    );
}

#[test]
fn map_idr_slot_holds_an_internal_entry() {
    run(
        "map_idr_slot_holds_an_internal_entry",
        |_, f, ram| {
            Some(vec![Patch::u64(
                idr_slot_of(f, ram, "hash"),
                xa_mk_internal(300),
            )])
        },
        Expect::Listing {
            at: "hash",
            says: &["malformed xarray entry"],
        },
    );
}

#[test]
fn map_id_disagrees_with_its_slot() {
    // Once a bug: `Kernel::map(id)` did not check the id of the map it found
    // (`Kernel::prog` and `Kernel::btf` did), so map 5 read by id came back as
    // "map 77" while the listing refused it.
    run(
        "map_id_disagrees_with_its_slot",
        |_, f, ram| {
            let m = f.map("hash");
            Some(vec![Patch::u32(
                field(f, ram, m.kva, f.offsets.bpf_map.id),
                77,
            )])
        },
        Expect::Listing {
            at: "hash",
            says: &["malformed bpf_map.id"],
        },
    );
}

#[test]
fn map_btf_pointer_is_not_canonical() {
    run(
        "map_btf_pointer_is_not_canonical",
        |_, f, ram| {
            let m = f.map("btf_hash");
            Some(vec![Patch::u64(
                field(f, ram, m.kva, f.offsets.bpf_map.btf),
                NON_CANONICAL,
            )])
        },
        Expect::Listing {
            at: "btf_hash",
            says: &["is not canonical"],
        },
    );
}

// ---------------------------------------------------------------------------
// Map sizes.

/// The `struct bpf_htab` around a map's `struct bpf_map`.
fn htab_of(f: &Facts, m: &MapInfo) -> Kva {
    Kva(m.kva.get() - u64::from(f.offsets.bpf_htab.map))
}

/// The `struct bpf_array` around a map's `struct bpf_map`.
fn array_of(f: &Facts, m: &MapInfo) -> Kva {
    Kva(m.kva.get() - u64::from(f.offsets.bpf_array.map))
}

#[test]
fn hash_max_entries_is_huge() {
    run(
        "hash_max_entries_is_huge",
        |_, f, ram| {
            let m = f.map("hash");
            Some(vec![Patch::u32(
                field(f, ram, m.kva, f.offsets.bpf_map.max_entries),
                u32::MAX,
            )])
        },
        Expect::Maps {
            broken: &["hash"],
            says: &["malformed bpf_map.max_entries"],
        },
    );
}

#[test]
fn hash_max_entries_and_n_buckets_are_huge() {
    // Consistent with each other, so the table is walked: 2^27 buckets, most of
    // them past the real bucket array.
    run(
        "hash_max_entries_and_n_buckets_are_huge",
        |_, f, ram| {
            let m = f.map("hash_big");
            let htab = htab_of(f, m);
            Some(vec![
                Patch::u32(field(f, ram, m.kva, f.offsets.bpf_map.max_entries), 1 << 27),
                Patch::u32(field(f, ram, htab, f.offsets.bpf_htab.n_buckets), 1 << 27),
            ])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &[],
        },
    );
}

#[test]
fn hash_n_buckets_disagrees_with_max_entries() {
    run(
        "hash_n_buckets_disagrees_with_max_entries",
        |_, f, ram| {
            let htab = htab_of(f, f.map("hash"));
            Some(vec![Patch::u32(
                field(f, ram, htab, f.offsets.bpf_htab.n_buckets),
                3,
            )])
        },
        Expect::Maps {
            broken: &["hash"],
            says: &["malformed bpf_htab.n_buckets"],
        },
    );
}

#[test]
fn array_max_entries_is_huge() {
    run(
        "array_max_entries_is_huge",
        |_, f, ram| {
            let m = f.map("arr");
            Some(vec![Patch::u32(
                field(f, ram, m.kva, f.offsets.bpf_map.max_entries),
                u32::MAX,
            )])
        },
        Expect::Maps {
            broken: &["arr"],
            says: &["malformed bpf_array.index_mask"],
        },
    );
}

/// `max_entries` of array `m` set to 2^31 with the `index_mask` that goes
/// with it, so the array is walked past its end.
fn huge_array(f: &Facts, ram: &RamFile, m: &MapInfo) -> Vec<Patch> {
    vec![
        Patch::u32(field(f, ram, m.kva, f.offsets.bpf_map.max_entries), 1 << 31),
        Patch::u32(
            field(f, ram, array_of(f, m), f.offsets.bpf_array.index_mask),
            0x7fff_ffff,
        ),
    ]
}

#[test]
fn array_max_entries_and_index_mask_are_huge() {
    // A vmalloc'ed array of 2^31 1000-byte values: more than the machine has,
    // refused before a walk runs off its area.
    run(
        "array_max_entries_and_index_mask_are_huge",
        |_, f, ram| Some(huge_array(f, ram, f.map("arr_v1000"))),
        Expect::Maps {
            broken: &["arr_v1000"],
            says: &["bpf_array size (larger than memory)"],
        },
    );
}

#[test]
fn array_too_large_for_the_machine_is_refused_at_once() {
    // A small array in the direct map, made 2^31 entries long: past its end
    // lies more RAM, so without a check only the walk's budget
    // (`array::DEFAULT_MAX_ELEMS`, 2^24 keys) stopped it, after 16.7 million
    // garbage entries. Its memory (max_entries * elem_size, 16 GiB) cannot
    // exist in a 512 MiB machine: refused before the walk.
    run(
        "array_too_large_for_the_machine_is_refused_at_once",
        |_, f, ram| Some(huge_array(f, ram, f.map("arr"))),
        Expect::Maps {
            broken: &["arr"],
            says: &["bpf_array size (larger than memory)"],
        },
    );
}

#[test]
fn array_value_size_is_huge() {
    // value_size and elem_size agree on 2 GiB less 8: array_map_alloc_check()
    // allows values up to INT_MAX.
    //
    // Once a bug: the array entry stream sized its value buffer by value_size
    // (2 GiB) and copied up to the end of RAM into it before the read failed;
    // value buffers are now capped (`access::MAX_VALUE_BYTES`).
    run(
        "array_value_size_is_huge",
        |_, f, ram| {
            let m = f.map("arr");
            let size = 0x7fff_fff8;
            Some(vec![
                Patch::u32(field(f, ram, m.kva, f.offsets.bpf_map.value_size), size),
                Patch::u32(
                    field(f, ram, array_of(f, m), f.offsets.bpf_array.elem_size),
                    size,
                ),
            ])
        },
        Expect::Maps {
            broken: &["arr"],
            says: &[],
        },
    );
}

#[test]
fn struct_ops_value_size_is_huge() {
    // The one value of a struct_ops map, 2 GiB less 8 long.
    //
    // Once a bug: the value buffer was allocated before anything checked
    // value_size, which had no upper bound; a never-updated map read as 2 GiB
    // of zeros, which the command then formatted whole.
    run(
        "struct_ops_value_size_is_huge",
        |_, f, ram| {
            let m = f.map("st_ops");
            Some(vec![Patch::u32(
                field(f, ram, m.kva, f.offsets.bpf_map.value_size),
                0x7fff_fff8,
            )])
        },
        Expect::Maps {
            broken: &["st_ops"],
            says: &[],
        },
    );
}

#[test]
fn percpu_values_of_8192_cpus_are_32_kib_each() {
    // Every one of NR_CPUS possible, and one per-CPU value as large as
    // pcpu_alloc() allows: an entry is 8192 * 32 KiB = 256 MiB.
    //
    // Once a bug: that was one allocation, sized by two counts the guest
    // controls; now capped like every value buffer.
    run_without_dumps(
        "percpu_values_of_8192_cpus_are_32_kib_each",
        |_, f, ram| {
            let m = f.map("pcpu_arr");
            Some(vec![
                Patch::u32(pa(f, ram, f.symbols.nr_cpu_ids.unwrap()), 8192),
                Patch::new(
                    pa(f, ram, f.symbols.cpu_possible_mask.unwrap()),
                    vec![0xff; 1024],
                ),
                Patch::u32(field(f, ram, m.kva, f.offsets.bpf_map.value_size), 32 << 10),
                Patch::u32(
                    field(f, ram, array_of(f, m), f.offsets.bpf_array.elem_size),
                    32 << 10,
                ),
                // One key, so one such entry.
                Patch::u32(field(f, ram, m.kva, f.offsets.bpf_map.max_entries), 1),
                Patch::u32(
                    field(f, ram, array_of(f, m), f.offsets.bpf_array.index_mask),
                    0,
                ),
            ])
        },
        Expect::Custom(|g, o| {
            if let Err(e) = &o.discovery {
                return Err(format!("discovery: {e}"));
            }
            let percpu = |id| {
                let m = g.manifest.maps.iter().find(|m| m.id == id).unwrap();
                MapType(m.map_type).is_percpu()
            };
            match o.maps.iter().find(|m| !percpu(m.id) && !m.as_reported) {
                Some(m) => Err(format!(
                    "{} is not per-CPU and broke: {:?}",
                    m.name, m.error
                )),
                None => Ok(()),
            }
        }),
    );
}

// ---------------------------------------------------------------------------
// A map's own BTF object.

/// The `struct btf` of map `m`.
fn btf_of(f: &Facts, ram: &RamFile, m: &MapInfo) -> Kva {
    Kva(read_u64(&f.kmem(ram), at(m.kva, f.offsets.bpf_map.btf)))
}

/// Only the maps sharing `btf_hash`'s BTF object read other than reported,
/// and only in their BTF: their entries are whole.
fn only_the_btf_differs(g: &Guest, o: &Outcome) -> Result<(), String> {
    let btf_id = |id| g.manifest.maps.iter().find(|m| m.id == id).unwrap().btf_id;
    let shared = btf_id(o.map("btf_hash").id);
    for m in &o.maps {
        if btf_id(m.id) == shared {
            if m.error.is_some() || m.btf.is_none() {
                return Err(format!("{}: {m:?}", m.name));
            }
        } else if !m.as_reported {
            return Err(format!("{} broke too: {:?}", m.name, m.error));
        }
    }
    Ok(())
}

#[test]
fn map_btf_claims_256_mib_of_kernel_btf() {
    // The map's BTF object says it is kernel BTF (whose blobs may be larger
    // than BTF_MAX_SIZE) of 256 MiB less a byte.
    //
    // Once a bug: `map_btf` allocated and read all 256 MiB, on the word of a
    // flag the guest sets; a map's BTF is now capped at BTF_MAX_SIZE.
    run(
        "map_btf_claims_256_mib_of_kernel_btf",
        |_, f, ram| {
            let btf = btf_of(f, ram, f.map("btf_hash"));
            Some(vec![
                Patch::u8(field(f, ram, btf, f.offsets.btf.kernel_btf), 1),
                Patch::u32(field(f, ram, btf, f.offsets.btf.data_size), (256 << 20) - 1),
            ])
        },
        Expect::Custom(only_the_btf_differs),
    );
}

/// The blob behind `btf_hash`'s BTF object: where it is and how long.
fn map_btf_blob(f: &Facts, ram: &RamFile) -> (Kva, u32) {
    let k = f.kmem(ram);
    let btf = btf_of(f, ram, f.map("btf_hash"));
    let data = Kva(read_u64(&k, at(btf, f.offsets.btf.data)));
    let size = k.read_kva_u32(at(btf, f.offsets.btf.data_size)).unwrap();
    (data, size)
}

#[test]
fn map_btf_blob_is_garbage() {
    // The blob behind the map's BTF object keeps its header and loses its
    // types and strings: the command's BTF-typed output must cope.
    run(
        "map_btf_blob_is_garbage",
        |_, f, ram| {
            let (data, size) = map_btf_blob(f, ram);
            Some(write_kva(
                f,
                ram,
                at(data, 24),
                &garbage(size as usize - 24, 5),
            ))
        },
        Expect::Custom(only_the_btf_differs),
    );
}

/// Where type `id`'s record is in the agent's BTF blob (`tests/guest-agent/
/// src/btf.rs`: INT, TYPEDEF, ARRAY, STRUCT and ENUM records only).
fn agent_btf_type(id: u32) -> usize {
    let blob = bpfmem_guest_agent::btf::blob();
    let u32_at = |o: usize| u32::from_le_bytes(blob[o..o + 4].try_into().unwrap());
    let mut at = (u32_at(4) + u32_at(8)) as usize;
    for this in 1.. {
        if this == id {
            let kind = (u32_at(at + 4) >> 24) & 0x1f;
            let want = match id {
                15 => 3,
                _ => 4,
            };
            assert_eq!(kind, want, "type {id} of the agent's BTF");
            return at;
        }
        let info = u32_at(at + 4);
        let vlen = (info & 0xffff) as usize;
        at += 12
            + match (info >> 24) & 0x1f {
                1 => 4,
                3 => 12,
                4 | 5 => 12 * vlen,
                6 => 8 * vlen,
                _ => 0,
            };
    }
    unreachable!()
}

#[test]
fn map_btf_struct_contains_itself() {
    // `struct bk` (the key type) gets a member of type `struct bk`: a
    // formatter that follows types without a depth limit recurses forever.
    //
    // Once a bug: no recursion, but the typed plain dump dropped every entry
    // silently, as in `map_btf_array_is_huge`.
    run(
        "map_btf_struct_contains_itself",
        |g, f, ram| {
            let (data, size) = map_btf_blob(f, ram);
            assert_eq!(
                size as usize,
                bpfmem_guest_agent::btf::blob().len(),
                "{}",
                g.name
            );
            // Member 2 (`tag`): btf_member { name_off, type, offset } after the record.
            let member = agent_btf_type(bpfmem_guest_agent::btf::BK_TYPE_ID) + 12 + 2 * 12;
            let bk = bpfmem_guest_agent::btf::BK_TYPE_ID;
            Some(write_kva(
                f,
                ram,
                at(data, member as u32 + 4),
                &bk.to_le_bytes(),
            ))
        },
        Expect::Custom(only_the_btf_differs),
    );
}

#[test]
fn map_btf_array_is_huge() {
    // `char name[4]` of the value type becomes `char name[0xffffffff]`.
    //
    // Once a bug: the command's BTF-typed plain dump dropped every entry it
    // could not format, silently: exit 0, `[]`, 0 of 20 entries. BTF that
    // cannot type the first entry is now not used: the dump prints bytes.
    run(
        "map_btf_array_is_huge",
        |_, f, ram| {
            let (data, _) = map_btf_blob(f, ram);
            // btf_array { type, index_type, nelems } after the 12-byte record.
            let array = agent_btf_type(15) + 12 + 8;
            Some(write_kva(
                f,
                ram,
                at(data, array as u32),
                &u32::MAX.to_le_bytes(),
            ))
        },
        Expect::Custom(only_the_btf_differs),
    );
}

// ---------------------------------------------------------------------------
// Hash chains.

/// The `hlist_nulls_node.next` of element `e`.
fn next_of(f: &Facts, ram: &RamFile, e: &HtabElem) -> Pa {
    field(f, ram, e.elem, f.offsets.htab_elem.hash_node)
}

fn node_of(f: &Facts, e: &HtabElem) -> u64 {
    at(e.elem, f.offsets.htab_elem.hash_node).get()
}

#[test]
fn hash_chain_loops_back() {
    // The last element of a chain of three or more links back to the first.
    run(
        "hash_chain_loops_back",
        |_, f, ram| {
            let (_, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_big"), 3);
            let last = chain.last().unwrap();
            Some(vec![Patch::u64(
                next_of(f, ram, last),
                node_of(f, &chain[0]),
            )])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["malformed htab chain (cycle)"],
        },
    );
}

#[test]
fn hash_chain_points_to_itself() {
    run(
        "hash_chain_points_to_itself",
        |_, f, ram| {
            let (_, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_big"), 2);
            Some(vec![Patch::u64(
                next_of(f, ram, &chain[1]),
                node_of(f, &chain[1]),
            )])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["malformed htab chain (cycle)"],
        },
    );
}

#[test]
fn unpreallocated_hash_chain_loops_back() {
    // BPF_F_NO_PREALLOC: elements come from the allocator, in the direct map.
    run(
        "unpreallocated_hash_chain_loops_back",
        |_, f, ram| {
            let (_, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_nopre"), 2);
            let last = chain.last().unwrap();
            Some(vec![Patch::u64(
                next_of(f, ram, last),
                node_of(f, &chain[0]),
            )])
        },
        Expect::Maps {
            broken: &["hash_nopre"],
            says: &["malformed htab chain (cycle)"],
        },
    );
}

#[test]
fn hash_chain_leaves_the_direct_map_past_ram() {
    // Still in the direct map's range, but 1 TiB up: no such memory.
    run(
        "hash_chain_leaves_the_direct_map_past_ram",
        |_, f, ram| {
            let (_, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_big"), 2);
            let far = f.page_offset_base.get() + (1 << 40);
            Some(vec![Patch::u64(next_of(f, ram, &chain[0]), far)])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["is outside the memory source"],
        },
    );
}

#[test]
fn hash_chain_leaves_for_unmapped_kernel_space() {
    run(
        "hash_chain_leaves_for_unmapped_kernel_space",
        |_, f, ram| {
            let (_, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_big"), 2);
            let away = unmapped_kernel_kva(f, ram);
            Some(vec![Patch::u64(next_of(f, ram, &chain[0]), away.get())])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["is not mapped"],
        },
    );
}

#[test]
fn hash_chain_pointer_is_not_canonical() {
    run(
        "hash_chain_pointer_is_not_canonical",
        |_, f, ram| {
            let (_, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_big"), 2);
            Some(vec![Patch::u64(
                next_of(f, ram, &chain[0]),
                NON_CANONICAL | 0x40,
            )])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["is not canonical"],
        },
    );
}

#[test]
fn hash_chain_jumps_to_another_bucket() {
    run(
        "hash_chain_jumps_to_another_bucket",
        |_, f, ram| {
            let k = f.kmem(ram);
            let chains = htab_chains(f, &k, f.map("hash_big"));
            let mut it = chains.values();
            let (a, b) = (it.next().unwrap(), it.next().unwrap());
            Some(vec![Patch::u64(next_of(f, ram, &a[0]), node_of(f, &b[0]))])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["malformed htab_elem.hash"],
        },
    );
}

#[test]
fn hash_chain_ends_in_another_buckets_marker() {
    run(
        "hash_chain_ends_in_another_buckets_marker",
        |_, f, ram| {
            let (bucket, chain) = chain_of_at_least(f, &f.kmem(ram), f.map("hash_big"), 1);
            let last = chain.last().unwrap();
            Some(vec![Patch::u64(
                next_of(f, ram, last),
                nulls_marker(u64::from(bucket) + 1),
            )])
        },
        Expect::Maps {
            broken: &["hash_big"],
            says: &["malformed htab nulls marker"],
        },
    );
}

#[test]
fn hash_bucket_head_is_null() {
    run(
        "hash_bucket_head_is_null",
        |_, f, ram| {
            let k = f.kmem(ram);
            let h = Htab::new(&k, f.map("hash"), &f.offsets).unwrap();
            Some(vec![Patch::u64(pa(f, ram, h.buckets()), 0)])
        },
        Expect::Maps {
            broken: &["hash"],
            says: &["malformed htab_elem.hash_node.next"],
        },
    );
}

// ---------------------------------------------------------------------------
// Per-CPU data.

#[test]
fn per_cpu_offset_is_bogus() {
    // The last possible CPU's offset points nowhere: every per-CPU map fails,
    // every other map reads whole.
    run(
        "per_cpu_offset_is_bogus",
        |_, f, ram| {
            let cpu = *f.possible_cpus.last().unwrap();
            let slot = at(f.symbols.per_cpu_offset.unwrap(), cpu * 8);
            Some(vec![Patch::u64(pa(f, ram, slot), NON_CANONICAL)])
        },
        Expect::Maps {
            broken: &["pcpu_arr", "pcpu_hash", "lru_pcpu_hash"],
            says: &[],
        },
    );
}

#[test]
fn percpu_array_pointer_is_bogus() {
    run(
        "percpu_array_pointer_is_bogus",
        |_, f, ram| {
            let m = f.map("pcpu_arr");
            let slot = at(at(array_of(f, m), f.offsets.bpf_array.pptrs), 3 * 8);
            Some(vec![Patch::u64(pa(f, ram, slot), 0x4000_0000_0000)])
        },
        Expect::Maps {
            broken: &["pcpu_arr"],
            says: &[],
        },
    );
}

#[test]
fn nr_cpu_ids_is_huge() {
    run(
        "nr_cpu_ids_is_huge",
        |_, f, ram| {
            let at = pa(f, ram, f.symbols.nr_cpu_ids.unwrap());
            Some(vec![Patch::u32(at, 100_000)])
        },
        Expect::Discovery {
            steps: &[Step::Cpus],
            says: &["possible CPUs: implausible nr_cpu_ids 0x186a0"],
        },
    );
}

#[test]
fn possible_cpu_mask_is_empty() {
    run(
        "possible_cpu_mask_is_empty",
        |_, f, ram| {
            let at = pa(f, ram, f.symbols.cpu_possible_mask.unwrap());
            Some(vec![Patch::u64(at, 0)])
        },
        Expect::Discovery {
            steps: &[Step::Cpus],
            says: &["__cpu_possible_mask (empty)"],
        },
    );
}

#[test]
fn every_one_of_8192_cpus_is_possible() {
    // nr_cpu_ids at NR_CPUS and every bit of the mask set: per-CPU reads go
    // to __per_cpu_offset entries no CPU uses. Bounded work; per-CPU values
    // come out with 8192 CPUs' worth each.
    run(
        "every_one_of_8192_cpus_is_possible",
        |_, f, ram| {
            Some(vec![
                Patch::u32(pa(f, ram, f.symbols.nr_cpu_ids.unwrap()), 8192),
                Patch::new(
                    pa(f, ram, f.symbols.cpu_possible_mask.unwrap()),
                    vec![0xff; 1024],
                ),
            ])
        },
        Expect::Custom(|g, o| {
            if let Err(e) = &o.discovery {
                return Err(format!("discovery: {e}"));
            }
            for m in &o.maps {
                let percpu = MapType(
                    g.manifest
                        .maps
                        .iter()
                        .find(|x| x.id == m.id)
                        .unwrap()
                        .map_type,
                )
                .is_percpu();
                if !percpu && !m.as_reported {
                    return Err(format!(
                        "{} is not per-CPU and broke: {:?}",
                        m.name, m.error
                    ));
                }
            }
            Ok(())
        }),
    );
}

// ---------------------------------------------------------------------------
// Arenas (6.9+).

fn arena_of<'a>(g: &Guest, f: &'a Facts) -> Option<&'a MapInfo> {
    g.manifest
        .maps
        .iter()
        .any(|m| m.name == "arena")
        .then(|| f.map("arena"))
}

#[test]
fn arena_kern_vm_is_not_canonical() {
    run(
        "arena_kern_vm_is_not_canonical",
        |g, f, ram| {
            let m = arena_of(g, f)?;
            let a = f.offsets.bpf_arena.unwrap();
            Some(vec![Patch::u64(
                field(f, ram, m.kva, a.kern_vm),
                NON_CANONICAL,
            )])
        },
        Expect::Maps {
            broken: &["arena"],
            says: &["is not canonical"],
        },
    );
}

#[test]
fn arena_vm_area_is_too_small() {
    run(
        "arena_vm_area_is_too_small",
        |g, f, ram| {
            let m = arena_of(g, f)?;
            let a = Arena::new(&f.kmem(ram), m, &f.offsets).unwrap();
            Some(vec![Patch::u64(
                field(f, ram, a.kern_vm(), f.offsets.vm_struct.vm_size),
                4096,
            )])
        },
        Expect::Maps {
            broken: &["arena"],
            says: &["malformed vm_struct.size"],
        },
    );
}

#[test]
fn arena_spans_four_gib() {
    // The user range grows to the most an arena may span: a million page
    // numbers to probe, the same pages present.
    run(
        "arena_spans_four_gib",
        |g, f, ram| {
            let m = arena_of(g, f)?;
            let a = Arena::new(&f.kmem(ram), m, &f.offsets).unwrap();
            let off = f.offsets.bpf_arena.unwrap();
            let start = a.user_vm_start() & !0xffff_ffff;
            // No map_extra: the user range is whatever mmap() made it.
            Some(vec![
                Patch::u64(field(f, ram, m.kva, f.offsets.bpf_map.map_extra), 0),
                Patch::u64(field(f, ram, m.kva, off.user_vm_start), start),
                Patch::u64(field(f, ram, m.kva, off.user_vm_end), start + (1 << 32)),
            ])
        },
        Expect::Custom(|g, o| {
            if let Err(e) = &o.discovery {
                return Err(format!("discovery: {e}"));
            }
            let bad: Vec<&MapRead> = o.maps.iter().filter(|m| !m.as_reported).collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{}: expected every map as reported, arena with {} pages: {:?}",
                    g.name,
                    reported_count(g, "arena"),
                    bad
                ))
            }
        }),
    );
}

// ---------------------------------------------------------------------------
// kallsyms.

fn kallsyms_pa(f: &Facts, ram: &RamFile, table: Option<u64>) -> Pa {
    pa(f, ram, Kva(table.expect("kallsyms table")))
}

#[test]
fn kallsyms_num_syms_is_huge() {
    run(
        "kallsyms_num_syms_is_huge",
        |_, f, ram| {
            Some(vec![Patch::u32(
                kallsyms_pa(f, ram, f.kallsyms().num_syms),
                u32::MAX,
            )])
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["kallsyms_num_syms at", "exceeds the limit of 2000000"],
        },
    );
}

#[test]
fn kallsyms_num_syms_is_at_the_limit() {
    // Two million symbols claimed: the names run on past the real table.
    run(
        "kallsyms_num_syms_is_at_the_limit",
        |_, f, ram| {
            Some(vec![Patch::u32(
                kallsyms_pa(f, ram, f.kallsyms().num_syms),
                2_000_000,
            )])
        },
        Expect::Custom(|_, o| match &o.discovery {
            Ok(()) if o.maps.iter().all(|m| m.as_reported) => Ok(()),
            Ok(()) => Err(format!("discovered, but {}", summary(o))),
            Err(e) if e.step == Step::Kallsyms => Ok(()),
            Err(e) => Err(format!("discovery: {e}")),
        }),
    );
}

#[test]
fn kallsyms_names_are_garbage() {
    run(
        "kallsyms_names_are_garbage",
        |_, f, ram| {
            Some(vec![Patch::new(
                kallsyms_pa(f, ram, f.kallsyms().names),
                vec![0xff; 4096],
            )])
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["kallsyms: malformed kallsyms_names at kva"],
        },
    );
}

#[test]
fn kallsyms_token_table_has_no_nul() {
    run(
        "kallsyms_token_table_has_no_nul",
        |_, f, ram| {
            // All of the table, up to the index that follows it.
            let ks = f.kallsyms();
            let len = (ks.token_index.unwrap() - ks.token_table.unwrap()) as usize;
            Some(vec![Patch::new(
                kallsyms_pa(f, ram, ks.token_table),
                vec![b'A'; len],
            )])
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["kallsyms: malformed kallsyms_token_table"],
        },
    );
}

#[test]
fn kallsyms_token_index_points_past_the_table() {
    run(
        "kallsyms_token_index_points_past_the_table",
        |_, f, ram| {
            Some(vec![Patch::new(
                kallsyms_pa(f, ram, f.kallsyms().token_index),
                vec![0xff; 512],
            )])
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["kallsyms: "],
        },
    );
}

#[test]
fn kallsyms_offsets_are_zeroed() {
    // Every symbol at the same place: what discovery then reads as
    // page_offset_base is kernel text.
    run(
        "kallsyms_offsets_are_zeroed",
        |_, f, ram| {
            let k = f.kmem(ram);
            let n = k.read_kva_u32(Kva(f.kallsyms().num_syms.unwrap())).unwrap() as usize;
            let start = Kva(f.kallsyms().offsets.unwrap());
            // Page by page: the table may cross pages of the image mapping.
            let mut patches = Vec::new();
            let mut off = 0usize;
            while off < n * 4 {
                let len = (4096 - ((start.get() as usize + off) & 0xfff)).min(n * 4 - off);
                patches.push(Patch::new(pa(f, ram, at(start, off as u32)), vec![0; len]));
                off += len;
            }
            Some(patches)
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms, Step::DirectMap],
            says: &[],
        },
    );
}

#[test]
fn kallsyms_relative_base_is_zero() {
    run(
        "kallsyms_relative_base_is_zero",
        |_, f, ram| {
            Some(vec![Patch::u64(
                kallsyms_pa(f, ram, f.kallsyms().relative_base),
                0,
            )])
        },
        Expect::Discovery {
            steps: &[Step::Kallsyms],
            says: &["kallsyms: malformed kallsyms _text"],
        },
    );
}

// ---------------------------------------------------------------------------
// The kernel's BTF.

/// `struct btf_header` of the kernel's BTF: where it is.
fn btf_header(f: &Facts, ram: &RamFile) -> Pa {
    pa(f, ram, f.symbols.start_btf.unwrap())
}

#[test]
fn btf_magic_is_wrong() {
    run(
        "btf_magic_is_wrong",
        |_, f, ram| {
            Some(vec![Patch::new(
                btf_header(f, ram),
                0x1234u16.to_le_bytes(),
            )])
        },
        Expect::Discovery {
            steps: &[Step::Btf],
            says: &["BTF: bad magic 0x1234, expected 0xeb9f"],
        },
    );
}

#[test]
fn btf_string_section_is_huge() {
    run(
        "btf_string_section_is_huge",
        |_, f, ram| {
            // str_len: offset 20 of struct btf_header.
            Some(vec![Patch::u32(
                Pa(btf_header(f, ram).get() + 20),
                u32::MAX,
            )])
        },
        Expect::Discovery {
            steps: &[Step::Btf],
            says: &["BTF: header field str_off + str_len has an impossible value"],
        },
    );
}

/// `(type section, string section)` of the kernel's BTF, as kernel addresses
/// and lengths.
fn btf_sections(f: &Facts, ram: &RamFile) -> ((Kva, u32), (Kva, u32)) {
    let k = f.kmem(ram);
    let start = f.symbols.start_btf.unwrap();
    let u32_at = |off| k.read_kva_u32(at(start, off)).unwrap();
    let (hdr_len, type_off, type_len, str_off, str_len) =
        (u32_at(4), u32_at(8), u32_at(12), u32_at(16), u32_at(20));
    (
        (at(start, hdr_len + type_off), type_len),
        (at(start, hdr_len + str_off), str_len),
    )
}

/// Patches writing `bytes` from `kva` on, page by page (the blob is in the
/// kernel image, linear in physical memory, but say it per page anyway).
fn write_kva(f: &Facts, ram: &RamFile, kva: Kva, bytes: &[u8]) -> Vec<Patch> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let here = at(kva, off as u32);
        let len = (4096 - (here.get() as usize & 0xfff)).min(bytes.len() - off);
        out.push(Patch::new(pa(f, ram, here), bytes[off..off + len].to_vec()));
        off += len;
    }
    out
}

#[test]
fn btf_type_section_is_garbage() {
    run(
        "btf_type_section_is_garbage",
        |_, f, ram| {
            let ((types, len), _) = btf_sections(f, ram);
            // The second quarter of the types: the header still checks out.
            let from = at(types, (len / 4) & !3);
            Some(write_kva(f, ram, from, &garbage(len as usize / 4, 99)))
        },
        Expect::Discovery {
            steps: &[Step::Btf],
            says: &["BTF: "],
        },
    );
}

#[test]
fn btf_string_section_is_garbage() {
    // Once a bug: with no NUL inside the string section every name ran to its
    // end, and indexing struct names hashed each whole: time grew with named
    // structs times section size (12 s for Debian's 2 MB section in the
    // release command). Names are now cut off at the kernel's 512 bytes.
    run(
        "btf_string_section_is_garbage",
        |_, f, ram| {
            let (_, (strings, len)) = btf_sections(f, ram);
            // Every name a run of 'x', keeping the NULs at both ends.
            Some(write_kva(
                f,
                ram,
                at(strings, 1),
                &vec![b'x'; len as usize - 2],
            ))
        },
        Expect::Discovery {
            steps: &[Step::Btf],
            says: &["BTF: "],
        },
    );
}

// ---------------------------------------------------------------------------
// Files cut short or garbled.

/// A file-level case: `make` writes the bad file at the path it is given.
/// The library must fail to open it, or open it and fail or succeed within
/// bounds; the command must agree, on one line.
fn file_case(
    name: &str,
    file_name: &str,
    make: impl Fn(&Guest, &Path),
    check: impl Fn(&Guest, &Result<Outcome, String>) -> Result<(), String>,
    option: &str,
) {
    let mut f = Failures::default();
    let mut done = 0;
    for g in guests()
        .iter()
        .filter(|g| CLI_GUESTS.contains(&g.name.as_str()))
    {
        let dir = WorkingCopy::dir().join(format!("{name}-{}", g.name));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name);
        make(g, &path);
        let p = path.clone();
        let elf = option == "--core";
        let t = watched(name, move || {
            // As `Kernel::open` does it: an ELF core's VMCOREINFO note
            // first, else a scan of memory.
            let image = if elf {
                ElfCore::open(&p).map(Image::Core)
            } else {
                RamFile::open(&p, Pa(0)).map(Image::Ram)
            };
            image.map(|i| read_image(g, i)).map_err(|e| e.to_string())
        });
        match &t.value {
            Ok(o) => eprintln!("{name}: {}: {:.2?}: {}", g.name, t.elapsed, summary(o)),
            Err(e) => eprintln!("{name}: {}: {:.2?}: open: {e}", g.name, t.elapsed),
        }
        f.check(t.elapsed < TIME_LIMIT, || {
            format!("{}: took {:?}", g.name, t.elapsed)
        });
        f.check(t.largest <= ALLOC_LIMIT, || {
            format!("{}: allocated {} MiB at once", g.name, t.largest >> 20)
        });
        if let Err(e) = check(g, &t.value) {
            f.0.push(format!("{}: {e}", g.name));
        }
        let show = bpfmem(vec![
            option.into(),
            path.clone().into(),
            "map".into(),
            "show".into(),
        ]);
        show.check_hygiene(&g.name, &mut f);
        let want_fail = match &t.value {
            Err(e) => Some(e.clone()),
            Ok(o) => match (&o.discovery, &o.listing_error) {
                (Err(e), _) => Some(format!("{}: {e}", path.display())),
                (Ok(()), Some(e)) => Some(e.to_string()),
                _ => None,
            },
        };
        match want_fail {
            Some(e) => f.check(show.code == Some(1) && show.stderr.contains(&e), || {
                format!(
                    "{}: map show: {:?}, expected the library's '{e}'",
                    g.name, show.stderr
                )
            }),
            None => f.check(show.code == Some(0), || {
                format!("{}: map show failed: {:?}", g.name, show.stderr)
            }),
        }
        let _ = std::fs::remove_dir_all(&dir);
        done += 1;
    }
    if !guests().is_empty() {
        f.check(done == CLI_GUESTS.len(), || format!("ran on {done} guests"));
    }
    f.finish(name);
}

fn opened_with(r: &Result<Outcome, String>, says: &[&str]) -> Result<(), String> {
    match r {
        Err(e) if says_all(e, says) => Ok(()),
        Err(e) => Err(format!("open: '{e}', expected {says:?}")),
        Ok(o) => Err(format!("opened: {}", summary(o))),
    }
}

#[test]
fn elf_dump_cut_inside_the_elf_header() {
    file_case(
        "elf_dump_cut_inside_the_elf_header",
        "cut.elf",
        |g, p| write_prefix(&g.elf, p, 40),
        |_, r| {
            opened_with(
                r,
                &[
                    "cut.elf: ",
                    "ELF header (64 bytes) runs past the end of the file (0x28 bytes)",
                ],
            )
        },
        "--core",
    );
}

#[test]
fn elf_dump_cut_inside_the_program_headers() {
    file_case(
        "elf_dump_cut_inside_the_program_headers",
        "cut.elf",
        |g, p| write_prefix(&g.elf, p, 64 + 56 + 20),
        |_, r| {
            opened_with(
                r,
                &["cut.elf: offset 0xc0: program header table (3 entries x 56 bytes) runs past the end of the file (0x8c bytes)"],
            )
        },
        "--core",
    );
}

#[test]
fn elf_dump_cut_inside_memory() {
    file_case(
        "elf_dump_cut_inside_memory",
        "cut.elf",
        |g, p| write_prefix(&g.elf, p, 256 << 20),
        |_, r| {
            opened_with(
                r,
                &[
                    "cut.elf: offset 0x",
                    "PT_LOAD segment",
                    "runs past the end of the file (0x10000000 bytes)",
                ],
            )
        },
        "--core",
    );
}

#[test]
fn elf_dump_claims_65535_program_headers() {
    file_case(
        "elf_dump_claims_65535_program_headers",
        "garbled.elf",
        |g, p| {
            write_prefix(&g.elf, p, 1 << 20);
            // e_phnum: offset 56 of Elf64_Ehdr; 0xffff is PN_XNUM.
            let file = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &0xfffeu16.to_le_bytes(), 56).unwrap();
        },
        |_, r| {
            opened_with(r, &["garbled.elf: offset 0xc0: program header table (65534 entries x 56 bytes) runs past the end of the file"])
        },
        "--core",
    );
}

#[test]
fn elf_vmcoreinfo_note_is_garbage() {
    // The ELF core's own VMCOREINFO note (what QEMU got from the guest
    // through fw_cfg) is garbage: discovery must fall back to the copies in
    // memory and read everything.
    file_case(
        "elf_vmcoreinfo_note_is_garbage",
        "note.elf",
        |g, p| {
            std::fs::copy(&g.elf, p).unwrap();
            let (desc, len) = elf_vmcoreinfo_note(p);
            let file = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &garbage(len, 3), desc).unwrap();
        },
        |_, r| match r {
            Ok(o) if o.discovery.is_ok() && o.maps.iter().all(|m| m.as_reported) => Ok(()),
            Ok(o) => Err(summary(o)),
            Err(e) => Err(format!("open: {e}")),
        },
        "--core",
    );
}

/// Where the desc of the VMCOREINFO note of the ELF core at `path` is, and
/// its length.
fn elf_vmcoreinfo_note(path: &Path) -> (u64, usize) {
    let file = std::fs::File::open(path).unwrap();
    let read = |off: u64, len: usize| {
        let mut b = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, off).unwrap();
        b
    };
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let ehdr = read(0, 64);
    let (phoff, phnum) = (u64_at(&ehdr, 32), u16_at(&ehdr, 56));
    for i in 0..u64::from(phnum) {
        let ph = read(phoff + i * 56, 56);
        if u32_at(&ph, 0) != 4 {
            continue;
        }
        let (off, size) = (u64_at(&ph, 8), u64_at(&ph, 32) as usize);
        let notes = read(off, size);
        let mut at = 0;
        while at + 12 <= notes.len() {
            let (namesz, descsz) = (u32_at(&notes, at) as usize, u32_at(&notes, at + 4) as usize);
            let name = at + 12;
            let desc = name + namesz.next_multiple_of(4);
            if &notes[name..name + namesz] == b"VMCOREINFO\0" {
                return (off + desc as u64, descsz);
            }
            at = desc + descsz.next_multiple_of(4);
        }
    }
    panic!("{}: no VMCOREINFO note", path.display());
}

#[test]
fn ram_file_cut_in_half() {
    // Everything in the lower 256 MiB still reads; what lies above fails
    // with an address outside the file, wherever the walkers meet it. Where
    // the kernel's VMCOREINFO lay above the cut, the scan may find only an
    // older, incomplete copy of it below: discovery says which keys it lacks
    // and where it was found.
    file_case(
        "ram_file_cut_in_half",
        "half.ram",
        |g, p| write_prefix(&g.ram, p, 256 << 20),
        |_, r| match r {
            Err(e) => Err(format!("open: {e}")),
            Ok(o) => {
                let fine = |e: &str| e.contains("is outside the memory source");
                let stale = |e: &str| e.starts_with("page tables: VMCOREINFO (memory at pa ");
                match &o.discovery {
                    Err(e) if fine(&e.to_string()) || stale(&e.to_string()) => return Ok(()),
                    Err(e) => return Err(format!("discovery: {e}")),
                    Ok(()) => {}
                }
                if let Some(e) = &o.listing_error {
                    return fine(&e.to_string())
                        .then_some(())
                        .ok_or(format!("listing: {e}"));
                }
                for m in &o.maps {
                    if let Some(e) = &m.error {
                        if !fine(&e.to_string()) {
                            return Err(format!("{}: {e}", m.name));
                        }
                    }
                }
                Ok(())
            }
        },
        "--ram",
    );
}

#[test]
fn ram_file_is_one_page() {
    file_case(
        "ram_file_is_one_page",
        "page.ram",
        |g, p| write_prefix(&g.ram, p, 4096),
        |_, r| match r {
            Ok(o) => match &o.discovery {
                Err(e) if e.step == Step::Vmcoreinfo => Ok(()),
                _ => Err(summary(o)),
            },
            Err(e) => Err(format!("open: {e}")),
        },
        "--ram",
    );
}

#[test]
fn ram_file_is_empty() {
    file_case(
        "ram_file_is_empty",
        "empty.ram",
        |_, p| std::fs::write(p, b"").unwrap(),
        |_, r| opened_with(r, &["empty.ram: offset 0x0: the file is empty"]),
        "--ram",
    );
}
