#!/bin/sh
# Bring-your-own features: a feature-only dataset made with numpy (scripts/make_features.py:
# NPY features, labels as NPY and text, class_embeddings) trained on with an identity image
# tower. Zero-shot through clipx gives the accuracy and per-class predictions numpy computes
# from the same arrays; embed --text gives the class embeddings back; head: text takes them;
# wrong shapes are refused in one line naming the file (1: data, 2: the configuration).
# Skipped when Debian's python3 lacks numpy.
. "$TOP_SRCDIR/tests/lib.sh"

if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    echo "skipping: /usr/bin/python3 cannot import numpy"
    exit 77
fi
JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_features: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
GEN="$TOP_SRCDIR/scripts/make_features.py"

F="$WORK/feat"
expect_exit 0 /usr/bin/python3 "$GEN" "$F" --classes 6 --dim 16 --train 500 --test 120 --seed 3 \
    --zeroshot || { finish; exit; }
np_acc=$(sed -n 1p "$WORK/out")
np_counts=$(sed -n 2p "$WORK/out")
common="--data $F/dataset.yaml --batch 32 --epochs 2 --threads 1 --quiet"

# ---- zero-shot of an identity run: numpy's accuracy and predictions ---------------------------
expect_exit 0 "$CLIPX" train $common --set model.image.type=identity --out "$WORK/id"
expect_grep '^    type: identity$' "$WORK/id/config.yaml" "config.yaml"
expect_exit 0 "$CLIPX" eval "$WORK/id" --mode zeroshot --json --threads 1 && cp "$WORK/out" "$WORK/zs.json"
acc=$("$JSONQ" "$WORK/zs.json" .acc)
counts=$(for c in 0 1 2 3 4 5; do "$JSONQ" "$WORK/zs.json" ".classes[$c].pred_count"; done | tr '\n' ' ')
awk -v a="$acc" -v b="$np_acc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-6) }' ||
    fail "numpy zero-shot accuracy $np_acc, clipx eval acc $acc"
[ "$np_counts " = "$counts" ] || fail "numpy predictions per class '$np_counts', clipx eval '$counts'"
awk -v a="$acc" 'BEGIN { exit !(a > 0.3 && a < 1) }' || fail "zero-shot accuracy $acc is not informative"
expect_grep '"mode": "zeroshot"' "$WORK/zs.json"

# embed: the features pass through; --text gives the class embeddings of the file.
expect_exit 0 "$CLIPX" embed "$WORK/id" --out "$WORK/x.npy" --threads 1
expect_exit 0 "$CLIPX" embed "$WORK/id" --text --out "$WORK/t.npy" --threads 1
cat >"$WORK/same.py" <<'PY'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.array_equal(a.astype(np.float32), b) else 1)
PY
expect_exit 0 /usr/bin/python3 "$WORK/same.py" "$F/test-features.npy" "$WORK/x.npy" ||
    fail "embed of an identity run is not the test features"
expect_exit 0 /usr/bin/python3 "$WORK/same.py" "$F/class-embeddings.npy" "$WORK/t.npy" ||
    fail "embed --text is not the dataset's class_embeddings"

# ---- head: text from the class embeddings: the same classifier as zero-shot ------------------
expect_exit 0 "$CLIPX" train $common --set model.image.type=identity --set head=text --out "$WORK/text"
expect_exit 0 "$CLIPX" eval "$WORK/text" --json --threads 1
head_acc=$("$JSONQ" "$WORK/out" .acc)
[ "$head_acc" = "$acc" ] || fail "head: text accuracy $head_acc, zero-shot $acc"
# A trained tower under the text head (its output aligned to the class embeddings).
expect_exit 0 "$CLIPX" train $common --set head=text --set model.image.dim=16 \
    --set model.image.hidden=[32] --out "$WORK/tower"
expect_exit 0 "$CLIPX" eval "$WORK/tower" --mode zeroshot --threads 1

# float64 training features are converted on load.
expect_exit 0 /usr/bin/python3 "$GEN" "$WORK/f64" --classes 6 --dim 16 --seed 3 --f64
expect_exit 0 "$CLIPX" train --data "$WORK/f64/dataset.yaml" --batch 32 --epochs 1 --threads 1 \
    --quiet --set model.image.type=identity --set head=text --out "$WORK/f64run"

# ---- refusals: one line naming the file; no run folder -----------------------------------------
cat >"$WORK/bad.py" <<'PY'
import sys
import numpy as np
src, rows, cols, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
e = np.load(src)
np.save(out, np.resize(e, (rows, cols)).astype(np.float32))
PY
mkbad() { # mkbad NAME ROWS COLS: a copy of the dataset naming a (ROWS, COLS) class_embeddings
    /usr/bin/python3 "$WORK/bad.py" "$F/class-embeddings.npy" "$2" "$3" "$F/$1.npy" ||
        fail "numpy could not write $1.npy"
    sed "s/^class_embeddings: .*/class_embeddings: $1.npy/" "$F/dataset.yaml" >"$F/$1.yaml"
}
mkbad rows5 5 16
mkbad cols12 6 12
expect_exit 1 "$CLIPX" eval "$WORK/id" --data "$F/rows5.yaml" --mode zeroshot && expect_one_error_line
expect_grep "rows5\.npy: class_embeddings of shape \(5, 16\); .*rows5\.yaml needs \(6, D\)" "$WORK/err"
expect_exit 1 "$CLIPX" eval "$WORK/id" --data "$F/cols12.yaml" --mode zeroshot && expect_one_error_line
expect_grep "cols12\.npy: class embeddings of 12 dimensions, but the image tower of .*id outputs 16" "$WORK/err"
expect_exit 1 "$CLIPX" train --data "$F/rows5.yaml" --set model.image.type=identity --set head=text \
    --threads 1 --quiet --out "$WORK/never" && expect_one_error_line
expect_grep 'rows5\.npy' "$WORK/err"
expect_exit 1 "$CLIPX" train --data "$F/cols12.yaml" --set model.image.type=identity --set head=text \
    --threads 1 --quiet --out "$WORK/never" && expect_one_error_line
expect_grep 'cols12\.npy: class embeddings of 12 dimensions, but the training features' "$WORK/err"
expect_exit 2 "$CLIPX" train --data "$F/cols12.yaml" --set head=text --set model.image.dim=16 \
    --threads 1 --quiet --out "$WORK/never" && expect_one_error_line
expect_grep 'cols12\.npy holds class embeddings of 12 dimensions, the image tower outputs 16; set model\.image\.dim: 12' "$WORK/err"
[ -e "$WORK/never" ] && fail "a refused run created its folder"
# Without class_embeddings an SL run has no zero-shot classifier, as before.
sed '/^class_embeddings:/d' "$F/dataset.yaml" >"$F/plain.yaml"
expect_exit 2 "$CLIPX" eval "$WORK/id" --data "$F/plain.yaml" --mode zeroshot && expect_one_error_line
expect_grep 'plain\.yaml names no class_embeddings' "$WORK/err"
expect_exit 2 "$CLIPX" train --data "$F/plain.yaml" --set head=text --threads 1 --quiet \
    --out "$WORK/never" && expect_one_error_line
expect_grep 'head: text needs head_from' "$WORK/err"
finish
