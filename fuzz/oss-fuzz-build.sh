#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script (the project's `build.sh`): builds
# every fuzz target with the sanitizer the infrastructure asks for, and puts
# in $OUT each binary, its seed corpus (<target>_seed_corpus.zip) and its
# dictionary (<target>.dict).
#
# ClusterFuzzLite: .clusterfuzzlite/build.sh can be `exec fuzz/oss-fuzz-build.sh`,
# with a Dockerfile FROM gcr.io/oss-fuzz-base/base-builder-rust that copies the
# repository to $SRC/bpfmem. The base image's cargo wrapper adds the
# sanitizer and coverage flags to `cargo fuzz build`.
#
# Outside the infrastructure: OUT=/tmp/out fuzz/oss-fuzz-build.sh
# (then SANITIZER=none, and a stable toolchain is enough).

cd "$(dirname "$0")"
OUT=${OUT:?set OUT to the output directory}
SANITIZER=${SANITIZER:-none}
mkdir -p "$OUT"

flags=(-O -a)
case "$SANITIZER" in
    address | memory | thread | none) flags+=(--sanitizer "$SANITIZER") ;;
    # coverage, undefined, introspector: the base image's wrapper sets them up.
    *) flags+=(--sanitizer none) ;;
esac
cargo fuzz build "${flags[@]}"

bin=target/x86_64-unknown-linux-gnu/release
grep -v '^#' targets.txt | while read -r target dict; do
    [ -n "$target" ] || continue
    cp "$bin/$target" "$OUT/"
    if [ -d "seeds/$target" ]; then
        rm -f "$OUT/${target}_seed_corpus.zip"
        (cd "seeds/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
    fi
    : >"$OUT/$target.dict"
    for d in ${dict//+/ }; do cat "dict/$d.dict" >>"$OUT/$target.dict"; done
    # libFuzzer options ClusterFuzz passes to the target.
    printf '[libfuzzer]\nmax_len = 131072\ntimeout = 10\nrss_limit_mb = 2560\n' >"$OUT/$target.options"
done
