#!/bin/sh
# Rebuild the fuzz seed corpora under tests/fuzz/corpus/ (committed; make check replays them and
# scripts/fuzz.sh mutates them). Small valid files of each format plus a few near misses; the
# checkpoint seeds come from two tiny runs of the clipx binary given as $CLIPX (default ./clipx).
# Usage: scripts/make_fuzz_corpus.sh   (from the source folder, after a build)
set -eu
CLIPX=${CLIPX:-./clipx}
C=tests/fuzz/corpus
F=tests/fuzz/corpus
D=tests/fixtures/data
W=$(mktemp -d "${TMPDIR:-/tmp}/clipx-corpus-XXXXXX")
trap 'rm -rf "$W"' EXIT
for t in idx npy captions lists subset config dataset ckpt; do rm -rf "${C:?}/$t"; mkdir -p "$C/$t"; done

# prefix BYTE FILE OUT: OUT is the octal byte BYTE followed by FILE (the harnesses' selector).
prefix() { { printf "\\$1"; cat "$2"; } >"$3"; }
# text BYTE TEXT OUT
text() { { printf "\\$1"; printf '%b' "$2"; } >"$3"; }

# IDX: the fixtures, a float32 IDX, a rank-1 int32 IDX, one header too long for its data.
for f in tiny-images-idx3-ubyte tiny-images-idx3-ubyte.gz tiny-labels-idx1-ubyte tiny-labels-idx1-ubyte.gz; do
    cp "$D/$f" "$C/idx/$f"
done
printf '\0\0\015\002\0\0\0\002\0\0\0\002\077\200\0\0\0\0\0\0\100\0\0\0\300\0\0\0' >"$C/idx/f32-2x2"
printf '\0\0\014\001\0\0\0\003\0\0\0\001\0\0\0\002\377\377\377\377' >"$C/idx/i32-3"
printf '\0\0\010\003\0\0\0\011\0\0\0\002\0\0\0\002\001\002\003' >"$C/idx/short"

# NPY: every fixture (u8, i32, i64, f32, f64 v2, big-endian, Fortran order, bool, complex, gzip).
for f in "$D"/*.npy "$D"/*.npy.gz; do cp "$f" "$C/npy/$(basename "$f")"; done

# Captions: the fixture, UTF-8, CRLF, an empty line, no final newline, gzip, invalid UTF-8.
cp "$D/tiny-captions.txt" "$C/captions/tiny"
printf 'a cat on a mat\nthe kittens sleep\na toy cat\n\ntwo dogs and a bird house\n' >"$C/captions/plain"
printf 'caf\303\251 cat\r\ndog\r\n' >"$C/captions/crlf-utf8"
printf 'no newline at the end' >"$C/captions/no-newline"
printf 'a cat\na dog\n' | gzip -9n >"$C/captions/gzip"
printf 'bad \377 byte\n' >"$C/captions/bad-utf8"

# Lists (first byte: 0 classes, 1 templates, 2 labels, 3 group names, 4 groups).
prefix 000 "$D/tiny-classes.txt" "$C/lists/classes"
text 000 'cat|kitten|!toy\n  dog  \n\nbird|bird house\n' "$C/lists/classes-synonyms"
prefix 001 "$D/tiny-templates.txt" "$C/lists/templates"
text 001 'a {}.\n\nno placeholder\n' "$C/lists/templates-bad"
prefix 002 "$D/tiny-labels.txt" "$C/lists/labels-text"
prefix 002 "$D/tiny-labels-idx1-ubyte" "$C/lists/labels-idx"
prefix 002 "$D/u8-labels.npy" "$C/lists/labels-npy-u8"
prefix 002 "$D/i64-labels.npy" "$C/lists/labels-npy-i64"
text 002 '0\n4\n-1\n9\n' "$C/lists/labels-range"
text 003 'land\nwater\n' "$C/lists/group-names"
text 003 'a\na\n' "$C/lists/group-names-dup"
text 004 '0\n1\n3\n2\n' "$C/lists/groups"
prefix 004 "$D/u8-labels.npy" "$C/lists/groups-npy"

# SUBSET (first byte even) and frequency files (odd); labels are i % 3 for i < 16.
text 000 'index\tlabel\n0\t0\n4\t1\n15\t0\n' "$C/subset/subset"
text 000 'index\tlabel\n' "$C/subset/subset-empty"
text 000 'index\tlabel\n3\t0\n3\t0\n' "$C/subset/subset-repeat"
text 001 'cat\t10\ndog\t0\nbird house\t3\n' "$C/subset/freq"
text 001 'cat\t1\ndog\t2\n' "$C/subset/freq-missing"

# Configurations (first byte even: training schema, odd: retraining), --set pieces after NULs.
text 000 'objective: sl\nepochs: 2\nmodel:\n  image: {hidden: [32], dim: 16}\n' "$C/config/train"
text 000 'epochs: 2\n\000model.image.dim=3\000loss=focal\000focal.gamma=1.5' "$C/config/train-sets"
text 000 'sampler: class-balanced\nvocab: {k: 4, weight: sqrt}\noptim: {name: sgd, lr: 0.5}\n' "$C/config/train-nested"
text 000 'epochs: 1\nepochs: 2\n' "$C/config/train-duplicate"
text 001 'method: lws\nepochs: 3\ntau_norm: {grid: [0, 0.5, 1]}\n' "$C/config/retrain"
text 001 'method: decoder\n\000decoder.hidden=[8,4]\000sampler=sqrt' "$C/config/retrain-sets"

# Dataset YAMLs over the harness's own files (first byte: 0 all, 1 train labels, 2 kept rows,
# 3 class list only).
ds_full='name: tiny\nclasses: classes.txt\ntemplates: templates.txt\ngroup_names: group_names.txt\ntrain: {images: images-idx3-ubyte, labels: labels-idx1-ubyte, captions: captions.txt, groups: groups.txt, n: 4, shape: [2, 2]}\ntest:\n  images: features.npy\n  labels: labels.txt\nclass_embeddings: embeddings.npy\n'
text 000 "$ds_full" "$C/dataset/full"
text 001 "$ds_full" "$C/dataset/labels-only"
text 002 "$ds_full" "$C/dataset/kept"
text 003 'classes: classes.txt\neval_classes: 2\n' "$C/dataset/classes-only"
text 000 'classes: classes.txt\ntrain: {images: features.npy, labels: labels.txt}\nval: {images: features.npy, labels: labels.txt}\n' "$C/dataset/val"
text 000 'classes: classes.txt\ntrain: {images: images-idx3-ubyte, labels: labels.txt, n: 5}\n' "$C/dataset/wrong-n"

# Checkpoints and run folders from two tiny runs (SL and CLIP); first byte bit 0: fix the CRC,
# bit 1: a run folder (config NUL checkpoint).
"$CLIPX" synth --out "$W/s" --classes 3 --superclasses 1 --n 30 --dim 4 --test-per-class 2 --seed 1 --quiet
tiny="--data $W/s/dataset.yaml --epochs 1 --batch 16 --set model.image.hidden=[] --set model.image.dim=2 --set model.text.dim=2 --threads 1 --quiet"
for obj in sl clip; do
    # shellcheck disable=SC2086
    "$CLIPX" train $tiny --objective $obj --out "$W/$obj"
    prefix 000 "$W/$obj/model.ckpt" "$C/ckpt/$obj"
    prefix 001 "$W/$obj/model.ckpt" "$C/ckpt/$obj-crc"
    # The run folder's configuration without its data path (cx_run_open does not read data).
    grep -v '^data:' "$W/$obj/config.yaml" >"$W/$obj.yaml"
    { printf '\003'; cat "$W/$obj.yaml"; printf '\0'; cat "$W/$obj/model.ckpt"; } >"$C/ckpt/$obj-run"
done
echo "corpus: $(find "$C" -type f | wc -l) files, $(du -sk "$C" | cut -f1) KB"
