#!/bin/sh
# clipx export on three tiny runs (SL with an MLP tower, CLIP with MLP and bag-of-words towers,
# and W2's shape: a ViT and a causal transformer text tower): the NPZ's zip structure, CRCs and
# NPY members (tests/npzcheck), one float32 member per checkpoint tensor under its name plus
# config.json (uint8 JSON: towers, classes) and, for CLIP, vocab.txt and zeroshot.tokens; equal
# bytes for equal runs; `clipx eval --logits`; a retrained (crt) run with its classifier; the
# refusals (missing run, corrupt checkpoint, a gated retrained run, no --out) with nothing
# written and an earlier file kept; and, when /usr/bin/python3 has torch, that
# scripts/clipx_torch.py reproduces eval's logits of all three and the crt run
# to 1e-5 (in units of the classifier's scale), as it does for every other tower and head type,
# and fails on a model with a wrong op.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
NPZCHECK="${TOP_BUILDDIR:-.}/tests/npzcheck"
for t in "$JSONQ" "$NPZCHECK"; do
    [ -x "$t" ] || { echo "cli_export: $t missing (make $(basename "$t"))" >&2; exit 1; }
done
MAN="$TOP_SRCDIR/doc/clipx.1"
F="$TOP_SRCDIR/tests/fixtures/data"

# ---- help and man page ---------------------------------------------------------------------
if expect_exit 0 "$CLIPX" export --help; then
    sed -n '/^\.SS export$/,/^\.S[SH] /p' "$MAN" | awk '/^\.TP/ {getline; print $2}' |
        sed 's/\\-/-/g' >"$WORK/man"
    [ -s "$WORK/man" ] || fail "doc/clipx.1 has no options for export"
    for opt in $(grep -Eo '^  --[a-z0-9-]+' "$WORK/out"); do
        grep -qx -- "$opt" "$WORK/man" || fail "doc/clipx.1 section export does not document $opt"
    done
fi
expect_exit 0 "$CLIPX" --help && expect_grep '^  export ' "$WORK/out" "clipx --help"
expect_exit 0 "$CLIPX" eval --help && expect_grep '^  --logits F.npy' "$WORK/out" "eval --help"

# ---- three tiny runs -----------------------------------------------------------------------
D="$WORK/data"
"$CLIPX" synth --out "$D" --classes 6 --superclasses 2 --n 600 --rho 20 --dim 8 \
    --test-per-class 10 --seed 1 --threads 1 --quiet >/dev/null 2>&1 || fail "synth"
cat >"$WORK/tiny.yaml" <<YAML
name: tiny
classes: $F/tiny-classes.txt
templates: $F/tiny-templates.txt
train: {images: $F/tiny-images-idx3-ubyte.gz, labels: $F/tiny-labels-idx1-ubyte.gz, captions: $F/tiny-captions.txt, n: 6, shape: [4, 3]}
test: {images: $F/tiny-images-idx3-ubyte.gz, labels: $F/tiny-labels-idx1-ubyte.gz, n: 6, shape: [4, 3]}
YAML
"$CLIPX" train --data "$D/dataset.yaml" --objective sl --epochs 2 --batch 32 \
    --set model.image.hidden=[16] --set model.image.dim=4 --set optim.lr=0.01 \
    --threads 1 --quiet --out "$WORK/sl" >/dev/null 2>&1 || fail "train sl"
"$CLIPX" train --data "$D/dataset.yaml" --objective clip --epochs 2 --batch 32 \
    --set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8 \
    --set optim.lr=0.01 --threads 1 --quiet --out "$WORK/clip" >/dev/null 2>&1 || fail "train clip"
# W2's towers at toy sizes: ViT (patch 1 of 4 x 3 images, CLS pooling) and a causal text
# transformer read at EOT, two blocks each.
w2="--set model.image.type=vit --set model.image.layers=2 --set model.image.heads=2"
w2="$w2 --set model.image.width=8 --set model.image.dim=8 --set model.image.patch=1"
w2="$w2 --set model.text.type=transformer --set model.text.layers=2 --set model.text.heads=2"
w2="$w2 --set model.text.dim=8 --set model.text.causal=true --set model.text.max_tokens=8"
"$CLIPX" train --data "$WORK/tiny.yaml" --objective clip --batch 2 --epochs 3 $w2 \
    --threads 1 --quiet --out "$WORK/w2" >/dev/null 2>&1 || fail "train w2"

# ---- the archives --------------------------------------------------------------------------
for r in sl clip w2; do
    expect_exit 0 "$CLIPX" export "$WORK/$r" --out "$WORK/$r.npz" || continue
    [ ! -s "$WORK/out" ] || fail "$r: export wrote to stdout"
    if ! "$NPZCHECK" "$WORK/$r.npz" >"$WORK/$r.members" 2>"$WORK/err"; then
        fail "$r.npz: $(cat "$WORK/err")"
        continue
    fi
    "$NPZCHECK" "$WORK/$r.npz" -p config.json.npy >"$WORK/$r.json" || fail "$r: no config.json"
    [ "$("$JSONQ" "$WORK/$r.json" .format)" = "clipx-npz 1" ] || fail "$r: config.json format"
    # Every tensor the JSON lists is a float32 member, and the members are those plus the texts.
    ntensors=$("$JSONQ" "$WORK/$r.json" .tensors#)
    i=0
    while [ "$i" -lt "$ntensors" ]; do
        name=$("$JSONQ" "$WORK/$r.json" ".tensors[$i]")
        grep -q "^$name\.npy	<f4	(" "$WORK/$r.members" || fail "$r: no float32 member $name.npy"
        i=$((i + 1))
    done
    extra=1
    [ "$r" = sl ] || extra=3
    [ "$(wc -l <"$WORK/$r.members")" -eq $((ntensors + extra)) ] ||
        fail "$r: $(wc -l <"$WORK/$r.members") members for $ntensors tensors"
    grep -q '^config\.json\.npy	|u1	(' "$WORK/$r.members" || fail "$r: config.json is not uint8"
    [ "$("$JSONQ" "$WORK/$r.json" .num_eval_classes)" -gt 0 ] || fail "$r: num_eval_classes"
done
grep -q '^image\.fc0\.weight\.npy	<f4	(16, 8)$' "$WORK/sl.members" || fail "sl: image.fc0.weight (16, 8)"
grep -q '^head\.weight\.npy	<f4	(6, 4)$' "$WORK/sl.members" || fail "sl: head.weight (6, 4)"
[ "$("$JSONQ" "$WORK/sl.json" .class_names#)" = 6 ] || fail "sl: 6 class names"
[ "$("$JSONQ" "$WORK/sl.json" .head.type)" = linear ] || fail "sl: head type"
grep -q '^zeroshot\.tokens\.npy	<i4	(6, ' "$WORK/clip.members" || fail "clip: zeroshot.tokens (6, T, L)"
grep -q '^vocab\.txt\.npy	|u1	(' "$WORK/clip.members" || fail "clip: vocab.txt"
grep -q '^text\.embed\.weight\.npy	<f4	(' "$WORK/clip.members" || fail "clip: text.embed.weight"
grep -q '^image\.blocks1\.attn_qkv\.weight\.npy	<f4	(24, 8)$' "$WORK/w2.members" ||
    fail "w2: image.blocks1.attn_qkv.weight (24, 8)"
grep -q '^text\.pos_embed\.npy	<f4	(8, 8)$' "$WORK/w2.members" || fail "w2: text.pos_embed (8, 8)"
[ "$("$JSONQ" "$WORK/w2.json" .image.type .text.type .text.causal | tr '\n' ' ')" = "vit transformer true " ] ||
    fail "w2: config.json towers"
# Equal runs, equal bytes.
expect_exit 0 "$CLIPX" export "$WORK/w2" --out "$WORK/w2-again.npz"
cmp -s "$WORK/w2.npz" "$WORK/w2-again.npz" || fail "two exports of one run differ"

# ---- eval --logits -------------------------------------------------------------------------
for r in sl clip w2; do
    expect_exit 0 "$CLIPX" eval "$WORK/$r" --logits "$WORK/$r-logits.npy" --json --threads 1 || continue
    "$JSONQ" "$WORK/out" .top1 >/dev/null || fail "$r: eval --logits changed the JSON"
done
h=$(head -c 128 "$WORK/sl-logits.npy" | tail -c +11 | tr -d '\000' | head -n 1)
case $h in "{'descr': '<f4', 'fortran_order': False, 'shape': (60, 6), }"*) ;;
*) fail "sl logits header '$h', wanted (60, 6) float32" ;; esac
# The table is unchanged by --logits.
"$CLIPX" eval "$WORK/sl" --threads 1 >"$WORK/plain" 2>/dev/null
"$CLIPX" eval "$WORK/sl" --threads 1 --logits "$WORK/again.npy" >"$WORK/with" 2>/dev/null
cmp -s "$WORK/plain" "$WORK/with" || fail "eval --logits changed the table"
cmp -s "$WORK/sl-logits.npy" "$WORK/again.npy" || fail "eval --logits: two runs differ"

# ---- refusals ------------------------------------------------------------------------------
printf 'earlier' >"$WORK/keep.npz"
expect_exit 1 "$CLIPX" export "$WORK/nope" --out "$WORK/keep.npz" && expect_one_error_line
expect_grep "$WORK/nope" "$WORK/err" "missing run"
mkdir "$WORK/bad"
cp "$WORK/sl/config.yaml" "$WORK/bad/"
head -c 100 "$WORK/sl/model.ckpt" >"$WORK/bad/model.ckpt"
expect_exit 1 "$CLIPX" export "$WORK/bad" --out "$WORK/keep.npz" && expect_one_error_line
expect_grep "$WORK/bad/model.ckpt" "$WORK/err" "corrupt checkpoint"
[ "$(cat "$WORK/keep.npz")" = earlier ] || fail "a failed export touched the earlier file"
expect_exit 2 "$CLIPX" export "$WORK/sl" && expect_one_error_line
expect_grep '[-][-]out' "$WORK/err" "missing --out"
# A retrained run: crt's classifier is linear on the stage-1 features, so it exports with them;
# DisAlign's has a gate of its own and is refused.
if "$CLIPX" retrain "$WORK/sl" --method crt --set epochs=2 --out "$WORK/crt" --threads 1 --quiet >/dev/null 2>&1 &&
    expect_exit 0 "$CLIPX" export "$WORK/crt" --out "$WORK/crt.npz" &&
    "$NPZCHECK" "$WORK/crt.npz" >"$WORK/crt.members"; then
    grep -q '^retrain\.weight\.npy	<f4	(6, 4)$' "$WORK/crt.members" || fail "crt: retrain.weight (6, 4)"
    grep -q '^retrain\.bias\.npy	<f4	(6,)$' "$WORK/crt.members" || fail "crt: retrain.bias (6,)"
    grep -q '^image\.fc0\.weight\.npy	<f4	(16, 8)$' "$WORK/crt.members" || fail "crt: stage-1 tensors"
    "$NPZCHECK" "$WORK/crt.npz" -p config.json.npy >"$WORK/crt.json"
    [ "$("$JSONQ" "$WORK/crt.json" .eval.mode .retrain.method | tr '\n' ' ')" = "retrained crt " ] ||
        fail "crt: config.json eval.mode and retrain.method"
    expect_exit 0 "$CLIPX" eval "$WORK/crt" --logits "$WORK/crt-logits.npy" --threads 1
else
    fail "retrain crt and its export"
fi
if "$CLIPX" retrain "$WORK/sl" --method disalign --set epochs=1 --out "$WORK/dis" --threads 1 --quiet >/dev/null 2>&1; then
    expect_exit 2 "$CLIPX" export "$WORK/dis" --out "$WORK/dis.npz" && expect_one_error_line
    expect_grep 'disalign.*gate.*export the stage-1 run' "$WORK/err" "gated retrained run"
    [ -e "$WORK/dis.npz" ] && fail "a refused export wrote its file"
else
    fail "retrain disalign"
fi
ls -a "$WORK" | grep -q '^\.keep\.npz\.' && fail "a temporary file was left behind"

# ---- PyTorch -------------------------------------------------------------------------------
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import torch, numpy' >/dev/null 2>&1; then
    for r in sl clip w2 crt; do
        if ! "$PY" "$TOP_SRCDIR/scripts/clipx_torch.py" "$WORK/$r.npz" \
            --compare "$WORK/$r-logits.npy" --tol 1e-5 >"$WORK/py" 2>&1; then
            fail "$r: clipx_torch.py does not reproduce eval's logits"
            sed 's/^/  | /' "$WORK/py" >&2
        else
            echo "cli_export: $r: $(cat "$WORK/py")"
        fi
    done
    # The other towers and heads: CNN (GELU, LayerNorm, linear head), CNN with a cosine head,
    # ViT with mean pooling, an identity tower with a cosine head, a text head (the CLIP run's
    # class-prompt embeddings), an MLP text tower (bag of words), a non-causal text transformer
    # averaged over SOT..EOT.
    tiny="--data $WORK/tiny.yaml --batch 2 --epochs 3 --threads 1 --quiet"
    synth="--data $D/dataset.yaml --epochs 2 --batch 32 --threads 1 --quiet"
    set -- \
        cnn "$tiny --objective sl --set model.image.type=cnn --set model.image.channels=[3] --set model.image.hidden=[5] --set model.image.dim=4 --set model.image.act=gelu --set model.image.norm=layernorm" \
        cnncos "$tiny --objective sl --set model.image.type=cnn --set model.image.channels=[2] --set model.image.hidden=[] --set model.image.dim=4 --set head=cosine" \
        vitmean "$tiny --objective sl --set model.image.type=vit --set model.image.layers=1 --set model.image.heads=2 --set model.image.width=8 --set model.image.dim=8 --set model.image.patch=1 --set model.image.pool=mean" \
        ident "$synth --objective sl --set model.image.type=identity --set model.image.dim=8 --set head=cosine" \
        txthead "$synth --objective sl --set model.image.hidden=[16] --set model.image.dim=8 --set head=text --set head_from=$WORK/clip" \
        bow "$synth --objective clip --set model.image.hidden=[16] --set model.image.dim=8 --set model.image.norm=layernorm --set model.image.act=gelu --set model.text.type=mlp --set model.text.hidden=[12] --set model.text.dim=8" \
        txtmean "$tiny --objective clip --set model.image.type=linear --set model.image.dim=8 --set model.text.type=transformer --set model.text.layers=1 --set model.text.heads=2 --set model.text.dim=8 --set model.text.causal=false --set model.text.pool=mean"
    while [ $# -ge 2 ]; do
        r=$1
        # shellcheck disable=SC2086 # the options are words
        if "$CLIPX" train $2 --out "$WORK/$r" >/dev/null 2>&1 &&
            "$CLIPX" export "$WORK/$r" --out "$WORK/$r.npz" 2>/dev/null &&
            "$CLIPX" eval "$WORK/$r" --logits "$WORK/$r-logits.npy" --threads 1 >/dev/null 2>&1; then
            "$PY" "$TOP_SRCDIR/scripts/clipx_torch.py" "$WORK/$r.npz" \
                --compare "$WORK/$r-logits.npy" >"$WORK/py" 2>&1 ||
                { fail "$r: clipx_torch.py does not reproduce eval's logits"; sed 's/^/  | /' "$WORK/py" >&2; }
        else
            fail "$r: train, export or eval failed"
        fi
        shift 2
    done
    # The same without python3-yaml: the script's own reader of the dataset YAML.
    "$PY" -c 'import runpy, sys; sys.modules["yaml"] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")' \
        "$TOP_SRCDIR/scripts/clipx_torch.py" "$WORK/w2.npz" --compare "$WORK/w2-logits.npy" >"$WORK/py" 2>&1 ||
        { fail "w2: clipx_torch.py without yaml"; sed 's/^/  | /' "$WORK/py" >&2; }
    # The comparison fails when an op is wrong: a LayerNorm eps of 1e-6 instead of 1e-5.
    sed 's/^LN_EPS = 1e-5$/LN_EPS = 1e-6/' "$TOP_SRCDIR/scripts/clipx_torch.py" >"$WORK/wrong.py"
    cmp -s "$TOP_SRCDIR/scripts/clipx_torch.py" "$WORK/wrong.py" && fail "could not plant the wrong eps"
    "$PY" "$WORK/wrong.py" "$WORK/w2.npz" --compare "$WORK/w2-logits.npy" >/dev/null 2>&1 &&
        fail "clipx_torch.py with a wrong LayerNorm eps still matched eval's logits"
    # And when the logits are not the run's.
    "$PY" "$TOP_SRCDIR/scripts/clipx_torch.py" "$WORK/clip.npz" --compare "$WORK/sl-logits.npy" \
        >/dev/null 2>&1 && fail "clipx_torch.py matched another run's logits"
else
    echo "cli_export: /usr/bin/python3 cannot import torch and numpy: the PyTorch comparison is skipped"
fi

finish
