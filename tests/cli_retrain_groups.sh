#!/bin/sh
# clipx retrain --method dfr (issue 15 item 4) on a Waterbirds-like synthetic dataset (two
# classes, a spurious attribute agreeing with the class 95% of the time in training, a val
# split with groups): DFR balances the val split's first half by group, picks lambda by
# worst-group accuracy on the second half (RUN2/dfr.json, the retrain line), and raises the
# test split's worst-group accuracy over the ERM run in clipx eval and compare; by class
# without groups; its keys refused on other methods, other methods' keys refused on it; no
# validation data is refused before RUN2 is written.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_retrain_groups: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
q() { "$JSONQ" "$@"; }
MAN="$TOP_SRCDIR/doc/clipx.1"
# lt A B: A < B for decimals.
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

synth() {
    out=$1
    shift
    "$CLIPX" synth --out "$out" --classes 2 --spread 1.5 --class-sep 0.5 --profile uniform \
        --n 2000 --test-per-class 300 --seed 1 --quiet "$@" || fail "synth $out"
}
train_sl() {
    "$CLIPX" train --data "$1" --objective sl --epochs 4 --batch 128 \
        --set model.image.hidden=[128] --set model.image.dim=64 --threads 1 --quiet \
        --out "$2" || fail "train $2"
}

D="$WORK/wb"
synth "$D" --val-per-class 400 --spurious 0.95
expect_grep '^val: .*groups: val-groups.npy\}$' "$D/dataset.yaml"
train_sl "$D/dataset.yaml" "$WORK/erm"
expect_exit 0 "$CLIPX" eval "$WORK/erm" --json --threads 1
wg0=$(q "$WORK/out" .worst_group)

# ---- dfr ----------------------------------------------------------------------------------
expect_exit 0 "$CLIPX" retrain "$WORK/erm" --method dfr --out "$WORK/dfr" --threads 1
expect_grep '^retrain: dfr on 2000 features \(2 classes, dim 64\), lambda [0-9.e+-]+ \(worst-group accuracy 0\.[0-9]{4} on the second half of validation\)$' "$WORK/err" "retrain line"
expect_grep 'validation data: 800 rows from the dataset.s val split' "$WORK/err" "val note"
for f in config.yaml features.ckpt model.ckpt dfr.json; do
    [ -f "$WORK/dfr/$f" ] || fail "retrain dfr wrote no $f"
done
[ -f "$WORK/dfr/log.jsonl" ] && fail "dfr trains no epochs, yet wrote log.jsonl"
J="$WORK/dfr/dfr.json"
[ "$(q "$J" .cells)" = groups ] || fail "dfr.json: cells $(q "$J" .cells), wanted groups"
[ "$(q "$J" .draws)" = 10 ] || fail "dfr.json: draws"
[ "$(q "$J" .grid#)" = 45 ] || fail "dfr.json: grid of $(q "$J" .grid#), wanted the probe's 45"
[ "$(q "$J" .n_first)" -ge 400 ] && [ "$(q "$J" .n_second)" -le 400 ] || fail "dfr.json: halves"
pc=$(q "$J" .per_cell)
lt 20 "$pc" && lt "$pc" 100 || fail "dfr.json: $pc rows per group, wanted the smallest group's half (about 50)"
lam=$(q "$J" .lambda)
# dfr.draws at its default is not written back (other methods' configs stay as they were).
grep -q '^dfr:$' "$WORK/dfr/config.yaml" && fail "config.yaml holds dfr.draws at its default"
# The chosen lambda is one of the grid's, with the best worst-group accuracy.
best=-1 in_grid=0 i=0
while [ "$i" -lt 45 ]; do
    a=$(q "$J" ".grid[$i].acc")
    lt "$best" "$a" && best=$a
    [ "$(q "$J" ".grid[$i].lambda")" = "$lam" ] && in_grid=1
    i=$((i + 1))
done
[ "$(q "$J" .worst_group_acc)" = "$best" ] || fail "dfr.json: worst_group_acc is not the grid's best ($best)"
[ "$in_grid" = 1 ] || fail "dfr.json: lambda $lam is not in the grid"
expect_exit 0 "$CLIPX" eval "$WORK/dfr" --json --threads 1
cp "$WORK/out" "$WORK/dfr.json"
wg1=$(q "$WORK/dfr.json" .worst_group)
echo "cli_retrain_groups: worst_group ERM $wg0 -> DFR $wg1 (lambda $lam); top1 $(q "$WORK/dfr.json" .top1)"
[ "$wg1" != null ] || fail "eval RUN2: worst_group is null on a test split with groups"
lt "$(awk -v a="$wg0" 'BEGIN { print a + 0.03 }')" "$wg1" ||
    fail "DFR's worst_group $wg1 does not beat ERM's $wg0 by 3 points"
expect_exit 0 "$CLIPX" eval "$WORK/dfr" --threads 1
expect_grep '^worst group 0\.[0-9]{4}  avg group' "$WORK/out" "eval RUN2 table"
expect_exit 0 "$CLIPX" compare "$WORK/erm" "$WORK/dfr" --json --threads 1
[ "$(q "$WORK/out" .runs[1].worst_group)" = "$wg1" ] || fail "compare --json: DFR's worst_group"
expect_exit 0 "$CLIPX" compare "$WORK/erm" "$WORK/dfr" --threads 1
expect_grep 'worst_group' "$WORK/out" "compare table"

# Same seed, same bytes; another draw count, another classifier.
expect_exit 0 "$CLIPX" retrain "$WORK/erm" --method dfr --out "$WORK/dfr_again" --threads 1
cmp -s "$WORK/dfr/model.ckpt" "$WORK/dfr_again/model.ckpt" || fail "dfr twice: model.ckpt differs"
expect_exit 0 "$CLIPX" retrain "$WORK/erm" --method dfr --set dfr.draws=1 --out "$WORK/dfr1" \
    --threads 1
cmp -s "$WORK/dfr/model.ckpt" "$WORK/dfr1/model.ckpt" && fail "dfr.draws=1 gave the 10-draw classifier"
sed -n '/^dfr:$/,/^[a-z]/p' "$WORK/dfr1/config.yaml" >"$WORK/cfg"
expect_grep '^  draws: 1$' "$WORK/cfg" "config.yaml dfr.draws"

# ---- by class without groups ----------------------------------------------------------------
P="$WORK/plain"
synth "$P" --val-per-class 60
train_sl "$P/dataset.yaml" "$WORK/prun"
expect_exit 0 "$CLIPX" retrain "$WORK/prun" --method dfr --out "$WORK/pdfr" --threads 1
expect_grep 'worst-class accuracy' "$WORK/err" "retrain line by class"
[ "$(q "$WORK/pdfr/dfr.json" .cells)" = classes ] || fail "dfr.json without groups: cells"
[ "$(q "$WORK/pdfr/dfr.json" .per_cell)" = 30 ] || fail "dfr.json without groups: per_cell"
expect_exit 0 "$CLIPX" eval "$WORK/pdfr" --json --threads 1
[ "$(q "$WORK/out" .worst_group)" = null ] || fail "eval without groups: worst_group not null"

# ---- refusals -------------------------------------------------------------------------------
expect_exit 2 "$CLIPX" retrain "$WORK/erm" --method crt --set dfr.draws=3 --out "$WORK/bad" &&
    expect_one_error_line
expect_grep '--set dfr.draws: not a key of method crt \(it belongs to dfr\)' "$WORK/err"
expect_exit 2 "$CLIPX" retrain "$WORK/erm" --method dfr --set epochs=3 --out "$WORK/bad" &&
    expect_one_error_line
expect_grep '--set epochs: not a key of method dfr' "$WORK/err"
expect_exit 2 "$CLIPX" retrain "$WORK/erm" --method dfr --set dfr.draws=0 --out "$WORK/bad"
expect_grep 'dfr.draws' "$WORK/err"
# No val split and a run on every training row: nothing to fit on, nothing written.
N="$WORK/noval"
synth "$N" --spurious 0.95
expect_exit 2 "$CLIPX" retrain "$WORK/erm" --method dfr --set data="$N/dataset.yaml" \
    --out "$WORK/bad" && expect_one_error_line
expect_grep "names no 'val' split" "$WORK/err"
[ -e "$WORK/bad" ] && fail "a refused dfr wrote $WORK/bad"

# ---- documentation --------------------------------------------------------------------------
expect_exit 0 "$CLIPX" retrain --help
expect_grep '^  dfr +deep feature reweighting' "$WORK/out" "retrain --help"
expect_grep 'dfr\.draws' "$WORK/out" "retrain --help"
expect_grep 'dfr' "$MAN" "clipx.1"
sed -n '/^\.SS retrain/,/^\.SS /p' "$MAN" >"$WORK/man"
expect_grep 'dfr\.draws' "$WORK/man" "clipx.1 retrain section"

finish
