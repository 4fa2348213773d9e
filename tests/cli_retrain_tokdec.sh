#!/bin/sh
# clipx retrain --method decoder with decoder.type transformer: blocks over a frozen ViT's
# tokens (the tiny IDX set, 4 x 3 images), eval of RUN2 (post-hoc logit adjustment and tau-norm
# on its head), the token cache's memory bound, and the refusal of a run without tokens.
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
    # Post-hoc on the token decoder's logits: logit adjustment adds tau log 3 to every logit
    # here (three classes of two training images), from the pooled tokens the head scores.
    "$CLIPX" eval "$WORK/dec" --threads 1 --logits "$WORK/raw.npy" >/dev/null 2>&1 || fail "eval --logits"
    if expect_exit 0 "$CLIPX" eval "$WORK/dec" --posthoc logit-adjust=1 --json --threads 1 --logits "$WORK/la.npy"; then
        [ "$("$JSONQ" "$WORK/out" .posthoc.method)" = logit-adjust ] || fail "token decoder posthoc.method"
        [ "$("$JSONQ" "$WORK/out" .posthoc.tau)" = 1 ] || fail "token decoder posthoc.tau"
        npy_floats() { h=$(od -An -tu2 -j8 -N2 "$1" | tr -d ' '); od -An -v -f -j $((10 + h)) "$1" | tr -s ' ' '\n' | sed '/^$/d'; }
        npy_floats "$WORK/raw.npy" >"$WORK/raw.txt"
        npy_floats "$WORK/la.npy" >"$WORK/la.txt"
        [ "$(wc -l <"$WORK/raw.txt")" -eq 18 ] || fail "6 x 3 logits, got $(wc -l <"$WORK/raw.txt")"
        paste "$WORK/raw.txt" "$WORK/la.txt" | awk '{ d = $2 - $1 - log(3); if (d < -1e-4 || d > 1e-4) bad++ } END { exit bad > 0 }' ||
            fail "logit-adjust=1 on the token decoder: not z + log 3 ($(paste "$WORK/raw.txt" "$WORK/la.txt" | head -n 2 | tr '\n' ' '))"
    fi
    # Without tau it is chosen on the val split's tokens, pooled by the decoder's blocks.
    sed 's/^test: /val: /' "$WORK/tiny.yaml" >"$WORK/tinyv.yaml"
    grep '^test: ' "$WORK/tiny.yaml" >>"$WORK/tinyv.yaml"
    if expect_exit 0 "$CLIPX" eval "$WORK/dec" --data "$WORK/tinyv.yaml" --posthoc logit-adjust --json --threads 1; then
        [ "$("$JSONQ" "$WORK/out" .posthoc.tau_from)" = val ] || fail "token decoder posthoc.tau_from"
        [ "$("$JSONQ" "$WORK/out" .posthoc.n_val)" = 6 ] || fail "token decoder posthoc.n_val"
        [ "$("$JSONQ" "$WORK/out" .posthoc.val_acc)" = 1 ] || fail "token decoder posthoc.val_acc"
    fi
    # tau-norm normalises the decoder's linear head: tau 0 leaves the logits as they were.
    expect_exit 0 "$CLIPX" eval "$WORK/dec" --posthoc tau-norm=0 --threads 1 --logits "$WORK/tn0.npy" &&
        { cmp -s "$WORK/raw.npy" "$WORK/tn0.npy" || fail "tau-norm=0 changed the token decoder's logits"; }
    expect_exit 0 "$CLIPX" eval "$WORK/dec" --posthoc tau-norm=1 --json --threads 1 &&
        { [ "$("$JSONQ" "$WORK/out" .posthoc.method)" = tau-norm ] || fail "token decoder tau-norm JSON"; }
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
# A token cache (6 samples x 13 tokens x 8 floats) that would not fit --max-memory: exit 2
# before the tower runs, one line with its size, no folder.
expect_exit 2 "$CLIPX" retrain "$WORK/vit" --method decoder $tok --max-memory 1K --out "$WORK/big" &&
    expect_one_error_line &&
    expect_grep 'token cache of 6 training samples x 13 tokens x 8 floats is 2.4 KiB .*more than 1.0 KiB \(--max-memory\)' "$WORK/err" "token cache refusal"
[ -e "$WORK/big" ] && fail "a refused token cache created its folder"
expect_exit 2 "$CLIPX" retrain "$WORK/vit" --method decoder $tok --max-memory lots --out "$WORK/big" &&
    expect_one_error_line && expect_grep "max-memory: 'lots' is not a size" "$WORK/err" "--max-memory parse"
# A tower without tokens: exit 2, one line naming decoder.type, no folder.
expect_exit 2 "$CLIPX" retrain "$WORK/mlp" --method decoder $tok --out "$WORK/bad" &&
    expect_one_error_line && expect_grep 'decoder.type: transformer needs an image tower that gives tokens' "$WORK/err" "refusal"
[ -e "$WORK/bad" ] && fail "a refused retrain created its folder"
finish
