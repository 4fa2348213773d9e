#!/bin/sh
# clipx eval and clipx compare on two tiny runs (CLIP and SL) trained here on a tiny synthetic
# dataset: the table, the JSON keys and values, --split, --out files, every mode, the refusals
# (another class list, no checkpoint, modes that do not apply, usage errors), compare's rows,
# deltas and JSON, and --plot's figure with one series per run (when gnuplot is installed).
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_eval: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
MAN="$TOP_SRCDIR/doc/clipx.1"
# Numbers in JSON compared with awk: near A B [TOL].
near() {
    awk -v a="$1" -v b="$2" -v t="${3:-1e-6}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}
q() { "$JSONQ" "$@"; }

# ---- help and man page: every option documented ------------------------------------------
for c in eval compare; do
    expect_exit 0 "$CLIPX" "$c" --help || continue
    # The option names that head the section's .TP paragraphs.
    sed -n "/^\.SS $c\$/,/^\.S[SH] /p" "$MAN" | awk '/^\.TP/ {getline; print $2}' |
        sed 's/\\-/-/g' >"$WORK/man-$c"
    [ -s "$WORK/man-$c" ] || fail "doc/clipx.1 has no options for $c"
    for opt in $(grep -Eo '^  --[a-z0-9-]+' "$WORK/out"); do
        case $opt in --threads | --quiet | --progress) continue ;; esac
        grep -qx -- "$opt" "$WORK/man-$c" || fail "doc/clipx.1 section $c does not document $opt"
    done
done
expect_grep '^  --mode MODE' "$WORK/out" "compare --help"
expect_grep 'zeroshot[|]head[|]linear-probe[|]ncm[|]knn' "$WORK/out" "compare --help"

# ---- two tiny runs -------------------------------------------------------------------------
D="$WORK/data"
"$CLIPX" synth --out "$D" --classes 6 --superclasses 2 --n 600 --rho 20 --dim 8 \
    --test-per-class 10 --seed 1 --threads 1 --quiet >/dev/null 2>&1 || fail "synth"
"$CLIPX" synth --out "$WORK/other" --classes 6 --superclasses 2 --n 200 --dim 8 \
    --test-per-class 5 --seed 2 --threads 1 --quiet >/dev/null 2>&1 || fail "synth other"
for o in clip sl; do
    "$CLIPX" train --data "$D/dataset.yaml" --objective $o --epochs 2 --batch 32 \
        --set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8 \
        --set optim.lr=0.01 --threads 1 --quiet --out "$WORK/$o" >/dev/null 2>&1 || fail "train $o"
done
CLIP="$WORK/clip"
SL="$WORK/sl"

# ---- the table -----------------------------------------------------------------------------
if expect_exit 0 "$CLIPX" eval "$SL" --threads 1; then
    expect_grep "^run $SL \(sl\) on $D/dataset.yaml: mode head, 60 test samples, 6 classes" "$WORK/out" table
    expect_grep '^top1 [0-9.]+  top5 [0-9.]+  acc [0-9.]+  worst class [0-9.]+$' "$WORK/out" table
    expect_grep '^head [0-9.-]+ \([0-9]+ classes\)  mid .*\[head > 100, tail < 20 training samples\]$' "$WORK/out" table
    expect_grep '^corr_acc ' "$WORK/out" table
    expect_grep '^class +name +train +test +acc +pred +split$' "$WORK/out" table
    rows=$(awk '/^class +name/ {on = 1; next} on && NF == 7' "$WORK/out" | wc -l)
    [ "$rows" -eq 6 ] || fail "table has $rows class rows, wanted 6"
    [ ! -s "$WORK/err" ] || fail "eval wrote to stderr without --progress"
fi

# ---- JSON: the contract's keys and consistent values ---------------------------------------
expect_exit 0 "$CLIPX" eval "$SL" --json --threads 1 && cp "$WORK/out" "$WORK/sl.json"
for k in top1 top5 acc head mid tail corr_acc corr_pred worst_class ece nc1 classes; do
    q "$WORK/sl.json" ".$k" >/dev/null 2>&1 || fail "eval --json lacks $k"
done
[ "$(q "$WORK/sl.json" .classes#)" = 6 ] || fail "classes has $(q "$WORK/sl.json" .classes#) entries"
for k in name train_count test_count acc pred_count split; do
    q "$WORK/sl.json" ".classes[5].$k" >/dev/null 2>&1 || fail "classes[] lacks $k"
done
[ "$(q "$WORK/sl.json" .mode)" = head ] || fail "mode is not head"
[ "$(q "$WORK/sl.json" .objective)" = sl ] || fail "objective is not sl"
# Counts: 10 test samples a class, 60 predictions, training counts as clipx stats counts them.
"$CLIPX" stats "$D/dataset.yaml" --json >"$WORK/stats.json" 2>/dev/null || fail "stats"
sum_pred=0
sum_acc=0
for i in 0 1 2 3 4 5; do
    [ "$(q "$WORK/sl.json" ".classes[$i].test_count")" = 10 ] || fail "class $i test_count"
    [ "$(q "$WORK/sl.json" ".classes[$i].train_count")" = "$(q "$WORK/stats.json" ".counts[$i]")" ] ||
        fail "class $i train_count differs from clipx stats"
    sum_pred=$((sum_pred + $(q "$WORK/sl.json" ".classes[$i].pred_count")))
    sum_acc=$(awk -v s="$sum_acc" -v a="$(q "$WORK/sl.json" ".classes[$i].acc")" 'BEGIN { print s + a }')
done
[ "$sum_pred" -eq 60 ] || fail "pred_count sums to $sum_pred, wanted 60"
near "$(awk -v s="$sum_acc" 'BEGIN { print s / 6 }')" "$(q "$WORK/sl.json" .top1)" ||
    fail "top1 is not the mean per-class accuracy"
near "$(q "$WORK/sl.json" .top1)" "$(q "$WORK/sl.json" .acc)" || fail "balanced test: acc != top1"
# Same threads, same bytes.
"$CLIPX" eval "$SL" --json --threads 1 2>/dev/null | cmp -s - "$WORK/sl.json" || fail "eval --json not reproducible"

# ---- --freqs: a frequency file's counts for the splits and correlations --------------------
# Spearman's rho with average ranks of "x y" lines, computed here from the same file.
spearman() {
    awk '{ x[NR] = $1; y[NR] = $2 }
    function rank(v, r,   i, j, lt, eq) {
        for (i = 1; i <= NR; i++) {
            lt = 0; eq = 0
            for (j = 1; j <= NR; j++) { if (v[j] < v[i]) lt++; else if (v[j] == v[i]) eq++ }
            r[i] = lt + (eq + 1) / 2
        }
    }
    END {
        rank(x, rx); rank(y, ry)
        for (i = 1; i <= NR; i++) { mx += rx[i] / NR; my += ry[i] / NR }
        for (i = 1; i <= NR; i++) {
            sxy += (rx[i] - mx) * (ry[i] - my); sxx += (rx[i] - mx) ^ 2; syy += (ry[i] - my) ^ 2
        }
        printf "%.12f\n", sxy / sqrt(sxx * syy)
    }'
}
set -- 150 7 150 30 2 400 # ties, and every split (head > 100, tail < 20)
cut -d'|' -f1 "$D/classes.txt" | awk -v c="$*" 'BEGIN { split(c, v, " ") } { print $0 "\t" v[NR] }' >"$WORK/freqs.txt"
set --
if expect_exit 0 "$CLIPX" eval "$SL" --freqs "$WORK/freqs.txt" --json --threads 1; then
    cp "$WORK/out" "$WORK/fq.json"
    [ "$(q "$WORK/fq.json" .freqs)" = "$WORK/freqs.txt" ] || fail "--freqs: JSON freqs key"
    [ "$(q "$WORK/fq.json" .top1)" = "$(q "$WORK/sl.json" .top1)" ] || fail "--freqs changed top1"
    : >"$WORK/fa"
    : >"$WORK/fp"
    for i in 0 1 2 3 4 5; do
        n=$(sed -n "$((i + 1))p" "$WORK/freqs.txt" | cut -f2)
        [ "$(q "$WORK/fq.json" ".classes[$i].train_count")" = "$n" ] || fail "--freqs: class $i count"
        want=mid; [ "$n" -gt 100 ] && want=head; [ "$n" -lt 20 ] && want=tail
        [ "$(q "$WORK/fq.json" ".classes[$i].split")" = $want ] || fail "--freqs: class $i split"
        echo "$n $(q "$WORK/fq.json" ".classes[$i].acc")" >>"$WORK/fa"
        echo "$n $(q "$WORK/fq.json" ".classes[$i].pred_count")" >>"$WORK/fp"
    done
    near "$(spearman <"$WORK/fa")" "$(q "$WORK/fq.json" .corr_acc)" 1e-9 ||
        fail "--freqs: corr_acc $(q "$WORK/fq.json" .corr_acc), a script computes $(spearman <"$WORK/fa")"
    near "$(spearman <"$WORK/fp")" "$(q "$WORK/fq.json" .corr_pred)" 1e-9 ||
        fail "--freqs: corr_pred $(q "$WORK/fq.json" .corr_pred), a script computes $(spearman <"$WORK/fp")"
fi
expect_exit 0 "$CLIPX" eval "$SL" --freqs "$WORK/freqs.txt" --threads 1 &&
    expect_grep '^class +name +freq +test' "$WORK/out" "--freqs table" &&
    expect_grep ', frequencies from ' "$WORK/out" "--freqs table"
expect_exit 0 "$CLIPX" compare "$SL" "$CLIP" --freqs "$WORK/freqs.txt" --threads 1
head -n 5 "$WORK/freqs.txt" >"$WORK/freqs5.txt"
expect_exit 1 "$CLIPX" eval "$SL" --freqs "$WORK/freqs5.txt" --threads 1 && expect_one_error_line &&
    expect_grep "freqs5.txt: class '.*' is missing" "$WORK/err" "--freqs short file"

# ---- --split restricts top1 and the classes ------------------------------------------------
for s in tail head; do
    expect_exit 0 "$CLIPX" eval "$SL" --json --split $s --thresholds 60,20 --threads 1 || continue
    cp "$WORK/out" "$WORK/$s.json"
    [ "$(q "$WORK/$s.json" .restricted_to)" = $s ] || fail "--split $s: restricted_to"
    n=$(q "$WORK/$s.json" .classes#)
    want=0
    mean=0
    for i in 0 1 2 3 4 5; do
        tc=$(q "$WORK/sl.json" ".classes[$i].train_count")
        if { [ $s = tail ] && [ "$tc" -lt 20 ]; } || { [ $s = head ] && [ "$tc" -gt 60 ]; }; then
            want=$((want + 1))
            mean=$(awk -v m="$mean" -v a="$(q "$WORK/sl.json" ".classes[$i].acc")" 'BEGIN { print m + a }')
        fi
    done
    [ "$n" -eq "$want" ] && [ "$n" -gt 0 ] && [ "$n" -lt 6 ] || fail "--split $s lists $n classes, wanted $want (0 < n < 6)"
    for i in $(seq 0 $((n - 1))); do
        [ "$(q "$WORK/$s.json" ".classes[$i].split")" = $s ] || fail "--split $s lists a $(q "$WORK/$s.json" ".classes[$i].split") class"
    done
    near "$(awk -v m="$mean" -v n="$n" 'BEGIN { print m / n }')" "$(q "$WORK/$s.json" .top1)" ||
        fail "--split $s: top1 is not the mean over its classes"
    near "$(q "$WORK/$s.json" .$s)" "$(q "$WORK/$s.json" .top1)" || fail "--split $s: top1 != $s"
done
expect_exit 0 "$CLIPX" eval "$SL" --split tail --thresholds 60,20 --threads 1
expect_grep '^tail classes only \([0-9]+\): top1' "$WORK/out" "--split tail table"
rows=$(awk '/^class +name/ {on = 1; next} on && NF == 7' "$WORK/out" | wc -l)
[ "$rows" -eq "$(q "$WORK/tail.json" .classes#)" ] || fail "--split tail table has $rows rows"
expect_exit 0 "$CLIPX" eval "$SL" --json --split-rule tertile --threads 1
[ "$(q "$WORK/out" .split_rule)" = tertile ] || fail "--split-rule tertile"
[ "$(grep -c '"split": "head"' "$WORK/out")" -eq 2 ] || fail "tertile of 6 classes: 2 head classes"

# ---- --out DIR -----------------------------------------------------------------------------
if expect_exit 0 "$CLIPX" eval "$SL" --out "$WORK/ev/sub" --threads 1; then
    [ "$(ls -A "$WORK/ev/sub" | tr '\n' ' ')" = "confusion.tsv eval.json per_class.tsv " ] ||
        fail "--out holds: $(ls -A "$WORK/ev/sub" | tr '\n' ' ')"
    [ "$(q "$WORK/ev/sub/eval.json" .top1)" = "$(q "$WORK/sl.json" .top1)" ] || fail "eval.json top1"
    cmp -s "$WORK/ev/sub/eval.json" "$WORK/sl.json" || fail "eval.json differs from --json"
    [ "$(wc -l <"$WORK/ev/sub/per_class.tsv")" -eq 7 ] || fail "per_class.tsv: header + 6 rows"
    awk -F'\t' 'NF != 16 {exit 1}' "$WORK/ev/sub/per_class.tsv" || fail "per_class.tsv: 16 columns"
    head -1 "$WORK/ev/sub/per_class.tsv" | grep -q '^class	name	split	train_count	test_count	correct	acc' ||
        fail "per_class.tsv header"
    [ "$(wc -l <"$WORK/ev/sub/confusion.tsv")" -eq 7 ] || fail "confusion.tsv: header + 6 rows"
    awk -F'\t' 'NF != 7 {exit 1}' "$WORK/ev/sub/confusion.tsv" || fail "confusion.tsv: 7 columns"
    total=$(awk -F'\t' 'NR > 1 {for (i = 2; i <= NF; i++) s += $i} END {print s}' "$WORK/ev/sub/confusion.tsv")
    [ "$total" -eq 60 ] || fail "confusion.tsv counts $total samples"
    [ -s "$WORK/out" ] || fail "--out without --json prints no table"
fi
# --out over a file is refused with status 1 and leaves nothing behind.
: >"$WORK/afile"
expect_exit 1 "$CLIPX" eval "$SL" --out "$WORK/afile" --threads 1 && expect_one_error_line

# ---- every mode ------------------------------------------------------------------------------
for m in zeroshot linear-probe ncm knn; do
    expect_exit 0 "$CLIPX" eval "$CLIP" --mode $m --json --k 3 --threads 1 || continue
    [ "$(q "$WORK/out" .mode)" = $m ] || fail "clip --mode $m"
    near "$(q "$WORK/out" .top1)" 0.5 0.5 || fail "clip --mode $m: top1 out of [0, 1]"
done
for m in head linear-probe ncm knn; do
    expect_exit 0 "$CLIPX" eval "$SL" --mode $m --json --threads 1 || continue
    [ "$(q "$WORK/out" .mode)" = $m ] || fail "sl --mode $m"
    case $m in
    linear-probe | ncm | knn)
        # Fitted on the run's training set: every sample (the dataset has no open-world part).
        [ "$(q "$WORK/out" .n_train_features)" = 600 ] || fail "sl --mode $m: n_train_features $(q "$WORK/out" .n_train_features)" ;;
    esac
done
expect_exit 0 "$CLIPX" eval "$CLIP" --json --threads 1
[ "$(q "$WORK/out" .mode)" = zeroshot ] || fail "CLIP runs default to zeroshot"
[ "$(q "$WORK/out" .probe_lambda)" = null ] || fail "probe_lambda without a probe"
expect_exit 0 "$CLIPX" eval "$CLIP" --json --no-nc1 --threads 1
[ "$(q "$WORK/out" .nc1)" = null ] || fail "--no-nc1 leaves nc1"
# knn with K = 1 and K = 20 vote differently somewhere.
"$CLIPX" eval "$CLIP" --mode knn --k 1 --json --threads 1 >"$WORK/k1" 2>/dev/null
"$CLIPX" eval "$CLIP" --mode knn --k 20 --json --threads 1 >"$WORK/k20" 2>/dev/null
cmp -s "$WORK/k1" "$WORK/k20" && fail "--k changes nothing"

# ---- refusals ----------------------------------------------------------------------------------
expect_exit 2 "$CLIPX" eval "$CLIP" --mode head && expect_one_error_line &&
    expect_grep "clipx: eval: --mode head: $CLIP is a CLIP run .*zeroshot, linear-probe, ncm or knn" "$WORK/err"
expect_exit 2 "$CLIPX" eval "$SL" --mode zeroshot && expect_one_error_line &&
    expect_grep 'supervised run without a text tower, and .*dataset.yaml names no class_embeddings; use head, linear-probe, ncm or knn' "$WORK/err"
expect_exit 2 "$CLIPX" eval "$SL" --mode bogus && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" --split body && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" --split-rule thirds && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" --thresholds 100 && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" --thresholds 10,20 && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" --k 0 && expect_one_error_line
expect_exit 2 "$CLIPX" eval && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" "$CLIP" && expect_one_error_line
# Another class list: status 1, one line naming both.
if expect_exit 1 "$CLIPX" eval "$SL" --data "$WORK/other/dataset.yaml"; then
    expect_one_error_line
    expect_grep "^clipx: eval: $WORK/other/dataset.yaml: another class list than run $SL: 6 evaluated classes" "$WORK/err"
fi
# No checkpoint, no folder, a corrupt checkpoint.
mkdir -p "$WORK/nockpt" && cp "$SL/config.yaml" "$WORK/nockpt/"
expect_exit 1 "$CLIPX" eval "$WORK/nockpt" && expect_one_error_line &&
    expect_grep "^clipx: eval: $WORK/nockpt/model.ckpt: no checkpoint" "$WORK/err"
expect_exit 1 "$CLIPX" eval "$WORK/no-such-run" && expect_one_error_line &&
    expect_grep "no-such-run" "$WORK/err"
head -c 200 "$SL/model.ckpt" >"$WORK/nockpt/model.ckpt"
expect_exit 1 "$CLIPX" eval "$WORK/nockpt" && expect_one_error_line &&
    expect_grep "$WORK/nockpt/model.ckpt" "$WORK/err"
# Nothing was written by the refused runs.
[ "$(ls -A "$WORK" | grep -c '^\.')" -eq 0 ] || fail "a refused command left a hidden file"

# ---- compare ---------------------------------------------------------------------------------
if expect_exit 0 "$CLIPX" compare "$CLIP" "$SL" --threads 1; then
    expect_grep '^run +mode +top1 +head +mid +tail +corr_acc +corr_pred$' "$WORK/out" "compare table"
    expect_grep '^clip +zeroshot +[0-9.]+ +' "$WORK/out" "compare row clip"
    expect_no_grep '^clip .*\(' "$WORK/out" "the first row (no deltas)"
    expect_grep '^sl +head +[0-9.]+ \([+-][0-9.]+\) ' "$WORK/out" "compare row sl with deltas"
    expect_grep '^\(in parentheses: difference to clip\)$' "$WORK/out" "compare note"
fi
if expect_exit 0 "$CLIPX" compare "$CLIP" "$SL" --json --threads 1; then
    cp "$WORK/out" "$WORK/cmp.json"
    [ "$(q "$WORK/cmp.json" .runs#)" = 2 ] || fail "compare --json: runs"
    [ "$(q "$WORK/cmp.json" .baseline)" = clip ] || fail "compare --json: baseline"
    [ "$(q "$WORK/cmp.json" '.runs[1].name')" = sl ] || fail "compare --json: name"
    [ "$(q "$WORK/cmp.json" '.runs[1].top1')" = "$(q "$WORK/sl.json" .top1)" ] ||
        fail "compare's top1 of sl differs from eval's"
    for k in top1 head mid tail corr_acc corr_pred; do
        a=$(q "$WORK/cmp.json" ".runs[0].$k")
        b=$(q "$WORK/cmp.json" ".runs[1].$k")
        d=$(q "$WORK/cmp.json" ".runs[1].delta.$k")
        if [ "$a" = null ] || [ "$b" = null ]; then
            [ "$d" = null ] || fail "delta.$k of an undefined value is $d"
        else
            near "$d" "$(awk -v a="$a" -v b="$b" 'BEGIN { print b - a }')" 1e-6 || fail "delta.$k $d != $b - $a"
            [ "$(q "$WORK/cmp.json" ".runs[0].delta.$k")" = 0 ] || fail "the baseline's delta.$k is not 0"
        fi
    done
fi
expect_exit 2 "$CLIPX" compare "$CLIP" "$SL" --mode head && expect_one_error_line
expect_exit 1 "$CLIPX" compare "$CLIP" "$WORK/no-such-run" && expect_one_error_line
expect_exit 2 "$CLIPX" compare && expect_one_error_line
expect_exit 2 "$CLIPX" compare "$CLIP" --plot "$WORK/f.pdf" && expect_one_error_line
[ ! -e "$WORK/f.pdf" ] || fail "a refused --plot wrote a file"

# ---- the figure --------------------------------------------------------------------------------
if "$CLIPX" compare "$CLIP" "$CLIP" --plot "$WORK/probe.svg" >/dev/null 2>"$WORK/err" ||
    ! grep -q 'gnuplot not found' "$WORK/err"; then
    mkdir -p "$WORK/tmp" "$WORK/fig"
    if expect_exit 0 env TMPDIR="$WORK/tmp" "$CLIPX" compare "$CLIP" "$SL" --plot "$WORK/fig/f.svg" --threads 1; then
        expect_grep '^run +mode' "$WORK/out" "compare --plot still prints the table"
        expect_grep '<svg' "$WORK/fig/f.svg" "figure"
        expect_grep '</svg>' "$WORK/fig/f.svg" "figure"
        # One series per run in each panel, the legend naming it by its folder.
        for r in clip sl; do
            [ "$(grep -c "<text>$r</text>" "$WORK/fig/f.svg")" -eq 2 ] || fail "figure: series $r not in both legends"
        done
        [ "$(grep -c '<g id="gnuplot_plot_[0-9]*a"' "$WORK/fig/f.svg")" -eq 4 ] ||
            fail "figure: left panel has not 2 series (points, trend) per run"
        expect_grep 'training samples of the class \(log scale\)' "$WORK/fig/f.svg" "figure x label"
        [ -z "$(ls -A "$WORK/tmp")" ] || fail "--plot left $(ls -A "$WORK/tmp") in TMPDIR"
        [ "$(ls -A "$WORK/fig")" = f.svg ] || fail "--plot left $(ls -A "$WORK/fig" | tr '\n' ' ')"
    fi
    if expect_exit 0 "$CLIPX" compare "$CLIP" "$SL" --plot "$WORK/fig/f.png" --json --threads 1; then
        [ "$(head -c 4 "$WORK/fig/f.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "f.png is not a PNG"
        q "$WORK/out" .runs >/dev/null || fail "--plot --json prints no JSON"
    fi
else
    echo "cli_eval: gnuplot not installed, --plot figure tests skipped" >&2
    expect_one_error_line
    expect_grep 'gnuplot not found: apt-get install gnuplot-nox' "$WORK/err"
fi

finish
