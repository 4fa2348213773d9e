#!/bin/sh
# clipx retrain (cRT, LWS, tau-norm, DisAlign, MARC, the MLP decoder on a run's frozen features), the
# validation split (synth --val-per-class, val: in the YAML, held-out training rows) and
# clipx eval --posthoc: run folders, eval and compare of RUN2, resume after SIGKILL
# byte-identical, cached features, refusals (a key of another method, a run without the
# needed head, no validation data), the JSON's retrain and posthoc objects.
. "$TOP_SRCDIR/tests/lib.sh"

JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"
[ -x "$JSONQ" ] || { echo "cli_retrain: $JSONQ missing (make tests/jsonq)" >&2; exit 1; }
MAN="$TOP_SRCDIR/doc/clipx.1"

# ---- help and man page ---------------------------------------------------------------------
if expect_exit 0 "$CLIPX" retrain --help; then
    expect_grep 'crt[|]lws[|]tau-norm[|]disalign[|]marc[|]decoder' "$WORK/out" "retrain --help"
    sed -n '/^\.SS retrain$/,/^\.S[SH] /p' "$MAN" | awk '/^\.TP/ {getline; print $2}' |
        sed 's/\\-/-/g' >"$WORK/man"
    for opt in $(grep -Eo '^  --[a-z0-9-]+' "$WORK/out"); do
        case $opt in --threads | --quiet | --progress) continue ;; esac
        grep -qx -- "$opt" "$WORK/man" || fail "doc/clipx.1 section retrain does not document $opt"
    done
fi
expect_exit 0 "$CLIPX" --help && expect_grep '^  retrain ' "$WORK/out" "clipx --help"
expect_exit 0 "$CLIPX" eval --help && expect_grep '^  --posthoc M\[=TAU\]' "$WORK/out" "eval --help"

# ---- data and stage-1 runs -----------------------------------------------------------------
# Uniform 300 per class, of which a long-tailed subset keeps 200 .. 10: every class has rows
# held out of the subset. A second copy of the data has a val split as well.
D="$WORK/data"
"$CLIPX" synth --out "$D" --classes 6 --superclasses 2 --profile uniform --n 1800 --dim 8 \
    --test-per-class 20 --seed 1 --threads 1 --quiet >/dev/null 2>&1 || fail "synth"
"$CLIPX" synth --out "$WORK/dv" --classes 6 --superclasses 2 --profile uniform --n 1800 --dim 8 \
    --test-per-class 20 --val-per-class 15 --seed 1 --threads 1 --quiet >/dev/null 2>&1 || fail "synth val"
for f in train-features.npy train-labels.npy test-features.npy test-labels.npy classes.txt; do
    cmp -s "$D/$f" "$WORK/dv/$f" || fail "synth --val-per-class changed $f"
done
expect_grep '^val: \{images: val-features.npy, labels: val-labels.npy, captions: val-captions.txt, n: 90, shape: \[8\]\}$' "$WORK/dv/dataset.yaml" "val line"
expect_no_grep '^val:' "$D/dataset.yaml" "no val line"
"$CLIPX" subsample "$D/dataset.yaml" --profile exp --rho 20 --n-max 200 --seed 0 \
    --out "$WORK/lt.subset" --quiet || fail "subsample"
common="--subset $WORK/lt.subset --epochs 3 --batch 32 --set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8 --set optim.lr=0.01 --threads 1 --quiet"
"$CLIPX" train --data "$D/dataset.yaml" $common --objective sl --out "$WORK/sl" >/dev/null 2>&1 || fail "train sl"
"$CLIPX" train --data "$D/dataset.yaml" $common --objective sl --set head=cosine --out "$WORK/cos" >/dev/null 2>&1 || fail "train cosine"
"$CLIPX" train --data "$D/dataset.yaml" $common --objective clip --out "$WORK/clip" >/dev/null 2>&1 || fail "train clip"
"$CLIPX" train --data "$WORK/dv/dataset.yaml" $common --objective sl --out "$WORK/slv" >/dev/null 2>&1 || fail "train sl (val)"
SL="$WORK/sl"

# ---- every method: a run folder that eval and compare read ---------------------------------
for m in crt lws tau-norm disalign marc decoder; do
    extra=""
    [ $m = decoder ] && extra="--set loss=balanced-softmax --set decoder.hidden=[12,10]"
    expect_exit 0 "$CLIPX" retrain "$SL" --method $m --set seed=3 $extra --out "$WORK/$m" --threads 1 --quiet || continue
    for f in config.yaml model.ckpt features.ckpt; do
        [ -s "$WORK/$m/$f" ] || fail "$m: no $f"
    done
    expect_grep "^method: $m\$" "$WORK/$m/config.yaml" "$m config"
    expect_grep "^from: \"$SL\"\$" "$WORK/$m/config.yaml" "$m config"
    if expect_exit 0 "$CLIPX" eval "$WORK/$m" --json --threads 1; then
        [ "$("$JSONQ" "$WORK/out" .retrain.method)" = "$m" ] || fail "$m: eval JSON retrain.method"
        [ "$("$JSONQ" "$WORK/out" .mode)" = head ] || fail "$m: eval mode"
        top1=$("$JSONQ" "$WORK/out" .top1)
        awk -v t="$top1" 'BEGIN { exit !(t > 0 && t <= 1) }' || fail "$m: top1 $top1"
    fi
    expect_exit 0 "$CLIPX" eval "$WORK/$m" --threads 1 &&
        expect_grep ", retrained \($m\) from $SL\$" "$WORK/out" "$m table"
done
[ "$(awk '/^epoch/ {n++} END {print n+0}' "$WORK/crt/log.jsonl")" = 0 ] || true
[ "$(wc -l <"$WORK/crt/log.jsonl")" -eq 10 ] || fail "crt: log.jsonl has $(wc -l <"$WORK/crt/log.jsonl") lines, wanted 10"
[ ! -e "$WORK/tau-norm/log.jsonl" ] || fail "tau-norm trains nothing: no log.jsonl"
if expect_exit 0 "$CLIPX" compare "$SL" "$WORK/crt" "$WORK/marc" --threads 1; then
    expect_grep '^crt +head ' "$WORK/out" "compare row"
    expect_grep '^marc +head ' "$WORK/out" "compare row"
fi
# A fresh identity rebalancing before training is the stage-1 head: LWS scales 1, MARC a 1 b 0
# give the same predictions; one epoch with a tiny learning rate stays there.
expect_exit 0 "$CLIPX" retrain "$SL" --method marc --set epochs=1 --set optim.lr=1e-9 --out "$WORK/marc0" --threads 1 --quiet
"$CLIPX" eval "$SL" --json --threads 1 >"$WORK/a.json" 2>/dev/null
"$CLIPX" eval "$WORK/marc0" --json --threads 1 >"$WORK/b.json" 2>/dev/null
[ "$("$JSONQ" "$WORK/a.json" .top1)" = "$("$JSONQ" "$WORK/b.json" .top1)" ] || fail "marc at identity changes top1"
# tau-norm with tau 0 is the stage-1 head itself.
expect_exit 0 "$CLIPX" retrain "$SL" --method tau-norm --set tau_norm.tau=0 --out "$WORK/tn0" --threads 1 --quiet
"$CLIPX" eval "$WORK/tn0" --json --threads 1 >"$WORK/c.json" 2>/dev/null
[ "$("$JSONQ" "$WORK/a.json" .top1)" = "$("$JSONQ" "$WORK/c.json" .top1)" ] || fail "tau-norm 0 changes top1"
[ "$("$JSONQ" "$WORK/c.json" .retrain.tau)" = 0 ] || fail "tau-norm 0: retrain.tau"
# Same seed and threads: the same bytes; another thread count too (the epochs run on one).
expect_exit 0 "$CLIPX" retrain "$SL" --method crt --set seed=3 --out "$WORK/crt2" --threads 2 --quiet
cmp -s "$WORK/crt/model.ckpt" "$WORK/crt2/model.ckpt" || fail "crt: a rerun differs"
expect_exit 0 "$CLIPX" retrain "$WORK/clip" --method crt --out "$WORK/clip-crt" --threads 1 --quiet
expect_exit 0 "$CLIPX" retrain "$WORK/clip" --method decoder --out "$WORK/clip-dec" --threads 1 --quiet
expect_exit 0 "$CLIPX" eval "$WORK/clip-dec" --threads 1
expect_exit 0 "$CLIPX" retrain "$WORK/cos" --method lws --out "$WORK/cos-lws" --threads 1 --quiet
expect_exit 0 "$CLIPX" eval "$WORK/cos-lws" --threads 1

# ---- prompt tuning (CoOp) of a CLIP run with the transformer text tower ---------------------
# The data with one template, so the zero-shot classifier is the prompt "a photo of a NAME".
cp -r "$D" "$WORK/d1"
echo 'a photo of a {}.' >"$WORK/d1/templates.txt"
tx="--set model.text.type=transformer --set model.text.layers=1 --set model.text.heads=2 --set model.text.max_tokens=12"
"$CLIPX" train --data "$WORK/d1/dataset.yaml" $common $tx --objective clip --out "$WORK/clipt" >/dev/null 2>&1 || fail "train clip (transformer)"
CT="$WORK/clipt"
pt="--set optim.name=adamw --set optim.lr=0.01 --set batch=64 --set seed=2"
if expect_exit 0 "$CLIPX" retrain "$CT" --method prompt $pt --out "$WORK/prompt" --threads 1 --quiet; then
    expect_grep '^method: prompt$' "$WORK/prompt/config.yaml" "prompt config"
    expect_grep '^prompt:$' "$WORK/prompt/config.yaml" "prompt keys recorded"
    if expect_exit 0 "$CLIPX" eval "$WORK/prompt" --json --threads 1; then
        [ "$("$JSONQ" "$WORK/out" .retrain.method)" = prompt ] || fail "prompt: eval JSON retrain.method"
        top1=$("$JSONQ" "$WORK/out" .top1)
        awk -v t="$top1" 'BEGIN { exit !(t > 0 && t <= 1) }' || fail "prompt: top1 $top1"
    fi
    expect_exit 0 "$CLIPX" eval "$WORK/prompt" --threads 1 &&
        expect_grep ", retrained \(prompt\) from $CT\$" "$WORK/out" "prompt table"
    expect_exit 0 "$CLIPX" compare "$CT" "$WORK/prompt" --threads 1 &&
        expect_grep '^prompt +head ' "$WORK/out" "compare row (prompt)"
    [ "$(wc -l <"$WORK/prompt/log.jsonl")" -eq 10 ] || fail "prompt: log.jsonl lines"
    # The loss falls over the epochs.
    awk -F'"loss": ' 'NR == 1 {split($2, a, ","); f = a[1]} END {split($2, b, ","); exit !(b[1] < f)}' \
        "$WORK/prompt/log.jsonl" || fail "prompt: the loss does not fall"
fi
# The context initialised from "a photo of a" and left in place is the zero-shot classifier of
# that template: the same predictions (the class embeddings are the same bits).
expect_exit 0 "$CLIPX" retrain "$CT" --method prompt --set prompt.init="a photo of a" --set epochs=1 \
    --set optim.lr=1e-9 --out "$WORK/prompt0" --threads 1 --quiet
"$CLIPX" eval "$CT" --json --threads 1 >"$WORK/zs.json" 2>/dev/null
"$CLIPX" eval "$WORK/prompt0" --json --threads 1 >"$WORK/p0.json" 2>/dev/null
[ "$("$JSONQ" "$WORK/zs.json" .mode)" = zeroshot ] || fail "clip run's eval mode"
for k in .top1 .classes[0].pred_count .classes[1].pred_count .classes[2].pred_count .classes[3].pred_count .classes[4].pred_count .classes[5].pred_count; do
    [ "$("$JSONQ" "$WORK/zs.json" $k)" = "$("$JSONQ" "$WORK/p0.json" $k)" ] ||
        fail "prompt from 'a photo of a' at rest: $k differs from zero-shot"
done
# A built-in template set is the same prompts as the file: "photo" scores as d1's one template.
cp -r "$WORK/d1" "$WORK/d1b"
rm "$WORK/d1b/templates.txt"
sed -i 's/^templates: .*/templates: photo/' "$WORK/d1b/dataset.yaml"
grep -q '^templates: photo$' "$WORK/d1b/dataset.yaml" || fail "d1b: no templates line to replace"
"$CLIPX" eval "$CT" --data "$WORK/d1b/dataset.yaml" --json --threads 1 >"$WORK/zsb.json" 2>/dev/null ||
    fail "eval with templates: photo"
for k in .top1 .classes[0].pred_count .classes[1].pred_count .classes[2].pred_count; do
    [ "$("$JSONQ" "$WORK/zs.json" $k)" = "$("$JSONQ" "$WORK/zsb.json" $k)" ] ||
        fail "templates: photo: $k differs from the one-template file"
done
sed -i 's/^templates: .*/templates: openai-imagenet/' "$WORK/d1b/dataset.yaml"
expect_exit 0 "$CLIPX" eval "$CT" --data "$WORK/d1b/dataset.yaml" --threads 1
sed -i 's/^templates: .*/templates: openai/' "$WORK/d1b/dataset.yaml"
expect_exit 1 "$CLIPX" eval "$CT" --data "$WORK/d1b/dataset.yaml" --threads 1 &&
    expect_grep "templates 'openai': no such file .*, nor a built-in set \\(openai-imagenet" "$WORK/err" "unknown template set"
# One context per class, any stage-1 loss and sampler; a rerun gives the same bytes.
expect_exit 0 "$CLIPX" retrain "$CT" --method prompt $pt --set prompt.per_class=true \
    --set loss=balanced-softmax --set sampler=class-balanced --set epochs=3 --out "$WORK/prompt-pc" --threads 1 --quiet
expect_exit 0 "$CLIPX" eval "$WORK/prompt-pc" --threads 1
expect_exit 0 "$CLIPX" retrain "$CT" --method prompt $pt --set prompt.per_class=true \
    --set loss=balanced-softmax --set sampler=class-balanced --set epochs=3 --out "$WORK/prompt-pc2" --threads 2 --quiet
cmp -s "$WORK/prompt-pc/model.ckpt" "$WORK/prompt-pc2/model.ckpt" || fail "prompt: a rerun differs"
# Resume after SIGKILL: byte-identical.
CLIPX_TEST_KILL_AT_EPOCH=4 "$CLIPX" retrain "$CT" --method prompt $pt --out "$WORK/kill-prompt" \
    --threads 1 --quiet >/dev/null 2>&1
[ -s "$WORK/kill-prompt/model.ckpt" ] || fail "prompt: killed run has no checkpoint"
cmp -s "$WORK/prompt/model.ckpt" "$WORK/kill-prompt/model.ckpt" && fail "prompt: killed run already finished"
expect_exit 0 "$CLIPX" retrain --resume "$WORK/kill-prompt" --threads 1 --quiet
cmp -s "$WORK/prompt/model.ckpt" "$WORK/kill-prompt/model.ckpt" || fail "prompt: resumed run differs from uninterrupted"
# Refusals: an SL run, a bag-of-words text tower, the init's words, the sequence length, keys.
expect_exit 2 "$CLIPX" retrain "$SL" --method prompt --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'method prompt: .* is an SL run' "$WORK/err" "prompt on SL"
expect_exit 2 "$CLIPX" retrain "$WORK/clip" --method prompt --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'method prompt: .* bag-of-words text tower .*model.text.type: transformer' "$WORK/err" "prompt on bag of words"
expect_exit 2 "$CLIPX" retrain "$CT" --method prompt --set prompt.init="a zebra of a" --out "$WORK/x" &&
    expect_one_error_line && expect_grep "prompt.init: word 2 of 'a zebra of a' is not in the vocabulary" "$WORK/err" "init word"
expect_exit 2 "$CLIPX" retrain "$CT" --method prompt --set prompt.init="a photo" --out "$WORK/x" &&
    expect_one_error_line && expect_grep "prompt.init: 'a photo' has 2 words, prompt.n_ctx is 4" "$WORK/err" "init length"
expect_exit 2 "$CLIPX" retrain "$CT" --method prompt --set prompt.n_ctx=11 --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'prompt.n_ctx: 11 context tokens .* need 14 tokens .*model.text.max_tokens' "$WORK/err" "n_ctx too long"
expect_exit 2 "$CLIPX" retrain "$CT" --method crt --set prompt.n_ctx=2 --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'prompt.n_ctx: not a key of method crt \(it belongs to prompt\)' "$WORK/err" "prompt key on crt"
expect_exit 2 "$CLIPX" retrain "$CT" --method prompt --set decoder.hidden=[4] --out "$WORK/x" && expect_one_error_line
[ ! -e "$WORK/x" ] || fail "a refused prompt retrain left $WORK/x"

# ---- validation data -----------------------------------------------------------------------
expect_exit 0 "$CLIPX" retrain "$SL" --method tau-norm --out "$WORK/tn-held" --threads 1
expect_grep '^retrain: note: validation data: [0-9]+ rows from training rows held out of the run.s subset$' "$WORK/err" "held-out note"
expect_exit 0 "$CLIPX" retrain "$WORK/slv" --method tau-norm --out "$WORK/tn-val" --threads 1
expect_grep '^retrain: note: validation data: 90 rows from the dataset.s val split$' "$WORK/err" "val note"
if expect_exit 0 "$CLIPX" eval "$WORK/slv" --posthoc logit-adjust --json --threads 1; then
    [ "$("$JSONQ" "$WORK/out" .posthoc.method)" = logit-adjust ] || fail "posthoc.method"
    [ "$("$JSONQ" "$WORK/out" .posthoc.tau_from)" = val ] || fail "posthoc.tau_from"
    [ "$("$JSONQ" "$WORK/out" .posthoc.n_val)" = 90 ] || fail "posthoc.n_val"
    expect_grep '^eval: note: posthoc logit-adjust tau [0-9.]+ chosen on 90 validation rows from the dataset.s val split$' "$WORK/err" "eval note"
fi
if expect_exit 0 "$CLIPX" eval "$SL" --posthoc logit-adjust=0.5 --json --threads 1; then
    [ "$("$JSONQ" "$WORK/out" .posthoc.tau)" = 0.5 ] || fail "posthoc.tau given"
    [ "$("$JSONQ" "$WORK/out" .posthoc.tau_from)" = given ] || fail "posthoc.tau_from given"
    [ ! -s "$WORK/err" ] || fail "a given tau needs no note"
fi
# logit-adjust with tau 0 changes nothing; the JSON without --posthoc has no posthoc key.
"$CLIPX" eval "$SL" --posthoc logit-adjust=0 --json --threads 1 >"$WORK/d.json" 2>/dev/null
[ "$("$JSONQ" "$WORK/a.json" .top1)" = "$("$JSONQ" "$WORK/d.json" .top1)" ] || fail "logit-adjust 0 changes top1"
expect_no_grep '"posthoc"|"retrain"' "$WORK/a.json" "plain eval JSON"
expect_exit 0 "$CLIPX" eval "$SL" --posthoc tau-norm --threads 1
expect_grep ', posthoc tau-norm tau [0-9.]+$' "$WORK/out" "posthoc table"
# Without a val split and with every training row in the run: refused (status 2).
"$CLIPX" train --data "$D/dataset.yaml" --epochs 1 --batch 64 --set model.image.hidden=[16] \
    --set model.image.dim=8 --threads 1 --quiet --out "$WORK/full" >/dev/null 2>&1 || fail "train full"
expect_exit 2 "$CLIPX" retrain "$WORK/full" --method tau-norm --out "$WORK/tn-none" --threads 1 &&
    expect_one_error_line && expect_grep 'no subset' "$WORK/err" "no-val refusal"
[ ! -e "$WORK/tn-none" ] || fail "a refused retrain left a folder"
expect_exit 2 "$CLIPX" eval "$WORK/full" --posthoc logit-adjust --threads 1 && expect_one_error_line
expect_exit 0 "$CLIPX" retrain "$WORK/full" --method tau-norm --set tau_norm.tau=1 --out "$WORK/tn-given" --threads 1 --quiet

# ---- resume after SIGKILL: byte-identical ---------------------------------------------------
for m in crt disalign decoder; do
    extra=""
    [ $m = decoder ] && extra="--set loss=balanced-softmax --set decoder.hidden=[12,10]"
    CLIPX_TEST_KILL_AT_EPOCH=4 "$CLIPX" retrain "$SL" --method $m --set seed=3 $extra --out "$WORK/kill-$m" \
        --threads 1 --quiet >/dev/null 2>&1
    [ -s "$WORK/kill-$m/model.ckpt" ] || fail "$m: killed run has no checkpoint"
    cmp -s "$WORK/$m/model.ckpt" "$WORK/kill-$m/model.ckpt" && fail "$m: killed run already finished"
    expect_exit 0 "$CLIPX" retrain --resume "$WORK/kill-$m" --threads 1 --quiet
    cmp -s "$WORK/$m/model.ckpt" "$WORK/kill-$m/model.ckpt" || fail "$m: resumed run differs from uninterrupted"
    cut -d, -f1-3 "$WORK/$m/log.jsonl" >"$WORK/la"
    cut -d, -f1-3 "$WORK/kill-$m/log.jsonl" >"$WORK/lb"
    cmp -s "$WORK/la" "$WORK/lb" || fail "$m: resumed log differs (epoch, loss, lr)"
done
cmp -s "$WORK/crt/features.ckpt" "$WORK/kill-crt/features.ckpt" || fail "cached features differ"
# A finished run is left as it is; the features are not recomputed.
cp "$WORK/crt/model.ckpt" "$WORK/crt.ckpt"
expect_exit 0 "$CLIPX" retrain --resume "$WORK/crt" --threads 1
cmp -s "$WORK/crt/model.ckpt" "$WORK/crt.ckpt" || fail "resume of a finished run changed it"
expect_grep 'cached' "$WORK/err" "resume reuses the cache"

# ---- refusals --------------------------------------------------------------------------------
expect_exit 2 "$CLIPX" retrain "$SL" --method crt --set tau_norm.tau=0.5 --out "$WORK/x" &&
    expect_one_error_line && expect_grep '^clipx: retrain: --set tau_norm.tau: not a key of method crt \(it belongs to tau-norm\)$' "$WORK/err" "key refusal"
expect_exit 2 "$CLIPX" retrain "$SL" --method tau-norm --set grw.p=1 --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'grw.p: not a key of method tau-norm' "$WORK/err" "key refusal"
expect_exit 2 "$CLIPX" retrain "$SL" --method lws --set bogus=1 --out "$WORK/x" && expect_one_error_line
expect_exit 2 "$CLIPX" retrain "$SL" --method tau-norm --set tau_norm.tau=3 --out "$WORK/x" && expect_one_error_line
expect_exit 2 "$CLIPX" retrain "$WORK/clip" --method lws --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'method lws: .* CLIP run' "$WORK/err" "head refusal"
expect_exit 2 "$CLIPX" retrain "$WORK/cos" --method tau-norm --set tau_norm.tau=1 --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'tau-norm needs head: linear' "$WORK/err" "cosine refusal"
expect_exit 2 "$CLIPX" retrain "$SL" --method decoder --set loss=ldam --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'ldam needs a cosine head' "$WORK/err" "ldam refusal"
expect_exit 2 "$CLIPX" retrain "$SL" --method crt --set loss=focal --out "$WORK/x" &&
    expect_one_error_line && expect_grep 'loss: not a key of method crt \(it belongs to decoder, prompt\)' "$WORK/err" "loss refusal"
expect_exit 2 "$CLIPX" retrain "$SL" --out "$WORK/x" && expect_one_error_line
expect_exit 2 "$CLIPX" retrain "$SL" --method crt && expect_one_error_line
expect_exit 2 "$CLIPX" retrain "$SL" --method crt --out "$WORK/crt" && expect_one_error_line
expect_exit 0 "$CLIPX" retrain "$SL" --method crt --set epochs=1 --out "$WORK/crt2" --force --quiet
expect_exit 2 "$CLIPX" retrain --resume "$WORK/crt" --method crt && expect_one_error_line
expect_exit 1 "$CLIPX" retrain --resume "$WORK/none" && expect_one_error_line
expect_exit 1 "$CLIPX" retrain "$WORK/none" --method crt --out "$WORK/x" && expect_one_error_line
expect_exit 2 "$CLIPX" retrain "$WORK/crt" --method crt --out "$WORK/x" && expect_one_error_line
[ ! -e "$WORK/x" ] || fail "a refused retrain left $WORK/x"
expect_exit 2 "$CLIPX" eval "$WORK/crt" --mode knn && expect_one_error_line &&
    expect_grep '^clipx: eval: --mode knn: ' "$WORK/err" "mode refusal"
expect_exit 2 "$CLIPX" eval "$WORK/disalign" --posthoc tau-norm=1 && expect_one_error_line
# Post-hoc adjustment of retrained classifiers, gated or decoded ones included, tau chosen on
# validation features transformed like the test features.
for m in crt disalign decoder; do
    expect_exit 0 "$CLIPX" eval "$WORK/$m" --posthoc logit-adjust --json --threads 1 &&
        [ "$("$JSONQ" "$WORK/out" .posthoc.tau_from)" = train-heldout ] || fail "$m: posthoc on a retrained run"
done
expect_exit 0 "$CLIPX" eval "$WORK/decoder" --posthoc logit-adjust=0 --json --threads 1 &&
    [ "$("$JSONQ" "$WORK/out" .top1)" = "$("$CLIPX" eval "$WORK/decoder" --json --threads 1 | "$JSONQ" - .top1)" ] ||
    fail "decoder: logit-adjust 0 changes top1"
expect_exit 2 "$CLIPX" eval "$SL" --posthoc nope && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$SL" --posthoc tau-norm=-1 && expect_one_error_line
expect_exit 2 "$CLIPX" eval "$WORK/cos" --posthoc tau-norm=1 && expect_one_error_line
expect_exit 2 "$CLIPX" embed "$WORK/crt" --out "$WORK/e.npy" && expect_one_error_line &&
    expect_grep 'is a retrained run' "$WORK/err" "embed refusal"
# A checkpoint of another method than the configuration's, a corrupt cache: status 1.
cp -r "$WORK/crt" "$WORK/mix"
sed -i 's/^method: crt$/method: lws/' "$WORK/mix/config.yaml"
expect_exit 1 "$CLIPX" eval "$WORK/mix" && expect_one_error_line
expect_exit 1 "$CLIPX" retrain --resume "$WORK/mix" && expect_one_error_line
head -c 200 "$WORK/crt/features.ckpt" >"$WORK/kill-crt/features.ckpt"
rm "$WORK/kill-crt/model.ckpt"
expect_exit 1 "$CLIPX" retrain --resume "$WORK/kill-crt" && expect_one_error_line
rm "$WORK/lws/model.ckpt"
expect_exit 1 "$CLIPX" eval "$WORK/lws" && expect_one_error_line

finish
