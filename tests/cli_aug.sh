#!/bin/bash
# aug.* keys: training with augmentations is reproducible (same seed twice, and killed then
# resumed: the same checkpoint), changes training, and refuses bad values naming the key.
. "$TOP_SRCDIR/tests/lib.sh"

expect_exit 0 "$CLIPX" synth --out "$WORK/s" --classes 5 --n 300 --dim 32 --captions synonym --seed 2 --quiet
# The same features as 4x8 images: a new NPY header over the same float32 bytes.
feat=$WORK/s/train-features.npy
hlen=$(od -An -tu2 -j8 -N2 "$feat" | tr -d ' ')
h="{'descr': '<f4', 'fortran_order': False, 'shape': (300, 4, 8), }"
pad=$(( (64 - (10 + ${#h} + 1) % 64) % 64 ))
mkdir -p "$WORK/img"
{ printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#h} + pad + 1) % 256 )))\\x$(printf %02x $(( (${#h} + pad + 1) / 256 )))";
  printf '%s%*s\n' "$h" "$pad" ""; tail -c +$((hlen + 11)) "$feat"; } >"$WORK/img/train-features.npy"
cp "$WORK/s/train-labels.npy" "$WORK/s/classes.txt" "$WORK/s/templates.txt" "$WORK/s/train-captions.txt" "$WORK/img/"
printf 'name: img\nclasses: classes.txt\ntemplates: templates.txt\ntrain: {images: train-features.npy, labels: train-labels.npy, captions: train-captions.txt}\n' >"$WORK/img/dataset.yaml"
expect_exit 0 "$CLIPX" stats "$WORK/img/dataset.yaml"

small="--epochs 3 --batch 50 --threads 1 --quiet --set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8 --set ckpt.every=4"
vec="--data $WORK/s/dataset.yaml --objective clip --set aug.noise=0.1 --set aug.dropout=0.2 --set aug.eda.sr=0.5 --set aug.eda.rs=0.2 --set aug.eda.rd=0.1"
img="--data $WORK/img/dataset.yaml --objective sl --set aug.crop_scale=[0.3,1] --set aug.flip=true --set aug.noise=0.05 --set aug.erase=0.5"
printf 'shirt|blouse|top\n' >"$WORK/syn.txt"
for kind in vec img syn; do
    case $kind in
        vec) keys=$vec ;;
        img) keys=$img ;;
        syn) keys="$vec --set aug.synonyms=$WORK/syn.txt" ;;
    esac
    expect_exit 0 "$CLIPX" train $small $keys --out "$WORK/$kind-a"
    expect_exit 0 "$CLIPX" train $small $keys --out "$WORK/$kind-b"
    cmp -s "$WORK/$kind-a/model.ckpt" "$WORK/$kind-b/model.ckpt" || fail "$kind: same seed, different checkpoints"
    expect_grep '^aug:' "$WORK/$kind-a/config.yaml" "$kind config.yaml"
    CLIPX_TEST_KILL_AT_STEP=7 "$CLIPX" train $small $keys --out "$WORK/$kind-k" >/dev/null 2>&1
    [ $? -ne 0 ] || fail "$kind: the run was not killed"
    expect_exit 0 "$CLIPX" train --resume "$WORK/$kind-k" --quiet
    cmp -s "$WORK/$kind-a/model.ckpt" "$WORK/$kind-k/model.ckpt" || fail "$kind: resumed run differs from uninterrupted"
done
# Augmentation changes what is learned (the checkpoint's weights, not only its config).
expect_exit 0 "$CLIPX" train $small --data "$WORK/img/dataset.yaml" --objective sl --out "$WORK/plain"
expect_exit 0 "$CLIPX" train $small --data "$WORK/img/dataset.yaml" --objective sl --set aug.noise=0 --out "$WORK/plain0"
cmp -s "$WORK/plain/model.ckpt" "$WORK/plain0/model.ckpt" || fail "aug keys at their defaults changed training"
cut -d, -f1-4 "$WORK/plain/log.jsonl" >"$WORK/a"
cut -d, -f1-4 "$WORK/img-a/log.jsonl" >"$WORK/b"
cmp -s "$WORK/a" "$WORK/b" && fail "image augmentation left the losses unchanged"

# Bad values exit 2 with one line naming the key.
for bad in "aug.noise=-1" "aug.erase=1.5" "aug.dropout=1" "aug.crop_scale=[0.9,0.2]" "aug.crop_scale=[0.5]" \
           "aug.crop_ratio=[0,1]" "aug.eda.sr=2" "aug.erase_scale=[0.5,0.1]"; do
    key=${bad%%=*}
    expect_exit 2 "$CLIPX" train $small --data "$WORK/img/dataset.yaml" --set "$bad" --out "$WORK/bad" &&
        { expect_one_error_line; expect_grep "$key" "$WORK/err" "$bad"; }
done
# Keys for another data kind or objective.
expect_exit 2 "$CLIPX" train $small --data "$WORK/s/dataset.yaml" --set aug.flip=true --out "$WORK/bad" &&
    { expect_one_error_line; expect_grep 'aug.flip: .* not images' "$WORK/err" "flip on vectors"; }
expect_exit 2 "$CLIPX" train $small --data "$WORK/img/dataset.yaml" --set aug.dropout=0.1 --out "$WORK/bad" &&
    { expect_one_error_line; expect_grep 'aug.dropout' "$WORK/err" "dropout on images"; }
expect_exit 2 "$CLIPX" train $small --data "$WORK/s/dataset.yaml" --objective sl --set aug.eda.rd=0.1 --out "$WORK/bad" &&
    { expect_one_error_line; expect_grep 'aug.eda' "$WORK/err" "eda under sl"; }
expect_exit 2 "$CLIPX" train $small $vec --set aug.eda.sr=0 --set aug.synonyms=$WORK/syn.txt --out "$WORK/bad" &&
    { expect_one_error_line; expect_grep 'aug.synonyms' "$WORK/err" "synonyms without sr"; }
printf 'lonely\n' >"$WORK/badsyn.txt"
expect_exit 1 "$CLIPX" train $small $vec --set aug.synonyms=$WORK/badsyn.txt --out "$WORK/bad" &&
    { expect_one_error_line; expect_grep 'badsyn.txt: line 1' "$WORK/err" "bad synonyms file"; }
[ -e "$WORK/bad/model.ckpt" ] && fail "a refused run left a checkpoint"
finish
