#!/bin/sh
# Crash trials (issue 18): train a small run uninterrupted, then N times start the same run, kill
# it with SIGKILL at a random moment of its life, and
# recover it: `clipx train --resume RUN`, or the same command again when the kill came before
# config.yaml existed. Every recovered run must end byte-identical to the uninterrupted one
# (model.ckpt and config.yaml; log.jsonl without its timing fields `seconds` and
# `samples_per_s`), hold no file the uninterrupted run does not (no temporary file left behind),
# and leave its .lock free. Trials alternate between the objectives of CRASH_OBJECTIVES (training
# objectives such as sl, clip, dino; retrain-METHOD for a second stage, e.g. retrain-crt, on a
# small SL run).
# A moment is drawn from the seed as (epoch E, fraction u): u of an epoch's time after the log
# shows E epochs, most mid-epoch, some during a checkpoint or log write; E = -1 (one trial in
# eleven) is u of ten epochs' time after the process starts, before or while its first files
# are written. A kill by wall clock alone would depend on the machine's load more than on the
# seed.
# Then the same for the one-shot commands of CRASH_COMMANDS (default "synth subsample eval";
# empty: none): each is killed at N seeded moments of its uninterrupted time while it replaces
# an earlier output, which must stay whole file by file (every file the earlier run's or the
# new run's bytes, nothing partial; a hidden temporary the kill left is reported as "temp"), and
# run again it must give exactly the uninterrupted output (the temporary gone). Prints one row per trial and exits 1 on any mismatch (2: bad usage,
# setup failed).
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
log_without_timing() { sed -e 's/, *"seconds": *[^,}]*//' -e 's/, *"samples_per_s": *[^,}]*//' "$1" 2>/dev/null; }

"$CLIPX" synth --out "$work/data" --classes 4 --superclasses 2 --n 400 --dim 8 --test-per-class 5 \
    --seed 1 --quiet || { echo "crash_trials: synth failed" >&2; exit 2; }
# The command of a run of OBJECTIVE into RUN: clipx train, or for retrain-METHOD clipx retrain of
# the stage-1 run (one small SL run made first) with that method; both resume with --resume.
train_args() { # train_args OBJECTIVE RUN
    case $1 in
    retrain-*)
        echo "retrain $work/stage1 --method ${1#retrain-} --set epochs=$epochs --threads 1 --quiet --out $2" ;;
    *)
        echo "train --data $work/data/dataset.yaml --objective $1 --epochs $epochs --batch 32" \
            "--set model.image.hidden=[16] --set model.image.dim=8 --set model.text.dim=8" \
            "--set ckpt.every=7 --threads 1 --quiet --out $2" ;;
    esac
}
resume_args() { # resume_args OBJECTIVE RUN
    case $1 in retrain-*) echo "retrain --resume $2 --threads 1 --quiet" ;; *) echo "train --resume $2 --quiet" ;; esac
}
case " $objectives" in
*" retrain-"*)
    "$CLIPX" train --data "$work/data/dataset.yaml" --objective sl --epochs 3 --batch 32 \
        --set model.image.hidden=[16] --set model.image.dim=8 --threads 1 --quiet \
        --out "$work/stage1" || { echo "crash_trials: the stage-1 run failed" >&2; exit 2; } ;;
esac

# The uninterrupted runs, and how long each takes (the kills fall within that time).
for obj in $objectives; do
    start=$(now_ms)
    # shellcheck disable=SC2046
    "$CLIPX" $(train_args "$obj" "$work/ref-$obj") ||
        { echo "crash_trials: the uninterrupted $obj run failed" >&2; exit 2; }
    eval "ms_$(echo "$obj" | tr -c "a-z0-9\n" _)=$(($(now_ms) - start))"
done

# N kill moments (epoch, fraction of an epoch), from the seed.
awk -v n="$n" -v seed="$seed" -v e="$epochs" \
    'BEGIN { srand(seed); for (i = 0; i < n; i++) {
               s = rand() < 1 / 11 ? -1 : int(rand() * e); printf "%d %.4f\n", s, rand() } }' \
    >"$work/moments"
logged() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

printf '%-5s %-12s %-16s  %-22s %-8s %-4s %-4s %-4s %-5s %s\n' trial obj "kill at" "state at kill" recovery ckpt log conf files result
bad=0 i=0
while read -r at_epoch frac; do
    i=$((i + 1))
    obj=$(echo "$objectives" | awk -v k="$i" '{ print $(((k - 1) % NF) + 1) }')
    ref=$work/ref-$obj run=$work/trial-$i
    eval "total=\$ms_$(echo "$obj" | tr -c "a-z0-9\n" _)"
    span=1
    [ "$at_epoch" -lt 0 ] && span=10
    delay=$(awk -v f="$frac" -v t="$total" -v e="$epochs" -v s=$span 'BEGIN { printf "%.4f", s * f * t / e / 1000 }')
    # shellcheck disable=SC2046
    "$CLIPX" $(train_args "$obj" "$run") >"$work/trial-$i.out" 2>&1 &
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
        # shellcheck disable=SC2046
        "$CLIPX" $(resume_args "$obj" "$run") >"$work/trial-$i.rec" 2>&1
    else
        recovery=rerun
        # shellcheck disable=SC2046
        "$CLIPX" $(train_args "$obj" "$run") >"$work/trial-$i.rec" 2>&1
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
    printf '%-5s %-12s %-16s  %-22s %-8s %-4s %-4s %-4s %-5s %s\n' "$i" "$obj" \
        "$([ "$at_epoch" -lt 0 ] && echo "start+10e*$frac" || echo "e$at_epoch+$frac")" "$state" "$recovery" "$ck" "$lg" "$cf" "$fl" "$result"
    if [ "$result" = FAIL ]; then
        [ "$rec_status" -ne 0 ] && sed 's/^/      recovery: /' "$work/trial-$i.rec" | head -3
        [ "$fl" = DIFF ] && echo "      files: $(listing "$run") (uninterrupted: $(listing "$ref"))"
    fi
done <"$work/moments"
echo "crash_trials: train: $((i - bad)) of $i trials clean (seed $seed, $epochs epochs; uninterrupted: $(for o in $objectives; do eval "printf '%s %sms ' $o \$ms_$(echo "$o" | tr -c "a-z0-9\n" _)"; done))"
total_bad=$bad

# ---- one-shot commands: killed while replacing an earlier output, then run again -----------
# The output (a folder, or a file in one) starts as an earlier run's (other seed or mode); after
# the kill every file in it must be the earlier one's or the uninterrupted run's bytes (never
# partial), with no other file; run again, the output equals the uninterrupted run's.
oneshot_args() { # oneshot_args COMMAND OUT WHICH (WHICH: new or earlier)
    s=1 mode=head keep=5000
    [ "$3" = earlier ] && s=2 mode=ncm keep=3000
    case "$1" in
    synth) echo "synth --out $2 --classes 20 --superclasses 4 --n 20000 --dim 32 --test-per-class 20 --seed $s --quiet" ;;
    subsample) echo "subsample $work/big/dataset.yaml --profile uniform --n $keep --seed $s --out $2/lt.subset" ;;
    eval) echo "eval $work/ref-$(echo "$objectives" | awk '{ print $1 }') --mode $mode --quiet --out $2" ;;
    esac
}
# Each entry of folder $1: "new" when it equals $2's, "old" when $3's, "temp" when it is a
# hidden name neither has (a killed writer's temporary file or stage, which the next run of
# the command must remove), else "BAD".
file_states() {
    for f in $(ls -A "$1"); do
        if cmp -s "$1/$f" "$2/$f"; then echo new
        elif cmp -s "$1/$f" "$3/$f"; then echo old
        elif [ "${f#.}" != "$f" ] && [ ! -e "$2/$f" ] && [ ! -e "$3/$f" ]; then echo temp
        else echo "BAD:$f"
        fi
    done | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }'
}
commands=${CRASH_COMMANDS-synth subsample eval}
if [ -n "$commands" ]; then
    "$CLIPX" synth --out "$work/big" --classes 20 --superclasses 4 --n 20000 --dim 32 \
        --test-per-class 20 --seed 1 --quiet || { echo "crash_trials: synth failed" >&2; exit 2; }
fi
for cmd in $commands; do
    ref=$work/ref-$cmd earlier=$work/earlier-$cmd
    mkdir -p "$ref" "$earlier"
    start=$(now_ms)
    # shellcheck disable=SC2046
    "$CLIPX" $(oneshot_args "$cmd" "$ref" new) >/dev/null 2>&1 ||
        { echo "crash_trials: the uninterrupted $cmd failed" >&2; exit 2; }
    ms=$(($(now_ms) - start))
    # shellcheck disable=SC2046
    "$CLIPX" $(oneshot_args "$cmd" "$earlier" earlier) >/dev/null 2>&1 ||
        { echo "crash_trials: the earlier $cmd failed" >&2; exit 2; }
    awk -v n="$n" -v seed="$seed" -v c="$cmd" 'BEGIN { srand(seed + length(c)); for (i = 0; i < n; i++) printf "%.4f\n", rand() }' \
        >"$work/moments-$cmd"
    printf '\n%-5s %-9s %8s  %-34s %-6s %s\n' trial command kill_ms "after the kill" rerun result
    i=0 bad=0
    while read -r frac; do
        i=$((i + 1))
        out=$work/$cmd-$i
        rm -rf "$out"
        cp -R "$earlier" "$out"
        delay=$(awk -v f="$frac" -v t="$ms" 'BEGIN { printf "%.4f", f * t / 1000 }')
        # shellcheck disable=SC2046
        "$CLIPX" $(oneshot_args "$cmd" "$out" new) >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        killed_status=$? how=killed
        [ "$killed_status" -eq 0 ] && how=finished
        after="$how: $(file_states "$out" "$ref" "$earlier")"
        # shellcheck disable=SC2046
        "$CLIPX" $(oneshot_args "$cmd" "$out" new) >/dev/null 2>&1
        rerun_status=$? rerun=ok
        [ "$rerun_status" -eq 0 ] && [ "$(listing "$out")" = "$(listing "$ref")" ] &&
            [ "$(file_states "$out" "$ref" "$earlier")" = "$(ls -A "$ref" | wc -l) new" ] || rerun=DIFF
        result=ok
        case "$after" in *BAD*) result=FAIL ;; esac
        [ "$rerun" = ok ] || result=FAIL
        [ "$result" = ok ] || bad=$((bad + 1))
        printf '%-5s %-9s %8s  %-34s %-6s %s\n' "$i" "$cmd" "$(awk -v d="$delay" 'BEGIN { printf "%d", d * 1000 }')" \
            "$after" "$rerun" "$result"
    done <"$work/moments-$cmd"
    echo "crash_trials: $cmd: $((i - bad)) of $i trials clean (uninterrupted: ${ms}ms)"
    total_bad=$((total_bad + bad))
done
[ "$total_bad" -eq 0 ]
