#!/bin/sh
# Crash trials (issue 18): train a small run uninterrupted, then N times start the same run, kill
# it with SIGKILL at a random moment of its life, and
# recover it: `clipx train --resume RUN`, or the same command again when the kill came before
# config.yaml existed. Every recovered run must end byte-identical to the uninterrupted one
# (model.ckpt and config.yaml; log.jsonl without its timing fields `seconds` and
# `samples_per_s`), hold no file the uninterrupted run does not (no temporary file left behind),
# and leave its .lock free. Trials alternate between the objectives of CRASH_OBJECTIVES.
# A moment is drawn from the seed as (epoch E, fraction u): u of an epoch's time after the log
# shows E epochs, most mid-epoch, some during a checkpoint or log write; E = -1 (one trial in
# eleven) is u of ten epochs' time after the process starts, before or while its first files
# are written. A kill by wall clock alone would depend on the machine's load more than on the
# seed.
# Prints one row per trial and exits 1 on any mismatch (2: bad usage, setup failed).
# Usage: scripts/crash_trials.sh [N]      (default 20)
# Environment: CLIPX (default ./clipx), CRASH_SEED (default 1), CRASH_EPOCHS (default 300),
# CRASH_OBJECTIVES (default "sl clip"), CRASH_KEEP=1 keeps the work folder.
set -u
n=${1:-20}
case "$n" in '' | *[!0-9]*) echo "usage: scripts/crash_trials.sh [N]" >&2; exit 2 ;; esac
CLIPX=${CLIPX:-./clipx}
seed=${CRASH_SEED:-1}
epochs=${CRASH_EPOCHS:-300}
objectives=${CRASH_OBJECTIVES:-sl clip}
[ -x "$CLIPX" ] || { echo "crash_trials: $CLIPX is not an executable (set CLIPX)" >&2; exit 2; }
command -v flock >/dev/null 2>&1 || { echo "crash_trials: flock(1) not found (util-linux)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/clipx-crash-XXXXXX") || exit 2
[ "${CRASH_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Files of a run folder, hidden ones included, one line.
listing() { ls -A "$1" 2>/dev/null | tr '\n' ' '; }
# log.jsonl without the timing fields, which differ between any two runs.
log_without_timing() { sed -e 's/,"seconds":[^,}]*//' -e 's/,"samples_per_s":[^,}]*//' "$1" 2>/dev/null; }

"$CLIPX" synth --out "$work/data" --classes 4 --superclasses 2 --n 400 --dim 8 --test-per-class 5 \
    --seed 1 --quiet || { echo "crash_trials: synth failed" >&2; exit 2; }
train_args() { # train_args OBJECTIVE RUN
    echo "--data $work/data/dataset.yaml --objective $1 --epochs $epochs --batch 32" \
        "--set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8" \
        "--set ckpt.every=7 --threads 1 --quiet --out $2"
}

# The uninterrupted runs, and how long each takes (the kills fall within that time).
for obj in $objectives; do
    start=$(now_ms)
    # shellcheck disable=SC2046
    "$CLIPX" train $(train_args "$obj" "$work/ref-$obj") ||
        { echo "crash_trials: the uninterrupted $obj run failed" >&2; exit 2; }
    eval "ms_$obj=$(($(now_ms) - start))"
done

# N kill moments (epoch, fraction of an epoch), from the seed.
awk -v n="$n" -v seed="$seed" -v e="$epochs" \
    'BEGIN { srand(seed); for (i = 0; i < n; i++) {
               s = rand() < 1 / 11 ? -1 : int(rand() * e); printf "%d %.4f\n", s, rand() } }' \
    >"$work/moments"
logged() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

printf '%-5s %-5s %-16s  %-22s %-8s %-4s %-4s %-4s %-5s %s\n' trial obj "kill at" "state at kill" recovery ckpt log conf files result
bad=0 i=0
while read -r at_epoch frac; do
    i=$((i + 1))
    obj=$(echo "$objectives" | awk -v k="$i" '{ print $(((k - 1) % NF) + 1) }')
    ref=$work/ref-$obj run=$work/trial-$i
    eval "total=\$ms_$obj"
    span=1
    [ "$at_epoch" -lt 0 ] && span=10
    delay=$(awk -v f="$frac" -v t="$total" -v e="$epochs" -v s=$span 'BEGIN { printf "%.4f", s * f * t / e / 1000 }')
    # shellcheck disable=SC2046
    "$CLIPX" train $(train_args "$obj" "$run") >"$work/trial-$i.out" 2>&1 &
    pid=$!
    while [ "$(logged "$run/log.jsonl")" -lt "$at_epoch" ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.002
    done
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    if [ "$status" -eq 0 ]; then
        state="finished before kill"
    elif [ ! -e "$run/config.yaml" ]; then
        state="no config.yaml"
    elif [ ! -e "$run/model.ckpt" ]; then
        state="no checkpoint"
    else
        state="$(wc -l <"$run/log.jsonl" 2>/dev/null || echo 0) epochs logged"
    fi
    # Recover: --resume when the folder holds a run, else the same command again.
    if [ -e "$run/config.yaml" ]; then
        recovery=resume
        "$CLIPX" train --resume "$run" --quiet >"$work/trial-$i.rec" 2>&1
    else
        recovery=rerun
        # shellcheck disable=SC2046
        "$CLIPX" train $(train_args "$obj" "$run") >"$work/trial-$i.rec" 2>&1
    fi
    rec_status=$?
    ck=ok lg=ok cf=ok fl=ok
    cmp -s "$ref/model.ckpt" "$run/model.ckpt" || ck=DIFF
    [ "$(log_without_timing "$ref/log.jsonl")" = "$(log_without_timing "$run/log.jsonl")" ] || lg=DIFF
    cmp -s "$ref/config.yaml" "$run/config.yaml" || cf=DIFF
    # The config names the run's own data path only, so config.yaml is equal by construction.
    [ "$(listing "$ref")" = "$(listing "$run")" ] || fl=DIFF
    flock -n "$run/.lock" true 2>/dev/null || fl=LOCK
    result=ok
    if [ "$rec_status" -ne 0 ] || [ "$ck$lg$cf$fl" != okokokok ]; then
        result=FAIL bad=$((bad + 1))
    fi
    printf '%-5s %-5s %-16s  %-22s %-8s %-4s %-4s %-4s %-5s %s\n' "$i" "$obj" \
        "$([ "$at_epoch" -lt 0 ] && echo "start+10e*$frac" || echo "e$at_epoch+$frac")" "$state" "$recovery" "$ck" "$lg" "$cf" "$fl" "$result"
    if [ "$result" = FAIL ]; then
        [ "$rec_status" -ne 0 ] && sed 's/^/      recovery: /' "$work/trial-$i.rec" | head -3
        [ "$fl" = DIFF ] && echo "      files: $(listing "$run") (uninterrupted: $(listing "$ref"))"
    fi
done <"$work/moments"
echo "crash_trials: $((i - bad)) of $i trials clean (seed $seed, $epochs epochs; uninterrupted: $(for o in $objectives; do eval "printf '%s %sms ' $o \$ms_$o"; done))"
[ "$bad" -eq 0 ]
