#!/bin/sh
# Curves: eval.every's evaluations in log.jsonl (val split, or test with a note), the same
# numbers as clipx eval on the same checkpoint, kept across --resume; a log ahead of its
# checkpoint repaired on resume with a note; clipx plot's figure (one series per run and panel),
# its refusals, and its man page.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_plot: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
MAN="$TOP_SRCDIR/doc/clipx.1"
line() { sed -n "$1p" "$2" >"$WORK/line.json"; "$JSONQ" "$WORK/line.json" "$3"; }

D=$WORK/d
"$CLIPX" synth --out "$D" --classes 5 --superclasses 2 --n 400 --dim 8 --test-per-class 10 \
    --val-per-class 6 --seed 1 --quiet || fail "synth"
# The same data without its val split: the curves fall back to the test split.
grep -v '^val:' "$D/dataset.yaml" >"$D/noval.yaml"
grep -q '^val:' "$D/dataset.yaml" || fail "synth wrote no val split"
common="--batch 64 --set model.image.hidden=[16] --set model.image.dim=8 --threads 1 --objective sl"

# ---- eval.every into log.jsonl ---------------------------------------------------------------
expect_exit 0 "$CLIPX" train --data "$D/dataset.yaml" $common --epochs 5 --set eval.every=2 --out "$WORK/v"
[ "$(wc -l <"$WORK/v/log.jsonl")" -eq 5 ] || fail "eval.every: log lines"
for e in 1 2 3 4 5; do
    has=$(line $e "$WORK/v/log.jsonl" .eval.split 2>/dev/null || echo none)
    want=none; [ $e -eq 2 ] || [ $e -eq 4 ] || [ $e -eq 5 ] && want=val
    [ "$has" = $want ] || fail "eval.every 2: epoch $e has eval split '$has', wanted $want"
done
for k in mode top1 head mid tail corr_acc corr_pred; do
    line 5 "$WORK/v/log.jsonl" .eval.$k >/dev/null 2>&1 || fail "eval.every: the eval object lacks $k"
done
expect_grep '^eval val \(epoch 4\): top1 ' "$WORK/err" "eval.every progress line"
expect_grep '^  every: 2$' "$WORK/v/config.yaml" "eval.every recorded"
"$CLIPX" train --data "$D/dataset.yaml" $common --epochs 1 --out "$WORK/plain" --quiet || fail "train plain"
expect_no_grep '^eval:' "$WORK/plain/config.yaml" "config.yaml without eval.every"

# Without a val split: the test split, said once; the last epoch's numbers are clipx eval's.
expect_exit 0 "$CLIPX" train --data "$D/noval.yaml" $common --epochs 3 --set eval.every=3 --out "$WORK/t"
expect_grep '^train: note: eval.every: the dataset has no val split; the curves are on the test split$' "$WORK/err" "test-split note"
[ "$(grep -c 'no val split' "$WORK/err")" -eq 1 ] || fail "the test-split note is repeated"
[ "$(line 3 "$WORK/t/log.jsonl" .eval.split)" = test ] || fail "eval on test without a val split"
"$CLIPX" eval "$WORK/t" --json --threads 1 >"$WORK/t.json" 2>/dev/null || fail "eval t"
for k in top1 head tail corr_acc corr_pred; do
    awk -v a="$(line 3 "$WORK/t/log.jsonl" .eval.$k)" -v b="$("$JSONQ" "$WORK/t.json" .$k)" \
        'BEGIN { d = a - b; exit !(d < 1e-8 && d > -1e-8) }' ||
        fail "eval.every's $k differs from clipx eval's on the same checkpoint"
done
expect_exit 2 "$CLIPX" train --data "$D/dataset.yaml" $common --set eval.every=-1 --out "$WORK/bad" &&
    expect_one_error_line
[ -e "$WORK/bad" ] && fail "a refused eval.every created its folder"

# ---- resume: evaluations kept, the checkpoint bit-identical; a log ahead of it repaired --------
CLIPX_TEST_KILL_AT_STEP=20 "$CLIPX" train --data "$D/dataset.yaml" $common --epochs 5 \
    --set eval.every=2 --out "$WORK/k" --quiet >/dev/null 2>&1
[ -s "$WORK/k/model.ckpt" ] || fail "the killed run kept no checkpoint"
n=$(wc -l <"$WORK/k/log.jsonl")
[ "$n" -ge 1 ] && [ "$n" -lt 5 ] || fail "the killed run's log has $n lines"
# A line of an epoch the checkpoint never saw (as a kill between the two writes leaves).
echo '{"epoch":99,"step":999,"loss":1}' >>"$WORK/k/log.jsonl"
expect_exit 0 "$CLIPX" train --resume "$WORK/k"
expect_grep "^train: note: $WORK/k/log.jsonl records $((n + 1)) epochs, $WORK/k/model.ckpt $n: the log is cut back to the checkpoint\$" "$WORK/err" "repair note"
[ "$(wc -l <"$WORK/k/log.jsonl")" -eq 5 ] || fail "resumed log lines"
grep -q '"epoch":99' "$WORK/k/log.jsonl" && fail "the stray line survived the resume"
[ "$(line 4 "$WORK/k/log.jsonl" .eval.split)" = val ] || fail "resumed run: epoch 4 not evaluated"
cmp -s "$WORK/k/model.ckpt" "$WORK/v/model.ckpt" || fail "eval.every: resumed checkpoint differs"
# A log behind the checkpoint: said, and the lost epochs named.
CLIPX_TEST_KILL_AT_STEP=21 "$CLIPX" train --data "$D/dataset.yaml" $common --epochs 5 \
    --set eval.every=2 --out "$WORK/k2" --quiet >/dev/null 2>&1
n=$(wc -l <"$WORK/k2/log.jsonl")
head -n 1 "$WORK/k2/log.jsonl" >"$WORK/k2/l" && mv "$WORK/k2/l" "$WORK/k2/log.jsonl"
if [ "$n" -ge 2 ]; then
    expect_exit 0 "$CLIPX" train --resume "$WORK/k2"
    expect_grep "^train: note: $WORK/k2/log.jsonl records 1 epochs, $WORK/k2/model.ckpt $n: the lines of epochs 2-$n are lost" "$WORK/err" "lost-lines note"
fi

# ---- clipx plot --------------------------------------------------------------------------------
for opt in $(expect_exit 0 "$CLIPX" plot --help && grep -Eo '^  --[a-z0-9-]+' "$WORK/out"); do
    case $opt in --threads | --quiet | --progress) continue ;; esac
    sed -n '/^\.SS plot$/,/^\.S[SH] /p' "$MAN" | grep -q -- "$(echo "$opt" | sed 's/-/\\\\-/g')" ||
        fail "doc/clipx.1 section plot does not document $opt"
done
sed -n '/^\.SS plot$/,/^\.S[SH] /p' "$MAN" | grep -q . || fail "doc/clipx.1 has no plot section"
expect_exit 2 "$CLIPX" plot "$WORK/v" --out "$WORK/f.pdf" && expect_one_error_line
expect_exit 2 "$CLIPX" plot "$WORK/v" && expect_one_error_line
expect_exit 2 "$CLIPX" plot --out "$WORK/f.svg" && expect_one_error_line
mkdir -p "$WORK/broken"
printf '{"epoch":1,"loss":0.5}\n{"epoch":2,"loss":}\n' >"$WORK/broken/log.jsonl"
if "$CLIPX" plot "$WORK/v" --out "$WORK/probe.svg" >/dev/null 2>"$WORK/err" || ! grep -q 'gnuplot not found' "$WORK/err"; then
    expect_exit 1 "$CLIPX" plot "$WORK/v" "$WORK/broken" --out "$WORK/b.svg" && expect_one_error_line &&
        expect_grep "broken/log.jsonl: line 2, column 19: wanted a value" "$WORK/err" "corrupt log"
    [ -e "$WORK/b.svg" ] && fail "plot of a corrupt log wrote a figure"
    mkdir -p "$WORK/tmp" "$WORK/fig"
    # Three runs, two evaluated: seven panels, each with a series per run.
    if expect_exit 0 env TMPDIR="$WORK/tmp" "$CLIPX" plot "$WORK/v" "$WORK/t" "$WORK/plain" --out "$WORK/fig/c.svg"; then
        [ "$(grep -Eo '<g id="gnuplot_plot_[0-9]+[a-g]"' "$WORK/fig/c.svg" | wc -l)" -eq 21 ] ||
            fail "plot: $(grep -Eo '<g id="gnuplot_plot_[0-9]+[a-g]"' "$WORK/fig/c.svg" | wc -l) series, wanted 7 panels x 3 runs"
        for r in v t plain; do grep -q ">$r<" "$WORK/fig/c.svg" || fail "plot: no legend entry for $r"; done
        [ -z "$(ls -A "$WORK/tmp")" ] || fail "plot left $(ls -A "$WORK/tmp") in TMPDIR"
    fi
    # Runs without evaluations: the loss panel only.
    if expect_exit 0 "$CLIPX" plot "$WORK/plain" "$WORK/plain/" --out "$WORK/l.png"; then
        [ "$(head -c 4 "$WORK/l.png" | od -An -c | tr -d ' ')" = '211PNG' ] || fail "plot: not a PNG"
    fi
    expect_exit 0 "$CLIPX" plot "$WORK/plain" "$WORK/t" --out "$WORK/l.svg" &&
        [ "$(grep -Eo '<g id="gnuplot_plot_[0-9]+[a-g]"' "$WORK/l.svg" | wc -l)" -eq 14 ] ||
        fail "plot: one evaluated run of two still draws every panel for both"
else
    echo "cli_plot: gnuplot not installed, figures skipped" >&2
fi
finish
