#!/bin/sh
# scripts/sweep.sh on a tiny synthetic dataset: usage errors, results.tsv's rows, columns and
# values (against clipx eval), a second sweep that trains nothing, a sweep killed mid-run whose
# rerun resumes the run and ends bit-identical to an uninterrupted one, failed and refused runs,
# --slurm's job array (and one of its tasks run by hand). Also: every config under
# experiments/ resolves with clipx config, and scripts/report.sh refuses bad options.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_sweep: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
SWEEP="$TOP_SRCDIR/scripts/sweep.sh"
sweep() { bash "$SWEEP" --clipx "$CLIPX" "$@"; }
near() {
    awk -v a="$1" -v b="$2" -v t="${3:-1e-6}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}
# col FILE NAME: the values of column NAME of a TSV file, one a line.
col() { awk -F '\t' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } { print $k }' "$1"; }

"$CLIPX" synth --out "$WORK/d" --classes 6 --superclasses 2 --n 4000 --rho 20 --dim 16 \
    --test-per-class 10 --seed 1 --threads 1 --quiet >/dev/null 2>&1 || fail "synth"
cat >"$WORK/base.yaml" <<EOF
data: d/dataset.yaml
epochs: 2
batch: 64
objective: sl
model:
  image:
    hidden: [32]
    dim: 8
  text:
    dim: 8
optim:
  lr: 0.01
EOF
B="$WORK/base.yaml"

# ---- help and usage errors ---------------------------------------------------------------------
expect_exit 0 sweep --help && expect_grep '^Usage: scripts/sweep.sh --base CONFIG --grid' "$WORK/out" "--help"
for o in --base --grid --out --set --jobs --threads --compare-args --clipx --slurm --dry-run --quiet; do
    grep -q -- "^  $o" "$WORK/out" || fail "--help does not describe $o"
done
expect_exit 2 sweep --grid 'seed=0' --out "$WORK/x" && expect_grep '^sweep: --base CONFIG is required' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'seed=0' && expect_grep '^sweep: --out DIR is required' "$WORK/err"
expect_exit 2 sweep --base "$WORK/none.yaml" --grid 'seed=0' --out "$WORK/x" && expect_grep 'no such file' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'seed' --out "$WORK/x" && expect_grep 'is not KEY=V1,V2' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'seed=0, ' --out "$WORK/x" && expect_grep 'empty value' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'seed=0 seed=1' --out "$WORK/x" && expect_grep 'appears twice' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'subset=a/s.subset,b/s.subset' --out "$WORK/x" &&
    expect_grep 'share the run folder subset=s' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'no.such.key=1' --out "$WORK/x" && expect_grep 'no.such.key' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'seed=0' --out "$WORK/x" --jobs 0 && expect_grep '^sweep: --jobs' "$WORK/err"
expect_exit 2 sweep --base "$B" --grid 'seed=0' --out "$WORK/x" --bogus && expect_grep "unknown argument '--bogus'" "$WORK/err"
[ ! -e "$WORK/x" ] || fail "a refused sweep created its folder"

# ---- a grid: folders, rows, columns, values ----------------------------------------------------
expect_exit 0 sweep --base "$B" --grid 'model.image.hidden=[16],[32,8] objective=sl,clip seed=0,1' --dry-run
[ "$(wc -l <"$WORK/out")" -eq 8 ] || fail "--dry-run lists $(wc -l <"$WORK/out") points, wanted 8"
expect_grep '^model.image.hidden=-32-8-,objective=clip,seed=1 model.image.hidden=\[32,8\] objective=clip seed=1$' \
    "$WORK/out" "--dry-run"

G="$WORK/g"
if expect_exit 0 sweep --base "$B" --grid 'objective=sl,clip seed=0,1' --out "$G" --jobs 2 --threads 1; then
    expect_grep '^sweep: 4 runs: 4 trained, 0 resumed, 0 finished before, 0 failed' "$WORK/out" "first sweep"
    [ "$(grep -c '^sweep: trained ' "$WORK/out")" -eq 4 ] || fail "first sweep: not one 'trained' line per run"
fi
T="$G/results.tsv"
if [ -f "$T" ]; then
    [ "$(wc -l <"$T")" -eq 5 ] || fail "results.tsv has $(wc -l <"$T") lines, wanted 5"
    head -n 1 "$T" | tr '\t' '\n' >"$WORK/cols"
    [ "$(head -n 9 "$WORK/cols" | tr '\n' ' ')" = "run objective seed top1 head mid tail corr_acc corr_pred " ] ||
        fail "results.tsv columns: $(head -n 9 "$WORK/cols" | tr '\n' ' ')"
    [ "$(grep -cx objective "$WORK/cols")" -eq 1 ] || fail "the grid key objective is repeated among the results"
    for c in top5 acc worst_class ece nc1 mode n_classes n_test; do
        grep -qx "$c" "$WORK/cols" || fail "results.tsv lacks column $c"
    done
    [ "$(col "$T" run | tr '\n' ' ')" = "objective=sl,seed=0 objective=sl,seed=1 objective=clip,seed=0 objective=clip,seed=1 " ] ||
        fail "results.tsv rows: $(col "$T" run | tr '\n' ' ')"
    [ "$(col "$T" objective | tr '\n' ' ')" = "sl sl clip clip " ] || fail "objective column"
    [ "$(col "$T" seed | tr '\n' ' ')" = "0 1 0 1 " ] || fail "seed column"
    [ "$(col "$T" mode | tr '\n' ' ')" = "head head zeroshot zeroshot " ] || fail "mode column"
    [ "$(col "$T" n_test | sort -u)" = 60 ] || fail "n_test column"
    # The values are clipx eval's, run by run.
    i=0
    for r in objective=sl,seed=0 objective=sl,seed=1 objective=clip,seed=0 objective=clip,seed=1; do
        i=$((i + 1))
        "$CLIPX" eval "$G/$r" --json --threads 1 >"$WORK/e.json" 2>/dev/null || { fail "eval $r"; continue; }
        for m in top1 head mid tail corr_acc corr_pred; do
            want=$("$JSONQ" "$WORK/e.json" ".$m")
            got=$(col "$T" "$m" | sed -n "${i}p")
            [ "$want" = null ] && want=NA
            if [ "$want" = NA ] || [ "$got" = NA ]; then
                [ "$want" = "$got" ] || fail "$r $m: results.tsv $got, eval $want"
            else
                near "$got" "$want" || fail "$r $m: results.tsv $got, eval $want"
            fi
        done
    done
    # A run's config is the base with the grid's settings.
    grep -qx 'objective: clip' "$G/objective=clip,seed=1/config.yaml" || fail "grid setting objective not applied"
    grep -qx 'seed: 1' "$G/objective=clip,seed=1/config.yaml" || fail "grid setting seed not applied"
    grep -qx 'threads: 1' "$G/objective=clip,seed=1/config.yaml" || fail "--threads not passed to the run"
fi

# ---- a second sweep trains nothing ---------------------------------------------------------------
touch "$WORK/marker"
sleep 1
if expect_exit 0 sweep --base "$B" --grid 'objective=sl,clip seed=0,1' --out "$G" --jobs 2 --threads 1; then
    expect_grep '^sweep: 4 runs: 0 trained, 0 resumed, 4 finished before, 0 failed; .*: up to date$' "$WORK/out" "second sweep"
fi
[ -z "$(find "$G" -newer "$WORK/marker" \( -name model.ckpt -o -name log.jsonl -o -name results.tsv \))" ] ||
    fail "the second sweep rewrote $(find "$G" -newer "$WORK/marker" -name '*.*' | head -n 1)"
# Other compare arguments collect again, without training.
if expect_exit 0 sweep --base "$B" --grid 'objective=sl,clip seed=0,1' --out "$G" --quiet \
    --compare-args '--split-rule tertile'; then
    expect_grep '0 trained, 0 resumed, 4 finished before, 0 failed; .*: 4 rows$' "$WORK/out" "recollection"
    [ ! -s "$WORK/err" ] || fail "--quiet sweep wrote to stderr"
fi
# A run folder that holds another configuration is refused, not overwritten.
if expect_exit 1 sweep --base "$B" --grid 'objective=sl seed=0' --set epochs=3 --out "$G" --quiet; then
    expect_grep 'failed +objective=sl,seed=0 .*config.yaml is not what the grid asks' "$WORK/err" "changed config"
fi
grep -qx 'epochs: 2' "$G/objective=sl,seed=0/config.yaml" || fail "a refused run's config was overwritten"

# ---- kill the sweep mid-run, run it again ---------------------------------------------------------
# Two runs, one at a time: a short one, then a long one that is killed after its second epoch.
K="$WORK/k"
bash "$SWEEP" --clipx "$CLIPX" --base "$B" --grid 'epochs=2,400 seed=0' --out "$K" --jobs 1 --threads 1 \
    >"$WORK/kill.out" 2>&1 &
pid=$!
long="$K/epochs=400,seed=0"
n=0
while [ "$n" -lt 3000 ]; do
    [ -f "$long/log.jsonl" ] && [ "$(wc -l <"$long/log.jsonl")" -ge 2 ] && break
    sleep 0.01
    n=$((n + 1))
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || fail "the killed sweep exited $rc, wanted 130"
expect_grep 'interrupted; run the same command again' "$WORK/kill.out" "killed sweep"
lines=$(wc -l <"$long/log.jsonl")
[ "$lines" -lt 400 ] || fail "the long run finished before it was killed"
sleep 0.3
[ "$(wc -l <"$long/log.jsonl")" -eq "$lines" ] || fail "the long run kept training after the sweep was killed"
[ -f "$long/model.ckpt" ] || fail "the killed run has no checkpoint"
if expect_exit 0 sweep --base "$B" --grid 'epochs=2,400 seed=0' --out "$K" --jobs 1 --threads 1; then
    expect_grep '^sweep: skipped +epochs=2,seed=0' "$WORK/out" "rerun after kill"
    expect_grep '^sweep: resumed +epochs=400,seed=0' "$WORK/out" "rerun after kill"
    expect_grep '^sweep: 2 runs: 0 trained, 1 resumed, 1 finished before, 0 failed; .*: 2 rows$' "$WORK/out" "rerun after kill"
fi
[ "$(wc -l <"$long/log.jsonl")" -eq 400 ] || fail "the resumed run's log has $(wc -l <"$long/log.jsonl") epochs"
"$CLIPX" train --config "$B" --set epochs=400 --seed 0 --threads 1 --quiet --out "$WORK/straight" >/dev/null 2>&1 ||
    fail "uninterrupted run"
cmp -s "$long/model.ckpt" "$WORK/straight/model.ckpt" || fail "the resumed run differs from an uninterrupted one"

# ---- a failing run: the others are still collected -----------------------------------------------
F="$WORK/f"
if expect_exit 1 sweep --base "$B" --grid 'vocab.k=1,1000' --out "$F" --quiet; then
    expect_grep '^sweep: failed +vocab.k=1000 \(exit 2: clipx: train: ' "$WORK/err" "failed run"
    expect_grep '1 trained, 0 resumed, 0 finished before, 1 failed; .*: 1 rows$' "$WORK/out" "failed run"
    [ "$(col "$F/results.tsv" run)" = vocab.k=1 ] || fail "results.tsv of a sweep with a failed run"
fi

# ---- --slurm: a job array, one task per grid point -------------------------------------------------
S="$WORK/s"
if expect_exit 0 sweep --base "$B" --grid 'objective=sl,clip seed=0,1,2' --out "$S" --slurm --threads 2; then
    expect_grep "wrote $S/sweep.slurm \(6 tasks of 2 thread" "$WORK/out" "--slurm"
fi
expect_grep '^#SBATCH --array=1-6$' "$S/sweep.slurm" "sweep.slurm"
expect_grep '^#SBATCH --cpus-per-task=2$' "$S/sweep.slurm" "sweep.slurm"
expect_grep '--task .* "\$SLURM_ARRAY_TASK_ID"$' "$S/sweep.slurm" "sweep.slurm"
[ -x "$S/sweep.slurm" ] || fail "sweep.slurm is not executable"
[ -z "$(find "$S" -name model.ckpt)" ] || fail "--slurm trained something"
# Task 4 (objective=clip, seed=0), run as Slurm would, trains that run; a second time it skips it.
SLURM_ARRAY_TASK_ID=4 bash "$S/sweep.slurm" >"$WORK/task.out" 2>&1 || fail "slurm task 4"
expect_grep '^sweep: trained +objective=clip,seed=0' "$WORK/task.out" "slurm task"
[ -f "$S/objective=clip,seed=0/model.ckpt" ] || fail "slurm task 4 trained no run"
SLURM_ARRAY_TASK_ID=4 bash "$S/sweep.slurm" >"$WORK/task.out" 2>&1 || fail "slurm task 4, again"
expect_grep '^sweep: skipped +objective=clip,seed=0' "$WORK/task.out" "slurm task, again"

# ---- experiments/: every config resolves; report.sh's options ----------------------------------------
for f in "$TOP_SRCDIR"/experiments/*/*.yaml; do
    case $f in */data/*) continue ;; esac
    "$CLIPX" config --config "$f" >/dev/null 2>"$WORK/err" || fail "$f: $(cat "$WORK/err")"
done
expect_exit 0 bash "$TOP_SRCDIR/scripts/report.sh" --help && expect_grep '^Usage: scripts/report.sh' "$WORK/out" "report --help"
expect_exit 2 bash "$TOP_SRCDIR/scripts/report.sh" --seeds 0,1 && expect_grep 'at least 3 seeds' "$WORK/err" "report --seeds"
expect_exit 2 bash "$TOP_SRCDIR/scripts/report.sh" --bogus && expect_grep "unknown argument '--bogus'" "$WORK/err" "report"

finish
