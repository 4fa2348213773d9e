#!/bin/sh
# clipx retrain --method cfr (issue 15 item 5) on a small Waterbirds-like synthetic dataset (two
# classes, a spurious attribute agreeing with the class 95% of the time in training, a val split
# with groups): the calibration set is the training rows the ERM run gets wrong; the files,
# the epoch kept by worst-class validation accuracy, the same bytes on a rerun and after a
# kill and --resume, no group label read in training, an untouched projection scoring exactly
# as eval scores RUN (SL head and CLIP zero-shot), --select worst-group (refused without val
# groups), and bad cfr.* values refused.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_retrain_cfr: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
q() { "$JSONQ" "$@"; }
# close A B: |A - B| <= 1e-9.
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d <= 1e-9 && d >= -1e-9) }'; }
# The log's value of KEY in every line, one a line.
log_vals() { sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" "$1"; }

synth() {
    out=$1
    shift
    "$CLIPX" synth --out "$out" --classes 2 --spread 1.5 --class-sep 0.5 --profile uniform \
        --n 1000 --test-per-class 200 --seed 1 --quiet "$@" || fail "synth $out"
}
common="--epochs 3 --batch 128 --set model.image.hidden=[64] --set model.image.dim=32 --threads 1 --quiet"

D="$WORK/wb"
synth "$D" --val-per-class 200 --spurious 0.95
# Two ERM runs: SL (its head) and CLIP (its zero-shot classifier, where CFR's calibration
# pays on this data).
"$CLIPX" train --data "$D/dataset.yaml" --objective sl $common --out "$WORK/sl" || fail "train sl"
"$CLIPX" train --data "$D/dataset.yaml" --objective clip $common --set model.text.dim=32 --out "$WORK/clip" || fail "train clip"
ERM="$WORK/clip"
expect_exit 0 "$CLIPX" eval "$ERM" --json --threads 1
cp "$WORK/out" "$WORK/erm.json"
expect_exit 0 "$CLIPX" eval "$WORK/sl" --json --threads 1
cp "$WORK/out" "$WORK/sl.json"

# The training split as a test split: the ERM run's training errors, counted by eval.
sed -e '/^test:/d' -e 's/^train: \(.*\)$/train: \1\ntest: \1/' "$D/dataset.yaml" >"$D/train-as-test.yaml"
expect_exit 0 "$CLIPX" eval "$ERM" --data "$D/train-as-test.yaml" --json --threads 1
wrong=$(awk -v t="$(q "$WORK/out" .top1)" 'BEGIN { printf "%d", (1 - t) * 1000 + 0.5 }')

# ---- cfr: files, calibration set, selection ----------------------------------------------
L="--set cfr.lr=0.01 --set cfr.epochs=6 --set batch=32 --set cfr.positives=4 --set cfr.negatives=8"
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $L --out "$WORK/cfr" --threads 1
expect_grep '^retrain: cfr on 1000 features \(2 classes, dim 32\), [0-9]+ calibration rows, epoch [0-6] kept \(worst-class accuracy 0\.[0-9]{4} on validation\), final loss [0-9.]+$' "$WORK/err" "retrain line"
expect_grep 'validation data: 400 rows from the dataset.s val split' "$WORK/err" "val note"
for f in config.yaml features.ckpt model.ckpt log.jsonl cfr.json; do
    [ -s "$WORK/cfr/$f" ] || fail "retrain cfr wrote no $f"
done
expect_grep '^method: cfr$' "$WORK/cfr/config.yaml" "config.yaml"
expect_no_grep 'select' "$WORK/cfr/config.yaml" "config.yaml (cfr.select at its default)"
J="$WORK/cfr/cfr.json"
[ "$(q "$J" .calibration)" = "$wrong" ] ||
    fail "cfr.json: calibration $(q "$J" .calibration), the ERM run gets $wrong training rows wrong"
[ "$(($(q "$J" .calibration) + $(q "$J" .pool)))" = 1000 ] || fail "cfr.json: calibration + pool != 1000"
[ "$(q "$J" .select)" = worst-class ] || fail "cfr.json: select"
[ "$(q "$J" .epochs_done)" = 6 ] || fail "cfr.json: epochs_done"
# The MLP tower (hidden 64, dim 32) ends in a linear layer: CFR retrains that one.
[ "$(q "$J" .projection)" = last-layer ] && [ "$(q "$J" .projection_in)" = 64 ] ||
    fail "cfr.json: projection $(q "$J" .projection) of $(q "$J" .projection_in) inputs, wanted the tower's last layer (64)"
[ "$(wc -l <"$WORK/cfr/log.jsonl")" -eq 6 ] || fail "log.jsonl: $(wc -l <"$WORK/cfr/log.jsonl") lines, wanted 6"
# c(e) = 1 + 0.5 cos(2 pi e / E) over the 6 epochs.
[ "$(log_vals "$WORK/cfr/log.jsonl" c | tr '\n' ' ')" = "1.5 1.25 0.75 0.5 0.75 1.25 " ] ||
    fail "log.jsonl: c(e) is $(log_vals "$WORK/cfr/log.jsonl" c | tr '\n' ' ')"
# The epoch kept: the first with the best worst-class accuracy, epoch 0 (RUN) included.
be=0 best=$(q "$J" .start_acc) e=0
for a in $(log_vals "$WORK/cfr/log.jsonl" val_worst_class_acc); do
    e=$((e + 1))
    awk -v a="$a" -v b="$best" 'BEGIN { exit !(a > b + 1e-12) }' && { best=$a; be=$e; }
done
[ "$(q "$J" .best_epoch)" = "$be" ] || fail "cfr.json: best_epoch $(q "$J" .best_epoch), the log's best is epoch $be"
close "$(q "$J" .val_worst_class_acc)" "$best" || fail "cfr.json: kept accuracy is not the best ($best)"
[ "$be" -gt 0 ] || fail "no epoch beats RUN on validation: the projection does not learn"
# eval RUN2: the projected features through RUN's head, with the group metrics.
if expect_exit 0 "$CLIPX" eval "$WORK/cfr" --json --threads 1; then
    cp "$WORK/out" "$WORK/cfr.eval.json"
    [ "$(q "$WORK/cfr.eval.json" .retrain.method)" = cfr ] || fail "eval RUN2: retrain.method"
    for k in worst_group avg_group adjusted_avg; do
        [ "$(q "$WORK/cfr.eval.json" .$k)" != null ] || fail "eval RUN2: $k is null on a test split with groups"
    done
    [ "$(q "$WORK/cfr.eval.json" .groups#)" = 4 ] || fail "eval RUN2: $(q "$WORK/cfr.eval.json" .groups#) groups, wanted 4"
    # The kept projection is applied: on this data it lifts the zero-shot worst group.
    wg0=$(q "$WORK/erm.json" .worst_group) wg1=$(q "$WORK/cfr.eval.json" .worst_group)
    awk -v a="$wg0" -v b="$wg1" 'BEGIN { exit !(b > a + 0.05) }' ||
        fail "eval RUN2: worst_group $wg1, RUN's $wg0: the kept projection (epoch $be) does not show"
fi
echo "cli_retrain_cfr: worst_group ERM $(q "$WORK/erm.json" .worst_group) -> CFR $(q "$WORK/cfr.eval.json" .worst_group) (epoch $be kept, $wrong calibration rows)"

# Same seed, same bytes; another seed draws other positives.
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $L --out "$WORK/cfr2" --threads 1 --quiet
for f in model.ckpt cfr.json features.ckpt; do
    cmp -s "$WORK/cfr/$f" "$WORK/cfr2/$f" || fail "cfr rerun with the same seed: $f differs"
done
sed 's/"seconds": [0-9.]*//' "$WORK/cfr/log.jsonl" >"$WORK/l1"
sed 's/"seconds": [0-9.]*//' "$WORK/cfr2/log.jsonl" >"$WORK/l2"
cmp -s "$WORK/l1" "$WORK/l2" || fail "cfr rerun with the same seed: log.jsonl differs"
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $L --set seed=5 --out "$WORK/cfr5" --threads 1 --quiet
sed 's/"seconds": [0-9.]*//' "$WORK/cfr5/log.jsonl" >"$WORK/l5"
cmp -s "$WORK/l1" "$WORK/l5" && fail "cfr with seed 5 trains as seed 0 does"

# Killed after epoch 3, resumed: the same bytes as the uninterrupted run.
CLIPX_TEST_KILL_AT_EPOCH=3 "$CLIPX" retrain "$ERM" --method cfr $L --out "$WORK/kill" --threads 1 --quiet >/dev/null 2>&1
[ "$(wc -l <"$WORK/kill/log.jsonl")" -eq 3 ] || fail "killed at epoch 3: log.jsonl has $(wc -l <"$WORK/kill/log.jsonl") lines"
[ -e "$WORK/kill/cfr.json" ] && fail "killed at epoch 3, yet cfr.json (written at the end) exists"
expect_exit 0 "$CLIPX" retrain --resume "$WORK/kill" --threads 1 --quiet
for f in model.ckpt cfr.json; do
    cmp -s "$WORK/cfr/$f" "$WORK/kill/$f" || fail "cfr after kill and --resume: $f differs"
done

# No group label is read in training: without the groups files' lines the run is the same.
sed 's/, groups: [a-z-]*\.npy//' "$D/dataset.yaml" >"$D/nogroups.yaml"
expect_no_grep 'groups' "$D/nogroups.yaml" "nogroups.yaml"
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $L --set data="$D/nogroups.yaml" --out "$WORK/cfr_ng" --threads 1 --quiet
cmp -s "$WORK/cfr/model.ckpt" "$WORK/cfr_ng/model.ckpt" || fail "cfr reads groups: model.ckpt differs without them"

# An untouched projection (epoch 0 kept) scores exactly as eval scores RUN: a CLIP run's
# zero-shot classifier, an SL run's head.
for r in clip sl; do
    expect_exit 0 "$CLIPX" retrain "$WORK/$r" --method cfr --set cfr.epochs=1 --set cfr.lr=1e-12 --out "$WORK/${r}0" --threads 1 --quiet || continue
    [ "$(q "$WORK/${r}0/cfr.json" .best_epoch)" = 0 ] || fail "$r, cfr.lr 1e-12: epoch $(q "$WORK/${r}0/cfr.json" .best_epoch) kept, wanted 0"
    ref="$WORK/erm.json"
    [ $r = sl ] && ref="$WORK/sl.json"
    if expect_exit 0 "$CLIPX" eval "$WORK/${r}0" --json --threads 1; then
        for k in top1 worst_group avg_group adjusted_avg ece; do
            [ "$(q "$WORK/out" .$k)" = "$(q "$ref" .$k)" ] ||
                fail "$r: cfr with RUN's projection: $k $(q "$WORK/out" .$k), RUN has $(q "$ref" .$k)"
        done
    fi
done
# Frozen features (an identity tower; a frozen tower): a new D x D projection from the identity.
# (inputs 128 wide through an identity tower; a frozen 32-wide tower)
for case in "identity 128" "freeze 32"; do
    set -- $case
    extra="--set model.image.type=identity"
    [ "$1" = freeze ] && extra="--set model.image.freeze=true"
    "$CLIPX" train --data "$D/dataset.yaml" --objective sl $common $extra --out "$WORK/frozen-$1" || fail "train $extra"
    expect_exit 0 "$CLIPX" retrain "$WORK/frozen-$1" --method cfr $L --out "$WORK/frozen-$1-cfr" --threads 1 --quiet || continue
    F="$WORK/frozen-$1-cfr/cfr.json"
    [ "$(q "$F" .projection)" = identity ] && [ "$(q "$F" .projection_in)" = "$2" ] ||
        fail "$1: cfr.json: projection $(q "$F" .projection) of $(q "$F" .projection_in) inputs, wanted identity of $2"
    expect_exit 0 "$CLIPX" eval "$WORK/frozen-$1-cfr" --json --threads 1 &&
        [ "$(q "$WORK/out" .retrain.method)" = cfr ] || fail "$1: eval RUN2"
done
# On the SL run's head the same training runs (here it keeps RUN: no epoch beats it).
expect_exit 0 "$CLIPX" retrain "$WORK/sl" --method cfr $L --out "$WORK/slc" --threads 1 --quiet
expect_exit 0 "$CLIPX" eval "$WORK/slc" --json --threads 1 &&
    [ "$(q "$WORK/out" .retrain.method)" = cfr ] || fail "eval of the SL run's cfr run"

# ---- --select worst-group ----------------------------------------------------------------
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $L --select worst-group --out "$WORK/cfrg" --threads 1
expect_grep 'epoch [0-6] kept \(worst-group accuracy 0\.[0-9]{4} on validation\)' "$WORK/err" "retrain line (worst-group)"
[ "$(q "$WORK/cfrg/cfr.json" .select)" = worst-group ] || fail "cfr.json: select worst-group"
[ "$(q "$WORK/cfrg/cfr.json" .val_worst_group_acc)" != null ] || fail "cfr.json: val_worst_group_acc"
expect_grep '^  select: worst-group$' "$WORK/cfrg/config.yaml" "config.yaml cfr.select"
# The same training; the selection alone differs: the worst group is at most the worst class.
sed 's/"seconds": [0-9.]*//; s/"val_worst_[a-z]*_acc": [0-9.e-]*, "best_epoch": [0-9]*//' "$WORK/cfr/log.jsonl" >"$WORK/l1"
sed 's/"seconds": [0-9.]*//; s/"val_worst_[a-z]*_acc": [0-9.e-]*, "best_epoch": [0-9]*//' "$WORK/cfrg/log.jsonl" >"$WORK/lg"
cmp -s "$WORK/l1" "$WORK/lg" || fail "--select worst-group changed the training"
awk -v g="$(q "$WORK/cfrg/cfr.json" .start_acc)" -v c="$(q "$J" .start_acc)" 'BEGIN { exit !(g <= c) }' ||
    fail "worst-group start accuracy above the worst-class one"
# Without groups in val (a val split without them; no val split at all): status 2, one line
# naming the option and the split, nothing written.
expect_exit 2 "$CLIPX" retrain "$ERM" --method cfr --select worst-group --set data="$D/nogroups.yaml" --out "$WORK/ng" --threads 1
expect_one_error_line
expect_grep '--select worst-group needs a val split with groups; the val split of .*nogroups.yaml has none' "$WORK/err" "no val groups"
[ -e "$WORK/ng" ] && fail "--select worst-group without val groups wrote $WORK/ng"
synth "$WORK/noval" --spurious 0.95
"$CLIPX" subsample "$WORK/noval/dataset.yaml" --profile exp --rho 2 --n-max 400 --seed 0 \
    --out "$WORK/noval.subset" --quiet || fail "subsample"
"$CLIPX" train --data "$WORK/noval/dataset.yaml" --subset "$WORK/noval.subset" --objective sl $common --out "$WORK/erm_nv" || fail "train erm (no val)"
expect_exit 2 "$CLIPX" retrain "$WORK/erm_nv" --method cfr --select worst-group --out "$WORK/nv" --threads 1
expect_one_error_line
expect_grep '--select worst-group needs a val split with groups; .* names no val split' "$WORK/err" "no val split"
[ -e "$WORK/nv" ] && fail "--select worst-group without a val split wrote $WORK/nv"
# ... while worst-class selection runs on held-out training rows there.
expect_exit 0 "$CLIPX" retrain "$WORK/erm_nv" --method cfr --set cfr.epochs=2 --out "$WORK/nv_ok" --threads 1
expect_grep 'training rows held out' "$WORK/err" "held-out note"
expect_exit 2 "$CLIPX" retrain "$ERM" --method dfr --select worst-group --out "$WORK/dfrsel" --threads 1
expect_one_error_line
expect_grep '--select is an option of --method cfr' "$WORK/err" "--select on dfr"
expect_exit 2 "$CLIPX" retrain "$ERM" --method cfr --select worst --out "$WORK/bad" --threads 1
expect_one_error_line

# ---- L_TSC (cfr.tsc): epochs over all training rows, deterministic; 0 is the run without it --
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $L --set cfr.tsc=0 --out "$WORK/tsc0" --threads 1
cmp -s "$WORK/cfr/model.ckpt" "$WORK/tsc0/model.ckpt" || fail "cfr.tsc=0: model.ckpt differs from the run without the key"
expect_no_grep '^  tsc' "$WORK/tsc0/config.yaml" "config.yaml (cfr.tsc at its default)"
T="$L --set cfr.tsc=0.5 --set cfr.tsc_queue=64"
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $T --out "$WORK/tsc" --threads 1
expect_grep '^  tsc: 0.5$' "$WORK/tsc/config.yaml" "config.yaml cfr.tsc"
expect_grep '^  tsc_queue: 64$' "$WORK/tsc/config.yaml" "config.yaml cfr.tsc_queue"
[ "$(wc -l <"$WORK/tsc/log.jsonl")" -eq 6 ] || fail "tsc: log.jsonl has $(wc -l <"$WORK/tsc/log.jsonl") lines"
# The term changes the training: another loss than without it, the same bytes on a rerun.
[ "$(log_vals "$WORK/tsc/log.jsonl" loss | head -n 1)" != "$(log_vals "$WORK/cfr/log.jsonl" loss | head -n 1)" ] ||
    fail "cfr.tsc=0.5: the first epoch's loss is the one without L_TSC"
expect_exit 0 "$CLIPX" retrain "$ERM" --method cfr $T --out "$WORK/tsc2" --threads 1
cmp -s "$WORK/tsc/model.ckpt" "$WORK/tsc2/model.ckpt" || fail "cfr.tsc: a rerun gives other bytes"
expect_exit 2 "$CLIPX" retrain "$ERM" --method dfr --set cfr.tsc=1 --out "$WORK/bad" --threads 1
expect_grep 'cfr.tsc: not a key of method dfr' "$WORK/err" "cfr.tsc on dfr"

# ---- bad cfr.* values, other methods' keys -------------------------------------------------
for kv in cfr.tau=0 cfr.lr=0 cfr.lr=-1 cfr.positives=0 cfr.positives=5000 cfr.negatives=-1 \
    cfr.lambda=-0.5 cfr.epochs=0 cfr.epochs=x batch=0 cfr.select=best cfr.tsc=-1 cfr.tsc=x \
    cfr.tsc_queue=0 cfr.tsc_queue=2000000; do
    expect_exit 2 "$CLIPX" retrain "$ERM" --method cfr --set "$kv" --out "$WORK/bad" --threads 1 || continue
    expect_one_error_line
    expect_grep "--set ${kv%%=*}" "$WORK/err" "$kv"
    [ -e "$WORK/bad" ] && fail "$kv: wrote $WORK/bad"
done
for kv in optim.lr=0.01 epochs=3 dfr.draws=2 loss=focal; do
    expect_exit 2 "$CLIPX" retrain "$ERM" --method cfr --set "$kv" --out "$WORK/bad" --threads 1 &&
        expect_grep "not a key of method cfr" "$WORK/err" "$kv on cfr"
done
expect_exit 2 "$CLIPX" retrain "$ERM" --method dfr --set cfr.lr=0.1 --out "$WORK/bad" --threads 1
expect_grep 'cfr.lr: not a key of method dfr \(it belongs to cfr\)' "$WORK/err" "cfr key on dfr"
# More hard negatives than the pool holds: status 1, naming the need.
expect_exit 1 "$CLIPX" retrain "$ERM" --method cfr --set cfr.negatives=4000 --out "$WORK/neg" --threads 1
expect_grep '^clipx: retrain: CFR calibration sample [0-9]+: [0-9]+ pool rows outside class [01], fewer than the 4000 hard negatives$' "$WORK/err" "negatives 4000"

finish
