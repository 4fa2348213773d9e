#!/bin/sh
# clipx embed on two tiny runs (CLIP and SL, the SL one on a SUBSET): the NPY headers (shape,
# dtype) of test, train (the subset's rows) and --text, labels; the refusals (missing run,
# corrupt checkpoint, --text without a text tower, unknown split, no --out) with no file left
# behind; and, when numpy is installed, that the features and class embeddings give the
# zero-shot predictions of `clipx eval --json` (the per-class prediction counts and acc).
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_embed: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
MAN="$TOP_SRCDIR/doc/clipx.1"

# The header dictionary of an NPY file (version 1.0: 10 bytes of preamble).
npy_header() { head -c 128 "$1" | tail -c +11 | tr -d '\000' | head -n 1; }
# expect_npy FILE DESCR SHAPE: e.g. expect_npy f.npy '<f4' '(60, 8)'.
expect_npy() {
    [ -f "$1" ] || { fail "$1 was not written"; return; }
    h=$(npy_header "$1")
    case $h in
    "{'descr': '$2', 'fortran_order': False, 'shape': $3, }"*) ;;
    *) fail "$1: header '$h', wanted descr $2 shape $3" ;;
    esac
    magic=$(head -c 6 "$1" | tail -c 5)
    [ "$magic" = "NUMPY" ] || fail "$1: no NPY magic"
}

# ---- help and man page ---------------------------------------------------------------------
if expect_exit 0 "$CLIPX" embed --help; then
    sed -n '/^\.SS embed$/,/^\.S[SH] /p' "$MAN" | awk '/^\.TP/ {getline; print $2}' |
        sed 's/\\-/-/g' >"$WORK/man"
    [ -s "$WORK/man" ] || fail "doc/clipx.1 has no options for embed"
    for opt in $(grep -Eo '^  --[a-z0-9-]+' "$WORK/out"); do
        case $opt in --threads | --quiet | --progress) continue ;; esac
        grep -qx -- "$opt" "$WORK/man" || fail "doc/clipx.1 section embed does not document $opt"
    done
fi
expect_exit 0 "$CLIPX" --help && expect_grep '^  embed ' "$WORK/out" "clipx --help"

# ---- two tiny runs -------------------------------------------------------------------------
D="$WORK/data"
"$CLIPX" synth --out "$D" --classes 6 --superclasses 2 --n 600 --rho 20 --dim 8 \
    --test-per-class 10 --seed 1 --threads 1 --quiet >/dev/null 2>&1 || fail "synth"
"$CLIPX" subsample "$D/dataset.yaml" --profile exp --rho 50 --seed 0 --out "$WORK/lt.subset" \
    --quiet >/dev/null 2>&1 || fail "subsample"
"$CLIPX" train --data "$D/dataset.yaml" --objective clip --epochs 2 --batch 32 \
    --set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8 \
    --set optim.lr=0.01 --threads 1 --quiet --out "$WORK/clip" >/dev/null 2>&1 || fail "train clip"
"$CLIPX" train --data "$D/dataset.yaml" --subset "$WORK/lt.subset" --objective sl --epochs 2 \
    --batch 32 --set model.image.hidden=[16] --set model.image.dim=4 --set optim.lr=0.01 \
    --threads 1 --quiet --out "$WORK/sl" >/dev/null 2>&1 || fail "train sl"
CLIP="$WORK/clip"
SL="$WORK/sl"

# ---- shapes and dtypes ---------------------------------------------------------------------
expect_exit 0 "$CLIPX" embed "$CLIP" --out "$WORK/clip-test.npy" --labels "$WORK/clip-test-y.npy" --threads 1
expect_npy "$WORK/clip-test.npy" '<f4' '(60, 8)'
expect_npy "$WORK/clip-test-y.npy" '<i4' '(60,)'
[ ! -s "$WORK/out" ] || fail "embed wrote to stdout"
expect_exit 0 "$CLIPX" embed "$CLIP" --split train --out "$WORK/clip-train.npy" --threads 1
expect_npy "$WORK/clip-train.npy" '<f4' '(600, 8)'
expect_exit 0 "$CLIPX" embed "$CLIP" --text --out "$WORK/clip-text.npy" --threads 1
expect_npy "$WORK/clip-text.npy" '<f4' '(6, 8)'
# The SL run's training rows are its subset's, as it trained on them.
expect_exit 0 "$CLIPX" embed "$SL" --split train --out "$WORK/sl-train.npy" --labels "$WORK/sl-train-y.npy" --threads 1
h=$(npy_header "$WORK/sl-train.npy")
rows=$(echo "$h" | sed -n "s/.*'shape': (\([0-9]*\), 4).*/\1/p")
kept=$(($(wc -l <"$WORK/lt.subset") - 1))
[ -n "$rows" ] && [ "$kept" -lt 600 ] && [ "$rows" -eq "$kept" ] ||
    fail "SL train embedding has shape '$h', wanted ($kept, 4), the subset's rows"
expect_npy "$WORK/sl-train-y.npy" '<i4' "($rows,)"
# --data: every training row of that dataset.
expect_exit 0 "$CLIPX" embed "$SL" --data "$D/dataset.yaml" --split train --out "$WORK/sl-all.npy" --threads 1
expect_npy "$WORK/sl-all.npy" '<f4' '(600, 4)'

# ---- refusals: one line, the status, nothing written ---------------------------------------
expect_exit 1 "$CLIPX" embed "$WORK/none" --out "$WORK/bad.npy" && expect_one_error_line
mkdir -p "$WORK/corrupt"
cp "$SL/config.yaml" "$WORK/corrupt/"
head -c 200 "$SL/model.ckpt" >"$WORK/corrupt/model.ckpt"
expect_exit 1 "$CLIPX" embed "$WORK/corrupt" --out "$WORK/bad.npy" && expect_one_error_line
expect_grep "$WORK/corrupt/model.ckpt" "$WORK/err"
expect_exit 2 "$CLIPX" embed "$SL" --text --out "$WORK/bad.npy" && expect_one_error_line
expect_grep 'text tower' "$WORK/err"
expect_exit 2 "$CLIPX" embed "$CLIP" --split val --out "$WORK/bad.npy" && expect_one_error_line
expect_exit 2 "$CLIPX" embed "$CLIP" && expect_one_error_line
expect_grep '[-]-out' "$WORK/err"
expect_exit 2 "$CLIPX" embed "$CLIP" --text --labels "$WORK/bad-y.npy" --out "$WORK/bad.npy"
[ ! -e "$WORK/bad.npy" ] && [ ! -e "$WORK/bad-y.npy" ] || fail "a refused embed left a file"
[ -z "$(ls -A "$WORK" | grep -E '^bad|\.tmp|XXXX')" ] || fail "a refused embed left a temporary file"

# ---- numpy: the same zero-shot predictions as clipx eval -----------------------------------
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    expect_exit 0 "$CLIPX" eval "$CLIP" --json --threads 1 && cp "$WORK/out" "$WORK/eval.json"
    acc=$("$JSONQ" "$WORK/eval.json" .acc)
    counts=$(for c in 0 1 2 3 4 5; do "$JSONQ" "$WORK/eval.json" ".classes[$c].pred_count"; done | tr '\n' ' ')
    cat >"$WORK/check.py" <<'PY'
import sys
import numpy as np
x, t, y = (np.load(p) for p in sys.argv[1:4])
assert x.dtype == np.float32 and t.dtype == np.float32 and y.dtype == np.int32
x = x.astype(np.float64)
x /= np.linalg.norm(x, axis=1, keepdims=True)
pred = np.argmax(x @ t.astype(np.float64).T, axis=1)
print("%.6f" % np.mean(pred == y))
print(" ".join(str(v) for v in np.bincount(pred, minlength=t.shape[0])))
PY
    if expect_exit 0 /usr/bin/python3 "$WORK/check.py" "$WORK/clip-test.npy" "$WORK/clip-text.npy" "$WORK/clip-test-y.npy"; then
        np_acc=$(sed -n 1p "$WORK/out")
        np_counts=$(sed -n 2p "$WORK/out")
        awk -v a="$acc" -v b="$np_acc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-6) }' ||
            fail "numpy accuracy $np_acc, clipx eval acc $acc"
        [ "$np_counts " = "$counts" ] || fail "numpy predictions per class '$np_counts', clipx eval '$counts'"
    fi
else
    echo "cli_embed: python3-numpy missing, numpy comparison skipped"
fi
finish
