#!/bin/sh
# Groups (issue 15): clipx synth --spurious writes groups files a Waterbirds-like dataset (two
# classes, a spurious attribute agreeing with the class 95% of the time in training, easier to
# see than the class); an SL run trained on it has a worst-group accuracy below its mean
# group accuracy in clipx eval (JSON keys appended after the old ones, table line,
# groups.tsv), training group counts from the run's subset; compare's group columns; null
# keys and no group columns without groups; refused group files (length, range, no names).
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_groups: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
q() { "$JSONQ" "$@"; }
MAN="$TOP_SRCDIR/doc/clipx.1"
# lt A B: A < B for decimals.
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

# ---- synth ------------------------------------------------------------------------------
D="$WORK/wb"
expect_exit 0 "$CLIPX" synth --out "$D" --classes 2 --spread 1.5 --class-sep 0.5 \
    --profile uniform --n 4000 --test-per-class 500 --spurious 0.95 --spurious-captions 0.3 \
    --seed 1 --quiet
for f in train-groups.npy test-groups.npy group-names.txt; do
    [ -f "$D/$f" ] || fail "synth --spurious wrote no $f"
done
expect_grep '^group_names: group-names.txt$' "$D/dataset.yaml"
expect_grep '^train: .*groups: train-groups.npy\}$' "$D/dataset.yaml"
[ "$(wc -l <"$D/group-names.txt")" -eq 4 ] || fail "group-names.txt: not 4 groups"
expect_grep '^[a-z]+/1$' "$D/group-names.txt"
[ "$(q "$D/synth.json" .spurious.p)" = 0.95 ] || fail "synth.json: spurious.p"
[ "$(q "$D/synth.json" .spurious.class_values#)" = 2 ] || fail "synth.json: class_values"
a=$(q "$D/synth.json" .spurious.train_agreement)
lt 0.93 "$a" && lt "$a" 0.97 || fail "train agreement $a, wanted 0.95"
expect_grep ' background' "$D/train-captions.txt"
# Off by default: no groups.
expect_exit 0 "$CLIPX" synth --out "$WORK/plain" --classes 2 --profile uniform --n 400 \
    --test-per-class 20 --seed 1 --quiet
[ -f "$WORK/plain/train-groups.npy" ] && fail "synth without --spurious wrote groups"
expect_no_grep 'group' "$WORK/plain/dataset.yaml"
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --spurious 1.5 && expect_one_error_line
expect_grep '--spurious' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --spurious 0.9 --spurious-values 1
expect_grep '--spurious-values' "$WORK/err"

# ---- a Waterbirds-like ERM run: worst group below the mean ------------------------------
train_sl() {
    data=$1 out=$2
    shift 2
    "$CLIPX" train --data "$data" --objective sl --epochs 5 --batch 128 \
        --set model.image.hidden=[128] --set model.image.dim=64 --threads 1 --quiet \
        --out "$out" "$@" || fail "train $out"
}
train_sl "$D/dataset.yaml" "$WORK/erm"
expect_exit 0 "$CLIPX" eval "$WORK/erm" --json --threads 1
cp "$WORK/out" "$WORK/erm.json"
wg=$(q "$WORK/erm.json" .worst_group)
ag=$(q "$WORK/erm.json" .avg_group)
adj=$(q "$WORK/erm.json" .adjusted_avg)
echo "cli_groups: ERM worst_group $wg avg_group $ag adjusted_avg $adj top1 $(q "$WORK/erm.json" .top1)"
lt "$wg" "$ag" || fail "worst_group $wg is not below avg_group $ag"
lt "$wg" "$(q "$WORK/erm.json" .top1)" || fail "worst_group $wg is not below top1"
[ "$adj" != null ] || fail "adjusted_avg is null"
[ "$(q "$WORK/erm.json" .groups#)" = 4 ] || fail "groups[] has not 4 entries"
# The new keys come last, after every key that was there before.
keys=$(q "$WORK/erm.json" @)
case $keys in
*" ece_bins classes worst_group avg_group adjusted_avg groups") ;;
*) fail "eval JSON keys end '$keys'" ;;
esac
tr=0; te=0
for i in 0 1 2 3; do
    tr=$((tr + $(q "$WORK/erm.json" ".groups[$i].train_count")))
    te=$((te + $(q "$WORK/erm.json" ".groups[$i].test_count")))
done
[ "$tr" -eq 4000 ] || fail "group train counts sum to $tr, not 4000"
[ "$te" -eq 1000 ] || fail "group test counts sum to $te, not 1000"
# The minority groups (class c with the other value) are the rare ones in training.
n1=$(q "$WORK/erm.json" ".groups[1].train_count")
lt "$n1" 200 || fail "group 1 (class 0, value 1) has $n1 training samples, wanted about 100"
[ "$(q "$WORK/erm.json" ".groups[1].name")" = "$(sed -n 2p "$D/group-names.txt")" ] ||
    fail "groups[1].name"

expect_exit 0 "$CLIPX" eval "$WORK/erm" --threads 1 --out "$WORK/ev"
expect_grep '^worst group 0\.[0-9]{4}  avg group 0\.[0-9]{4}  adjusted avg 0\.[0-9]{4}  \(4 of 4 groups' "$WORK/out" "eval table"
[ -f "$WORK/ev/groups.tsv" ] || fail "eval --out wrote no groups.tsv"
expect_grep '^group	name	train_count	test_count	correct	acc$' "$WORK/ev/groups.tsv"
[ "$(wc -l <"$WORK/ev/groups.tsv")" -eq 5 ] || fail "groups.tsv: not 4 rows"
[ "$(q "$WORK/ev/eval.json" .worst_group)" = "$wg" ] || fail "eval.json worst_group"

# Training group counts follow the run's subset.
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --rho 4 --seed 0 \
    --out "$WORK/lt.subset"
train_sl "$D/dataset.yaml" "$WORK/erm_lt" --subset "$WORK/lt.subset"
expect_exit 0 "$CLIPX" eval "$WORK/erm_lt" --json --threads 1
cp "$WORK/out" "$WORK/lt.json"
tr=0
for i in 0 1 2 3; do tr=$((tr + $(q "$WORK/lt.json" ".groups[$i].train_count"))); done
[ "$tr" -eq $(($(wc -l <"$WORK/lt.subset") - 1)) ] || fail "subset run: group train counts sum to $tr"

# ---- compare -------------------------------------------------------------------------------
expect_exit 0 "$CLIPX" compare "$WORK/erm" "$WORK/erm_lt" --threads 1
expect_grep 'worst_group +avg_group' "$WORK/out" "compare table"
expect_exit 0 "$CLIPX" compare "$WORK/erm" "$WORK/erm_lt" --json --threads 1
[ "$(q "$WORK/out" .runs[0].worst_group)" = "$wg" ] || fail "compare --json worst_group"
[ "$(q "$WORK/out" .runs[1].delta.worst_group)" != null ] || fail "compare --json delta"

# ---- without groups: null keys, no columns ---------------------------------------------------
train_sl "$WORK/plain/dataset.yaml" "$WORK/plainrun"
expect_exit 0 "$CLIPX" eval "$WORK/plainrun" --json --threads 1
for k in worst_group avg_group adjusted_avg groups; do
    [ "$(q "$WORK/out" .$k)" = null ] || fail "$k is not null without groups"
done
expect_exit 0 "$CLIPX" eval "$WORK/plainrun" --threads 1 --out "$WORK/ev2"
expect_no_grep 'worst group' "$WORK/out"
[ -f "$WORK/ev2/groups.tsv" ] && fail "groups.tsv without groups"
expect_exit 0 "$CLIPX" compare "$WORK/plainrun" --threads 1
expect_no_grep 'worst_group' "$WORK/out"

# ---- bad group files ----------------------------------------------------------------------
B="$WORK/badds"
mkdir -p "$B"
cp "$D"/classes.txt "$D"/train-features.npy "$D"/train-labels.npy "$D"/test-features.npy \
    "$D"/test-labels.npy "$D"/train-groups.npy "$D"/test-groups.npy "$D"/group-names.txt "$B"/
# yaml NAMES_LINE TRAIN_GROUPS TEST_GROUPS
yaml() {
    printf 'classes: classes.txt\n%strain: {images: train-features.npy, labels: train-labels.npy, groups: %s}\ntest: {images: test-features.npy, labels: test-labels.npy, groups: %s}\n' "$1" "$2" "$3" >"$B/d.yaml"
}
names='group_names: group-names.txt
'
awk 'BEGIN { for (i = 0; i < 3999; i++) print i % 4 }' >"$B/short.txt"
yaml "$names" short.txt test-groups.npy
expect_exit 1 "$CLIPX" stats "$B/d.yaml" && expect_one_error_line
expect_grep 'short.txt: record 3999: 3999 groups for the 4000 labels of .*train-labels.npy' "$WORK/err"
awk 'BEGIN { for (i = 0; i < 1000; i++) print (i == 7 ? 4 : i % 4) }' >"$B/range.txt"
yaml "$names" train-groups.npy range.txt
expect_exit 1 "$CLIPX" eval "$WORK/erm" --data "$B/d.yaml" && expect_one_error_line
expect_grep 'range.txt: line 8: group 4 is outside the 4 groups of .*group-names.txt' "$WORK/err"
yaml '' train-groups.npy test-groups.npy
expect_exit 2 "$CLIPX" stats "$B/d.yaml" && expect_one_error_line
expect_grep "d.yaml:2:[0-9]+: 'groups' needs the dataset's 'group_names'" "$WORK/err"
# Another dataset with the same groups: its test split scored, training counts the run's.
yaml "$names" train-groups.npy test-groups.npy
expect_exit 0 "$CLIPX" eval "$WORK/erm" --data "$B/d.yaml" --json --threads 1
[ "$(q "$WORK/out" .worst_group)" = "$wg" ] || fail "eval --data: worst_group differs"
[ "$(q "$WORK/out" .groups[1].train_count)" = "$n1" ] || fail "eval --data: train counts differ"

# ---- help and man page ------------------------------------------------------------------
expect_exit 0 "$CLIPX" synth --help
sed 's/\\-/-/g' "$MAN" >"$WORK/man"
for o in spurious spurious-values spurious-strength spurious-captions; do
    expect_grep "--$o " "$WORK/out" "synth --help"
    grep -q -- "--$o " "$WORK/man" || fail "clipx.1 lacks --$o"
done
grep -q 'worst_group' "$MAN" || fail "clipx.1 lacks worst_group"
grep -q 'group_names' "$TOP_SRCDIR/README.md" || fail "README lacks group_names"

finish
