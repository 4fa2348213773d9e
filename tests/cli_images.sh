#!/bin/sh
# Splits of PNG and JPEG files (tests/fixtures/images, made by scripts/make_image_fixtures.py):
# the list, folder and CSV forms decode to the same bytes, which are the bytes an independent
# implementation of the documented resampling gives from PIL's decoding (PNG exactly, JPEG within
# 2); the decoded cache is reused (never rewritten); train and eval run on it; broken images,
# lists and YAML keys are refused with one line naming the file and line, exit 1 or 2.
. "$TOP_SRCDIR/tests/lib.sh"

FX="$TOP_SRCDIR/tests/fixtures/images"
# Each form in a copy of its own (its own cache folder, its own file times), so the forms are
# compared by what each decodes, not by a cache they share.
for form in list folder csv csv-comma csv-nolabel grey; do
    mkdir -p "$WORK/$form" && cp -R "$FX"/. "$WORK/$form/" && chmod -R u+w "$WORK/$form"
done

"$CLIPX" stats "$WORK/list/list.yaml" >"$WORK/out" 2>"$WORK/err"
if grep -q 'built without libpng and libjpeg' "$WORK/err"; then
    # Without the libraries a split of image files is a usage error on one line, and the rest
    # of clipx works.
    expect_exit 2 "$CLIPX" stats "$WORK/list/list.yaml" && expect_one_error_line &&
        expect_grep 'list.yaml:3:[0-9]+: .train. names image files, but this clipx was built without libpng and libjpeg' "$WORK/err"
    expect_exit 0 "$CLIPX" synth --out "$WORK/syn" --classes 5 --n 100 --dim 4 --quiet
    [ "$FAILURES" -eq 0 ] || finish
    echo "skipping the rest: clipx was built without libpng and libjpeg"
    exit 77
fi

# cache_of DIR SHAPE: the decoded NPY in DIR/clipx-cache whose header says 'shape': (SHAPE).
cache_of() {
    for f in "$1"/clipx-cache/*.npy; do
        head -c 128 "$f" | grep -q "'shape': ($2)" && echo "$f"
    done
}
# data_of NPY BYTES: the last BYTES bytes (the data of an uint8 NPY, after its header).
data_of() { tail -c "$2" "$1"; }
# within TOL A B ROWS_FILE SPLIT PER: A and B (raw bytes) are equal, except that rows listed for
# SPLIT in ROWS_FILE (JPEGs, PER bytes a row) may differ by TOL.
within() {
    od -An -v -tu1 -w1 "$2" >"$WORK/a.txt"
    od -An -v -tu1 -w1 "$3" >"$WORK/b.txt"
    paste "$WORK/a.txt" "$WORK/b.txt" |
        awk -v tol="$1" -v per="$6" -v which="$5" -v rows="$4" '
        BEGIN { while ((getline l < rows) > 0) { split(l, f, " "); if (f[1] == which) jpeg[f[2]] = 1 } }
        { d = $1 - $2; if (d < 0) d = -d; r = int((NR - 1) / per)
          if (d > (r in jpeg ? tol : 0)) { bad++; if (bad < 4) printf "byte %d (row %d): %d vs %d\n", NR - 1, r, $1, $2 } }
        END { if (NR == 0) { print "no bytes"; exit 1 } exit bad > 0 }' >&2
}

per3=192 # 3 x 8 x 8
per1=64
n=9
for form in list folder csv csv-comma csv-nolabel; do
    expect_exit 0 "$CLIPX" stats "$WORK/$form/$form.yaml" &&
        expect_grep "^pets-$form: 9 samples in 3 classes" "$WORK/out" "stats of the $form form"
    c=$(cache_of "$WORK/$form" "9, 3, 8, 8")
    [ -n "$c" ] || { fail "$form: no decoded cache of 9 x 3 x 8 x 8"; continue; }
    data_of "$c" $((n * per3)) >"$WORK/$form.u8"
    within 2 "$WORK/$form.u8" "$FX/expected-train-c3.u8" "$FX/jpeg-rows.txt" train $per3 ||
        fail "$form: decoded bytes differ from expected-train-c3.u8"
done
for form in folder csv csv-comma csv-nolabel; do
    cmp -s "$WORK/list.u8" "$WORK/$form.u8" || fail "the $form form decodes to other bytes than the list form"
done
# Decoding in parallel (train sets 2 threads before it loads) gives the same bytes: each image
# is decoded on its own.
mkdir -p "$WORK/par" && cp -R "$FX"/. "$WORK/par/" && chmod -R u+w "$WORK/par"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" train --data "$WORK/par/list.yaml" --objective sl --epochs 1 \
    --batch 4 --threads 2 --quiet --set model.image.hidden=[4] --set model.image.dim=4 --out "$WORK/par-run"
c=$(cache_of "$WORK/par" "9, 3, 8, 8")
[ -n "$c" ] && data_of "$c" $((n * per3)) | cmp -s - "$WORK/list.u8" ||
    fail "decoding with 2 threads gave other bytes than with 1"
expect_exit 0 "$CLIPX" stats "$WORK/grey/grey.yaml"
c=$(cache_of "$WORK/grey" "9, 1, 8, 8")
if [ -z "$c" ]; then
    fail "grey: no decoded cache of 9 x 1 x 8 x 8"
else
    data_of "$c" $((n * per1)) >"$WORK/grey.u8"
    within 2 "$WORK/grey.u8" "$FX/expected-train-c1.u8" "$FX/jpeg-rows.txt" train $per1 ||
        fail "grey: decoded bytes differ from expected-train-c1.u8"
fi
c=$(cache_of "$WORK/list" "3, 3, 8, 8")
[ -n "$c" ] && data_of "$c" $((3 * per3)) >"$WORK/test.u8" &&
    within 2 "$WORK/test.u8" "$FX/expected-test-c3.u8" "$FX/jpeg-rows.txt" test $per3 ||
    fail "list: the test split's bytes differ from expected-test-c3.u8"
# The header: an uint8 NPY of shape (9, 3, 8, 8), 128 bytes before the data.
c=$(cache_of "$WORK/list" "9, 3, 8, 8")
head -c 128 "$c" | grep -q "'descr': '|u1', 'fortran_order': False, 'shape': (9, 3, 8, 8)" ||
    fail "the cache is not an uint8 NPY of shape (9, 3, 8, 8)"
[ "$(wc -c <"$c")" -eq $((128 + n * per3)) ] || fail "the cache holds other than 9 x 3 x 8 x 8 bytes"

# ---- the cache is reused: a second load (and training) rewrites nothing ---------------------
L="$WORK/list"
touch -d '2001-02-03 04:05:06' "$L"/clipx-cache/*
ls "$L/clipx-cache" >"$WORK/before"
small="--epochs 2 --batch 4 --threads 2 --quiet --set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" train --data "$L/list.yaml" --objective sl $small --out "$WORK/sl"
expect_exit 0 "$CLIPX" stats "$L/list.yaml"
ls "$L/clipx-cache" | cmp -s - "$WORK/before" || fail "a second load added cache files: $(ls "$L/clipx-cache")"
for f in "$L"/clipx-cache/*; do
    [ "$(date -r "$f" +%Y)" = 2001 ] || fail "a second load rewrote $(basename "$f")"
done
# A changed image (size or time) is a new key: decoded again, into a new file.
touch "$L/train/dog/e.png"
expect_exit 0 "$CLIPX" stats "$L/list.yaml"
[ "$(ls "$L/clipx-cache" | wc -l)" -eq $(($(wc -l <"$WORK/before") + 1)) ] ||
    fail "a touched image did not give a new cache file"
# A damaged cache file (truncated) is decoded again and replaced.
c=$(cache_of "$WORK/folder" "9, 3, 8, 8")
head -c 300 "$c" >"$WORK/trunc" && cat "$WORK/trunc" >"$c"
expect_exit 0 "$CLIPX" stats "$WORK/folder/folder.yaml"
data_of "$c" $((n * per3)) | cmp -s - "$WORK/folder.u8" || fail "a truncated cache was not decoded again"

# Without a label column the classes come from the captions: the same counts as the labels.
expect_exit 0 "$CLIPX" stats "$WORK/csv/csv.yaml" --json && grep -v '"dataset"' "$WORK/out" >"$WORK/s1"
expect_exit 0 "$CLIPX" stats "$WORK/csv-nolabel/csv-nolabel.yaml" --json && grep -v '"dataset"' "$WORK/out" >"$WORK/s2"
cmp -s "$WORK/s1" "$WORK/s2" || fail "the CSV without labels gives other class counts than the one with them"

# ---- train and eval on each form ----------------------------------------------------------
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" train --data "$WORK/csv/csv.yaml" --objective clip $small --out "$WORK/clip"
expect_exit 0 "$CLIPX" eval "$WORK/clip" --json && expect_grep '"top1": [0-9.]+' "$WORK/out" "eval of the CSV run"
# The CSV's captions reach the trainer (a CLIP run reads them; the cache holds them one a line).
grep -qx 'a "ginger" cat, sitting' "$WORK/csv"/clipx-cache/*.captions.txt ||
    fail "the CSV's quoted caption was not unquoted into the captions cache"
expect_exit 0 "$CLIPX" eval "$WORK/sl" && expect_grep '^ +2 +fox +3 +1 ' "$WORK/out" "eval table of the list run"
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" train --data "$WORK/folder/folder.yaml" --objective clip $small \
    --set model.image.type=cnn --set model.image.channels=[4] --out "$WORK/cnn"
expect_exit 0 "$CLIPX" eval "$WORK/cnn" --data "$WORK/list/list.yaml"
# Same bytes, same training: a run on the list form and one on the folder form agree.
# shellcheck disable=SC2086
expect_exit 0 "$CLIPX" train --data "$WORK/folder/folder.yaml" --objective sl $small --out "$WORK/sl2"
expect_exit 0 "$CLIPX" eval "$WORK/sl" --data "$WORK/list/list.yaml" --json && grep -v '"run"' "$WORK/out" >"$WORK/e1"
expect_exit 0 "$CLIPX" eval "$WORK/sl2" --data "$WORK/list/list.yaml" --json && grep -v '"run"' "$WORK/out" >"$WORK/e2"
cmp -s "$WORK/e1" "$WORK/e2" || fail "training on the list and the folder forms evaluates differently"

# ---- broken input -------------------------------------------------------------------------
B="$WORK/broken"
mkdir -p "$B" && cp -R "$FX"/. "$B/" && chmod -R u+w "$B"
head -c 60 "$FX/train/dog/e.png" >"$B/train/dog/e.png"
expect_exit 1 "$CLIPX" train --data "$B/list.yaml" --objective sl $small --out "$WORK/bad" &&
    expect_one_error_line &&
    expect_grep 'train.txt: line 5: .*train/dog/e.png: broken PNG' "$WORK/err"
[ -e "$WORK/bad/model.ckpt" ] && fail "a refused train wrote a checkpoint"
expect_exit 1 "$CLIPX" stats "$B/folder.yaml" && expect_one_error_line &&
    expect_grep 'train/dog/e.png: broken PNG' "$WORK/err"
cp "$FX/train/dog/e.png" "$B/train/dog/e.png"
head -c 200 "$FX/train/fox/h.JPG" >"$B/train/fox/h.JPG"
expect_exit 1 "$CLIPX" stats "$B/csv.yaml" && expect_one_error_line &&
    expect_grep 'train.csv: line 9: .*train/fox/h.JPG: broken JPEG' "$WORK/err"
echo 'not an image' >"$B/train/fox/h.JPG"
expect_exit 1 "$CLIPX" stats "$B/list.yaml" && expect_one_error_line &&
    expect_grep 'train.txt: line 8: .*h.JPG: neither a PNG nor a JPEG file' "$WORK/err"
cp "$FX/train/fox/h.JPG" "$B/train/fox/h.JPG"
printf 'train/cat/a.png 0\ntrain/cat/nope.png 0\n' >"$B/train.txt"
expect_exit 1 "$CLIPX" stats "$B/list.yaml" && expect_one_error_line &&
    expect_grep 'train.txt: line 2: .*nope.png: No such file or directory' "$WORK/err"
printf 'train/cat/a.png 0\ntrain/cat/c.png 3\n' >"$B/train.txt"
expect_exit 1 "$CLIPX" stats "$B/list.yaml" && expect_one_error_line &&
    expect_grep 'train.txt: line 2: label 3 is outside the 3 classes of .*classes.txt' "$WORK/err"
printf 'train/cat/a.png\n' >"$B/train.txt"
expect_exit 1 "$CLIPX" stats "$B/list.yaml" && expect_one_error_line &&
    expect_grep "train.txt: line 1: label 'train/cat/a.png' is not an integer|want 'relative/path label'" "$WORK/err"
printf 'filepath\tcaption\n' >"$B/nolabel.csv"
printf 'classes: classes.txt\ntrain: {csv: nolabel.csv, image_size: 8}\n' >"$B/nolabel.yaml"
expect_exit 1 "$CLIPX" stats "$B/nolabel.yaml" && expect_one_error_line &&
    expect_grep "nolabel.csv: line 1: no column 'title' in the header \(separator tab\)$" "$WORK/err"
printf 'filepath\ttitle\ntrain/cat/a.png\ta cat\ntrain/dog/d.jpg\ta bird on a branch\n' >"$B/nolabel.csv"
expect_exit 1 "$CLIPX" stats "$B/nolabel.yaml" && expect_one_error_line &&
    expect_grep "nolabel.csv: line 3: no 'label' column, and the caption 'a bird on a branch' names no class of .*classes.txt$" "$WORK/err"
printf 'cat\nfox\ndog\n' >"$B/classes.txt"
expect_exit 1 "$CLIPX" stats "$B/folder.yaml" && expect_one_error_line &&
    expect_grep "class folder 1 \(sorted\) is 'dog', but class 1 of .*classes.txt is 'fox'" "$WORK/err"
cp "$FX/classes.txt" "$B/classes.txt"
# An unwritable cache folder is an error naming it (the dataset stays as it was).
mkdir -p "$WORK/ro" && cp -R "$FX"/. "$WORK/ro/" && : >"$WORK/ro/clipx-cache"
expect_exit 1 "$CLIPX" stats "$WORK/ro/list.yaml" && expect_one_error_line &&
    expect_grep 'clipx-cache' "$WORK/err"

# ---- YAML keys ----------------------------------------------------------------------------
y() { printf 'classes: classes.txt\ntrain: {%s}\n' "$1" >"$B/k.yaml"; }
y 'list: train.txt'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line &&
    expect_grep "k.yaml:2:8: 'train' names image files \('list'\) but no 'image_size'" "$WORK/err"
y 'list: train.txt, folder: train, image_size: 8'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "both name the split's images" "$WORK/err"
y 'list: train.txt, image_size: 8, channels: 2'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "'channels' must be 1 \(grey\) or 3 \(RGB\)" "$WORK/err"
y 'list: train.txt, image_size: 0'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "'image_size' must be an integer in \[1, 4096\]" "$WORK/err"
y 'folder: train, root: ., image_size: 8'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "'root' applies to 'list' and 'csv'" "$WORK/err"
y 'list: train.txt, image_size: 8, csv_separator: ","'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "csv_\* keys apply to 'csv' only" "$WORK/err"
y 'csv: train.csv, image_size: 8, csv_separator: ab'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "'csv_separator' must be one character" "$WORK/err"
y 'list: train.txt, image_size: 8, images: x.npy, labels: y.npy'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "takes no 'images' or 'labels'" "$WORK/err"
y 'images: x.npy, labels: y.npy, image_size: 8'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "image-file keys without 'list', 'folder' or 'csv'" "$WORK/err"
y 'csv: train.csv, image_size: 8, captions: train-captions.txt'
expect_exit 2 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "takes its captions from the CSV" "$WORK/err"
y 'list: train.txt, image_size: 8, shape: [3, 8, 4]'
printf 'train/cat/a.png 0\n' >"$B/train.txt"
expect_exit 1 "$CLIPX" stats "$B/k.yaml" && expect_one_error_line && expect_grep "samples of shape \[3, 8, 8\], but .*k.yaml:2:[0-9]+ promises shape: \[3, 8, 4\]" "$WORK/err"
finish
