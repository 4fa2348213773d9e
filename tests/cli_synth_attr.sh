#!/bin/sh
# clipx synth --attr-info / --open-share / --attr-scope / --attr-named (lib/data/synth_attr.h):
# at 0 the bytes of before;
# above 0 every caption names only attributes its sample has, a sample only attributes of its
# class, a class only attributes of its superclass's pool; open-world concepts share the pools
# as --open-share says; the global scope draws every class's attributes from one pool across
# superclasses and --attr-named caps what a caption names, while the images stay the same; the
# same seed gives the same bytes; bad values exit 2 with one line.
. "$TOP_SRCDIR/tests/lib.sh"
JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_synth_attr: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }

same_files() { # DIR1 DIR2 WHAT: the same file names with the same bytes
    [ "$(ls "$1")" = "$(ls "$2")" ] || fail "$3: files differ: $(ls "$1" | tr '\n' ' ') / $(ls "$2" | tr '\n' ' ')"
    for f in $(ls "$1"); do cmp -s "$1/$f" "$2/$f" || fail "$3: $f differs"; done
}

# ---- the options at 0: the bytes of before ---------------------------------------------------
DEFAULT_SET="--classes 12 --n 1500 --dim 16 --seed 4 --val-per-class 3 --open-world 0.2
--open-classes 6 --spurious 0.9 --spurious-captions 0.5 --label-noise 0.05"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/d0" $DEFAULT_SET --quiet
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/d0z" $DEFAULT_SET --attr-info 0 --open-share 0 \
    --attr-scope superclass --attr-named 2 --quiet
same_files "$WORK/d0" "$WORK/d0z" "--attr-info 0 against no option"
grep -v '^#' "$TOP_SRCDIR/tests/fixtures/synth_default.sha256" >"$WORK/sums"
[ "$(wc -l <"$WORK/sums")" -eq "$(ls "$WORK/d0" | grep -vc 'features.npy$')" ] ||
    fail "synth_default.sha256 does not list every file but the features"
(cd "$WORK/d0" && sha256sum -c --quiet "$WORK/sums") >"$WORK/cmp" 2>&1 ||
    fail "the default bytes changed: $(tr '\n' ' ' <"$WORK/cmp")"
ls "$WORK/d0" | grep -q attributes && fail "--attr-info 0 wrote an attributes file"
grep -q informative "$WORK/d0/synth.json" && fail "--attr-info 0 wrote attributes into synth.json"

# ---- attr-info 0.8: captions name what the images have ---------------------------------------
SET="--classes 20 --superclasses 4 --n 3000 --dim 24 --seed 3 --val-per-class 4"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/a0" $SET --captions template --quiet
for mode in descriptive template synonym; do
    # shellcheck disable=SC2086
    expect_exit 0 "$CLIPX" synth --out "$WORK/a-$mode" $SET --attr-info 0.8 --captions $mode --quiet
done
D=$WORK/a-descriptive T=$WORK/a-template
for f in train-attributes.txt test-attributes.txt val-attributes.txt; do
    [ -s "$D/$f" ] || fail "--attr-info 0.8 did not write $f"
done
# The caption mode changes the captions only; the attributes change the images only.
for f in train-features.npy test-features.npy train-attributes.txt val-attributes.txt; do
    cmp -s "$D/$f" "$T/$f" || fail "the caption mode changed $f"
done
cmp -s "$T/train-captions.txt" "$WORK/a0/train-captions.txt" || fail "attributes changed template captions"
cmp -s "$T/train-labels.npy" "$WORK/a0/train-labels.npy" || fail "attributes changed the labels"
cmp -s "$T/train-features.npy" "$WORK/a0/train-features.npy" && fail "attributes left the images as they were"
J=$D/synth.json
[ "$("$JSONQ" "$J" .informative_attributes.attr_info)" = 0.8 ] || fail "synth.json lacks attr_info 0.8"
nwords=$("$JSONQ" "$J" .informative_attributes.words#)
pool=$("$JSONQ" "$J" .informative_attributes.pool)
[ "$nwords" -eq $((2 * 4 * pool)) ] || fail "vocabulary of $nwords words, wanted 2 * 4 superclasses * $pool"
q=""
i=0
while [ $i -lt "$nwords" ]; do q="$q .informative_attributes.words[$i]"; i=$((i + 1)); done
# shellcheck disable=SC2086
"$JSONQ" "$J" $q >"$WORK/vocab"
# Each class: its name, superclass and attributes (CLASS SUPER A1 A2 A3 A4 a line).
c=0
: >"$WORK/truth"
while [ $c -lt 20 ]; do
    p=.concepts[$c]
    "$JSONQ" "$J" $p.name $p.superclass $p.informative_attributes[0] $p.informative_attributes[1] \
        $p.informative_attributes[2] $p.informative_attributes[3] | tr '\n' ' ' >>"$WORK/truth"
    echo >>"$WORK/truth"
    c=$((c + 1))
done
[ "$(wc -l <"$WORK/truth")" -eq 20 ] || fail "synth.json lacks the classes' attributes"
# A class's attributes come from its superclass's pool (vocabulary word i is in pool i / POOL).
awk -v pool="$pool" 'NR == FNR { idx[$1] = FNR - 1; next }
    { for (k = 3; k <= 6; k++) if (!($k in idx) || int(idx[$k] / pool) != $2) bad++ }
    END { exit bad > 0 }' "$WORK/vocab" "$WORK/truth" || fail "a class has an attribute outside its superclass's pool"
# Per sample: its class (from the template twin's caption), what it has, what its caption names.
sed 's/^a photo of a \(.*\)\.$/\1/' "$T/train-captions.txt" >"$WORK/cls"
paste -d '\t' "$WORK/cls" "$D/train-attributes.txt" "$D/train-captions.txt" >"$WORK/rows"
# check_rows VOCAB TRUTH ROWS RATE NAMED: every sample's attributes are its class's, its caption
# names min(NAMED, present) of them and only present ones, about RATE present a sample.
check_rows() {
awk -F '\t' -v want_rate="$4" -v named_max="$5" 'FILENAME == ARGV[1] { vocab[$1] = 1; next }
    FILENAME == ARGV[2] { split($0, t, " "); for (k = 3; k <= 6; k++) has[t[1], t[k]] = 1; next }
    {
        n++
        np = split($2, p, " ")
        present += np
        delete here
        for (k = 1; k <= np; k++) {
            here[p[k]] = 1
            if (!(($1, p[k]) in has)) { printf "sample %d: %s is not an attribute of %s\n", n, p[k], $1; bad++ }
        }
        gsub(/\./, "", $3)
        nw = split($3, w, " ")
        named = 0
        for (k = 1; k <= nw; k++) if (w[k] in vocab) {
            named++
            if (!(w[k] in here)) { printf "sample %d: caption \"%s\" names %s, not in \"%s\"\n", n, $3, w[k], $2; bad++ }
        }
        if (named != (np < named_max ? np : named_max)) { printf "sample %d: caption names %d of %d attributes\n", n, named, np; bad++ }
        varied[$1 SUBSEP $2] = 1
    }
    END {
        rate = present / n
        if (rate < want_rate - 0.15 || rate > want_rate + 0.15) { printf "%.3f attributes a sample, wanted about %.1f\n", rate, want_rate; bad++ }
        for (k in varied) kinds++
        if (kinds < 100) { printf "only %d (class, attributes) kinds: no information beyond the class\n", kinds; bad++ }
        exit bad > 0
    }' "$1" "$2" "$3"
}
check_rows "$WORK/vocab" "$WORK/truth" "$WORK/rows" 3.2 2 >"$WORK/mismatch" ||
    fail "captions and attributes disagree: $(head -3 "$WORK/mismatch" | tr '\n' ';')"
# The nuisance adjectives are gone from descriptive captions, the attributes are there.
grep -Eq ' (red|blue|green|yellow|black|white|brown|grey|orange|purple) ' "$D/train-captions.txt" &&
    fail "descriptive captions still name nuisance adjectives"
[ "$(grep -c 'ed ' "$D/train-captions.txt")" -gt 2000 ] || fail "few descriptive captions name attributes"
# F = 1: every sample has all four.
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/a1" $SET --attr-info 1 --quiet
awk 'NF != 4 { bad++ } END { exit bad > 0 }' "$WORK/a1/train-attributes.txt" || fail "--attr-info 1 left attributes out"
[ "$("$JSONQ" "$WORK/a1/synth.json" .informative_attributes.splits.train.present_per_sample)" = 4 ] ||
    fail "synth.json's presence summary at --attr-info 1 is not 4"

# ---- the same seed, the same bytes -----------------------------------------------------------
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/again" $SET --attr-info 0.8 --threads 2 --quiet
same_files "$D" "$WORK/again" "a second run of the same seed"

# ---- --attr-scope global, --attr-named N: one pool across superclasses, fewer words named ----
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/g" $SET --attr-info 0.8 --attr-scope global --attr-named 1 --quiet
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/g3" $SET --attr-info 0.8 --attr-scope global --attr-named 3 --quiet
G=$WORK/g J=$G/synth.json
[ "$("$JSONQ" "$J" .informative_attributes.scope)" = global ] || fail "synth.json lacks scope global"
[ "$("$JSONQ" "$J" .informative_attributes.named_max)" = 1 ] || fail "synth.json lacks named_max 1"
grep -q '"scope"' "$D/synth.json" && fail "the superclass scope wrote a scope key (older files change)"
gpool=$("$JSONQ" "$J" .informative_attributes.pool)
gwords=$("$JSONQ" "$J" .informative_attributes.words#)
[ "$gpool" -eq 16 ] && [ "$gwords" -eq 32 ] && [ "$("$JSONQ" "$J" .informative_attributes.shared_words)" -eq 16 ] ||
    fail "global scope: pool $gpool, $gwords words, wanted one pool of 16 and 32 words"
q=""
i=0
while [ $i -lt "$gwords" ]; do q="$q .informative_attributes.words[$i]"; i=$((i + 1)); done
# shellcheck disable=SC2086
"$JSONQ" "$J" $q >"$WORK/gvocab"
c=0
: >"$WORK/gtruth"
while [ $c -lt 20 ]; do
    p=.concepts[$c]
    "$JSONQ" "$J" $p.name $p.superclass $p.informative_attributes[0] $p.informative_attributes[1] \
        $p.informative_attributes[2] $p.informative_attributes[3] | tr '\n' ' ' >>"$WORK/gtruth"
    echo >>"$WORK/gtruth"
    c=$((c + 1))
done
# Every class draws from the one shared pool (words 0..15), and an attribute spans superclasses.
awk 'NR == FNR { idx[$1] = FNR - 1; next }
    { for (k = 3; k <= 6; k++) { if (!($k in idx) || idx[$k] >= 16) bad++; if (!(($k, $2) in seen)) { seen[$k, $2] = 1; supers[$k]++ } } }
    END { for (a in supers) if (supers[a] > 1) wide++; exit bad > 0 || wide < 4 }' "$WORK/gvocab" "$WORK/gtruth" ||
    fail "global scope: a class outside the one pool, or no attribute across superclasses"
# The scope and the naming change what classes have and captions say, never how many
# attributes a sample shows: the presence draws are the same, so are labels and template captions.
cmp -s "$G/train-labels.npy" "$D/train-labels.npy" || fail "--attr-scope changed the labels"
cmp -s "$G/train-features.npy" "$WORK/g3/train-features.npy" || fail "--attr-named changed the images"
cmp -s "$G/train-features.npy" "$D/train-features.npy" && fail "--attr-scope global left the images as they were"
sed 's/^a photo of a \(.*\)\.$/\1/' "$T/train-captions.txt" >"$WORK/cls"
paste -d '\t' "$WORK/cls" "$G/train-attributes.txt" "$G/train-captions.txt" >"$WORK/grows"
check_rows "$WORK/gvocab" "$WORK/gtruth" "$WORK/grows" 3.2 1 >"$WORK/mismatch" ||
    fail "--attr-named 1: captions and attributes disagree: $(head -3 "$WORK/mismatch" | tr '\n' ';')"
paste -d '\t' "$WORK/cls" "$WORK/g3/train-attributes.txt" "$WORK/g3/train-captions.txt" >"$WORK/grows"
check_rows "$WORK/gvocab" "$WORK/gtruth" "$WORK/grows" 3.2 3 >"$WORK/mismatch" ||
    fail "--attr-named 3: captions and attributes disagree: $(head -3 "$WORK/mismatch" | tr '\n' ';')"
[ "$("$JSONQ" "$J" .informative_attributes.splits.train.named_per_caption)" != \
    "$("$JSONQ" "$WORK/g3/synth.json" .informative_attributes.splits.train.named_per_caption)" ] ||
    fail "--attr-named 1 and 3 name as many attributes a caption"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/g0" $SET --attr-info 0.8 --attr-scope global --attr-named 0 --quiet
paste -d '\t' "$WORK/cls" "$WORK/g0/train-attributes.txt" "$WORK/g0/train-captions.txt" >"$WORK/grows"
check_rows "$WORK/gvocab" "$WORK/gtruth" "$WORK/grows" 3.2 0 >"$WORK/mismatch" ||
    fail "--attr-named 0: captions name attributes: $(head -3 "$WORK/mismatch" | tr '\n' ';')"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" synth --out "$WORK/gagain" $SET --attr-info 0.8 --attr-scope global --attr-named 1 --threads 2 --quiet
same_files "$G" "$WORK/gagain" "a second run of the global scope"

# ---- open-world concepts: shared pools as --open-share says ----------------------------------
OPEN="--classes 10 --superclasses 2 --n 4000 --dim 16 --seed 6 --open-world 0.5 --open-classes 40 --attr-info 0.5"
for s in 0 0.5 1; do
    # shellcheck disable=SC2086
    expect_exit 0 "$CLIPX" synth --out "$WORK/o$s" $OPEN --open-share $s --quiet
    J=$WORK/o$s/synth.json
    shared=$("$JSONQ" "$J" .informative_attributes.shared_words)
    q=""
    i=0
    while [ $i -lt 16 ]; do q="$q .informative_attributes.words[$i]"; i=$((i + 1)); done
    # shellcheck disable=SC2086
    "$JSONQ" "$J" $q >"$WORK/vocab"
    [ "$shared" -eq 16 ] || fail "shared_words $shared, wanted 2 superclasses * 8"
    : >"$WORK/open"
    c=10
    while [ $c -lt 50 ]; do
        p=.concepts[$c]
        "$JSONQ" "$J" $p.informative_attributes[0] $p.informative_attributes[1] \
            $p.informative_attributes[2] $p.informative_attributes[3] >>"$WORK/open"
        c=$((c + 1))
    done
    n_shared=$(grep -cxFf "$WORK/vocab" "$WORK/open")
    case $s in
    0) [ "$n_shared" -eq 0 ] || fail "--open-share 0: $n_shared open-world attributes shared" ;;
    1) [ "$n_shared" -eq 160 ] || fail "--open-share 1: $n_shared of 160 open-world attributes shared" ;;
    0.5) [ "$n_shared" -ge 50 ] && [ "$n_shared" -le 110 ] ||
        fail "--open-share 0.5: $n_shared of 160 open-world attributes shared" ;;
    esac
done
cmp -s "$WORK/o0/train-labels.npy" "$WORK/o1/train-labels.npy" || fail "--open-share changed the labels"

# ---- bad values: exit 2, one line ------------------------------------------------------------
for bad in "--attr-info 1.5" "--attr-info -0.1" "--attr-info x" "--open-share 2" "--attr-info 0.5 --open-share -1" \
    "--attr-info 0.5 --attr-scope class" "--attr-info 0.5 --attr-named 5" "--attr-info 0.5 --attr-named -1" \
    "--attr-info 0.5 --attr-named x" "--attr-scope global" "--attr-named 1"; do
    # shellcheck disable=SC2086
    expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --classes 5 --n 100 $bad && expect_one_error_line
done
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --classes 5 --n 100 --attr-info 1.5 &&
    expect_grep '^clipx: synth: --attr-info: 1.5 is out of range \[0, 1\]$' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --classes 5 --n 100 --open-share 0.5 &&
    expect_one_error_line && expect_grep '^clipx: synth: --open-share needs --attr-info above 0$' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --classes 5 --n 100 --attr-scope global &&
    expect_grep '^clipx: synth: --attr-scope needs --attr-info above 0$' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --classes 5 --n 100 --attr-named 0 &&
    expect_grep '^clipx: synth: --attr-named needs --attr-info above 0$' "$WORK/err"
expect_exit 2 "$CLIPX" synth --out "$WORK/bad" --classes 5 --n 100 --attr-info 0.5 --attr-named 5 &&
    expect_grep '^clipx: synth: --attr-named: 5 is out of range \[0, 4\]$' "$WORK/err"
[ -e "$WORK/bad" ] && fail "a refused synth created its folder"
finish
