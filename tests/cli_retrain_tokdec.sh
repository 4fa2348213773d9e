#!/bin/sh
# clipx retrain --method decoder with decoder.type transformer: blocks over a frozen ViT's
# tokens (the tiny IDX set, 4 x 3 images), eval of RUN2, and the refusal of a run without tokens.
. "$TOP_SRCDIR/tests/lib.sh"

tiny="--data $TOP_SRCDIR/tests/fixtures/data/tiny.yaml --objective sl --batch 2 --epochs 2 --threads 1 --quiet"
vit="--set model.image.type=vit --set model.image.layers=1 --set model.image.heads=2 --set model.image.width=8 --set model.image.dim=8 --set model.text.dim=8 --set model.image.patch=1"
"$CLIPX" train $tiny $vit --out "$WORK/vit" >/dev/null 2>&1 || fail "train vit"
"$CLIPX" train $tiny --set model.image.hidden=[8] --set model.image.dim=8 --set model.text.dim=8 \
    --out "$WORK/mlp" >/dev/null 2>&1 || fail "train mlp"

tok="--set decoder.type=transformer --set decoder.depth=2 --set decoder.heads=2 --set epochs=3 --set batch=4 --set optim.lr=0.05"
if expect_exit 0 "$CLIPX" retrain "$WORK/vit" --method decoder $tok --out "$WORK/dec" --threads 1 --quiet; then
    expect_grep '^  type: transformer$' "$WORK/dec/config.yaml" "config records decoder.type"
    [ "$(wc -l <"$WORK/dec/log.jsonl")" -eq 3 ] || fail "three epochs logged"
fi
# The MLP decoder stays the default on the same run.
expect_exit 0 "$CLIPX" retrain "$WORK/vit" --method decoder --set epochs=1 --out "$WORK/mlpdec" --threads 1 --quiet &&
    expect_grep '^  type: mlp$' "$WORK/mlpdec/config.yaml" "default mlp"
# A tower without tokens: exit 2, one line naming decoder.type, no folder.
expect_exit 2 "$CLIPX" retrain "$WORK/mlp" --method decoder $tok --out "$WORK/bad" &&
    expect_one_error_line && expect_grep 'decoder.type: transformer needs an image tower that gives tokens' "$WORK/err" "refusal"
[ -e "$WORK/bad" ] && fail "a refused retrain created its folder"
finish
