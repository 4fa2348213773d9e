#!/bin/sh
# Benchmark DINO (issue 16: "a DINO step is at least 2x faster than the same step in PyTorch"):
# clipx train on experiments/dino-bench.yaml beside scripts/dino_torch.py (the same step in
# PyTorch) in one run, both on the BLAS core clipx runs on (OPENBLAS_CORETYPE, read from
# `clipx version`). Prints the CPU and the core of each side, training throughput (steps only:
# clipx's log.jsonl samples_per_s, PyTorch's timer around its loop; and whole process: all
# samples over the wall time), their ratio beside the target, peak RSS (GNU time), the last
# epoch's mean loss of each side (the same computation gives losses alike, not equal: the
# random streams differ), and the DINO sgemm floor (tests/bench_sgemm --dino K: every product of
# a step at its own shape, best of 3) with each throughput's % of it.
# Usage: scripts/bench_dino.sh [--quick] [--repeat N]
#   --quick     1 epoch instead of the workload's 3
#   --repeat N  N runs of each side, taken in turn (clipx, PyTorch, clipx, ...); the best
#               throughput of each side is reported (a slow run is the shared machine's other
#               work), RSS and loss are the first run's
set -eu
cd "$(dirname "$0")/.."
usage() { echo "usage: scripts/bench_dino.sh [--quick] [--repeat N]" >&2; exit 2; }
epochs=3 repeat=1
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) epochs=1 ;;
    --repeat)
        [ $# -ge 2 ] || usage
        case "$2" in '' | *[!0-9]* | 0) usage ;; esac
        repeat=$2; shift ;;
    *) usage ;;
    esac
    shift
done
[ -x ./clipx ] || { echo "bench_dino.sh: build clipx first (scripts/build.sh)" >&2; exit 2; }
make tests/bench_sgemm >/dev/null

out=$(mktemp -d /tmp/clipx-bench-dino-XXXXXX)
trap 'rm -rf "$out"' EXIT
config=experiments/dino-bench.yaml
subset=experiments/data/fashion-mnist-lt100.subset
py=/usr/bin/python3
threads=2

field() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (a > b) ? a : b }'; }
rss_mib() { awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }' "$1"; }
run_sps() { awk -F'"samples_per_s":' '{ split($2, a, ","); s += a[1]; n++ } END { printf "%.0f", s / n }' "$1/log.jsonl"; }
wall_of() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# The value of a key of clipx's config.yaml (the dino block's keys are unique names).
conf() { sed -n "s/^ *$1: *//p" "$config" | head -n 1; }

./clipx version >"$out/version"
core=$(sed -n 's/^blas core: \([^ ]*\).*/\1/p' "$out/version")
how=$(sed -n 's/^blas core: [^ ]* (\(.*\))$/\1/p' "$out/version")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^cpu: \(.*\) (.*/\1/p' "$out/version")
echo "DINO CPU: $cpu ($(nproc) cores, load average $(cut -d ' ' -f 1-3 /proc/loadavg)); BLAS core: clipx $core ($how)"
P=$(conf prototypes) K=$(conf sample_k)
echo "DINO workload: $config, $epochs epochs, batch 256, $P prototypes, $K a step, $threads threads"

floor=0
for try in 1 2 3; do
    OPENBLAS_CORETYPE=$core tests/bench_sgemm --threads $threads --dino "$K" --repeat 10 >"$out/sgemm-$try"
    f=$(awk '$1 == "dino" && $2 == "step_mflop_per_sample" { print $NF }' "$out/sgemm-$try")
    floor=$(best "$f" "$floor")
done
mflop=$(awk '$1 == "dino" && $2 == "step_mflop_per_sample" { print $3 }' "$out/sgemm-1")
echo "DINO sgemm floor (every product of a step at its shape, $mflop MFLOP/sample, best of 3): $floor samples/s"

c_sps=0 c_wsps=0 t_sps=0 t_wsps=0 tcore=unknown
for try in $(seq 1 "$repeat"); do
    run=$out/clipx-$try
    start=$(date +%s.%N)
    /usr/bin/time -v ./clipx train --config "$config" --set epochs=$epochs \
        --threads $threads --quiet --out "$run" 2>"$out/time-$try"
    end=$(date +%s.%N)
    steps=$(tail -n 1 "$run/log.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
    c_sps=$(best "$(run_sps "$run")" "$c_sps")
    c_wsps=$(best "$(awk -v s="$steps" -v w="$(wall_of "$start" "$end")" 'BEGIN { printf "%.0f", s * 256 / w }')" "$c_wsps")
    [ "$try" -gt 1 ] || {
        c_wall=$(wall_of "$start" "$end") c_rss=$(rss_mib "$out/time-$try")
        c_loss=$(tail -n 1 "$run/log.jsonl" | sed 's/.*"loss":\([-0-9.eE+]*\).*/\1/')
    }

    start=$(date +%s.%N)
    OPENBLAS_CORETYPE=$core /usr/bin/time -v $py scripts/dino_torch.py --subset "$subset" \
        --threads $threads --epochs $epochs --prototypes "$P" --sample-k "$K" \
        >"$out/torch-$try.json" 2>"$out/ttime-$try" ||
        { cat "$out/ttime-$try" >&2; echo "bench_dino.sh: scripts/dino_torch.py failed" >&2; exit 1; }
    end=$(date +%s.%N)
    t_sps=$(best "$(field "$out/torch-$try.json" samples_per_s)" "$t_sps")
    samples=$(field "$out/torch-$try.json" samples)
    t_wsps=$(best "$(awk -v s="$samples" -v w="$(wall_of "$start" "$end")" 'BEGIN { printf "%.0f", s / w }')" "$t_wsps")
    [ "$try" -gt 1 ] || {
        t_wall=$(wall_of "$start" "$end") t_rss=$(rss_mib "$out/ttime-$try")
        t_loss=$(field "$out/torch-$try.json" last_epoch_loss)
        tcore=$(sed -n 's/.*"blas_core": *"\([^"]*\)".*/\1/p' "$out/torch-$try.json")
    }
done
echo "DINO BLAS core of PyTorch: $tcore (OPENBLAS_CORETYPE=$core)"
[ "$tcore" = "$core" ] || echo "WARNING: PyTorch ran on the BLAS core $tcore, not $core" >&2
n="$epochs epochs, best of $repeat"
echo "DINO samples/s (steps only, $n):   clipx $c_sps ($(pct "$c_sps" "$floor") of floor $floor)  pytorch $t_sps ($(pct "$t_sps" "$floor"))  ratio $(ratio "$c_sps" "$t_sps")  (target >= 2)"
echo "DINO samples/s (whole process, $n): clipx $c_wsps ($(pct "$c_wsps" "$floor"))  pytorch $t_wsps ($(pct "$t_wsps" "$floor"))  ratio $(ratio "$c_wsps" "$t_wsps")  (target >= 2; wall ${c_wall}s vs ${t_wall}s)"
echo "DINO peak RSS MiB:                   clipx $c_rss  pytorch $t_rss  ratio $(ratio "$c_rss" "$t_rss")"
echo "DINO last epoch's mean loss:         clipx $c_loss  pytorch $t_loss  (alike, not equal: other random streams)"
