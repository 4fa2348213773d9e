#!/bin/sh
# The synthetic datasets and subsets of the controlled study (experiments/*/): every one from
# seed 0, so the same bytes on every machine. Usage: experiments/data/make-synth.sh [DIR]
# (default runs/study/data, where the factors' configs look). CLIPX names the binary
# (default: ./clipx at the top of the source tree). Takes a few seconds.
#
#   lt/                  1,000 classes, Pareto (Zipf) long tail with imbalance ratio 500, 60,000
#                        training samples, 20 balanced test samples per class; descriptive
#                        captions that always name the class (attributes, a co-occurring concept)
#     scale-F.subset     a fraction F = 0.125, 0.25, 0.5 of lt, in proportion to the classes
#     trim-cC.subset     lt with its 200 rarest classes cut to C = 0 or 1 training samples
#   pretrain/            the same world with balanced classes (60 per class): the source of a
#                        "pre-trained" CLIP whose text tower or class embeddings other runs reuse
#   captions-MODE/       lt's images with captions of mode template, synonym or descriptive and
#                        two synonyms per class (the features are byte-identical to lt's)
#   cooc0-MODE/          like lt without co-occurring concepts (--cooccur 0), MODE template or
#                        descriptive (the two have the same images)
#   attr0.1-MODE/        like lt with attributes that shift the latent by 0.1, not 0.3
#   attr0.1-cooc0-MODE/  both
#   open/                lt's evaluated classes plus 1,000 open-world concepts (30,000 more
#                        training samples, never tested)
#     open-K.subset      the evaluated classes with K = 0, 500 or 1,000 of the open-world concepts
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/runs/study/data}
clipx=${CLIPX:-$top/clipx}
[ -x "$clipx" ] || { echo "make-synth: no clipx binary at $clipx (build it, or set CLIPX)" >&2; exit 1; }
mkdir -p "$out"

# The world every dataset shares; only the profile, the captions and the open-world concepts vary.
world="--classes 1000 --rho 500 --dim 64 --latent 16 --modes 2 --spread 0.35 --test-per-class 20 --seed 0"
synth() { # NAME ARGS...
    name=$1
    shift
    # shellcheck disable=SC2086
    "$clipx" synth --out "$out/$name" $world "$@" --quiet
}
subsample() { # DATASET OUT ARGS...
    ds=$1 sub=$2
    shift 2
    "$clipx" subsample "$out/$ds/dataset.yaml" "$@" --seed 0 --out "$out/$ds/$sub.subset" --quiet
}

synth lt --n 60000 --synonyms 0 --captions descriptive
for f in 0.125 0.25 0.5; do subsample lt "scale-$f" --profile scale --frac "$f"; done
for c in 0 1; do subsample lt "trim-c$c" --profile trim-tail --tail-k 200 --cap "$c"; done

synth pretrain --n 60000 --synonyms 0 --captions descriptive --profile uniform

for mode in template synonym descriptive; do
    synth "captions-$mode" --n 60000 --synonyms 2 --captions "$mode"
done
# What descriptive captions describe, varied (these change the images too, so each variant has a
# template twin with the same images): no co-occurring concepts; attributes that shift the
# latent a third as much; both.
for mode in template descriptive; do
    synth "cooc0-$mode" --n 60000 --synonyms 0 --captions "$mode" --cooccur 0
    synth "attr0.1-$mode" --n 60000 --synonyms 0 --captions "$mode" --attr-strength 0.1
    synth "attr0.1-cooc0-$mode" --n 60000 --synonyms 0 --captions "$mode" --attr-strength 0.1 --cooccur 0
done

# Evaluated classes keep lt's counts (n * (1 - 1/3) = 60,000 samples); the open-world concepts
# share the other 30,000 by the same Zipf law.
synth open --n 90000 --open-world 0.3333333333 --open-classes 1000 --synonyms 0 --captions descriptive
# Frequency files for the match profile: every evaluated class keeps all its samples; of the
# open-world concepts none, every other one (in class order, so both halves of the Zipf law), or all.
awk -F '\t' -v OFS='\t' 'NR > 1000 { $2 = 0 } { print }' "$out/open/train-counts.tsv" >"$out/open/open-0.tsv"
awk -F '\t' -v OFS='\t' 'NR > 1000 && NR % 2 == 0 { $2 = 0 } { print }' "$out/open/train-counts.tsv" >"$out/open/open-500.tsv"
cp "$out/open/train-counts.tsv" "$out/open/open-1000.tsv"
for k in 0 500 1000; do subsample open "open-$k" --profile match --counts "$out/open/open-$k.tsv"; done
echo "make-synth: datasets in $out"
