#!/bin/sh
# clipx train: run folders, reproducibility, resume after SIGKILL, divergence, refusals.
. "$TOP_SRCDIR/tests/lib.sh"
JSONQ="${TOP_BUILDDIR:-.}/tests/jsonq"

DATA=$WORK/s5
"$CLIPX" synth --out "$DATA" --classes 5 --superclasses 2 --n 600 --dim 16 --test-per-class 20 \
    --seed 1 --quiet || { fail "synth failed"; finish; }
OTHER=$WORK/s6
"$CLIPX" synth --out "$OTHER" --classes 6 --superclasses 2 --n 300 --dim 16 --test-per-class 5 \
    --seed 2 --quiet || fail "synth (other) failed"

small="--data $DATA/dataset.yaml --batch 64 --set model.image.hidden=[32] --set model.image.dim=16 --set model.text.dim=8 --threads 2 --quiet"

# A supervised run: the three files, one log line per epoch with the contract's keys.
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 3 --out "$WORK/sl"
for f in config.yaml model.ckpt log.jsonl; do
    [ -s "$WORK/sl/$f" ] || fail "sl run lacks $f"
done
[ "$(wc -l <"$WORK/sl/log.jsonl")" -eq 3 ] || fail "log.jsonl does not have 3 lines"
for key in epoch step loss lr seconds samples_per_s; do
    expect_grep "\"$key\":" "$WORK/sl/log.jsonl" "log.jsonl"
done
expect_grep '^objective: "?sl' "$WORK/sl/config.yaml" "config.yaml"

# Same seed and threads: the same bytes. Another seed: other bytes.
# A checkpoint that cannot be written (the file-size limit, with SIGXFSZ ignored so the write
# fails instead of killing) leaves no log line for its epoch: the log never gets ahead of it.
expect_exit 1 sh -c 'trap "" XFSZ; ulimit -f 4; exec "$@"' sh "$CLIPX" train $small --objective sl --epochs 2 --out "$WORK/sl-full" &&
    expect_one_error_line && expect_grep 'model.ckpt' "$WORK/err" "failed checkpoint write"
[ -f "$WORK/sl-full/log.jsonl" ] && [ ! -s "$WORK/sl-full/log.jsonl" ] || fail "log.jsonl records an epoch whose checkpoint was never written"
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 3 --out "$WORK/sl2"
cmp -s "$WORK/sl/model.ckpt" "$WORK/sl2/model.ckpt" || fail "same seed gave different checkpoints"
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 3 --seed 7 --out "$WORK/sl3"
cmp -s "$WORK/sl/model.ckpt" "$WORK/sl3/model.ckpt" && fail "another seed gave the same checkpoint"

# A folder that holds a run is refused without --force, and left intact.
cp "$WORK/sl/model.ckpt" "$WORK/before.ckpt"
expect_exit 2 "$CLIPX" train $small --objective sl --epochs 3 --out "$WORK/sl" && expect_one_error_line
expect_grep "^clipx: train: $WORK/sl already holds a run; continue it with --resume $WORK/sl, or start over with --force\$" "$WORK/err" "refusal"
cmp -s "$WORK/sl/model.ckpt" "$WORK/before.ckpt" || fail "refused run changed the old checkpoint"
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 3 --force --out "$WORK/sl"

# Two trains into one folder: the second (new, --force or --resume) is refused while the first
# holds the folder's lock, and writes nothing; the first finishes as if alone. The lock is a
# flock, so after kill -9 nothing is left holding it and --resume proceeds.
wait_for_file() { # wait_for_file FILE PID: until FILE exists (0) or PID ended (1)
    while [ ! -s "$1" ]; do kill -0 "$2" 2>/dev/null || return 1; sleep 0.05; done
}
busy=$WORK/busy
"$CLIPX" train $small --threads 1 --objective sl --epochs 5000 --out "$busy" >/dev/null 2>&1 &
busy_pid=$!
if wait_for_file "$busy/config.yaml" $busy_pid; then
    cp "$busy/config.yaml" "$WORK/busy-config.yaml"
    for how in "--out $busy" "--force --out $busy"; do
        expect_exit 1 "$CLIPX" train $small --objective sl --epochs 3 $how && expect_one_error_line
        expect_grep "^clipx: train: $busy: another clipx is training into this folder\$" "$WORK/err" "second train ($how)"
    done
    expect_exit 1 "$CLIPX" train --resume "$busy" --quiet && expect_one_error_line
    expect_grep "^clipx: train: $busy: another clipx is training into this folder\$" "$WORK/err" "second train (--resume)"
    kill -0 $busy_pid 2>/dev/null || fail "the first train ended before the second ones ran (too fast a machine?)"
    wait $busy_pid || fail "the first train failed beside the refused ones"
    cmp -s "$busy/config.yaml" "$WORK/busy-config.yaml" || fail "a refused train rewrote config.yaml"
    [ "$(wc -l <"$busy/log.jsonl")" -eq 5000 ] || fail "the first train's log lacks epochs: $(wc -l <"$busy/log.jsonl")"
    [ "$(ls -A "$busy" | tr '\n' ' ')" = ".lock config.yaml log.jsonl model.ckpt " ] ||
        fail "the run folder holds: $(ls -A "$busy" | tr '\n' ' ')"
else
    fail "the first train ended before writing config.yaml"
fi
killed=$WORK/killed
"$CLIPX" train $small --threads 1 --objective sl --epochs 2000 --out "$killed" >/dev/null 2>&1 &
killed_pid=$!
if wait_for_file "$killed/model.ckpt" $killed_pid; then
    kill -9 $killed_pid
    wait $killed_pid 2>/dev/null
    [ "$(wc -l <"$killed/log.jsonl")" -lt 2000 ] || fail "the train to kill had finished already"
    # What a kill between an atomic write's link and rename leaves (lib/base/afile.c): the
    # resume, holding the lock, removes it; another file's look-alike stays.
    echo half >"$killed/.model.ckpt.99999.0"
    echo half >"$killed/.log.jsonl.Ab12Cd"
    echo mine >"$killed/.notes.1"
    expect_exit 0 "$CLIPX" train --resume "$killed" --quiet
    [ "$(ls -A "$killed" | tr '\n' ' ')" = ".lock .notes.1 config.yaml log.jsonl model.ckpt " ] ||
        fail "after the resume the run folder holds: $(ls -A "$killed" | tr '\n' ' ')"
    [ "$(wc -l <"$killed/log.jsonl")" -eq 2000 ] || fail "the resume after kill -9 did not finish the run"
else
    fail "the train to kill ended before its first checkpoint"
fi

# Killed in the middle of an epoch (SIGKILL at step 13 of 27, between checkpoints every 4
# steps), then resumed: the same final checkpoint and log history as an uninterrupted run.
# A tiny transformer text tower (tx) too; an image tower copied from the SL run and frozen,
# under SL (fsl: its features cached once, a head on top) and CLIP (fclip); and an identity
# image tower (id: the inputs are the features, a text tower learns to match them).
tx="--set model.text.type=transformer --set model.text.layers=1 --set model.text.heads=2 --set model.text.max_tokens=8"
frozen="--set model.image.init=$WORK/sl --set model.image.freeze=true"
for objective in sl clip tx fsl fclip id; do
    ref=$WORK/ref-$objective
    run=$WORK/kill-$objective
    obj=$objective extra=""
    [ "$objective" = tx ] && obj=clip extra=$tx
    [ "$objective" = fsl ] && obj=sl extra=$frozen
    [ "$objective" = fclip ] && obj=clip extra=$frozen
    [ "$objective" = id ] && obj=clip extra="--set model.image.type=identity"
    expect_exit 0 "$CLIPX" train $small $extra --objective $obj --epochs 3 --set ckpt.every=4 --out "$ref"
    CLIPX_TEST_KILL_AT_STEP=13 "$CLIPX" train $small $extra --objective $obj --epochs 3 \
        --set ckpt.every=4 --out "$run" >/dev/null 2>&1
    status=$?
    [ $status -ne 0 ] || fail "$objective: the run was not killed"
    [ -s "$run/model.ckpt" ] || fail "$objective: no checkpoint before the kill"
    cmp -s "$ref/model.ckpt" "$run/model.ckpt" && fail "$objective: the killed run had already finished"
    expect_exit 0 "$CLIPX" train --resume "$run" --quiet
    cmp -s "$ref/model.ckpt" "$run/model.ckpt" || fail "$objective: resumed run differs from uninterrupted"
    cut -d, -f1-4 "$ref/log.jsonl" >"$WORK/a"
    cut -d, -f1-4 "$run/log.jsonl" >"$WORK/b"
    cmp -s "$WORK/a" "$WORK/b" || fail "$objective: resumed log differs (epoch, step, loss, lr)"
done
# A resumed run takes the tower from its checkpoint: the source run may be gone by then.
CLIPX_TEST_KILL_AT_STEP=13 "$CLIPX" train $small $frozen --objective sl --epochs 3 \
    --set ckpt.every=4 --out "$WORK/kill-fsl2" >/dev/null 2>&1 && fail "fsl2: the run was not killed"
mv "$WORK/sl" "$WORK/sl-moved"
expect_exit 0 "$CLIPX" train --resume "$WORK/kill-fsl2" --quiet
cmp -s "$WORK/ref-fsl/model.ckpt" "$WORK/kill-fsl2/model.ckpt" || fail "fsl2: resumed without its source run, it differs"
mv "$WORK/sl-moved" "$WORK/sl"
# The frozen tower is the SL run's, bit for bit: the same features.
expect_exit 0 "$CLIPX" embed "$WORK/sl" --out "$WORK/sl-feat.npy" --threads 2
expect_exit 0 "$CLIPX" embed "$WORK/ref-fsl" --out "$WORK/fsl-feat.npy" --threads 2
cmp -s "$WORK/sl-feat.npy" "$WORK/fsl-feat.npy" || fail "the frozen tower's features differ from its source run's"
expect_grep '^    init: "?'"$WORK"'/sl"?$' "$WORK/ref-fsl/config.yaml" "config.yaml records model.image.init"
# Another tower than the source run's: exit 2 naming the key and the mismatch, no folder.
expect_exit 2 "$CLIPX" train $small --set model.image.hidden=[8] $frozen --epochs 1 --out "$WORK/badinit" &&
    expect_one_error_line
expect_grep "^clipx: train: model\.image\.init: $WORK/sl holds image\.fc0\.weight of shape \(32, 16\), this run's is \(8, 16\)" "$WORK/err"
expect_exit 2 "$CLIPX" train $small --set model.image.type=linear $frozen --epochs 1 --out "$WORK/badinit" &&
    expect_one_error_line
expect_grep "model\.image\.init: $WORK/sl has a mlp image tower, this run a linear one" "$WORK/err"
[ -e "$WORK/badinit" ] && fail "a refused model.image.init created the run folder"
# A ViT image tower on image-shaped data (the tiny IDX set, 4 x 3 images): killed mid-run
# (step 9 of 18, checkpoints every 4) and resumed gives the uninterrupted run's bytes.
tiny="--data $TOP_SRCDIR/tests/fixtures/data/tiny.yaml --objective clip --batch 2 --epochs 6 --threads 1 --quiet"
vit="--set model.image.type=vit --set model.image.layers=1 --set model.image.heads=2 --set model.image.width=8 --set model.image.dim=8 --set model.text.dim=8"
expect_exit 0 "$CLIPX" train $tiny $vit --set model.image.patch=1 --set ckpt.every=4 --out "$WORK/ref-vit"
CLIPX_TEST_KILL_AT_STEP=9 "$CLIPX" train $tiny $vit --set model.image.patch=1 --set ckpt.every=4 \
    --out "$WORK/kill-vit" >/dev/null 2>&1 && fail "vit: the run was not killed"
[ -s "$WORK/kill-vit/model.ckpt" ] || fail "vit: no checkpoint before the kill"
cmp -s "$WORK/ref-vit/model.ckpt" "$WORK/kill-vit/model.ckpt" && fail "vit: the killed run had already finished"
expect_exit 0 "$CLIPX" train --resume "$WORK/kill-vit" --quiet
cmp -s "$WORK/ref-vit/model.ckpt" "$WORK/kill-vit/model.ckpt" || fail "vit: resumed run differs from uninterrupted"
# A patch that does not divide the image is a usage error naming the key, before any output.
expect_exit 2 "$CLIPX" train $tiny $vit --set model.image.patch=2 --out "$WORK/badpatch" && expect_one_error_line
expect_grep 'model.image.patch' "$WORK/err" "patch refusal"
[ -e "$WORK/badpatch" ] && fail "a refused ViT run created its folder"

# Resuming a finished run leaves it as it is.
cp "$WORK/ref-sl/model.ckpt" "$WORK/before.ckpt"
expect_exit 0 "$CLIPX" train --resume "$WORK/ref-sl" --quiet
cmp -s "$WORK/ref-sl/model.ckpt" "$WORK/before.ckpt" || fail "resuming a finished run changed it"
expect_exit 2 "$CLIPX" train --resume "$WORK/ref-sl" --epochs 4 && expect_one_error_line
expect_exit 1 "$CLIPX" train --resume "$WORK/no-such-run" && expect_one_error_line

# Divergence: a huge learning rate makes the loss non-finite; exit 1 naming the step, and the
# checkpoint of the last good step stays.
expect_exit 1 "$CLIPX" train $small --objective sl --epochs 3 --set optim.lr=1e30 \
    --set optim.schedule=constant --set ckpt.every=1 --out "$WORK/nan" && expect_one_error_line
expect_grep 'step [0-9]+.*(NaN|infinite)' "$WORK/err" "divergence error"
expect_grep 'checkpoint of step [0-9]+ is kept' "$WORK/err" "divergence error"
[ -s "$WORK/nan/model.ckpt" ] || fail "divergence lost the last good checkpoint"

# Bad configurations are refused before anything is written, with exit 2.
refuse() {
    what=$1
    shift
    expect_exit 2 "$CLIPX" train $small "$@" --out "$WORK/refused" && expect_one_error_line
    expect_grep "$what" "$WORK/err" "refusal"
    [ -e "$WORK/refused" ] && fail "a refused run created its folder ($*)"
    rm -rf "$WORK/refused"
}
refuse "objective" --objective regression
refuse "vocab.k" --objective sl --set vocab.k=6
refuse "no-such-key" --set no-such-key=1
refuse "^clipx: train: --set no-such-key=1: unknown key" --set no-such-key=1
expect_exit 2 "$CLIPX" train --objective sl --out "$WORK/refused" && expect_one_error_line &&
    expect_grep '^clipx: train: no dataset: set data in the config, --data or --set data=FILE$' "$WORK/err"
[ -e "$WORK/refused" ] && fail "a run without a dataset created its folder"
refuse "head_from" --objective sl --set head=text
refuse "another class list" --objective sl --set head=text --set head_from="$WORK/ref-clip" \
    --data "$OTHER/dataset.yaml"
refuse "not a CLIP run" --objective sl --set head=text --set head_from="$WORK/ref-sl"
refuse "ldam" --objective sl --loss ldam
# A text tower needs words: a dataset without class names is refused; one without captions
# trains CLIP on prompts made from its templates (the built-in ones when it names none).
grep -v '^classes:' "$DATA/dataset.yaml" >"$DATA/nonames.yaml"
grep -v '^templates:' "$DATA/dataset.yaml" | sed 's/, captions: [a-z-]*[.]txt//' >"$DATA/nocaps.yaml"
grep -q 'captions\|templates' "$DATA/nocaps.yaml" && fail "nocaps.yaml still names captions or templates"
expect_exit 2 "$CLIPX" train --data "$DATA/nonames.yaml" --objective clip --batch 64 --quiet \
    --out "$WORK/refused" && expect_one_error_line
expect_grep "no 'classes' file" "$WORK/err" "dataset without class names"
[ -e "$WORK/refused" ] && fail "a refused run created its folder (no class names)"
expect_exit 0 "$CLIPX" train --data "$DATA/nocaps.yaml" --objective clip --batch 64 --epochs 1 \
    --set model.image.hidden=[32] --set model.image.dim=16 --set model.text.dim=8 --quiet \
    --out "$WORK/nocaps"
expect_exit 1 "$CLIPX" train --data "$WORK/missing.yaml" --out "$WORK/refused" --quiet && expect_one_error_line
[ -e "$WORK/refused" ] && fail "a failed run created its folder"

# Runs that build on a CLIP run: a frozen text head of the same class list, a text tower
# initialised from it (frozen), both train.
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 1 --set head=text \
    --set head_from="$WORK/ref-clip" --out "$WORK/texthead"
expect_exit 0 "$CLIPX" train $small --objective clip --epochs 1 --set model.text.init="$WORK/ref-clip" \
    --set model.text.freeze=true --out "$WORK/textinit"
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 1 --loss ldam --set head=cosine \
    --set vocab.k=3 --set sampler=class-balanced --out "$WORK/ldam"

# vocab.freqs: the training counts written as a frequency file draw the same classes (the same
# bytes); other counts draw others; it needs vocab.k, and every class in the file.
"$CLIPX" stats "$DATA/dataset.yaml" --json >"$WORK/vstats.json" 2>/dev/null || fail "stats"
nc=$(wc -l <"$DATA/classes.txt")
: >"$WORK/vf-same"
: >"$WORK/vf-other"
i=0
for name in $(cut -d'|' -f1 "$DATA/classes.txt"); do
    n=$("$JSONQ" "$WORK/vstats.json" ".counts[$i]" 2>/dev/null || echo 0)
    printf '%s\t%s\n' "$name" "$n" >>"$WORK/vf-same"
    printf '%s\t%s\n' "$name" "$(( (i * 37) % 11 + 1 ))" >>"$WORK/vf-other"
    i=$((i + 1))
done
[ "$i" -eq "$nc" ] || fail "vocab.freqs: the class list has names with spaces"
vk="--objective sl --epochs 1 --set vocab.k=4 --batch 8 --threads 1" # small batches: draws happen
expect_exit 0 "$CLIPX" train $small $vk --out "$WORK/vk0"
expect_exit 0 "$CLIPX" train $small $vk --set vocab.freqs="$WORK/vf-same" --out "$WORK/vk1"
expect_exit 0 "$CLIPX" train $small $vk --set vocab.freqs="$WORK/vf-other" --out "$WORK/vk2"
for r in vk0 vk1 vk2; do # the weights as eval sees them: the JSON without the run's name
    "$CLIPX" eval "$WORK/$r" --json --threads 1 2>/dev/null | grep -v '"run"' >"$WORK/$r.json"
done
[ -s "$WORK/vk0.json" ] || fail "vocab.freqs: eval of the runs"
cmp -s "$WORK/vk0.json" "$WORK/vk1.json" || fail "vocab.freqs of the training counts changed the run"
cmp -s "$WORK/vk0.json" "$WORK/vk2.json" && fail "vocab.freqs of other counts changed nothing"
expect_grep "^  freqs: \"$WORK/vf-other\"\$" "$WORK/vk2/config.yaml" "vocab.freqs recorded"
expect_no_grep "freqs" "$WORK/vk0/config.yaml" "config.yaml without vocab.freqs"
refuse "vocab.freqs weighs the classes vocab.k draws" --objective sl --set vocab.freqs="$WORK/vf-same"
head -n 2 "$WORK/vf-same" >"$WORK/vf-short"
expect_exit 1 "$CLIPX" train $small $vk --set vocab.freqs="$WORK/vf-short" --out "$WORK/vk3" &&
    expect_one_error_line && expect_grep "vocab.freqs: .*vf-short: class '.*' is missing" "$WORK/err" "vocab.freqs short"

# Memory: a run that would not fit is refused with the estimate before its buffers are written
# and before its folder exists; --max-memory sets the limit.
refuse "the run needs about [0-9.]+ [KMG]iB .*more than 10 KiB \(--max-memory\)" --objective sl --max-memory 10K
refuse "the run needs about [0-9.]+ GiB .*of memory available" --objective sl \
    --set model.image.hidden=[65536,65536,65536]
refuse "--max-memory: '12Q' is not a size" --objective sl --max-memory 12Q
expect_exit 0 "$CLIPX" train $small --objective sl --epochs 1 --max-memory 4G --out "$WORK/mem4g"

# A NaN in the features is named with its file and record at load time, before any training.
cp -r "$DATA" "$WORK/nandata"
npy=$WORK/nandata/train-features.npy
hlen=$(od -An -tu2 -j8 -N2 "$npy" | tr -d ' ')
printf '\000\000\300\177' | dd of="$npy" bs=1 seek=$((10 + hlen + 4 * (17 * 16 + 3))) conv=notrunc 2>/dev/null
expect_exit 1 "$CLIPX" train $small --data "$WORK/nandata/dataset.yaml" --objective sl --out "$WORK/nanrun" &&
    expect_one_error_line
expect_grep 'train-features.npy: record 17, value 3: NaN' "$WORK/err" "NaN feature"
[ -e "$WORK/nanrun" ] && fail "a run on NaN data created its folder"

# The CNN tower on image-shaped data (a tiny IDX set of 4x3 images): trains, reproducibly; on
# vector data it is refused with a hint.
tiny="--data $TOP_SRCDIR/tests/fixtures/data/tiny.yaml --batch 3 --epochs 2 --set model.image.type=cnn --set model.image.channels=[2] --set model.image.hidden=[] --set model.image.dim=4 --threads 2 --quiet"
expect_exit 0 "$CLIPX" train $tiny --objective sl --out "$WORK/cnn1"
expect_exit 0 "$CLIPX" train $tiny --objective sl --out "$WORK/cnn2"
cmp -s "$WORK/cnn1/model.ckpt" "$WORK/cnn2/model.ckpt" || fail "CNN runs with the same seed differ"
expect_exit 0 "$CLIPX" train $tiny --objective clip --set model.text.dim=4 --out "$WORK/cnn-clip"
refuse "needs image inputs" --set model.image.type=cnn

# The study's caption and text-tower factors run with the transformer text tower by --set
# alone (issue 13): their configs train on it from scratch, and initialised from it, frozen.
xf="--set data=$DATA/dataset.yaml --set epochs=1 --set batch=32 --set model.text.type=transformer --set model.text.layers=1 --set model.text.heads=2 --threads 2 --quiet"
expect_exit 0 "$CLIPX" train --config "$TOP_SRCDIR/experiments/captions/clip.yaml" $xf --out "$WORK/study-xf"
expect_exit 0 "$CLIPX" train --config "$TOP_SRCDIR/experiments/text-tower/clip.yaml" $xf \
    --set model.text.init="$WORK/study-xf" --set model.text.freeze=true --out "$WORK/study-xf-init"
expect_exit 0 "$CLIPX" eval "$WORK/study-xf-init" --json

finish
