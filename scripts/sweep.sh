#!/bin/bash
# A grid of clipx training runs: the cartesian product of the grid's settings on a base config,
# run in parallel, resumable, then one results.tsv from 'clipx compare --json'.
#
# Usage: scripts/sweep.sh --base CONFIG --grid 'KEY=V1,V2 KEY2=V3,V4' --out DIR [options]
#   --base CONFIG      training configuration every run starts from (clipx train --config)
#   --grid SPEC        space-separated KEY=V1,V2,... terms (any 'clipx config --keys' key); a
#                      value may hold commas inside brackets: model.image.hidden=[64,64],[128]
#   --out DIR          sweep folder: one run folder per grid point, named from its settings
#                      (KEY=VALUE joined by ','), and DIR/results.tsv
#   --set KEY=VALUE    a setting for every run, applied before the grid's (repeatable)
#   --jobs N           runs in parallel (default 1)
#   --threads T        threads per run (default: the cores divided among the jobs, at least 1)
#   --compare-args 'A' extra arguments for 'clipx compare' (e.g. '--mode ncm --thresholds 100,2')
#   --clipx BIN        the clipx binary (default: ./clipx beside scripts/, else clipx on PATH)
#   --slurm            write DIR/sweep.slurm, a job array with one task per grid point (same
#                      skip and resume logic), and exit; run the same sweep again without
#                      --slurm once the array is done to collect results.tsv
#   --dry-run          print the run folders and their settings, train nothing (no --out needed)
#   --quiet            no per-run lines, only errors and the summary
#
# A run whose log has one line per configured epoch, with model.ckpt no older than the log, is
# finished and skipped; a run folder with a checkpoint but fewer epochs is resumed (clipx train
# --resume: bit-identical to an uninterrupted run at the same thread count); one without a
# checkpoint is started over. A run folder whose config.yaml differs from what the grid asks
# (threads aside) is refused, never overwritten. Killing the sweep (INT or TERM) stops its runs;
# running it again finishes the grid. results.tsv holds one row per finished run: run, the
# grid's keys, then top1 head mid tail corr_acc corr_pred top5 acc worst_class ece nc1
# objective mode n_classes n_test (NA where undefined); it is rebuilt only when a run changed.
# Exit status: 0 all runs finished, 1 a run failed (the others still run and are collected),
# 2 usage error.
set -u

prog=sweep
die_usage() {
    echo "$prog: $*" >&2
    echo "usage: scripts/sweep.sh --base CONFIG --grid 'KEY=V1,V2 ...' --out DIR [--jobs N]" \
        "[--threads T] [--set KEY=VALUE]... [--compare-args ARGS] [--clipx BIN] [--slurm]" \
        "[--dry-run] [--quiet]" >&2
    exit 2
}
die() {
    echo "$prog: $*" >&2
    exit 1
}

TAB=$'\t'

# ---- one run (also the body of a slurm array task) -------------------------------------------

# The configured epochs of RUN/config.yaml.
config_epochs() { awk '/^epochs:/ { print $2; exit }' "$1/config.yaml"; }

# run_state RUN: new (no config.yaml), empty (config, no checkpoint), partial, or finished.
run_state() {
    local run=$1 epochs lines
    [ -f "$run/config.yaml" ] || { echo new; return; }
    [ -f "$run/model.ckpt" ] || { echo empty; return; }
    epochs=$(config_epochs "$run")
    lines=0
    [ -f "$run/log.jsonl" ] && lines=$(wc -l <"$run/log.jsonl")
    # The trainer writes the epoch's log line, then its checkpoint: a log newer than the
    # checkpoint means the last epoch's checkpoint never landed.
    if [ -n "$epochs" ] && [ "$lines" -ge "$epochs" ] && ! [ "$run/log.jsonl" -nt "$run/model.ckpt" ]; then
        echo finished
    else
        echo partial
    fi
}

# The task's settings: common arguments (one a line) and the grid point's KEY=VALUE terms.
load_task() {
    local dir=$1 index=$2 line
    common=()
    while IFS= read -r line; do common+=("$line"); done <"$dir/.sweep/args"
    line=$(sed -n "${index}p" "$dir/.sweep/plan")
    [ -n "$line" ] || die "$dir/.sweep/plan: no task $index"
    IFS=$TAB read -r -a point <<<"$line"
    name=${point[0]}
    point=("${point[@]:1}")
    sets=()
    local kv
    for kv in "${point[@]}"; do sets+=(--set "$kv"); done
}

# What 'clipx config' resolves for the task, threads aside, against RUN/config.yaml.
same_config() {
    local run=$1 tmp=$dir/.sweep/cfg.$$ rc=0
    "$CLIPX" config "${common[@]}" "${sets[@]}" 2>/dev/null | grep -v '^threads:' >"$tmp.want"
    grep -v '^threads:' "$run/config.yaml" >"$tmp.have"
    cmp -s "$tmp.want" "$tmp.have" || rc=1
    rm -f "$tmp.want" "$tmp.have"
    return $rc
}

status() { # NAME STATUS [DETAIL]
    printf '%s\n' "$2" >"$dir/.sweep/status/$1"
    if [ "$2" = failed ]; then
        printf '%s: %-8s %s%s\n' "$prog" "$2" "$1" "${3:+ ($3)}" >&2
    elif [ -z "${QUIET:-}" ]; then
        printf '%s: %-8s %s%s\n' "$prog" "$2" "$1" "${3:+ ($3)}"
    fi
}

run_task() {
    dir=$1
    load_task "$dir" "$2"
    local run=$dir/$name state t0 rc log
    state=$(run_state "$run")
    if [ "$state" != new ] && ! same_config "$run"; then
        status "$name" failed "its config.yaml is not what the grid asks; remove $run or use another --out"
        return 1
    fi
    log=$dir/.sweep/logs/$name.log
    t0=$(date +%s.%N)
    case $state in
    finished)
        status "$name" skipped "finished before"
        return 0
        ;;
    partial)
        "$CLIPX" train --resume "$run" --threads "$THREADS" --quiet >"$log" 2>&1
        rc=$?
        state=resumed
        ;;
    *)
        "$CLIPX" train "${common[@]}" "${sets[@]}" --threads "$THREADS" --quiet --force \
            --out "$run" >"$log" 2>&1
        rc=$?
        state=trained
        ;;
    esac
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')
    if [ $rc -ne 0 ]; then
        status "$name" failed "exit $rc: $(tail -n 1 "$log")"
        return 1
    fi
    status "$name" "$state" "$secs"
}

if [ "${1:-}" = --task ]; then
    # scripts/sweep.sh --task DIR INDEX: run grid point INDEX (1-based) of the sweep in DIR.
    [ $# -eq 3 ] || die_usage "--task takes DIR and INDEX"
    # shellcheck disable=SC1091
    . "$2/.sweep/env" || die "$2/.sweep/env: cannot read"
    run_task "$2" "$3"
    exit $?
fi

# The whole script is one function, read before it runs: editing the file under a running sweep
# cannot change what it does.
main() {
# ---- options ----------------------------------------------------------------------------------

base="" grid="" out="" jobs=1 threads="" compare_args="" clipx="" slurm="" dry="" QUIET=""
extra=()
while [ $# -gt 0 ]; do
    case $1 in
    --base | --grid | --out | --jobs | --threads | --set | --compare-args | --clipx)
        [ $# -ge 2 ] || die_usage "$1 needs a value"
        case $1 in
        --base) base=$2 ;;
        --grid) grid=$2 ;;
        --out) out=$2 ;;
        --jobs) jobs=$2 ;;
        --threads) threads=$2 ;;
        --set) extra+=(--set "$2") ;;
        --compare-args) compare_args=$2 ;;
        --clipx) clipx=$2 ;;
        esac
        shift 2
        ;;
    --slurm) slurm=1; shift ;;
    --dry-run) dry=1; shift ;;
    --quiet) QUIET=1; shift ;;
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done
[ -n "$base" ] || die_usage "--base CONFIG is required"
[ -n "$out" ] || [ -n "$dry" ] || die_usage "--out DIR is required"
[ -f "$base" ] || die_usage "--base: $base: no such file"
case $jobs in '' | *[!0-9]* | 0) die_usage "--jobs: '$jobs' is not a positive integer" ;; esac
cores=$(nproc 2>/dev/null || echo 1)
if [ -z "$threads" ]; then
    threads=$((cores / jobs))
    [ "$threads" -ge 1 ] || threads=1
fi
case $threads in '' | *[!0-9]* | 0) die_usage "--threads: '$threads' is not a positive integer" ;; esac
if [ -z "$clipx" ]; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    if [ -x "$here/clipx" ]; then clipx=$here/clipx; else clipx=$(command -v clipx || true); fi
fi
[ -n "$clipx" ] && [ -x "$clipx" ] || die_usage "no clipx binary (build it, or give --clipx BIN)"
case $clipx in /*) ;; *) clipx=$(cd "$(dirname "$clipx")" && pwd)/$(basename "$clipx") ;; esac
base=$(cd "$(dirname "$base")" && pwd)/$(basename "$base")

# ---- the grid ---------------------------------------------------------------------------------

# One line per grid point: NAME, then its KEY=VALUE terms, tab-separated. Values split at
# commas outside brackets; names keep [A-Za-z0-9._+-] and shorten a path to its last name
# (a dataset YAML to its folder's name, a sweep's run folder to SWEEP-RUN).
points=$(printf '%s\n' "$grid" | awk -v TAB="$TAB" '
function bad(msg) { print "sweep: --grid: " msg > "/dev/stderr"; err = 1; exit 2 }
function nameof(v,   n) {
    if (v ~ /\//) {
        sub(/\/+$/, "", v)
        if (v ~ /\/dataset\.ya?ml$/) sub(/\/dataset\.ya?ml$/, "", v)
        n = split(v, parts, "/"); v = parts[n]
        # A run folder of another sweep ("KEY=VALUE"): the name of its sweep folder says more.
        if (v ~ /=/ && n > 1) v = parts[n - 1] "-" v
        sub(/\.(ya?ml|subset|tsv|txt)$/, "", v)
    }
    gsub(/[^A-Za-z0-9._+-]/, "-", v)
    return v
}
{
    for (t = 1; t <= NF; t++) {
        term = $t
        eq = index(term, "=")
        if (eq < 2) bad("\"" term "\" is not KEY=V1,V2,...")
        key = substr(term, 1, eq - 1); rest = substr(term, eq + 1)
        if (key in seen) bad("key " key " appears twice")
        seen[key] = 1
        nk++; keys[nk] = key; nv[nk] = 0
        depth = 0; cur = ""
        for (i = 1; i <= length(rest); i++) {
            c = substr(rest, i, 1)
            if (c == "[") depth++
            else if (c == "]") depth--
            if (c == "," && depth == 0) { vals[nk, ++nv[nk]] = cur; cur = ""; continue }
            cur = cur c
        }
        vals[nk, ++nv[nk]] = cur
        for (i = 1; i <= nv[nk]; i++) if (vals[nk, i] == "") bad("key " key " has an empty value")
    }
}
END {
    if (err) exit 2
    if (nk == 0) bad("no KEY=VALUES terms")
    total = 1
    for (k = 1; k <= nk; k++) total *= nv[k]
    for (p = 0; p < total; p++) {
        r = p; name = ""; line = ""
        for (k = nk; k >= 1; k--) { idx[k] = r % nv[k] + 1; r = int(r / nv[k]) }
        for (k = 1; k <= nk; k++) {
            v = vals[k, idx[k]]
            name = name (k > 1 ? "," : "") keys[k] "=" nameof(v)
            line = line TAB keys[k] "=" v
        }
        if (name in names) bad("two grid points would share the run folder " name)
        names[name] = 1
        print name line
    }
}') || exit 2
[ -n "$points" ] || die_usage "--grid: no grid points"
# The grid's keys, in order: the first point's terms up to their "=".
keys=$(printf '%s\n' "$points" | head -n 1 | awk -F "$TAB" '{
    for (i = 2; i <= NF; i++) { k = $i; sub(/=.*/, "", k); printf "%s%s", (i > 2 ? FS : ""), k } }')
npoints=$(printf '%s\n' "$points" | wc -l)

# Check the base config and the first point's settings before anything is written.
first=$(printf '%s\n' "$points" | head -n 1)
IFS=$TAB read -r -a fp <<<"$first"
check=(--config "$base" "${extra[@]}")
for kv in "${fp[@]:1}"; do check+=(--set "$kv"); done
if ! msg=$("$clipx" config "${check[@]}" 2>&1 >/dev/null); then
    echo "$prog: the settings of ${fp[0]} are refused: $msg" >&2
    exit 2
fi

if [ -n "$dry" ]; then
    printf '%s\n' "$points" | tr '\t' ' '
    exit 0
fi

# ---- the sweep folder ---------------------------------------------------------------------------

mkdir -p "$out/.sweep/status" "$out/.sweep/logs" || die "$out: cannot create"
out=$(cd "$out" && pwd)
# Written through temporary files and renames: an interrupted sweep never leaves half a plan.
put() { # FILE: stdin to FILE atomically
    cat >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}
printf '%s\n' "$points" | put "$out/.sweep/plan"
printf '%s\n' --config "$base" "${extra[@]}" | put "$out/.sweep/args"
{
    printf 'CLIPX=%q\n' "$clipx"
    printf 'THREADS=%q\n' "$threads"
    printf 'QUIET=%q\n' "$QUIET"
} | put "$out/.sweep/env"
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ -n "$slurm" ]; then
    {
        echo "#!/bin/bash"
        echo "# The sweep of $out as a Slurm job array, one task per grid point: sbatch $out/sweep.slurm"
        echo "# Each task trains, resumes or skips its run as scripts/sweep.sh does; afterwards run the"
        echo "# same scripts/sweep.sh command without --slurm to collect $out/results.tsv."
        echo "#SBATCH --job-name=clipx-sweep"
        echo "#SBATCH --array=1-$npoints"
        echo "#SBATCH --cpus-per-task=$threads"
        echo "#SBATCH --output=$out/.sweep/logs/slurm-%A_%a.out"
        printf 'exec %q --task %q "$SLURM_ARRAY_TASK_ID"\n' "$self" "$out"
    } | put "$out/sweep.slurm"
    chmod +x "$out/sweep.slurm"
    echo "$prog: wrote $out/sweep.slurm ($npoints tasks of $threads thread(s)); submit it with sbatch"
    exit 0
fi

# ---- run the grid -------------------------------------------------------------------------------

rm -f "$out/.sweep/status/"*
xpid=""
on_signal() {
    trap - INT TERM
    # The runs are in their own process group (set -m below): stop all of them.
    [ -n "$xpid" ] && kill -TERM -- "-$xpid" 2>/dev/null
    wait 2>/dev/null
    echo "$prog: interrupted; run the same command again to finish the grid" >&2
    exit 130
}
trap on_signal INT TERM
set -m
seq 1 "$npoints" | xargs -P "$jobs" -n 1 "$self" --task "$out" &
xpid=$!
set +m
wait "$xpid"
xrc=$?
trap - INT TERM

trained=0 resumed=0 skipped=0 failed=0
runs=() rows=()
while IFS= read -r line; do
    name=${line%%"$TAB"*}
    s=$(cat "$out/.sweep/status/$name" 2>/dev/null || echo failed)
    case $s in
    trained) trained=$((trained + 1)) ;;
    resumed) resumed=$((resumed + 1)) ;;
    skipped) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)); continue ;;
    esac
    runs+=("$out/$name")
    rows+=("$line")
done <"$out/.sweep/plan"
[ "$xrc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1

# ---- results.tsv --------------------------------------------------------------------------------

tsv=$out/results.tsv
# The collection is redone only when the runs, the compare arguments or a checkpoint changed.
stamp=$(printf '%s\n' "$compare_args" "$keys" "${runs[@]}")
fresh=""
if [ -f "$tsv" ] && [ -f "$out/.sweep/collected" ] && [ "$(cat "$out/.sweep/collected")" = "$stamp" ]; then
    fresh=1
    for r in "${runs[@]}"; do
        [ "$r/model.ckpt" -nt "$tsv" ] && { fresh=""; break; }
    done
fi
collected="up to date"
if [ ${#runs[@]} -gt 0 ] && [ -z "$fresh" ]; then
    # shellcheck disable=SC2086
    "$clipx" compare "${runs[@]}" --json --threads "$cores" --quiet $compare_args \
        >"$out/.sweep/compare.json" 2>"$out/.sweep/compare.err" ||
        die "clipx compare failed: $(tail -n 1 "$out/.sweep/compare.err")"
    # compare --json is pretty-printed by clipx: each run object's own fields sit at six spaces
    # of indentation, one a line, in the order of the runs given.
    printf '%s\n' "${rows[@]}" | awk -F "$TAB" -v TAB="$TAB" -v keys="$keys" -v json="$out/.sweep/compare.json" '
    BEGIN {
        nk = split(keys, K, TAB)
        for (k = 1; k <= nk; k++) isgrid[K[k]] = 1  # a grid key is not repeated among the results
        ncols = split("top1 head mid tail corr_acc corr_pred top5 acc worst_class ece nc1 objective mode n_classes n_test", COL, " ")
    }
    {
        nr++; name[nr] = $1
        for (k = 2; k <= NF; k++) { v = $k; sub(/^[^=]*=/, "", v); gridval[nr, k - 1] = v }
    }
    END {
        i = 0
        while ((getline line < json) > 0) {
            if (line ~ /^    \{$/) { i++; continue }
            if (line !~ /^      "[a-z0-9_]+": /) continue
            k = line; sub(/^      "/, "", k); sub(/".*/, "", k)
            v = line; sub(/^      "[a-z0-9_]+": /, "", v); sub(/,$/, "", v)
            if (v ~ /^"/) { sub(/^"/, "", v); sub(/"$/, "", v) }
            if (v == "null") v = "NA"
            val[i, k] = v
        }
        if (i != nr) { print "sweep: compare --json held " i " runs, not " nr > "/dev/stderr"; exit 1 }
        printf "run"
        for (k = 1; k <= nk; k++) printf "%s%s", TAB, K[k]
        for (c = 1; c <= ncols; c++) if (!(COL[c] in isgrid)) printf "%s%s", TAB, COL[c]
        printf "\n"
        for (r = 1; r <= nr; r++) {
            printf "%s", name[r]
            # The grid values as the plan wrote them (the folder name shortens paths).
            for (k = 1; k <= nk; k++) printf "%s%s", TAB, gridval[r, k]
            for (c = 1; c <= ncols; c++)
                if (!(COL[c] in isgrid)) printf "%s%s", TAB, ((r, COL[c]) in val ? val[r, COL[c]] : "NA")
            printf "\n"
        }
    }' >"$tsv.tmp.$$" || { rm -f "$tsv.tmp.$$"; die "cannot parse $out/.sweep/compare.json"; }
    mv -f "$tsv.tmp.$$" "$tsv"
    printf '%s\n' "$stamp" | put "$out/.sweep/collected"
    collected="${#runs[@]} rows"
fi

echo "$prog: $npoints runs: $trained trained, $resumed resumed, $skipped finished before," \
    "$failed failed; $tsv: $collected"
if [ "$failed" -gt 0 ]; then
    echo "$prog: failed runs' output is in $out/.sweep/logs/; run the same command again to retry them" >&2
    exit 1
fi
exit 0
}
main "$@"
