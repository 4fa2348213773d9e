#!/bin/sh
# clipx config: the resolved configuration, --keys, exit codes, one-line errors with
# FILE:LINE:COL, and atomic --out.
. "$TOP_SRCDIR/tests/lib.sh"

# Defaults: every group nested, values as documented.
expect_exit 0 "$CLIPX" config
cp "$WORK/out" "$WORK/defaults.yaml"
expect_grep '^epochs: 10$' "$WORK/defaults.yaml" "defaults"
expect_grep '^model:$' "$WORK/defaults.yaml" "defaults"
expect_grep '^  image:$' "$WORK/defaults.yaml" "defaults"
expect_grep '^    hidden: \[1024, 1024\]$' "$WORK/defaults.yaml" "defaults"
expect_grep '^  init: 14\.285714285714286$' "$WORK/defaults.yaml" "defaults"
[ -s "$WORK/err" ] && fail "config wrote to stderr"

# --keys lists every key; the man page documents each with the same type and default.
expect_exit 0 "$CLIPX" config --keys
cp "$WORK/out" "$WORK/keys"
expect_grep '^KEY +TYPE +DEFAULT +DESCRIPTION$' "$WORK/keys" "--keys header"
nkeys=$(($(wc -l <"$WORK/keys") - 1))
[ "$nkeys" -ge 51 ] || fail "--keys lists $nkeys keys, wanted at least 51"
tail -n +2 "$WORK/keys" | awk -F '  +' '{print $1 "\t" $2 "; default " $3 "."}' >"$WORK/keytypes"
while IFS="$(printf '\t')" read -r key want; do
    got=$(awk -v k=".B $key" 'found {print; exit} $0 == k {found = 1}' "$TOP_SRCDIR/doc/clipx.1")
    [ "$got" = "$want" ] || fail "doc/clipx.1 for $key: '$got', wanted '$want'"
    # Every listed key is written back by the configuration output (aug.*, dino.*, declip.*, vocab.freqs, eval.every only when set:
    # at their defaults they are left out, so older run folders keep their exact text).
    leaf=${key##*.}
    case $key in
        aug.*) grep -q "^ *$leaf: " "$WORK/defaults.yaml" && fail "$key written at its default" ;;
        dino.*) grep -q '^dino:' "$WORK/defaults.yaml" && fail "$key written at its default" ;;
        declip.*) grep -q '^declip:' "$WORK/defaults.yaml" && fail "$key written at its default" ;;
        vocab.freqs) grep -q "^ *$leaf: " "$WORK/defaults.yaml" && fail "$key written at its default" ;;
        eval.every) grep -q '^eval:' "$WORK/defaults.yaml" && fail "$key written at its default" ;;
        *) grep -q "^ *$leaf: " "$WORK/defaults.yaml" || fail "$key missing from the YAML output" ;;
    esac
done <"$WORK/keytypes"
expect_exit 0 "$CLIPX" config --set objective=clip --set aug.noise=0.1 --set aug.eda.rs=0.2 --set aug.flip=true
cp "$WORK/out" "$WORK/aug.yaml"
expect_grep '^aug:$' "$WORK/aug.yaml" "aug group"
expect_grep '^  noise: 0\.1$' "$WORK/aug.yaml" "aug.noise written when set"
expect_grep '^  flip: true$' "$WORK/aug.yaml" "aug.flip written when set"
expect_grep '^    rs: 0\.2$' "$WORK/aug.yaml" "aug.eda.rs written when set"
expect_no_grep '^  dropout: ' "$WORK/aug.yaml" "aug.dropout at its default"
expect_exit 0 "$CLIPX" config --config "$WORK/aug.yaml"
cmp -s "$WORK/out" "$WORK/aug.yaml" || fail "aug keys do not read back to the same text"
expect_exit 2 "$CLIPX" config --keys --set seed=1 && expect_one_error_line
# objective dino is not offered yet: a dino.* key away from its default exits 2 naming it.
expect_exit 2 "$CLIPX" config --set objective=clip --set dino.sample_k=64 && expect_one_error_line
expect_grep 'dino\.sample_k applies to objective: dino \(objective is clip\)' "$WORK/err" "dino.* refused"
expect_exit 0 "$CLIPX" config --set dino.momentum=0.996
expect_no_grep '^dino:' "$WORK/out" "dino.* at its default"

# A file: nested and dotted keys, relative paths against the file's folder.
mkdir -p "$WORK/cfg"
cat >"$WORK/cfg/train.yaml" <<'EOF'
data: ../data/fm.yaml
subset: subsets//rho100.txt
epochs: 3
model:
  image: {type: cnn, dim: 64}
model.text.hidden: [128]
optim:
  lr: 0.01
EOF
top=$(cd "$WORK" && pwd -P)
expect_exit 0 "$CLIPX" config --config "$WORK/cfg/train.yaml"
expect_grep "^data: \"$WORK/data/fm.yaml\"$" "$WORK/out" "file paths"
expect_grep "^subset: \"$WORK/cfg/subsets/rho100.txt\"$" "$WORK/out" "file paths"
expect_grep '^    type: cnn$' "$WORK/out" "nested keys"
expect_grep '^    dim: 64$' "$WORK/out" "nested keys"
expect_grep '^    hidden: \[128\]$' "$WORK/out" "dotted keys"
expect_grep '^  lr: 0\.01$' "$WORK/out" "nested keys"

# --set: after the file, later ones win, relative paths against the current folder.
(cd "$WORK" && "$CLIPX" config --config cfg/train.yaml --set epochs=4 --set epochs=5 \
    --set subset=s.txt --set 'model.image.hidden=256,128' >"$WORK/out" 2>"$WORK/err")
[ $? -eq 0 ] || fail "config with --set failed: $(cat "$WORK/err")"
expect_grep '^epochs: 5$' "$WORK/out" "--set precedence"
expect_grep "^subset: \"$top/s.txt\"$" "$WORK/out" "--set path"
expect_grep "^data: \"$top/data/fm.yaml\"$" "$WORK/out" "file path with --set"
expect_grep '^    hidden: \[256, 128\]$' "$WORK/out" "--set list"

# Errors: exit 2, one line, naming FILE:LINE:COL or the --set.
cat >"$WORK/cfg/bad.yaml" <<'EOF'
seed: 1
model:
  image:
    hiden: [1, 2]
EOF
expect_exit 2 "$CLIPX" config --config "$WORK/cfg/bad.yaml" && expect_one_error_line
expect_grep "^clipx: config: $WORK/cfg/bad.yaml:4:5: unknown key 'model.image.hiden' \(did you mean 'model.image.hidden'\?\)$" "$WORK/err"
printf 'epochs: 2\nmodel.image.dim: abc\n' >"$WORK/cfg/type.yaml"
expect_exit 2 "$CLIPX" config --config "$WORK/cfg/type.yaml" && expect_one_error_line
expect_grep "^clipx: config: $WORK/cfg/type.yaml:2:18: model.image.dim: 'abc' is not an integer$" "$WORK/err"
printf 'loss: focl\n' >"$WORK/cfg/choice.yaml"
expect_exit 2 "$CLIPX" config --config "$WORK/cfg/choice.yaml" && expect_one_error_line
expect_grep ":1:7: loss: 'focl' is not one of ce\|focal\|.*\(did you mean 'focal'\?\)$" "$WORK/err"
printf 'optim: 3\n' >"$WORK/cfg/group.yaml"
expect_exit 2 "$CLIPX" config --config "$WORK/cfg/group.yaml" && expect_one_error_line
expect_grep ":1:8: 'optim' is a group of keys" "$WORK/err"
printf 'seed: [1\n' >"$WORK/cfg/syntax.yaml"
expect_exit 2 "$CLIPX" config --config "$WORK/cfg/syntax.yaml" && expect_one_error_line
expect_grep "syntax.yaml:[0-9]+:[0-9]+: invalid YAML" "$WORK/err"
expect_exit 2 "$CLIPX" config --set model.image.dim=abc && expect_one_error_line
expect_grep "^clipx: config: --set model.image.dim=abc: model.image.dim: 'abc' is not an integer$" "$WORK/err"
expect_exit 2 "$CLIPX" config --set seed && expect_one_error_line
expect_exit 2 "$CLIPX" config --set effnum.beta=1 && expect_one_error_line
expect_grep 'out of range \(must be in \[0, 1\)\)' "$WORK/err"
# The checks across keys.
expect_exit 2 "$CLIPX" config --set head_from=/r && expect_one_error_line
expect_grep 'head_from is used only with head: text' "$WORK/err"
expect_exit 2 "$CLIPX" config --set model.image.type=identity --set model.image.init=/r && expect_one_error_line
expect_grep '^clipx: config: model.image.init: an identity image tower has no parameters to copy' "$WORK/err"
expect_exit 2 "$CLIPX" config --set objective=clip --set vocab.k=100 && expect_one_error_line
# Usage.
expect_exit 2 "$CLIPX" config extra-argument && expect_one_error_line
expect_exit 2 "$CLIPX" config --config && expect_one_error_line
# A missing file is a run-time error.
expect_exit 1 "$CLIPX" config --config "$WORK/none.yaml" && expect_one_error_line
expect_grep 'none\.yaml' "$WORK/err"
expect_exit 1 "$CLIPX" config --config "$WORK/cfg" && expect_one_error_line
expect_grep 'cfg: is a folder' "$WORK/err"

# --out: the same bytes as stdout; reading it back gives the same bytes again.
expect_exit 0 "$CLIPX" config --config "$WORK/cfg/train.yaml" --set 'model.text.init="a \"b\": #c"' \
    --set optim.lr=0.30000000000000004 --out "$WORK/run.yaml"
[ -s "$WORK/out" ] && fail "--out also wrote to stdout"
"$CLIPX" config --config "$WORK/cfg/train.yaml" --set 'model.text.init="a \"b\": #c"' \
    --set optim.lr=0.30000000000000004 >"$WORK/stdout.yaml"
cmp -s "$WORK/run.yaml" "$WORK/stdout.yaml" || fail "--out differs from stdout"
expect_exit 0 "$CLIPX" config --config "$WORK/run.yaml" --out "$WORK/again.yaml"
cmp -s "$WORK/run.yaml" "$WORK/again.yaml" || fail "config does not read back byte-identical"
expect_grep '^  lr: 0\.30000000000000004$' "$WORK/again.yaml" "exact doubles"
expect_grep '^    init: "a \\"b\\": #c"$' "$WORK/again.yaml" "quoted strings"

# --out is atomic: failing runs leave the earlier file untouched and no temporary files.
cp "$WORK/run.yaml" "$WORK/saved.yaml"
expect_exit 2 "$CLIPX" config --config "$WORK/cfg/train.yaml" --set epochs=0 --out "$WORK/run.yaml" \
    && expect_one_error_line
expect_exit 2 "$CLIPX" config --set head_from=/r --out "$WORK/run.yaml" && expect_one_error_line
cmp -s "$WORK/run.yaml" "$WORK/saved.yaml" || fail "a failed run changed the earlier --out file"
leftovers=$(find "$WORK" -maxdepth 1 -name '.run.yaml*' | wc -l)
[ "$leftovers" -eq 0 ] || fail "temporary files left behind"
expect_exit 1 "$CLIPX" config --out "$WORK/no/such/folder/run.yaml" && expect_one_error_line
[ -e "$WORK/no" ] && fail "--out into a missing folder created something"

# A full disk on stdout is a failure.
if [ -w /dev/full ]; then
    "$CLIPX" config >/dev/full 2>"$WORK/err"
    [ $? -eq 1 ] || fail "config to /dev/full did not exit 1"
    expect_one_error_line
fi

finish
