#!/bin/sh
# scripts/crash_trials.sh, short: 3 SIGKILLs at seeded moments of a 40-epoch run (SL, CLIP, then
# retrain --method crt), each resumed (or rerun) and compared with the uninterrupted run, and 3
# of each of synth, subsample and eval --out over an earlier output. Then the train trials with a clipx whose --resume does
# nothing must be reported as mismatches (the comparison can fail).
. "$TOP_SRCDIR/tests/lib.sh"
command -v flock >/dev/null 2>&1 || { echo "crash_trials: flock(1) missing, skipped"; exit 77; }
trials="$TOP_SRCDIR/scripts/crash_trials.sh"

if CLIPX=$CLIPX CRASH_EPOCHS=40 CRASH_SEED=3 CRASH_OBJECTIVES="sl clip retrain-crt" "$trials" 3 >"$WORK/table" 2>&1; then
    [ "$(grep -c ' ok$' "$WORK/table")" -eq 12 ] || fail "the table lacks 12 clean trials"
else
    fail "crash trials failed"
fi
sed 's/^/  | /' "$WORK/table"

# A recovery that does not recover: every trial the kill interrupted must fail.
cat >"$WORK/lazy-clipx" <<EOS
#!/bin/sh
for a in "\$@"; do [ "\$a" = --resume ] && exit 0; done
exec "$CLIPX" "\$@"
EOS
chmod +x "$WORK/lazy-clipx"
if CLIPX=$WORK/lazy-clipx CRASH_EPOCHS=40 CRASH_SEED=3 CRASH_COMMANDS= "$trials" 3 >"$WORK/lazy" 2>&1; then
    fail "crash trials passed with a --resume that does nothing"
    sed 's/^/  | /' "$WORK/lazy"
fi
grep -q ' FAIL$' "$WORK/lazy" || fail "no trial was reported as a mismatch"
finish
