#!/bin/sh
# clipx train --objective dino: self-supervised training end to end (two views, EMA teacher,
# Sinkhorn targets, prototype subsampling), evaluation on its features, reproducibility,
# resume after SIGKILL, refusals.
. "$TOP_SRCDIR/tests/lib.sh"
JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_train_dino: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }

DATA=$WORK/lt
"$CLIPX" synth --out "$DATA" --classes 8 --profile pareto --rho 10 --n 800 --dim 16 \
    --test-per-class 20 --seed 1 --quiet || { fail "synth failed"; finish; }

small="--data $DATA/dataset.yaml --objective dino --batch 64 --set model.image.hidden=[32] --set model.image.dim=16 --set dino.hidden=32 --set dino.bottleneck=8 --set dino.prototypes=32 --set aug.noise=0.3 --set aug.dropout=0.1 --threads 2 --quiet"

# Trains: the three files, one log line per epoch, a finite loss that falls.
expect_exit 0 "$CLIPX" train $small --epochs 6 --out "$WORK/d"
for f in config.yaml model.ckpt log.jsonl; do
    [ -s "$WORK/d/$f" ] || fail "dino run lacks $f"
done
[ "$(wc -l <"$WORK/d/log.jsonl")" -eq 6 ] || fail "log.jsonl does not have 6 lines"
expect_grep '^objective: "?dino' "$WORK/d/config.yaml" "config.yaml"
expect_grep '^  prototypes: 32' "$WORK/d/config.yaml" "config.yaml"
expect_no_grep '^  sample_k' "$WORK/d/config.yaml" "config.yaml (a key at its default is not written)"
losses=$(sed -E 's/.*"loss":([^,]*),.*/\1/' "$WORK/d/log.jsonl" | tr '\n' ' ')
echo "$losses" | awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) exit 1; exit !($NF < $1 - 0.05) }' ||
    fail "the dino loss is not finite or does not fall: $losses"

# Evaluated on its (teacher's) image features: linear probe, k-NN and NCM; well above chance
# (1/8) on these separable classes. zeroshot and head have nothing to score with.
expect_exit 0 "$CLIPX" eval "$WORK/d" --mode linear-probe --json
[ "$("$JSONQ" "$WORK/out" .objective)" = dino ] || fail "eval json: objective is not dino"
[ "$("$JSONQ" "$WORK/out" .mode)" = linear-probe ] || fail "eval json: mode is not linear-probe"
top1=$("$JSONQ" "$WORK/out" .top1)
awk -v a="$top1" 'BEGIN { exit !(a > 0.4) }' || fail "dino linear probe top1 $top1 is not above 0.4"
expect_exit 0 "$CLIPX" eval "$WORK/d" --mode knn --json
top1=$("$JSONQ" "$WORK/out" .top1)
awk -v a="$top1" 'BEGIN { exit !(a > 0.3) }' || fail "dino knn top1 $top1 is not above 0.3"
expect_exit 0 "$CLIPX" eval "$WORK/d" --mode ncm
expect_grep '^run .* \(dino\) .*mode ncm' "$WORK/out" "eval ncm"
expect_exit 0 "$CLIPX" eval "$WORK/d"
expect_grep 'mode linear-probe' "$WORK/out" "the default mode of a dino run"
expect_exit 2 "$CLIPX" eval "$WORK/d" --mode zeroshot && expect_one_error_line
expect_grep "^clipx: eval: --mode zeroshot: $WORK/d is a self-supervised DINO run, without a text tower; use linear-probe, ncm or knn\$" "$WORK/err" "zeroshot refusal"
expect_exit 2 "$CLIPX" eval "$WORK/d" --mode head && expect_one_error_line
expect_grep "without a classifier head" "$WORK/err" "head refusal"

# The features are the teacher's backbone, as DINO evaluates: with momentum 1 the teacher
# never leaves its start, so one epoch and three give the same embeddings (the students,
# and so the checkpoints, differ).
for e in 1 3; do
    expect_exit 0 "$CLIPX" train $small --epochs $e --set dino.momentum=1 --out "$WORK/m1-$e"
    expect_exit 0 "$CLIPX" embed "$WORK/m1-$e" --split test --out "$WORK/m1-$e.npy"
done
cmp -s "$WORK/m1-1/model.ckpt" "$WORK/m1-3/model.ckpt" && fail "momentum 1: the student did not train"
cmp -s "$WORK/m1-1.npy" "$WORK/m1-3.npy" || fail "a dino run's embeddings are not its teacher's"
expect_exit 2 "$CLIPX" embed "$WORK/d" --text --out "$WORK/text.npy" && expect_one_error_line
expect_grep "is a self-supervised DINO run without a text tower: it has no class embeddings" "$WORK/err" "embed --text"

# Same seed: the same bytes; another seed or another sample_k: other bytes.
expect_exit 0 "$CLIPX" train $small --epochs 2 --set dino.sample_k=8 --out "$WORK/k1"
expect_exit 0 "$CLIPX" train $small --epochs 2 --set dino.sample_k=8 --out "$WORK/k2"
cmp -s "$WORK/k1/model.ckpt" "$WORK/k2/model.ckpt" || fail "same seed gave different dino checkpoints"
expect_exit 0 "$CLIPX" train $small --epochs 2 --set dino.sample_k=8 --seed 1 --out "$WORK/k3"
cmp -s "$WORK/k1/model.ckpt" "$WORK/k3/model.ckpt" && fail "another seed gave the same dino checkpoint"
expect_exit 0 "$CLIPX" train $small --epochs 2 --out "$WORK/kall"
cmp -s "$WORK/k1/model.ckpt" "$WORK/kall/model.ckpt" && fail "sample_k 8 and all prototypes gave the same checkpoint"
expect_exit 0 "$CLIPX" train $small --epochs 2 --set dino.sample_k=32 --out "$WORK/k32"
cut -d, -f1-4 "$WORK/kall/log.jsonl" >"$WORK/a"
cut -d, -f1-4 "$WORK/k32/log.jsonl" >"$WORK/b"
cmp -s "$WORK/a" "$WORK/b" || fail "sample_k = P does not train as sample_k 0 (all prototypes)"

# Killed in the middle of an epoch (SIGKILL at step 13 of 36, between checkpoints every 4
# steps), then resumed: the same final checkpoint and log history as an uninterrupted run.
# With prototype subsampling and augmented views (both keyed by seed and step), on the MLP
# tower and on a frozen tower copied from another run (only the head and prototypes learn).
frozen="--set model.image.init=$WORK/d --set model.image.freeze=true"
for variant in mlp frozen; do
    extra=""
    [ "$variant" = frozen ] && extra=$frozen
    ref=$WORK/ref-$variant run=$WORK/kill-$variant
    expect_exit 0 "$CLIPX" train $small $extra --epochs 3 --set dino.sample_k=6 --set ckpt.every=4 --out "$ref"
    CLIPX_TEST_KILL_AT_STEP=13 "$CLIPX" train $small $extra --epochs 3 --set dino.sample_k=6 \
        --set ckpt.every=4 --out "$run" >/dev/null 2>&1 && fail "$variant: the run was not killed"
    [ -s "$run/model.ckpt" ] || fail "$variant: no checkpoint before the kill"
    cmp -s "$ref/model.ckpt" "$run/model.ckpt" && fail "$variant: the killed run had already finished"
    expect_exit 0 "$CLIPX" train --resume "$run" --quiet
    cmp -s "$ref/model.ckpt" "$run/model.ckpt" || fail "$variant: resumed dino run differs from uninterrupted"
    cut -d, -f1-4 "$ref/log.jsonl" >"$WORK/a"
    cut -d, -f1-4 "$run/log.jsonl" >"$WORK/b"
    cmp -s "$WORK/a" "$WORK/b" || fail "$variant: resumed dino log differs (epoch, step, loss, lr)"
done
# The copied tower is the teacher's start too (the teacher starts as the student), so the
# frozen run's features, its teacher's, are its source's: the same probe result.
expect_exit 0 "$CLIPX" eval "$WORK/d" --mode ncm --json
"$JSONQ" "$WORK/out" .top1 .corr_acc >"$WORK/src-ncm"
expect_exit 0 "$CLIPX" eval "$WORK/ref-frozen" --mode ncm --json
"$JSONQ" "$WORK/out" .top1 .corr_acc >"$WORK/frozen-ncm"
cmp -s "$WORK/src-ncm" "$WORK/frozen-ncm" || fail "the frozen dino run's teacher did not start from the copied tower"

# A ViT tower on image-shaped data (the tiny IDX set) with random resized crops as the views:
# the teacher's ViT runs beside the student's; killed and resumed, the same bytes.
tiny="--data $TOP_SRCDIR/tests/fixtures/data/tiny.yaml --objective dino --batch 2 --epochs 6 --threads 1 --quiet"
vit="--set model.image.type=vit --set model.image.layers=1 --set model.image.heads=2 --set model.image.width=8 --set model.image.dim=8 --set model.image.patch=1 --set dino.hidden=16 --set dino.bottleneck=4 --set dino.prototypes=6 --set dino.sample_k=3 --set aug.crop_scale=[0.5,1]"
expect_exit 0 "$CLIPX" train $tiny $vit --set ckpt.every=4 --out "$WORK/ref-vit"
CLIPX_TEST_KILL_AT_STEP=9 "$CLIPX" train $tiny $vit --set ckpt.every=4 \
    --out "$WORK/kill-vit" >/dev/null 2>&1 && fail "vit: the run was not killed"
expect_exit 0 "$CLIPX" train --resume "$WORK/kill-vit" --quiet
cmp -s "$WORK/ref-vit/model.ckpt" "$WORK/kill-vit/model.ckpt" || fail "vit: resumed dino run differs from uninterrupted"

# Refusals: one line, exit 2, no run folder.
expect_exit 2 "$CLIPX" train $small --epochs 1 --set dino.sample_k=33 --out "$WORK/bad-k" &&
    expect_one_error_line
expect_grep "^clipx: train: dino.sample_k: 33 is above dino.prototypes \(32\); set dino.sample_k to at most 32, or 0 for all prototypes\$" "$WORK/err" "sample_k refusal"
[ -e "$WORK/bad-k" ] && fail "a refused sample_k created the run folder"
expect_exit 2 "$CLIPX" train $small --epochs 1 --loss focal --out "$WORK/bad-loss" && expect_one_error_line
expect_grep "objective dino trains with its own cross-view loss" "$WORK/err" "loss refusal"
expect_exit 2 "$CLIPX" train --data "$DATA/dataset.yaml" --objective sl --set dino.sample_k=4 --epochs 1 --quiet --out "$WORK/bad-sl" &&
    expect_one_error_line
expect_grep "^clipx: train: dino.sample_k applies to objective: dino \(objective is sl\); set objective: dino or remove dino.sample_k\$" "$WORK/err" "dino key on sl"

# The benchmark workload of scripts/bench_dino.sh stays a valid configuration: objective dino,
# K of P prototypes, two views by random resized crop (scripts/dino_torch.py is its peer).
expect_exit 0 "$CLIPX" config --config "$TOP_SRCDIR/experiments/dino-bench.yaml"
expect_grep '^objective: "?dino' "$WORK/out" "dino-bench config"
expect_grep '^  sample_k: 1024$' "$WORK/out" "dino-bench config"
expect_grep '^  crop_scale: \[0.4, 1(\.0)?\]$' "$WORK/out" "dino-bench config"
finish
