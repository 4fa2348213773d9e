#!/bin/sh
# Data-parallel training over MPI: 2 processes on a global batch give the loss curve of one
# process on the same batch (float rounding apart), for CLIP (gathered features), for SL
# (averaged gradients, vocabulary subsampling over the global batch's classes) and for DINO
# (Sinkhorn-Knopp targets over the gathered teacher scores).
. "$TOP_SRCDIR/tests/lib.sh"

if ! "$CLIPX" version | grep -q '^mpi: yes'; then
    echo "mpi_train: clipx built without MPI (./configure --with-mpi); skipped"
    exit 77
fi
[ -n "${MPIRUN:-}" ] || MPIRUN=mpirun
command -v "$MPIRUN" >/dev/null 2>&1 || { echo "mpi_train: no mpirun; skipped"; exit 77; }
# Open MPI's libraries and plugins keep allocations past MPI_Finalize; in a sanitizer build
# LeakSanitizer would fail every MPI process for them, so it is off for those processes only
# (the single-process runs of the test suite keep it).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
mpi() { "$MPIRUN" --allow-run-as-root --oversubscribe -x ASAN_OPTIONS -np 2 "$@"; }

DATA=$WORK/s5
"$CLIPX" synth --out "$DATA" --classes 5 --superclasses 2 --n 600 --dim 16 --test-per-class 20 \
    --seed 1 --quiet || { fail "synth failed"; finish; }
small="--data $DATA/dataset.yaml --epochs 3 --batch 64 --set model.image.hidden=[32] --set model.image.dim=16 --set model.text.dim=8 --threads 1 --quiet"

# compare_logs A B: the same epochs and steps, losses within 1e-5 relative.
compare_logs() {
    paste -d' ' "$1" "$2" | awk '{
        match($0, /"loss":[-0-9.eE+]*/); a = substr($0, RSTART + 7, RLENGTH - 7);
        rest = substr($0, RSTART + RLENGTH);
        match(rest, /"loss":[-0-9.eE+]*/); b = substr(rest, RSTART + 7, RLENGTH - 7);
        d = a - b; if (d < 0) d = -d;
        if (d > 1e-5 * (a < 0 ? -a : a) || a == "") { print "epoch " NR ": " a " vs " b; bad = 1 }
        n++ }
        END { exit bad || n != 3 }' || fail "$3: MPI loss curve differs from one process"
}

# A tiny transformer text tower too (gathered features through attention and the EOT pool).
tx="--set model.text.type=transformer --set model.text.layers=1 --set model.text.heads=2 --set model.text.max_tokens=8"
# And the SL run's image tower frozen under SL and CLIP (every rank caches all features).
frozen="--set model.image.init=$WORK/one-sl --set model.image.freeze=true"
# DINO: Sinkhorn-Knopp over the global batch's teacher scores (gathered), a sampled K of the
# prototypes shared by the ranks, augmented views keyed by sample; SGD, whose step (unlike
# AdamW's) shows a gradient of the wrong scale.
dino="--set dino.hidden=32 --set dino.bottleneck=8 --set dino.prototypes=32 --set dino.sample_k=8 --set aug.noise=0.3 --set optim.name=sgd --set optim.lr=0.05"
for variant in "clip" "sl" "sl --set vocab.k=3 --set head=cosine --loss focal" "clip $tx" \
    "sl $frozen" "clip $frozen" "dino $dino"; do
    name=$(echo "$variant" | sed "s|$WORK/||g" | tr -c 'a-z0-9\n' '_')
    ASAN_OPTIONS= expect_exit 0 "$CLIPX" train $small --objective $variant --out "$WORK/one-$name"
    # CLIPX_MPI_SHM=1: the shared-memory path, or an error (so a silent fallback fails here).
    CLIPX_MPI_SHM=1 expect_exit 0 mpi -x CLIPX_MPI_SHM "$CLIPX" train $small --objective $variant \
        --out "$WORK/two-$name"
    [ -s "$WORK/two-$name/model.ckpt" ] || fail "$variant: the MPI run wrote no checkpoint"
    compare_logs "$WORK/one-$name/log.jsonl" "$WORK/two-$name/log.jsonl" "$variant"
    # The run opens like any other (the checkpoint is complete and consistent).
    expect_exit 0 "$CLIPX" train --resume "$WORK/two-$name" --quiet
done

# On one machine the processes share their gradient and parameter buffers; through messages
# instead (as across machines) the sums are the same, in the same order: the same bytes.
for variant in clip sl; do
    CLIPX_MPI_SHM=0 expect_exit 0 mpi -x CLIPX_MPI_SHM "$CLIPX" train $small --objective $variant \
        --out "$WORK/msg-$variant"
    cmp -s "$WORK/two-$variant/model.ckpt" "$WORK/msg-$variant/model.ckpt" ||
        fail "$variant: shared-memory and message-passing runs differ"
done
# Killed mid-epoch (both ranks at step 13 of 27) and resumed with mpirun: the same bytes as the
# uninterrupted MPI run (the checkpoint is loaded into the shared buffers too).
expect_exit 0 mpi "$CLIPX" train $small --objective sl --set ckpt.every=4 --out "$WORK/ref-sl"
CLIPX_TEST_KILL_AT_STEP=13 mpi -x CLIPX_TEST_KILL_AT_STEP "$CLIPX" train $small --objective sl \
    --set ckpt.every=4 --out "$WORK/kill-sl" >/dev/null 2>&1 && fail "the MPI run was not killed"
[ -s "$WORK/kill-sl/model.ckpt" ] || fail "no checkpoint before the kill"
cmp -s "$WORK/ref-sl/model.ckpt" "$WORK/kill-sl/model.ckpt" && fail "the killed MPI run had finished"
expect_exit 0 mpi "$CLIPX" train --resume "$WORK/kill-sl" --quiet
cmp -s "$WORK/ref-sl/model.ckpt" "$WORK/kill-sl/model.ckpt" || fail "resumed MPI run differs"

# A batch that does not split evenly is refused before anything is written, by every rank.
expect_exit 2 mpi "$CLIPX" train $small --objective sl --batch 63 --out "$WORK/odd"
expect_grep 'divide evenly' "$WORK/err" "uneven batch"
[ -e "$WORK/odd" ] && fail "a refused MPI run created its folder"

# Objective declip trains in one process: refused under MPI.
expect_exit 2 mpi "$CLIPX" train $small --objective declip --set declip.mlm=0 \
    --out "$WORK/declip"
expect_grep 'objective declip trains in one process' "$WORK/err" "declip under MPI"

finish
