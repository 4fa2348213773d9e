#!/bin/sh
# Benchmark W2 (../shared/bench.md): the small CLIP with transformer towers of
# experiments/w2-clip.yaml, clipx beside scripts/w2_torch.py in one run, both on the BLAS core
# clipx runs on (OPENBLAS_CORETYPE, read from `clipx version`). Prints the CPU and the core of
# each side, training throughput (steps only: clipx's log.jsonl samples_per_s, PyTorch's timer
# around its loop; and whole process: all samples over the wall time), peak RSS (GNU time),
# zero-shot test accuracy after the epochs, and the W2 sgemm floor (tests/bench_sgemm, best of
# 3) with each throughput's % of it.
# Usage: scripts/bench_w2.sh [--quick] [--repeat N]
#   --quick     2 epochs instead of 10, throughput only (accuracy needs the full 10)
#   --repeat N  N runs of each side, taken in turn (clipx, PyTorch, clipx, ...); the best
#               throughput of each side is reported (a slow run is the shared machine's other
#               work), RSS and accuracy are the first run's
set -eu
cd "$(dirname "$0")/.."
epochs=10 quick=0 repeat=1
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) epochs=2 quick=1 ;;
    --repeat) [ $# -ge 2 ] || { echo "usage: scripts/bench_w2.sh [--quick] [--repeat N]" >&2; exit 2; }
        repeat=$2; shift ;;
    *) echo "usage: scripts/bench_w2.sh [--quick] [--repeat N]" >&2; exit 2 ;;
    esac
    shift
done
[ -x ./clipx ] || { echo "bench_w2.sh: build clipx first (scripts/build.sh)" >&2; exit 2; }
make tests/bench_sgemm >/dev/null

out=$(mktemp -d /tmp/clipx-bench-w2-XXXXXX)
trap 'rm -rf "$out"' EXIT
subset=experiments/data/fashion-mnist-lt100.subset
py=/usr/bin/python3
threads=2

field() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (a > b) ? a : b }'; }
rss_mib() { awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }' "$1"; }
run_sps() { awk -F'"samples_per_s":' '{ split($2, a, ","); s += a[1]; n++ } END { printf "%.0f", s / n }' "$1/log.jsonl"; }
wall_of() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

./clipx version >"$out/version"
core=$(sed -n 's/^blas core: \([^ ]*\).*/\1/p' "$out/version")
how=$(sed -n 's/^blas core: [^ ]* (\(.*\))$/\1/p' "$out/version")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^cpu: \(.*\) (.*/\1/p' "$out/version")
# The core PyTorch's libopenblas runs on under the same OPENBLAS_CORETYPE.
tcore=$(OPENBLAS_CORETYPE=$core $py -c 'import sys; sys.path.insert(0, "scripts"); import w1_torch; print(w1_torch.blas_core())' 2>/dev/null || echo unknown)
echo "W2 CPU: $cpu ($(nproc) cores); BLAS core: clipx $core ($how), pytorch $tcore (OPENBLAS_CORETYPE=$core)"
[ "$tcore" = "$core" ] || echo "WARNING: PyTorch runs on the BLAS core $tcore, not $core" >&2

floor=0
for try in 1 2 3; do
    OPENBLAS_CORETYPE=$core tests/bench_sgemm --threads $threads >"$out/sgemm-$try"
    f=$(awk '$1 == "w2" && $2 == "step_mflop_per_sample" { print $NF }' "$out/sgemm-$try")
    floor=$(best "$f" "$floor")
done
mflop=$(awk '$1 == "w2" && $2 == "step_mflop_per_sample" { print $3 }' "$out/sgemm-1")
echo "W2 sgemm floor (every product of a W2 step at its shape, $mflop MFLOP/sample, best of 3): $floor samples/s"

c_sps=0 c_wsps=0 t_sps=0 t_wsps=0
for try in $(seq 1 "$repeat"); do
    run=$out/clipx-$try
    start=$(date +%s.%N)
    /usr/bin/time -v ./clipx train --config experiments/w2-clip.yaml --set epochs=$epochs \
        --threads $threads --quiet --out "$run" 2>"$out/time-$try"
    end=$(date +%s.%N)
    steps=$(tail -n 1 "$run/log.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
    c_sps=$(best "$(run_sps "$run")" "$c_sps")
    c_wsps=$(best "$(awk -v s="$steps" -v w="$(wall_of "$start" "$end")" 'BEGIN { printf "%.0f", s * 256 / w }')" "$c_wsps")
    [ "$try" -gt 1 ] || { c_wall=$(wall_of "$start" "$end"); c_rss=$(rss_mib "$out/time-$try"); }

    start=$(date +%s.%N)
    OPENBLAS_CORETYPE=$core /usr/bin/time -v $py scripts/w2_torch.py --subset "$subset" \
        --threads $threads --epochs $epochs >"$out/torch-$try.json" 2>"$out/ttime-$try"
    end=$(date +%s.%N)
    t_sps=$(best "$(field "$out/torch-$try.json" samples_per_s)" "$t_sps")
    samples=$(field "$out/torch-$try.json" samples)
    t_wsps=$(best "$(awk -v s="$samples" -v w="$(wall_of "$start" "$end")" 'BEGIN { printf "%.0f", s / w }')" "$t_wsps")
    [ "$try" -gt 1 ] || { t_wall=$(wall_of "$start" "$end"); t_rss=$(rss_mib "$out/ttime-$try"); }
done
n="$epochs epochs, best of $repeat"
echo "W2 samples/s (steps only, $n):   clipx $c_sps ($(pct "$c_sps" "$floor") of floor $floor)  pytorch $t_sps ($(pct "$t_sps" "$floor"))  ratio $(ratio "$c_sps" "$t_sps")  (target >= 2, >= 60% of floor)"
echo "W2 samples/s (whole process, $n): clipx $c_wsps ($(pct "$c_wsps" "$floor"))  pytorch $t_wsps ($(pct "$t_wsps" "$floor"))  ratio $(ratio "$c_wsps" "$t_wsps")  (target >= 2; wall ${c_wall}s vs ${t_wall}s)"
echo "W2 peak RSS MiB:                 clipx $c_rss  pytorch $t_rss  ratio $(ratio "$c_rss" "$t_rss")  (target <= 256 MiB)"
if [ "$quick" -eq 0 ]; then
    ./clipx eval "$out/clipx-1" --json --threads $threads >"$out/eval.json"
    c_acc=$(field "$out/eval.json" top1)
    t_acc=$(field "$out/torch-1.json" test_acc)
    echo "W2 zero-shot test accuracy:      clipx $c_acc  pytorch $t_acc  (target: within 0.015)"
fi
