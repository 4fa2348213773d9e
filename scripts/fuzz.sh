#!/bin/sh
# Build the fuzz harnesses of tests/fuzz/ with clang's libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, and run each for SECONDS (default 60) on a copy of its seed
# corpus (tests/fuzz/corpus/NAME; the committed corpus is never written). A crash, leak,
# timeout or memory blow-up stops that harness; at the end the script names each harness that
# failed and the input libFuzzer saved, and exits 1. Exit 2: bad usage or no clang.
# Usage: scripts/fuzz.sh [SECONDS] [NAME...]     (NAME: idx npy captions lists subset config
#        dataset ckpt; default all)
# Environment: FUZZ_CC (default: the clang configure found, else clang on PATH), FUZZ_BUILD
# (default $TMPDIR/clipx-fuzz: objects, binaries, the working corpora and findings),
# FUZZ_JOBS (compile jobs, default 2), FUZZ_FLAGS (more libFuzzer flags).
# Needs Debian's clang (scripts/deps.sh fuzz); the normal build and make check do not.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
all="idx npy captions lists subset config dataset ckpt"
seconds=${1:-60}
case "$seconds" in
'' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [NAME...] (NAME: $all)" >&2; exit 2 ;;
esac
[ "$#" -gt 0 ] && shift
targets=${*:-$all}
for t in $targets; do
    case " $all " in *" $t "*) ;; *) echo "fuzz.sh: no harness '$t' (one of: $all)" >&2; exit 2 ;; esac
done

cc=${FUZZ_CC:-}
if [ -z "$cc" ] && [ -f Makefile ]; then
    cc=$(sed -n 's/^FUZZ_CC = //p' Makefile)
fi
if [ -z "$cc" ]; then
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
    done
fi
if [ -z "$cc" ]; then
    echo "fuzz.sh: clang not found (as root: scripts/deps.sh fuzz)" >&2
    exit 2
fi

build=${FUZZ_BUILD:-${TMPDIR:-/tmp}/clipx-fuzz}
mkdir -p "$build/obj" "$build/bin" "$build/corpus" "$build/findings"
version=$(sed -n 's/^AC_INIT(\[clipx\], \[\([^]]*\)\].*/\1/p' configure.ac)
printf '#define PACKAGE_VERSION "%s"\n#define VERSION "%s"\n' "$version" "$version" >"$build/config.h"

sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cflags="-std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -Wno-unknown-pragmas $sanitize -fsanitize=fuzzer-no-link"
cflags="$cflags -I$build -I$top $(pkg-config --cflags openblas yaml-0.1 zlib)"
libs="$(pkg-config --libs openblas yaml-0.1 zlib) -lm"
export cc cflags build top

# The library, compiled once per source change (an object older than any header is rebuilt).
newest_header=$(find lib -name '*.h' -newer "$build/lib.stamp" 2>/dev/null | head -1 || true)
[ -f "$build/lib.stamp" ] || newest_header=all
echo "fuzz.sh: compiling lib/ with $cc" >&2
find lib -name '*.c' | sort | NEWH=$newest_header xargs -P "${FUZZ_JOBS:-2}" -I{} sh -c '
    src={}; obj="$build/obj/$(echo "$src" | tr / _ | sed "s/[.]c\$/.o/")"
    if [ -n "$NEWH" ] || [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
        nice $cc $cflags -c "$top/$src" -o "$obj" || { echo "fuzz.sh: $src does not compile" >&2; exit 255; }
    fi'
touch "$build/lib.stamp"

failed=""
for t in $targets; do
    bin=$build/bin/fuzz_$t
    nice $cc $cflags -fsanitize=fuzzer -o "$bin" tests/fuzz/fuzz_$t.c tests/fuzz/fuzz.c \
        "$build"/obj/*.o $libs
    work=$build/corpus/$t
    mkdir -p "$work"
    found=$build/findings/$t
    rm -rf "$found"
    mkdir -p "$found"
    log=$build/fuzz_$t.log
    echo "fuzz.sh: fuzz_$t for ${seconds}s (log $log)" >&2
    # New inputs go to the working corpus (first folder); the committed seeds are only read.
    # shellcheck disable=SC2086
    if TMPDIR=$build nice "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -artifact_prefix="$found/" -print_final_stats=1 ${FUZZ_FLAGS:-} \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz.sh: fuzz_$t: no finding in ${seconds}s, $runs executions" >&2
    else
        saved=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        what=$(grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz property failed|.*runtime error)' "$log" || true)
        printf 'fuzz.sh: fuzz_%s FAILED: %s; input saved in %s\n' "$t" "${what:-see $log}" \
            "${saved:-(none)}" >&2
        failed="$failed $t"
    fi
done
nfail=$(echo $failed | wc -w)
echo "fuzz: $(($(echo $targets | wc -w) - nfail)) harnesses clean, $nfail with findings (${seconds}s each)"
if [ -n "$failed" ]; then
    echo "fuzz.sh: harnesses with findings:$failed (replay one: $build/bin/fuzz_NAME FILE)" >&2
    exit 1
fi
