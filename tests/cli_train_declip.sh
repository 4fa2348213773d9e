#!/bin/sh
# clipx train --objective declip: DeCLIP's multi-view and nearest-neighbour supervision end to
# end (two image views, original and EDA captions, the caption queue, the SimSiam head),
# zero-shot evaluation,
# reproducibility, resume after SIGKILL with the queue in the checkpoint, refusals.
. "$TOP_SRCDIR/tests/lib.sh"
JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_train_declip: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }

DATA=$WORK/s
"$CLIPX" synth --out "$DATA" --classes 8 --profile uniform --n 400 --dim 16 \
    --test-per-class 20 --seed 1 --quiet || { fail "synth failed"; finish; }

small="--data $DATA/dataset.yaml --objective declip --batch 32 --set model.image.hidden=[32] --set model.image.dim=16 --set model.text.dim=16 --set aug.noise=0.3 --set aug.eda.rd=0.2 --set declip.mlm=0 --threads 2 --quiet"

# Trains: one log line per epoch, a finite loss that falls; the keys set are written back,
# those at their defaults are not; the queue (clipped to the 400 training captions) is in
# the checkpoint.
expect_exit 0 "$CLIPX" train $small --epochs 6 --out "$WORK/d"
[ "$(wc -l <"$WORK/d/log.jsonl")" -eq 6 ] || fail "log.jsonl does not have 6 lines"
expect_grep '^objective: "?declip' "$WORK/d/config.yaml" "config.yaml"
expect_grep '^  mlm: 0' "$WORK/d/config.yaml" "config.yaml"
expect_no_grep '^  queue:' "$WORK/d/config.yaml" "config.yaml (a key at its default is not written)"
expect_no_grep '^  nns:' "$WORK/d/config.yaml" "config.yaml (a key at its default is not written)"
expect_no_grep '^  iss:' "$WORK/d/config.yaml" "config.yaml (a key at its default is not written)"
losses=$(sed -E 's/.*"loss":([^,]*),.*/\1/' "$WORK/d/log.jsonl" | tr '\n' ' ')
echo "$losses" | awk '{ for (i = 1; i <= NF; i++) if ($i !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) exit 1; exit !($NF < $1 - 0.2) }' ||
    fail "the declip loss is not finite or does not fall: $losses"
grep -a -q 'param/declip.queue' "$WORK/d/model.ckpt" || fail "the checkpoint holds no caption queue"
grep -a -q 'param/declip.iss.bn0.running_mean' "$WORK/d/model.ckpt" || fail "the checkpoint holds no SimSiam statistics"

# Evaluated as a CLIP run: zero-shot by default, above chance (1/8).
expect_exit 0 "$CLIPX" eval "$WORK/d" --json
[ "$("$JSONQ" "$WORK/out" .objective)" = declip ] || fail "eval json: objective is not declip"
[ "$("$JSONQ" "$WORK/out" .mode)" = zeroshot ] || fail "eval json: mode is not zeroshot"
expect_exit 0 "$CLIPX" eval "$WORK/d" --mode linear-probe --json
top1=$("$JSONQ" "$WORK/out" .top1)
awk -v a="$top1" 'BEGIN { exit !(a > 0.2) }' || fail "declip linear probe top1 $top1 is not above 0.2"

# Same seed: the same bytes; another seed, or no NNS term: other bytes.
expect_exit 0 "$CLIPX" train $small --epochs 2 --out "$WORK/r1"
expect_exit 0 "$CLIPX" train $small --epochs 2 --out "$WORK/r2"
cmp -s "$WORK/r1/model.ckpt" "$WORK/r2/model.ckpt" || fail "same seed gave different declip checkpoints"
expect_exit 0 "$CLIPX" train $small --epochs 2 --seed 1 --out "$WORK/r3"
cmp -s "$WORK/r1/model.ckpt" "$WORK/r3/model.ckpt" && fail "another seed gave the same declip checkpoint"
expect_exit 0 "$CLIPX" train $small --epochs 2 --set declip.nns=0 --out "$WORK/r4"
cmp -s "$WORK/r1/model.ckpt" "$WORK/r4/model.ckpt" && fail "declip.nns 0 trained as declip.nns 0.2"
grep -a -q 'param/declip.queue' "$WORK/r4/model.ckpt" && fail "declip.nns 0 keeps a caption queue"
expect_exit 0 "$CLIPX" train $small --epochs 2 --set declip.iss=0 --out "$WORK/r5"
cmp -s "$WORK/r1/model.ckpt" "$WORK/r5/model.ckpt" && fail "declip.iss 0 trained as declip.iss 0.2"
grep -a -q 'param/declip.iss' "$WORK/r5/model.ckpt" && fail "declip.iss 0 keeps a SimSiam head"
# A queue smaller than an epoch wraps (FIFO); still the same bytes twice.
expect_exit 0 "$CLIPX" train $small --epochs 2 --set declip.queue=48 --out "$WORK/q1"
expect_exit 0 "$CLIPX" train $small --epochs 2 --set declip.queue=48 --out "$WORK/q2"
cmp -s "$WORK/q1/model.ckpt" "$WORK/q2/model.ckpt" || fail "a wrapping queue is not reproducible"
cmp -s "$WORK/q1/model.ckpt" "$WORK/r1/model.ckpt" && fail "declip.queue 48 trained as the full queue"

# Killed in the middle of an epoch (SIGKILL at step 17 of 36, checkpoints every 5 steps), then
# resumed: the same final checkpoint (weights, optimiser, the caption queue, the SimSiam batch
# norms' running statistics) and log.
ref=$WORK/ref run=$WORK/kill
expect_exit 0 "$CLIPX" train $small --epochs 3 --set declip.queue=100 --set ckpt.every=5 --out "$ref"
CLIPX_TEST_KILL_AT_STEP=17 "$CLIPX" train $small --epochs 3 --set declip.queue=100 \
    --set ckpt.every=5 --out "$run" >/dev/null 2>&1 && fail "the run was not killed"
[ -s "$run/model.ckpt" ] || fail "no checkpoint before the kill"
cmp -s "$ref/model.ckpt" "$run/model.ckpt" && fail "the killed run had already finished"
expect_exit 0 "$CLIPX" train --resume "$run" --quiet
cmp -s "$ref/model.ckpt" "$run/model.ckpt" || fail "resumed declip run differs from uninterrupted"
cut -d, -f1-4 "$ref/log.jsonl" >"$WORK/a"
cut -d, -f1-4 "$run/log.jsonl" >"$WORK/b"
cmp -s "$WORK/a" "$WORK/b" || fail "resumed declip log differs (epoch, step, loss, lr)"

# Refusals: one line, exit 2, no run folder.
base="--data $DATA/dataset.yaml --objective declip --batch 32 --epochs 1 --quiet"
expect_exit 2 "$CLIPX" train $base --set declip.iss=0 --set declip.mlm=0.2 --out "$WORK/bad-mlm" &&
    expect_one_error_line
expect_grep "^clipx: train: declip.mlm: masked language modelling needs model.text.type: transformer; set it or declip.mlm: 0\$" "$WORK/err" "mlm without a transformer"
[ -e "$WORK/bad-mlm" ] && fail "a refused declip.mlm created the run folder"
expect_exit 2 "$CLIPX" train $base --set declip.iss=0 --set declip.mlm=0 --set declip.mv=-1 \
    --out "$WORK/bad-w" && expect_one_error_line
expect_grep "declip.mv" "$WORK/err" "negative weight"
expect_exit 2 "$CLIPX" train $base --set declip.iss=0 --set declip.mlm=0 --set declip.mv=0 \
    --set declip.nns=0 --set declip.iss=0 --out "$WORK/bad-0" && expect_one_error_line
expect_grep "^clipx: train: declip.\*: every weight is 0; give declip.mv, declip.iss or declip.nns a positive weight\$" "$WORK/err" "all weights 0"
expect_exit 2 "$CLIPX" train $base --set declip.iss=0 --set declip.mlm=0 --set declip.queue=0 \
    --out "$WORK/bad-q" && expect_one_error_line
expect_grep "declip.queue" "$WORK/err" "queue of 0"
expect_exit 2 "$CLIPX" train --data "$DATA/dataset.yaml" --objective clip --set declip.nns=0.5 --epochs 1 --quiet --out "$WORK/bad-clip" &&
    expect_one_error_line
expect_grep "^clipx: train: declip.nns applies to objective: declip \(objective is clip\); set objective: declip or remove declip.nns\$" "$WORK/err" "declip key on clip"
finish
