#!/bin/bash
# Every command on fixed inputs, for comparing two builds byte for byte after a change that
# must not change behaviour:  scripts/golden.sh OLD/clipx a; scripts/golden.sh NEW/clipx b;
# diff -r a b.  W1=1 adds the W1 runs on Fashion-MNIST (Debian's dataset-fashion-mnist).
# The work happens in one fixed folder, so the paths written into run folders are the same
# for both builds; timing fields of log.jsonl are blanked. Needs OPENBLAS_CORETYPE fixed so
# both builds use the same kernels (set here).
set -u
[ $# -eq 2 ] || { echo "usage: scripts/golden.sh CLIPX OUTDIR" >&2; exit 2; }
X=$(realpath "$1"); FINAL=$(realpath -m "$2")
SRC=$(cd "$(dirname "$0")/.." && pwd)
O=${TMPDIR:-/tmp}/clipx-golden-work
rm -rf "$O" "$FINAL"; mkdir -p "$O"; cd "$O"
export OPENBLAS_CORETYPE=SkylakeX
run() { local name=$1; shift; "$@" > "$name.out" 2> "$name.err"; echo "$?" > "$name.rc"; }
run synth1 $X synth --out s1 --classes 50 --profile uniform --n 25000 --test-per-class 100 --captions descriptive --seed 0 --quiet
run synth2 $X synth --out s2 --classes 200 --profile pareto --rho 100 --n 8000 --captions synonym --seed 3 --open-world 0.2 --label-noise 0.1 --quiet
run synth3 $X synth --out s3 --classes 10 --dtype uint8 --n 2000 --seed 1 --threads 1 --quiet
run sub1 $X subsample s1/dataset.yaml --profile exp --rho 100 --seed 0 --out lt.subset
run sub2 $X subsample s2/dataset.yaml --profile step --rho 10 --seed 2 --out step.subset
run stats1 $X stats s1/dataset.yaml --subset lt.subset
run stats2 $X stats s1/dataset.yaml --subset lt.subset --json
run count1 $X count s1/dataset.yaml --out freqs.tsv
run config1 $X config --config $SRC/experiments/w1-clip.yaml
run keys $X config --keys
common="--data s1/dataset.yaml --subset lt.subset --epochs 3 --batch 128 --set model.image.hidden=[512] --set model.image.dim=128 --set model.text.dim=128 --quiet"
run trclip $X train $common --objective clip --out clip
run trsl $X train $common --objective sl --out sl
run trbsm $X train $common --objective sl --loss balanced-softmax --out slbsm
run trvocab $X train $common --objective sl --set vocab.k=8 --out slvocab
run trmlp $X train --data s3/dataset.yaml --epochs 2 --batch 64 --objective sl --set model.image.norm=layernorm --set model.image.act=gelu --set optim.name=sgd --quiet --out mlp3
run ev1 $X eval clip --split tail
run ev2 $X eval sl --json
run ev3 $X eval sl --mode linear-probe --json
run ev4 $X eval clip --mode ncm --out evout
run ev5 $X eval sl --mode knn --json
run cmp1 $X compare sl clip slbsm slvocab
run cmp2 $X compare sl clip --json
run help $X --help
for c in compare config count eval help stats subsample synth train version; do run help_$c $X help $c; done
if [ "${W1:-0}" = 1 ]; then
  cd $SRC/experiments
  run $O/w1sl $X train --config w1-sl.yaml --out $O/w1sl --quiet
  run $O/w1clip $X train --config w1-clip.yaml --out $O/w1clip --quiet
  cd "$O"
fi
if [ "${W1:-0}" = 1 ]; then
  run subfm $X subsample $SRC/experiments/data/fashion-mnist.yaml --profile exp --rho 100 --seed 0 --out fm.subset
  run trcnn $X train --data $SRC/experiments/data/fashion-mnist.yaml --subset $SRC/experiments/data/fashion-mnist-lt100.subset --epochs 1 --batch 128 --set model.image.type=cnn --objective sl --quiet --out cnn
  run evcnn $X eval cnn --json
fi
cd "$O"
# log.jsonl has timing fields: keep only deterministic ones
for f in $(find . -name log.jsonl); do sed -E 's/"(seconds|samples_per_s)":[^,}]*/"\1":X/g' $f > $f.det; rm $f; done
# the run folders' lock files (empty, flock only) are not output: builds before them had none
find . -name .lock -type f -delete
mv "$O" "$FINAL"
