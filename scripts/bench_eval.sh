#!/bin/sh
# bench.md's evaluation targets measured end to end: `clipx eval` of a zero-shot CLIP run over
# 1,000 classes and 50,000 test vectors of dimension 512 (< 1 s), and over iNaturalist's
# 8,142 classes and 24,426 test vectors (< 3 s, peak RSS < 1.5 GiB); synthetic NPY features,
# a linear 512 -> 512 image tower trained for one epoch; best wall time of a few runs, with
# the phases clipx reports and the peak RSS; beside them the library alone (tests/bench_eval: scoring and metrics on random
# features, no image tower). One line per figure. Usage:
#   scripts/bench_eval.sh [--threads N] [--repeat R] [--keep DIR]
# CLIPX names the binary (default ./clipx); the data and run are made in a temporary folder
# (or DIR, reused when it already holds them).
set -eu
cd "$(dirname "$0")/.."
threads=2
repeat=3
keep=""
while [ $# -gt 0 ]; do
    case $1 in
    --threads) threads=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "usage: scripts/bench_eval.sh [--threads N] [--repeat R] [--keep DIR]" >&2; exit 2 ;;
    esac
done
CLIPX=${CLIPX:-./clipx}
[ -x "$CLIPX" ] || { echo "bench_eval: $CLIPX not built (scripts/build.sh)" >&2; exit 1; }
if [ -n "$keep" ]; then
    work=$keep
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/clipx-bench-eval-XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi

# One workload: NAME CLASSES TRAIN_N TEST_PER_CLASS TARGET_S. The synthetic NPY features and
# the run (a linear tower, one CLIP epoch) are made once per workload folder.
bench() {
    name=$1 classes=$2 n=$3 per=$4 target=$5
    dir=$work/$name
    if [ ! -f "$dir/data/dataset.yaml" ]; then
        "$CLIPX" synth --out "$dir/data" --classes "$classes" --dim 512 --n "$n" \
            --test-per-class "$per" --seed 0 --threads "$threads" --quiet
    fi
    if [ ! -f "$dir/run/model.ckpt" ]; then
        "$CLIPX" train --data "$dir/data/dataset.yaml" --objective clip --epochs 1 --batch 256 \
            --set model.image.type=linear --set model.image.dim=512 --set model.text.dim=64 \
            --threads "$threads" --quiet --force --out "$dir/run"
    fi
    best="" best_line="" best_rss=""
    for r in $(seq "$repeat"); do
        out=$( { /usr/bin/time -f "rss %M" "$CLIPX" eval "$dir/run" --threads "$threads" \
                   --progress >/dev/null; } 2>&1)
        line=$(echo "$out" | grep '^eval: [0-9]')
        rss=$(echo "$out" | awk '/^rss /{printf "%.0f", $2 / 1024}')
        t=$(echo "$line" | awk '{print $2}')
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$t best_line=$line best_rss=$rss
        fi
    done
    echo "clipx eval zero-shot ($name), $classes classes x $(($classes * $per)) test vectors, dim 512," \
        "linear tower, every metric (NC1 included), threads $threads (best of $repeat):" \
        "${best_line#eval: }, peak RSS $best_rss MiB; target < $target s"
}

bench imagenet 1000 50000 50 1
# iNaturalist 2018's size: 8,142 classes, 3 test vectors each (24,426); target < 3 s, < 1.5 GiB.
bench inat 8142 50000 3 3

if make -s tests/bench_eval >/dev/null 2>&1; then
    tests/bench_eval --threads "$threads" --repeat "$repeat"
    tests/bench_eval --threads "$threads" --repeat "$repeat" --classes 8142 --n 24426
fi
