#!/bin/sh
# clipx retrain --method decoder with decoder.type transformer: blocks over a frozen ViT's
# tokens (the tiny IDX set, 4 x 3 images), eval of RUN2, and the refusal of a run without tokens.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_retrain_tokdec: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }

# The tiny set with its training images as the test split too (its own test split is vectors).
F="$TOP_SRCDIR/tests/fixtures/data"
cat >"$WORK/tiny.yaml" <<YAML
name: tiny
classes: $F/tiny-classes.txt
templates: $F/tiny-templates.txt
train: {images: $F/tiny-images-idx3-ubyte.gz, labels: $F/tiny-labels-idx1-ubyte.gz, captions: $F/tiny-captions.txt, n: 6, shape: [4, 3]}
test: {images: $F/tiny-images-idx3-ubyte.gz, labels: $F/tiny-labels-idx1-ubyte.gz, n: 6, shape: [4, 3]}
YAML
tiny="--data $WORK/tiny.yaml --objective sl --batch 2 --epochs 2 --threads 1 --quiet"
vit="--set model.image.type=vit --set model.image.layers=1 --set model.image.heads=2 --set model.image.width=8 --set model.image.dim=8 --set model.text.dim=8 --set model.image.patch=1"
"$CLIPX" train $tiny $vit --out "$WORK/vit" >/dev/null 2>&1 || fail "train vit"
"$CLIPX" train $tiny --set model.image.hidden=[8] --set model.image.dim=8 --set model.text.dim=8 \
    --out "$WORK/mlp" >/dev/null 2>&1 || fail "train mlp"

# 200 epochs of the six samples (a fraction of a second): the decoder fits them, so eval on the
# same images (through the blocks read back from model.ckpt) scores all six right.
tok="--set decoder.type=transformer --set decoder.depth=2 --set decoder.heads=2 --set epochs=200 --set batch=6 --set optim.name=adamw --set optim.lr=0.01"
if expect_exit 0 "$CLIPX" retrain "$WORK/vit" --method decoder $tok --out "$WORK/dec" --threads 1 --quiet; then
    expect_grep '^  type: transformer$' "$WORK/dec/config.yaml" "config records decoder.type"
    [ "$(wc -l <"$WORK/dec/log.jsonl")" -eq 200 ] || fail "200 epochs logged"
    tail -n 1 "$WORK/dec/log.jsonl" | awk -F'"loss": ' '{split($2, a, ","); exit !(a[1] < 0.05)}' ||
        fail "the token decoder did not fit six samples: $(tail -n 1 "$WORK/dec/log.jsonl")"
    if expect_exit 0 "$CLIPX" eval "$WORK/dec" --threads 1 --json; then
        [ "$("$JSONQ" "$WORK/out" .retrain.method)" = decoder ] || fail "eval JSON retrain.method"
        [ "$("$JSONQ" "$WORK/out" .top1)" = 1 ] || fail "eval top1 $("$JSONQ" "$WORK/out" .top1), wanted 1"
    fi
    # A token decoder's classifier is not a linear head on the features: posthoc is refused.
    if expect_exit 2 "$CLIPX" eval "$WORK/dec" --posthoc logit-adjust=1 --threads 1; then
        expect_one_error_line && expect_grep 'posthoc logit-adjust: .* token decoder' "$WORK/err" "posthoc refusal"
    fi
fi
# Killed after epoch 40 and resumed (the cached tokens read back): the uninterrupted bytes.
CLIPX_TEST_KILL_AT_EPOCH=40 "$CLIPX" retrain "$WORK/vit" --method decoder $tok --out "$WORK/kill" \
    --threads 1 --quiet >/dev/null 2>&1
[ -s "$WORK/kill/model.ckpt" ] || fail "killed run has no checkpoint"
cmp -s "$WORK/dec/model.ckpt" "$WORK/kill/model.ckpt" && fail "killed run already finished"
expect_exit 0 "$CLIPX" retrain --resume "$WORK/kill" --threads 1 --quiet
cmp -s "$WORK/dec/model.ckpt" "$WORK/kill/model.ckpt" || fail "resumed run differs from uninterrupted"
cmp -s "$WORK/dec/features.ckpt" "$WORK/kill/features.ckpt" || fail "cached tokens differ"
# The MLP decoder stays the default on the same run.
expect_exit 0 "$CLIPX" retrain "$WORK/vit" --method decoder --set epochs=1 --out "$WORK/mlpdec" --threads 1 --quiet &&
    { ! grep -q '^  type: ' "$WORK/mlpdec/config.yaml" || fail "default mlp: decoder.type written back at its default"; }
# A tower without tokens: exit 2, one line naming decoder.type, no folder.
expect_exit 2 "$CLIPX" retrain "$WORK/mlp" --method decoder $tok --out "$WORK/bad" &&
    expect_one_error_line && expect_grep 'decoder.type: transformer needs an image tower that gives tokens' "$WORK/err" "refusal"
[ -e "$WORK/bad" ] && fail "a refused retrain created its folder"
finish
