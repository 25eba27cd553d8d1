#!/bin/bash
# Regenerate BENCHMARKS.md: bpfmem side by side with drgn (memory image) and
# bpftool (live host), peak memory of each, and the criterion benches behind
# the library targets. One command, from anywhere:
#
#     benches/compare/run.sh
#
# Installs what it needs (as root: hyperfine, bpftool, GNU time with apt-get;
# drgn from PyPI into a virtualenv under the cache; the guest kernel's -dbg
# package through a private apt state, for drgn's type information), builds
# bpfmem (release), then hands over to bench.py, which measures and writes
# BENCHMARKS.md at the top of the repository.
#
# Needs the test bed's images: ./tests/run makes them. Environment:
#   BPFMEM_CACHE          test-bed cache (default ~/.cache/bpfmem-testbed)
#   BPFMEM_BENCH_GUEST    guest to read (default 6.12-pvh)
#   BPFMEM_BENCH_ROUNDS   interleaved rounds; medians are reported (default 3)
#   BPFMEM_BENCH_QUICK=1  fewer runs, shorter criterion samples (a smoke test)
# Scratch results land in target/bench-compare/, never in the repository.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${BPFMEM_CACHE:-$HOME/.cache/bpfmem-testbed}
BENCH=$CACHE/bench
export DRGN_VERSION=0.3.0

say() { printf 'run.sh: %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        say "not root: cannot install $1; install it and run again"
        exit 1
    fi
}

apt_install() {
    need_root "$1"
    say "apt-get install $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

command -v hyperfine >/dev/null 2>&1 || apt_install hyperfine
command -v bpftool >/dev/null 2>&1 || apt_install bpftool
[ -x /usr/bin/time ] || apt_install time

# drgn from PyPI, in a virtualenv of its own.
VENV=$BENCH/venv
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$BENCH"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
fi
if [ "$("$VENV/bin/python" -c 'import drgn; print(drgn.__version__)' 2>/dev/null)" != "$DRGN_VERSION" ]; then
    say "pip install drgn==$DRGN_VERSION"
    "$VENV/bin/pip" install -q "drgn==$DRGN_VERSION"
fi

say "building bpfmem and bpfmem-bench-map (release)"
(cd "$ROOT" && cargo build --release --quiet -p bpfmem --bin bpfmem -p bpfmem-benches --bin bpfmem-bench-map)

exec "$VENV/bin/python" "$ROOT/benches/compare/bench.py"
