#!/usr/bin/env python3
"""Measure bpfmem against drgn and bpftool, and the library benches behind the
performance targets, then write BENCHMARKS.md from BENCHMARKS.md.in.

Run through run.sh, which installs the tools and builds bpfmem first
(`bench.py --render` only rewrites BENCHMARKS.md from the last results). Every
measurement is taken in ROUNDS interleaved rounds (image commands, live
commands, criterion benches, then the next round) and reported as the median
over the rounds of each round's median, so that the load other jobs put on
the machine falls alike on both sides of every ratio.
"""

import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get("BPFMEM_CACHE") or Path.home() / ".cache/bpfmem-testbed")
GUEST = os.environ.get("BPFMEM_BENCH_GUEST", "6.12-pvh")
ROUNDS = int(os.environ.get("BPFMEM_BENCH_ROUNDS", "3"))
QUICK = os.environ.get("BPFMEM_BENCH_QUICK") == "1"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
OUT = TARGET / "bench-compare"
BPFMEM = TARGET / "release/bpfmem"
BENCH_MAP = TARGET / "release/bpfmem-bench-map"
DRGN = CACHE / "bench/venv/bin/drgn"
DRGN_SCRIPT = HERE / "drgn_dump.py"
PIN = Path("/sys/fs/bpf/bpfmem_bench_1m")
LIVE_ENTRIES = 1 << 20


def say(msg):
    print("bench.py: " + msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def q(args):
    """A command line for hyperfine -N, which splits it with shell quoting rules."""
    return shlex.join(str(a) for a in args)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- setup


def guest_files():
    g = CACHE / "guests" / GUEST
    dump, ram = g / "dump.elf", g / "ram.bin"
    for f in (dump, ram):
        if not f.exists():
            sys.exit(f"bench.py: no {f}: run ./tests/run first (it makes the test-bed images)")
    return dump, ram


def image_facts(dump):
    release = None
    for line in run([BPFMEM, "--core", dump, "kernel", "show"]).splitlines():
        if line.startswith("release:"):
            release = line.split(":", 1)[1].strip()
    maps = json.loads(run([BPFMEM, "--core", dump, "-j", "map", "show"]))
    by_name = {m.get("name"): m["id"] for m in maps}
    return release, by_name, [m["id"] for m in maps]


def fetch_vmlinux(release):
    out = CACHE / "bench/dbg" / f"vmlinux-{release}"
    say(f"DWARF for {release} (linux-image-{release}-dbg)")
    subprocess.run(
        [sys.executable, HERE / "fetch_dbg.py", release, CACHE / "bench/apt", out],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def checks(dump, ram, vmlinux, hash_id):
    """The two sides print the same thing, or the comparison means nothing."""
    res = {}
    drgn = [DRGN, "-q", "-c", dump, "-s", vmlinux, DRGN_SCRIPT]
    ours = run([BPFMEM, "--core", dump, "map", "show"])
    res["show_equal"] = ours == run(drgn + ["show"])
    res["show_ram_equal"] = ours == run([BPFMEM, "--ram", ram, "map", "show"])
    ours = run([BPFMEM, "--core", dump, "-j", "map", "dump", "id", str(hash_id)])
    res["dump_equal"] = ours == run(drgn + ["dump", str(hash_id)])
    res["dump_helpers_equal"] = ours == run(drgn + ["dump-helpers", str(hash_id)])
    res["dump_entries"] = len(json.loads(ours))
    for k, v in res.items():
        say(f"check {k}: {v}")
    return res


def live_setup():
    """Pin a 1M-entry hash on the host; its id, or why there is none."""
    if os.geteuid() != 0:
        return None, "not root"
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    if PIN.exists():
        PIN.unlink()
    try:
        map_id = int(run([BENCH_MAP, PIN, str(LIVE_ENTRIES)]).strip())
    except subprocess.CalledProcessError as e:
        return None, e.stderr.strip()
    return map_id, None


def live_check(map_id):
    ours = json.loads(run([BPFMEM, "-j", "map", "dump", "id", str(map_id)]))
    theirs = json.loads(run(["bpftool", "-j", "map", "dump", "id", str(map_id)]))
    key = lambda e: (e["key"], e["value"])  # noqa: E731
    same = sorted(ours, key=key) == sorted(theirs, key=key)
    say(f"check live dump equal: {same} ({len(ours)} and {len(theirs)} entries)")
    return {"live_equal": same, "live_entries": len(ours), "live_entries_bpftool": len(theirs)}


# ---------------------------------------------------------------- measuring


def hyperfine(name, rnd, cmds, runs, warmup, env=None, prepare=None):
    """One hyperfine invocation; {label: median seconds}."""
    out = OUT / f"hyperfine-{name}-r{rnd}.json"
    args = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs)]
    if prepare:
        args += ["--prepare", q(prepare)]
    args += ["--export-json", str(out)]
    for label, cmd in cmds:
        args += ["-n", label, q(cmd)]
    say(f"round {rnd}: hyperfine {name}")
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
    data = json.loads(out.read_text())
    return {r["command"]: r["median"] for r in data["results"]}


def fadvise_dontneed(path):
    """Drop `path` from the page cache (only our own copy is ever passed)."""
    return [sys.executable, "-c",
            f"import os; fd = os.open('{path}', os.O_RDONLY); "
            "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)"]


def criterion(rnd):
    home = OUT / f"criterion-r{rnd}"
    shutil.rmtree(home, ignore_errors=True)
    env = dict(os.environ, CRITERION_HOME=str(home), BPFMEM_BENCH_IMAGE=str(guest_files()[1]))
    times = ["--warm-up-time", "0.3", "--measurement-time", "0.5"] if QUICK else \
        ["--warm-up-time", "0.5", "--measurement-time", "2"]
    say(f"round {rnd}: criterion benches")
    with open(OUT / f"criterion-r{rnd}.log", "w") as log:
        subprocess.run(
            ["cargo", "bench", "--quiet", "-p", "bpfmem-benches", "--bench", "core_walks",
             "--bench", "image_walks", "--", "--noplot", *times],
            cwd=ROOT, env=env, check=True, stdout=log, stderr=subprocess.STDOUT,
        )
    res = {}
    for bench in home.rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        thr = meta.get("throughput") or {}
        res[meta["full_id"]] = {
            "median_ns": est["median"]["point_estimate"],
            "elements": thr.get("Elements"),
            "bytes": thr.get("Bytes"),
        }
    return res


def peak_rss(cmd, runs=3):
    """Median of the peak resident set sizes, KiB (GNU time's %M)."""
    rss = []
    for _ in range(runs):
        r = subprocess.run(["/usr/bin/time", "-f", "%M", *map(str, cmd)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd}: {r.stderr.strip()}")
        rss.append(int(r.stderr.strip().splitlines()[-1]))
    return statistics.median(rss)


# ---------------------------------------------------------------- report


def machine():
    def cmd(c):
        try:
            return run(c).strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    lscpu = {}
    for line in cmd(["lscpu"]).splitlines():
        k, _, v = line.partition(":")
        lscpu[k.strip()] = v.strip()
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = "?"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu": lscpu.get("Model name", "?"),
        "cpus": lscpu.get("CPU(s)", "?"),
        "caches": "L1d {}, L2 {}, L3 {}".format(
            lscpu.get("L1d cache", "?"), lscpu.get("L2 cache", "?"), lscpu.get("L3 cache", "?")),
        "hypervisor": lscpu.get("Hypervisor vendor", "none"),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": os_name,
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "rustc": cmd(["rustc", "--version"]),
        "hyperfine": cmd(["hyperfine", "--version"]),
        "bpftool": "bpftool " + cmd(["bpftool", "--version"]).splitlines()[0].split()[-1],
        "drgn": cmd([DRGN, "--version"]).split(" (")[0],
        "python": platform.python_version(),
    }


def ms(s):
    return "n/a" if s is None else f"{s * 1e3:.1f} ms"


def secs(s):
    return "n/a" if s is None else (f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.0f} ms")


def rate(x):
    return "n/a" if x is None else (f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x / 1e3:.0f} k/s")


def mib(kb):
    return "n/a" if kb is None else f"{kb / 1024:.1f} MiB"


def gib_s(x):
    return "n/a" if x is None else f"{x / 2**30:.2f} GiB/s"


def verdict(ok):
    return "n/a" if ok is None else ("**holds**" if ok else "**misses**")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(r):
    t = r["times"]
    crit = r["criterion"]

    def cm(bench_id, per="elements"):
        """Throughput (per second) of a criterion bench, from its median."""
        c = crit.get(bench_id)
        if not c or not c.get(per):
            return None
        return c[per] / (c["median_ns"] / 1e9)

    show_core, show_ram = t.get("bpfmem map show (ELF core)"), t.get("bpfmem map show (RAM file)")
    show = max(x for x in (show_core, show_ram) if x is not None)
    drgn_show = t.get("drgn map show")
    dump_json = t.get("bpfmem -j map dump (ELF core)")
    drgn_dump = t.get("drgn dump (raw reads)")
    drgn_walk = r["drgn_walk"]
    live_ours, live_bpftool = t.get("bpfmem -j map dump (live)"), t.get("bpftool -j map dump (live)")
    walk_acc = cm("hash_big/entries")
    walk_core = cm("hash_big/core iter read_key_value")
    entries = r["checks"]["dump_entries"]
    drgn_rate = entries / drgn_walk if drgn_walk else None
    image_rss = {k: v for k, v in r["rss"].items() if k.startswith("bpfmem ") and "(live)" not in k}
    worst_rss_cmd = max(image_rss, key=image_rss.get)
    worst_rss = image_rss[worst_rss_cmd]
    drgn_rss = max(v for k, v in r["rss"].items() if k.startswith("drgn"))

    def ratio(a, b):
        return a / b if a and b else None

    # (size, read_values, memcpy whole, read_value, memcpy value by value,
    #  bulk ratio, one-value ratio)
    arrays = []
    for size in ["8", "1000", "4096", "65536", "1048576"]:
        bulk = cm(f"array read vs memcpy/Array::read_values/{size}", "bytes")
        whole = cm(f"array read vs memcpy/memcpy whole/{size}", "bytes")
        one = cm(f"array read vs memcpy/Array::read_value/{size}", "bytes")
        base = cm(f"array read vs memcpy/memcpy/{size}", "bytes")
        arrays.append((size, bulk, whole, one, base, ratio(bulk, whole), ratio(one, base)))
    # (size, read_values, memcpy whole, read_value, accessor, memcpy value by value)
    real_arrays = []
    for size in ["8", "1000"]:
        bulk = cm(f"array real/Array::read_values/{size}", "bytes")
        whole = cm(f"array real/memcpy whole/{size}", "bytes")
        one = cm(f"array real/Array::read_value/{size}", "bytes")
        acc = cm(f"array real/read_array_value (accessor)/{size}", "bytes")
        base = cm(f"array real/memcpy/{size}", "bytes")
        real_arrays.append((size, bulk, whole, one, acc, base))
    real_ratio = {s: ratio(bulk, w) for s, bulk, w, _o, _a, _b in real_arrays if ratio(bulk, w)}
    array_ok = all(x[5] is not None and x[5] >= 0.5 for x in arrays) and \
        all(x >= 0.5 for x in real_ratio.values())
    array_ok_sizes = [x[0] for x in arrays if x[5] is not None and x[5] >= 0.5
                      and real_ratio.get(x[0], 1) >= 0.5]

    live_ratio = live_bpftool / live_ours if live_ours and live_bpftool else None
    dump_ratio_proc = drgn_dump / dump_json if drgn_dump and dump_json else None
    dump_ratio_walk = drgn_walk / dump_json if drgn_walk and dump_json else None

    targets = [
        ("`map show`, cold process, 512 MiB image", "≤ 50 ms wall",
         f"{ms(show)} (ELF core {ms(show_core)}, RAM file {ms(show_ram)})",
         f"drgn `bpf_map_for_each`: {secs(drgn_show)}",
         f"{drgn_show / show:.0f}× faster than drgn" if drgn_show and show else "",
         show <= 0.050),
        ("100k-entry hash walk in the library", "≥ 10 M entries/s",
         f"{rate(walk_acc)} (`Kernel::entries`, keys and values); core walk + `read_key_value`: {rate(walk_core)}",
         f"drgn walk: {rate(drgn_rate)}",
         f"{walk_acc / 10e6:.2f}× the target" if walk_acc else "",
         walk_acc is not None and walk_acc >= 10e6),
        ("JSON dump of that hash through the CLI", "≥ 50× faster than drgn",
         f"{ms(dump_json)}",
         f"drgn process {secs(drgn_dump)}, its walk alone {secs(drgn_walk)}",
         f"{dump_ratio_proc:.0f}× (whole processes), {dump_ratio_walk:.0f}× (drgn's walk alone)"
         if dump_ratio_proc and dump_ratio_walk else "",
         dump_ratio_walk is not None and dump_ratio_walk >= 50),
        ("live JSON dump, 1M-entry hash", "≥ 8× faster than bpftool",
         secs(live_ours), f"bpftool: {secs(live_bpftool)}",
         f"{live_ratio:.1f}×" if live_ratio else r.get("live_skipped", ""),
         None if live_ratio is None else live_ratio >= 8),
        ("peak RSS, any command, 512 MiB image", "≤ 64 MiB",
         f"{mib(worst_rss)} ({worst_rss_cmd})", f"drgn: {mib(drgn_rss)}",
         f"{drgn_rss / worst_rss:.0f}× less than drgn",
         worst_rss <= 64 * 1024),
        ("array reads", "≥ ½ memcpy bandwidth",
         "`Array::read_values`, synthetic: " + "; ".join(f"{a[0]} B {a[5]:.2f}" for a in arrays if a[5])
         + "; test bed: " + "; ".join(f"{size} B {x:.2f}" for size, x in real_ratio.items()),
         "memcpy of the same bytes into one buffer",
         "read ÷ memcpy bandwidth, per value size",
         array_ok),
    ]
    target_rows = [(name, goal, fig, anchor, ratio, verdict(ok)) for name, goal, fig, anchor, ratio, ok in targets]

    image_rows = [(k, ms(v) if v < 1 else secs(v)) for k, v in t.items() if "(live)" not in k]
    live_rows = [(k, secs(v)) for k, v in t.items() if "(live)" in k]
    rss_rows = [(k, mib(v)) for k, v in r["rss"].items()]
    bench_rows = []
    for bid in sorted(crit):
        c = crit[bid]
        thr = ""
        if c.get("elements"):
            thr = rate(c["elements"] / (c["median_ns"] / 1e9)).replace("/s", " elem/s")
        elif c.get("bytes"):
            thr = gib_s(c["bytes"] / (c["median_ns"] / 1e9))
        ns = c["median_ns"]
        tm = f"{ns / 1e6:.3f} ms" if ns >= 1e5 else f"{ns / 1e3:.2f} µs"
        bench_rows.append((bid, tm, thr))
    def r2(x):
        return f"{x:.2f}" if x else "n/a"

    array_rows = [(s, gib_s(bulk), gib_s(whole), r2(xb), gib_s(one), gib_s(b), r2(xo))
                  for s, bulk, whole, one, b, xb, xo in arrays]
    real_array_rows = [(s, gib_s(bulk), gib_s(whole), r2(ratio(bulk, whole)), gib_s(one), gib_s(a),
                        gib_s(b), r2(ratio(one, b)))
                       for s, bulk, whole, one, a, b in real_arrays]

    m = r["machine"]
    machine_text = "\n".join([
        f"- CPU: {m['cpu']}, {m['cpus']} CPUs ({m['caches']}), hypervisor: {m['hypervisor']}",
        f"- memory: {m['memory']}; OS: {m['os']}, kernel {m['kernel']}",
        f"- load average when the run started / ended: {r['load_start']} / {m['load']}",
        f"- {m['rustc']}; {m['hyperfine']}; {m['bpftool']}; {m['drgn']}",
    ])
    c = r["checks"]
    checks_text = "\n".join([
        f"- `map show`: bpfmem and drgn print the same text: {c['show_equal']}; "
        f"the RAM file gives the same as the ELF core: {c['show_ram_equal']}",
        f"- `map dump` of `hash_big` ({c['dump_entries']} entries): bpfmem's JSON and "
        f"drgn's are byte for byte the same: {c['dump_equal']} (helpers variant: {c['dump_helpers_equal']})",
        f"- live dump: the same entries from bpfmem and bpftool: {c.get('live_equal', 'n/a')} "
        f"({c.get('live_entries', 'n/a')} and {c.get('live_entries_bpftool', 'n/a')} entries)",
    ])

    note_subs = {
        "@@WALK@@": rate(walk_acc),
        "@@DRGN_WALK@@": secs(drgn_walk),
        "@@DUMP_TIME@@": ms(dump_json),
        "@@DUMP_BUDGET@@": ms(drgn_walk / 50) if drgn_walk else "n/a",
        "@@DUMP_FACTOR@@": f"{dump_json / (drgn_walk / 50):.1f}" if drgn_walk and dump_json else "n/a",
        "@@DUMP_PROC_RATIO@@": f"{dump_ratio_proc:.0f}" if dump_ratio_proc else "n/a",
        "@@LIVE_TIME@@": secs(live_ours),
        "@@BPFTOOL@@": secs(live_bpftool),
        "@@LIVE_BUDGET@@": secs(live_bpftool / 8) if live_bpftool else "n/a",
        "@@SHOW@@": ms(show),
    }
    notes = []
    for (name, *_rest, ok) in targets:
        if ok is False:
            note = MISS_NOTES.get(name, "(no note in miss_notes.md for this target)")
            for k, v in note_subs.items():
                note = note.replace(k, v)
            notes.append(f"### {name}: misses\n\n{note.strip()}\n")
    if notes:
        notes.insert(0, NOTES_PREAMBLE.strip() + "\n")
    holds = sum(1 for *_x, ok in targets if ok)
    text = (HERE / "BENCHMARKS.md.in").read_text()
    subs = {
        "@@DATE@@": r["date"],
        "@@GUEST@@": GUEST,
        "@@RELEASE@@": r["release"],
        "@@ROUNDS@@": str(ROUNDS),
        "@@QUICK@@": " (quick mode: fewer runs, shorter samples)" if QUICK else "",
        "@@SUMMARY@@": f"{holds} of {len(targets)} targets hold.",
        "@@TARGETS@@": table(["target", "goal", "bpfmem", "anchor", "ratio", "verdict"], target_rows),
        "@@MACHINE@@": machine_text,
        "@@CHECKS@@": checks_text,
        "@@IMAGE_TIMES@@": table(["command (hyperfine, median of round medians)", "wall time"], image_rows),
        "@@LIVE_TIMES@@": table(["command", "wall time"], live_rows) if live_rows
        else f"Not measured: {r.get('live_skipped', 'no live run')}.",
        "@@RSS@@": table(["command", "peak RSS (median of 3)"], rss_rows),
        "@@ARRAYS@@": table(["value size (B)", "Array::read_values", "memcpy, one buffer", "ratio",
                             "Array::read_value (one per call)", "memcpy, value by value", "ratio"],
                            array_rows),
        "@@REAL_ARRAYS@@": table(["value size (B)", "Array::read_values", "memcpy, one buffer", "ratio",
                                  "Array::read_value (one per call)", "read_array_value (accessor)",
                                  "memcpy, value by value", "ratio (read_value)"],
                                 real_array_rows),
        "@@BENCHES@@": table(["criterion bench", "median", "throughput"], bench_rows),
        "@@ARRAY_SIZES_OK@@": ", ".join(array_ok_sizes) or "none",
        "@@NOTES@@": "\n".join(notes) if notes else "Every target holds.\n",
    }
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


# Why a target misses and what would close it, from profiles (callgrind
# instruction counts, see "How the misses were profiled"). Shown only for the
# targets that miss in the run.
# The text before the first section says where the figures come from.
MISS_NOTES = {}
NOTES_PREAMBLE = ""
NOTES_FILE = HERE / "miss_notes.md"
if NOTES_FILE.exists():
    current = None
    for line in NOTES_FILE.read_text().splitlines(keepends=True):
        if line.startswith("## "):
            current = line[3:].strip()
            MISS_NOTES[current] = ""
        elif current:
            MISS_NOTES[current] += line
        elif not line.startswith("# "):
            NOTES_PREAMBLE += line


# ---------------------------------------------------------------- main


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*"):
        if f.is_file():
            f.unlink()
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    dump, ram = guest_files()
    release, by_name, map_ids = image_facts(dump)
    hash_id = by_name["hash_big"]
    vmlinux = fetch_vmlinux(release)
    res = {"checks": checks(dump, ram, vmlinux, hash_id)}

    live_id, why = live_setup()
    try:
        measure(res, dump, ram, vmlinux, hash_id, map_ids, live_id, why)
    finally:
        if live_id is not None and PIN.exists():
            PIN.unlink()
    res["release"] = release
    res["machine"] = machine()
    res["load_start"] = load_start
    res["date"] = datetime.date.today().isoformat()
    (OUT / "results.json").write_text(json.dumps(res, indent=1))
    (ROOT / "BENCHMARKS.md").write_text(render(res))
    say(f"wrote {ROOT / 'BENCHMARKS.md'} (raw results in {OUT})")


def measure(res, dump, ram, vmlinux, hash_id, map_ids, live_id, why):
    if live_id is not None:
        res["checks"].update(live_check(live_id))
    else:
        res["live_skipped"] = f"live comparison skipped: {why}"
        say(res["live_skipped"])

    # The page-cache-cold run reads its own copy, so that dropping it from
    # the cache disturbs nobody.
    cold = CACHE / "bench/cold/dump.elf"
    if not cold.exists() or cold.stat().st_mtime < dump.stat().st_mtime:
        cold.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dump, cold)
        # Written back, so that POSIX_FADV_DONTNEED can drop every page.
        with open(cold, "rb+") as f:
            os.fsync(f.fileno())

    drgn = [DRGN, "-q", "-c", dump, "-s", vmlinux, DRGN_SCRIPT]
    walk_log = OUT / "drgn-walk.log"
    env = dict(os.environ, BPFMEM_DRGN_WALK_LOG=str(walk_log))
    fast = 5 if QUICK else 20
    slow = 2 if QUICK else 5
    times = {}
    criterion_rounds = []
    for rnd in range(1, ROUNDS + 1):
        per = {}
        per.update(hyperfine("show", rnd, [
            ("bpfmem map show (ELF core)", [BPFMEM, "--core", dump, "map", "show"]),
            ("bpfmem map show (RAM file)", [BPFMEM, "--ram", ram, "map", "show"]),
            ("drgn map show", drgn + ["show"]),
        ], runs=fast, warmup=2))
        per.update(hyperfine("show-cold", rnd, [
            ("bpfmem map show (ELF core, page cache dropped)", [BPFMEM, "--core", cold, "map", "show"]),
        ], runs=max(3, fast // 2), warmup=0, prepare=fadvise_dontneed(cold)))
        per.update(hyperfine("dump", rnd, [
            ("bpfmem -j map dump (ELF core)", [BPFMEM, "--core", dump, "-j", "map", "dump", "id", hash_id]),
            ("bpfmem -j map dump (RAM file)", [BPFMEM, "--ram", ram, "-j", "map", "dump", "id", hash_id]),
            ("bpfmem map dump, plain (ELF core)", [BPFMEM, "--core", dump, "map", "dump", "id", hash_id]),
            ("drgn dump (raw reads)", drgn + ["dump", str(hash_id)]),
        ], runs=slow, warmup=1, env=env))
        per.update(hyperfine("dump-helpers", rnd, [
            ("drgn dump (hlist_nulls_for_each_entry)", drgn + ["dump-helpers", str(hash_id)]),
        ], runs=max(1, slow // 2), warmup=0))
        if live_id is not None:
            per.update(hyperfine("live", rnd, [
                ("bpfmem -j map dump (live)", [BPFMEM, "-j", "map", "dump", "id", live_id]),
                ("bpftool -j map dump (live)", ["bpftool", "-j", "map", "dump", "id", live_id]),
            ], runs=slow, warmup=1))
        criterion_rounds.append(criterion(rnd))
        for k, v in per.items():
            times.setdefault(k, []).append(v)
    res["times"] = {k: median(v) for k, v in times.items()}
    walks = [float(line.split()[1]) for line in walk_log.read_text().splitlines()
             if line.startswith("drgn-walk-seconds")]
    res["drgn_walk"] = median(walks)
    ids = set().union(*criterion_rounds)
    res["criterion"] = {}
    for bid in ids:
        got = [c[bid] for c in criterion_rounds if bid in c]
        res["criterion"][bid] = dict(got[0], median_ns=median([g["median_ns"] for g in got]))

    say("peak RSS")
    rss = {}
    rss["bpfmem map show (ELF core)"] = peak_rss([BPFMEM, "--core", dump, "map", "show"])
    rss["bpfmem map show (RAM file)"] = peak_rss([BPFMEM, "--ram", ram, "map", "show"])
    for verb in ["kernel", "prog", "btf"]:
        rss[f"bpfmem {verb} show (ELF core)"] = peak_rss([BPFMEM, "--core", dump, verb, "show"])
    rss["bpfmem -j map dump hash_big (ELF core)"] = peak_rss(
        [BPFMEM, "--core", dump, "-j", "map", "dump", "id", hash_id])
    rss["bpfmem -j map dump hash_big (RAM file)"] = peak_rss(
        [BPFMEM, "--ram", ram, "-j", "map", "dump", "id", hash_id])
    rss["bpfmem map dump hash_big, plain (ELF core)"] = peak_rss(
        [BPFMEM, "--core", dump, "map", "dump", "id", hash_id])
    every = {i: peak_rss([BPFMEM, "--core", dump, "-j", "map", "dump", "id", i], runs=1) for i in map_ids}
    worst = max(every, key=every.get)
    rss[f"bpfmem -j map dump, every map (largest: id {worst})"] = every[worst]
    rss["drgn map show"] = peak_rss(drgn + ["show"])
    rss["drgn dump hash_big (raw reads)"] = peak_rss(drgn + ["dump", str(hash_id)])
    if live_id is not None:
        rss["bpfmem -j map dump (live)"] = peak_rss([BPFMEM, "-j", "map", "dump", "id", live_id])
        rss["bpftool -j map dump (live)"] = peak_rss(["bpftool", "-j", "map", "dump", "id", live_id])
    res["rss"] = rss


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:
        # Only rewrite BENCHMARKS.md from the last run's results (after
        # editing the template or the notes).
        (ROOT / "BENCHMARKS.md").write_text(render(json.loads((OUT / "results.json").read_text())))
    else:
        main()
