#!/bin/sh
# The data commands (synth, subsample, stats, count): exit codes, one error line naming the
# file and position, no output file on failure and no truncated earlier output, bit-identical
# reruns, and the W1 subset of Fashion-MNIST when Debian's dataset-fashion-mnist is installed.
. "$TOP_SRCDIR/tests/lib.sh"

FX="$TOP_SRCDIR/tests/fixtures/data"
D="$WORK/syn"
PARTS="dataset.yaml classes.txt templates.txt train-features.npy train-labels.npy train-true-labels.npy
train-captions.txt test-features.npy test-labels.npy test-captions.txt train-counts.tsv synth.json"
SYNTH="--classes 20 --profile uniform --n 3000 --test-per-class 10 --dim 16 --open-world 0.1 --open-classes 5 --label-noise 0.05"

# ---- synth ----------------------------------------------------------------------------------
expect_exit 2 "$CLIPX" synth && expect_one_error_line && expect_grep 'out DIR is required' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$D" --classes 1 && expect_one_error_line
expect_exit 2 "$CLIPX" synth --out "$D" --captions fancy && expect_one_error_line
expect_exit 2 "$CLIPX" synth --out "$D" --n 10 && expect_one_error_line &&
    expect_grep '^clipx: synth: --n: 10 training samples cannot give each of the 100 classes one$' "$WORK/err"
# lib/ names the field (superclasses, open_world); synth words it as the option.
expect_exit 2 "$CLIPX" synth --out "$D" --classes 6 --superclasses 20 && expect_one_error_line &&
    expect_grep '^clipx: synth: --superclasses: 20 is out of range \[0, 6\]$' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$D" --classes 6 --n 600 --open-world 0.5 --open-classes 400 &&
    expect_one_error_line && expect_grep '^clipx: synth: --open-world: 300 open-world samples' "$WORK/err"
[ -e "$D" ] && fail "a refused synth created $D"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$D" $SYNTH --quiet --threads 1
[ -s "$WORK/err" ] && fail "synth --quiet wrote to stderr"
for f in $PARTS; do [ -s "$D/$f" ] || fail "synth did not write $f"; done
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/syn2" $SYNTH --threads 2 &&
    expect_grep '^synth: wrote .*/dataset.yaml: 3000 training samples' "$WORK/err" "synth summary"
for f in $PARTS; do cmp -s "$D/$f" "$WORK/syn2/$f" || fail "$f differs between runs with 1 and 2 threads"; done
expect_grep '^eval_classes: 20$' "$D/dataset.yaml"
[ "$(wc -l <"$D/classes.txt")" -eq 25 ] || fail "classes.txt should list 20 classes and 5 open-world concepts"
# A synth that fails half-way (a file size limit) leaves the earlier dataset as it was and no
# temporary files.
cp -r "$D" "$WORK/before"
(
    ulimit -f 64
    trap '' XFSZ
    exec "$CLIPX" synth --out "$D" --classes 20 --n 20000 --dim 64 --seed 9 --quiet
) >"$WORK/out" 2>"$WORK/err"
[ $? -eq 1 ] || fail "synth beyond the file size limit did not exit 1"
expect_one_error_line && expect_grep 'File too large' "$WORK/err" "synth write error"
for f in $PARTS; do cmp -s "$D/$f" "$WORK/before/$f" || fail "a failed synth changed $f"; done
[ -z "$(ls -A "$D" | grep '^\.')" ] || fail "a failed synth left hidden files: $(ls -A "$D")"
: >"$WORK/blocker"
expect_exit 1 "$CLIPX" synth --out "$WORK/blocker/sub" --quiet && expect_one_error_line &&
    expect_grep 'blocker' "$WORK/err" "synth folder error"

# ---- stats ----------------------------------------------------------------------------------
expect_exit 0 "$CLIPX" stats "$D/dataset.yaml" && expect_grep '^ +19 +[a-z]+ +[0-9]+ +[0-9.]+% +(head|mid|tail) +10$' "$WORK/out" "stats table"
expect_grep '^imbalance ratio [0-9.]+' "$WORK/out" "stats summary"
expect_exit 0 "$CLIPX" stats "$D/dataset.yaml" --json
tr -d ' \n' <"$WORK/out" >"$WORK/flat"
expect_grep '"num_classes":20,' "$WORK/flat" "stats --json"
expect_grep '"open_world_samples":[0-9]+,' "$WORK/flat" "stats --json"
expect_grep '"classes":\[\{"index":0,"name":"[a-z]+","count":[0-9]+,"test_count":10,"split":"(head|mid|tail)"\}' "$WORK/flat" "stats --json classes"
expect_exit 0 "$CLIPX" stats "$D/dataset.yaml" --split-rule tertile --json
tr -d ' \n' <"$WORK/out" | grep -q '"head":6,"mid":8,"tail":6' || fail "tertile split of 20 classes is not 6/8/6"
expect_exit 2 "$CLIPX" stats && expect_one_error_line
expect_exit 2 "$CLIPX" stats "$D/dataset.yaml" --thresholds 5 && expect_one_error_line
expect_exit 2 "$CLIPX" stats "$D/dataset.yaml" --split-rule thirds && expect_one_error_line
expect_exit 1 "$CLIPX" stats "$WORK/nope.yaml" && expect_one_error_line &&
    expect_grep "nope.yaml: No such file or directory" "$WORK/err"

# ---- subsample -------------------------------------------------------------------------------
S="$WORK/S"
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --rho 10 --n-max 100 --seed 3 --out "$S" &&
    expect_grep '^subsample: kept [0-9]+ of 3000 samples' "$WORK/err" "subsample summary"
[ "$(head -1 "$S")" = "$(printf 'index\tlabel')" ] || fail "SUBSET header"
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --rho 10 --n-max 100 --seed 3 --out "$WORK/S2" --quiet
cmp -s "$S" "$WORK/S2" || fail "subsample rerun differs"
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --rho 10 --n-max 100 --seed 4 --out "$WORK/S3" --quiet
cmp -s "$S" "$WORK/S3" && fail "another seed kept the same samples"
awk -F'\t' 'NR > 1 && $1 <= prev {bad = 1} NR > 1 {prev = $1} END {exit bad}' "$S" || fail "SUBSET not ascending"
expect_exit 0 "$CLIPX" stats "$D/dataset.yaml" --subset "$S" --json
tr -d ' \n' <"$WORK/out" >"$WORK/flat"
expect_grep '"n_max":100,"n_min":10,' "$WORK/flat" "stats of the exp subset"
expect_grep '"imbalance_ratio":10,' "$WORK/flat" "stats of the exp subset"
# Other profiles, and a subset of a subset.
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile pareto --alpha 1 --out "$WORK/P" --quiet
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile step --mu 0.25 --rho 5 --out "$WORK/St" --quiet
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile trim-tail --tail-k 3 --cap 1 --out "$WORK/T" --quiet
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --subset "$S" --profile scale --frac 0.5 --out "$WORK/Sc" --quiet
[ "$(($(wc -l <"$WORK/Sc") - 1))" -eq $((($(wc -l <"$S") - 1 + 1) / 2)) ] || fail "scale --frac 0.5 kept the wrong number"
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --permute-classes --seed 1 --out "$WORK/Pm" --quiet
# Usage errors.
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --out "$S" && expect_one_error_line
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile exp && expect_one_error_line
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --counts x --out "$S" && expect_one_error_line &&
    expect_grep 'counts does not apply to --profile exp' "$WORK/err"
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile scale --out "$S" && expect_one_error_line
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile zipf --out "$S" && expect_one_error_line
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile scale --n 2 --out "$S" && expect_one_error_line
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile scale --n 100000 --out "$S" && expect_one_error_line &&
    expect_grep '^clipx: subsample: --n: 100000 exceeds the 3000 samples available$' "$WORK/err"
expect_exit 2 "$CLIPX" subsample "$D/dataset.yaml" --profile trim-tail --tail-k 50 --out "$S" &&
    expect_one_error_line && expect_grep '^clipx: subsample: --tail-k: 50 is out of range \[0, 20\]$' "$WORK/err"
# An empty SUBSET (header, no rows) keeps no rows: stats reports zero samples.
printf 'index\tlabel\n' >"$WORK/empty-subset"
expect_exit 0 "$CLIPX" stats "$D/dataset.yaml" --subset "$WORK/empty-subset" --json
tr -d ' \n' <"$WORK/out" | grep -q '"samples":0,' || fail "stats of an empty SUBSET does not report 0 samples"
expect_exit 1 "$CLIPX" train --data "$D/dataset.yaml" --subset "$WORK/empty-subset" --out "$WORK/empty-run" --quiet &&
    expect_one_error_line && expect_grep 'empty-subset: the subset holds no samples$' "$WORK/err" "train on an empty SUBSET"
# Failures leave the earlier output as it was, and create nothing.
cp "$S" "$WORK/S.before"
expect_exit 1 "$CLIPX" subsample "$WORK/nope.yaml" --profile exp --out "$S" && expect_one_error_line
cmp -s "$S" "$WORK/S.before" || fail "a failed subsample changed the earlier SUBSET"
printf 'index\tlabel\n5\t0\n3\t0\n' >"$WORK/bad-subset"
expect_exit 1 "$CLIPX" subsample "$D/dataset.yaml" --subset "$WORK/bad-subset" --profile exp --out "$S" &&
    expect_one_error_line && expect_grep 'bad-subset: line [23]: ' "$WORK/err" "bad SUBSET"
cmp -s "$S" "$WORK/S.before" || fail "a failed subsample changed the earlier SUBSET"
expect_exit 1 "$CLIPX" subsample "$D/dataset.yaml" --profile exp --out "$WORK/nofolder/S" && expect_one_error_line
ls "$WORK" | grep -q '^\.S\.' && fail "a temporary SUBSET was left behind"
# subsample and stats read labels only, but check the images file too: missing, truncated, of
# another format or of another count than the labels is refused (exit 1, one line naming it),
# and nothing is written.
B="$WORK/broken"
rm -rf "$B" && cp -r "$D" "$B"
feat="$B/train-features.npy"
cp "$feat" "$WORK/feat.keep"
for damage in missing truncated magic count folder captions; do
    cp "$WORK/feat.keep" "$feat"
    case $damage in
    missing) rm "$feat"; want='train-features.npy: No such file or directory$' ;;
    truncated) head -c 1000 "$WORK/feat.keep" >"$feat"; want='train-features.npy: byte 8: header claims 3000 records' ;;
    magic) printf 'XXXXXXXX' | dd of="$feat" conv=notrunc 2>/dev/null; want='train-features.npy: byte 0: wrong NPY magic' ;;
    count) cp "$D/test-features.npy" "$feat"; want='train-features.npy: byte 10: header claims 200 images, but .*train-labels.npy holds 3000 labels$' ;;
    folder) rm "$feat"; mkdir "$feat"; want='train-features.npy: is a folder' ;;
    captions) mv "$B/train-captions.txt" "$WORK/cap.keep"; want='train-captions.txt: No such file or directory$' ;;
    esac
    expect_exit 1 "$CLIPX" stats "$B/dataset.yaml" && expect_one_error_line && expect_grep "$want" "$WORK/err" "stats, $damage images"
    rm -f "$WORK/S-broken"
    expect_exit 1 "$CLIPX" subsample "$B/dataset.yaml" --profile exp --out "$WORK/S-broken" &&
        expect_one_error_line && expect_grep "$want" "$WORK/err" "subsample, $damage images"
    [ -e "$WORK/S-broken" ] && fail "subsample wrote a SUBSET of a broken dataset ($damage)"
    rm -rf "$feat"
    [ "$damage" = captions ] && mv "$WORK/cap.keep" "$B/train-captions.txt"
done

# ---- count -----------------------------------------------------------------------------------
F="$WORK/freqs"
expect_exit 0 "$CLIPX" count "$D/dataset.yaml" --out "$F" &&
    expect_grep '^count: [0-9]+ of 3000 captions matched' "$WORK/err" "count summary"
[ "$(wc -l <"$F")" -eq 25 ] || fail "the frequency file should list all 25 concepts"
awk -F'\t' 'NF != 2 || $2 !~ /^[0-9]+$/ {exit 1}' "$F" || fail "frequency file lines are not name<TAB>count"
expect_exit 0 "$CLIPX" count "$D/dataset.yaml" --out "$WORK/freqs2" --quiet && cmp -s "$F" "$WORK/freqs2" || fail "count rerun differs"
expect_exit 0 "$CLIPX" subsample "$D/dataset.yaml" --profile match --counts "$F" --out "$WORK/M" --quiet
expect_exit 0 "$CLIPX" count "$D/dataset.yaml" --subset "$S" --out "$WORK/freqs-S" --quiet
expect_exit 0 "$CLIPX" count "$D/dataset.yaml" --split test --plurals --out "$WORK/freqs-t" --quiet
expect_exit 2 "$CLIPX" count "$D/dataset.yaml" && expect_one_error_line
expect_exit 2 "$CLIPX" count "$D/dataset.yaml" --split test --subset "$S" --out "$F" && expect_one_error_line

# Lemmas (WordNet's noun exceptions and suffix rules) and the multi-label rows.
mkdir -p "$WORK/lem"
printf 'wolf\ngoose\nbox\nglass\nmouse\n' >"$WORK/lem/classes.txt"
printf 'two wolves\ngeese and a goose\nboxes of glasses\na bus\nmice\n' >"$WORK/lem/caps.txt"
printf 'classes: classes.txt\ntest: {images: %s, labels: %s}\n' "$FX/tiny-images-idx3-ubyte.gz" \
    "$FX/tiny-labels-idx1-ubyte.gz" >"$WORK/lem/d.yaml"
# Without lemmas only the bare words count; a rerun with --lemmas gives every class its captions.
expect_exit 0 "$CLIPX" count "$WORK/lem/d.yaml" --captions "$WORK/lem/caps.txt" --out "$WORK/lem/f0" --quiet
[ "$(cut -f2 "$WORK/lem/f0" | tr '\n' ' ')" = "0 1 0 0 0 " ] || fail "count without lemmas: $(cut -f2 "$WORK/lem/f0" | tr '\n' ' ')"
if [ -r "$WORDNET_DIR/noun.exc" ]; then
    expect_exit 0 "$CLIPX" count "$WORK/lem/d.yaml" --captions "$WORK/lem/caps.txt" --lemmas \
        --multi-label "$WORK/lem/rows" --out "$WORK/lem/f1" --quiet
    [ "$(cut -f2 "$WORK/lem/f1" | tr '\n' ' ')" = "1 1 1 1 1 " ] || fail "count --lemmas: $(cut -f2 "$WORK/lem/f1" | tr '\n' ' ')"
    [ "$(tr '\t\n' ': ' <"$WORK/lem/rows")" = "0:0 1:1 2:2 2:3 4:4 " ] || fail "multi-label rows: $(tr '\t\n' ': ' <"$WORK/lem/rows")"
else
    echo "cli_data: $WORDNET_DIR/noun.exc missing (wordnet-base): count --lemmas on WordNet skipped" >&2
fi
rm -f "$WORK/lem/f2"
expect_exit 1 "$CLIPX" count "$WORK/lem/d.yaml" --captions "$WORK/lem/caps.txt" --lemmas --wordnet "$WORK/none" \
    --multi-label "$WORK/lem/rows2" --out "$WORK/lem/f2" && expect_one_error_line &&
    expect_grep "none/noun.exc: No such file" "$WORK/err" "count --lemmas without WordNet"
[ -e "$WORK/lem/f2" ] || [ -e "$WORK/lem/rows2" ] && fail "count --lemmas without WordNet wrote output"
expect_exit 2 "$CLIPX" count "$WORK/lem/d.yaml" --captions "$WORK/lem/caps.txt" --wordnet /x --out "$WORK/lem/f2" &&
    expect_one_error_line

# ---- bad input through the commands -----------------------------------------------------------
# A tiny dataset whose parts are swapped for damaged copies; each case: exit 1, one line naming
# the file and the byte or line, and no output file.
tiny() { # tiny NAME LABELS [CAPTIONS]
    {
        echo "classes: $FX/tiny-classes.txt"
        printf 'train: {images: %s, labels: %s' "$FX/tiny-images-idx3-ubyte.gz" "$2"
        [ -n "${3:-}" ] && printf ', captions: %s' "$3"
        echo '}'
    } >"$WORK/$1.yaml"
}
bad_case() { # bad_case NAME PATTERN CMD...
    name=$1 pattern=$2
    shift 2
    rm -f "$WORK/out-$name"
    expect_exit 1 "$@" && expect_one_error_line && expect_grep "$pattern" "$WORK/err" "$name"
    [ -e "$WORK/out-$name" ] && fail "$name: an output file was written"
}
head -c 20 "$FX/tiny-labels-idx1-ubyte.gz" >"$WORK/cut-labels-idx1-ubyte.gz"
tiny cut "$WORK/cut-labels-idx1-ubyte.gz"
bad_case cut 'cut-labels-idx1-ubyte.gz: byte [0-9]+: truncated gzip stream' \
    "$CLIPX" subsample "$WORK/cut.yaml" --profile exp --out "$WORK/out-cut"
printf '\000\000\010\003\000\000\000\001\000\000\000\001\000\000\000\001\000' >"$WORK/magic-idx1-ubyte"
tiny magic "$WORK/magic-idx1-ubyte"
bad_case magic 'magic-idx1-ubyte: byte 3: IDX rank 3 where labels need rank 1' "$CLIPX" stats "$WORK/magic.yaml"
printf '\000\000\010\001\000\000\000\011\000\001\002' >"$WORK/claims-idx1-ubyte"
tiny claims "$WORK/claims-idx1-ubyte"
bad_case claims 'claims-idx1-ubyte: byte 4: header claims 9 records of 1 uint8 \(9 bytes\), the file holds 3' \
    "$CLIPX" stats "$WORK/claims.yaml"
printf '0\n1\n2\n3\n' >"$WORK/range.txt"
tiny range "$WORK/range.txt"
bad_case range 'range.txt: line 4: label 3 is outside the 3 classes of' \
    "$CLIPX" subsample "$WORK/range.yaml" --profile uniform --out "$WORK/out-range"
tiny bool "$FX/bool-labels.npy"
bad_case bool "bool-labels.npy: byte 20: unsupported NPY dtype '|b1'" "$CLIPX" stats "$WORK/bool.yaml"
printf 'a\nb\n' >"$WORK/short-captions.txt"
tiny caps "$FX/tiny-labels.txt" "$WORK/short-captions.txt"
bad_case caps 'short-captions.txt: line 3: 2 captions for the 6 samples of' \
    "$CLIPX" count "$WORK/caps.yaml" --out "$WORK/out-caps"
tiny nocaps "$FX/tiny-labels.txt"
bad_case nocaps 'the train split has no captions' "$CLIPX" count "$WORK/nocaps.yaml" --out "$WORK/out-nocaps"
# Image files are read by stats --check (as by a trainer).
timg() { # timg NAME IMAGES
    printf 'classes: %s\ntrain: {images: %s, labels: %s}\n' "$FX/tiny-classes.txt" "$2" "$FX/tiny-labels.txt" >"$WORK/$1.yaml"
}
head -c 60 "$FX/tiny-images-idx3-ubyte.gz" >"$WORK/cut-images-idx3-ubyte.gz"
timg cutimg "$WORK/cut-images-idx3-ubyte.gz"
# Without --check the images are not read, but their length is checked all the same (issue 18).
bad_case cutimg 'cut-images-idx3-ubyte.gz: byte [0-9]+: truncated gzip stream' "$CLIPX" stats "$WORK/cutimg.yaml"
bad_case cutimg 'cut-images-idx3-ubyte.gz: byte [0-9]+: truncated gzip stream' "$CLIPX" stats "$WORK/cutimg.yaml" --check
head -c 40 "$FX/tiny-images-idx3-ubyte" >"$WORK/short-images-idx3-ubyte"
timg shortimg "$WORK/short-images-idx3-ubyte"
bad_case shortimg 'short-images-idx3-ubyte: byte 4: header claims 6 records of 12 uint8 \(72 bytes\), the file holds 24' \
    "$CLIPX" stats "$WORK/shortimg.yaml" --check
timg fortran "$FX/fortran-features.npy"
bad_case fortran 'fortran-features.npy: byte 10: Fortran-order NPY arrays are not supported' \
    "$CLIPX" stats "$WORK/fortran.yaml" --check
printf '0\n1\n2\n0\n1\n' >"$WORK/five.txt"
timg five "$FX/tiny-images-idx3-ubyte.gz"
sed -i "s|$FX/tiny-labels.txt|$WORK/five.txt|" "$WORK/five.yaml"
bad_case five 'tiny-images-idx3-ubyte.gz: byte 4: header claims 6 images, but .*five.txt holds 5 labels' \
    "$CLIPX" stats "$WORK/five.yaml" --check
expect_exit 0 "$CLIPX" stats "$FX/tiny.yaml" --check && expect_grep '^stats: checked .*: train 6 samples of 12 features with captions, test 6 samples$' "$WORK/err" "stats --check"
tiny missing "$WORK/absent-labels.txt"
bad_case missing 'absent-labels.txt: No such file or directory' "$CLIPX" stats "$WORK/missing.yaml"
printf 'classes: %s\nfoo: 1\ntrain: {images: a, labels: b}\n' "$FX/tiny-classes.txt" >"$WORK/key.yaml"
expect_exit 2 "$CLIPX" stats "$WORK/key.yaml" && expect_one_error_line &&
    expect_grep "key.yaml:2:1: unknown key 'foo'" "$WORK/err" "unknown YAML key"

# ---- W1: Fashion-MNIST, exponential profile, rho 100 ---------------------------------------------
FM_LABELS=/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
if [ -r "$FM_LABELS" ]; then
    FM="$TOP_SRCDIR/experiments/data/fashion-mnist.yaml"
    expect_exit 0 "$CLIPX" subsample "$FM" --profile exp --rho 100 --seed 0 --out "$WORK/W1" --quiet
    expect_exit 0 "$CLIPX" subsample "$FM" --profile exp --rho 100 --seed 0 --out "$WORK/W1b" --quiet
    cmp -s "$WORK/W1" "$WORK/W1b" || fail "W1 subset differs between runs"
    [ "$(wc -l <"$WORK/W1")" -eq 14887 ] || fail "W1 subset should hold 14,886 samples"
    counts=$(awk -F'\t' 'NR > 1 {n[$2]++} END {for (c = 0; c < 10; c++) printf "%d ", n[c]}' "$WORK/W1")
    [ "$counts" = "6000 3596 2156 1292 774 464 278 166 100 60 " ] || fail "W1 per-class counts: $counts"
    expect_exit 0 "$CLIPX" stats "$FM" --subset "$WORK/W1" --check --quiet --json
    tr -d ' \n' <"$WORK/out" >"$WORK/flat"
    expect_grep '"samples":14886,' "$WORK/flat" "W1 stats"
    expect_grep '"imbalance_ratio":100,' "$WORK/flat" "W1 stats"
    expect_grep '"counts":\[6000,3596,2156,1292,774,464,278,166,100,60\]' "$WORK/flat" "W1 stats"
else
    echo "skipping the Fashion-MNIST checks: dataset-fashion-mnist is not installed"
fi

finish
