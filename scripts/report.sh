#!/bin/bash
# The controlled study of "Generalization Beyond Data Imbalance" (Wen et al. 2024) from scratch:
# the synthetic data (experiments/data/make-synth.sh), every factor's sweeps
# (experiments/*/sweeps.sh through scripts/sweep.sh), then experiments/REPORT.md with, per
# factor, mean and standard deviation over the seeds, paired differences, a figure
# (experiments/figures/*.svg, clipx compare --plot) and one line per finding of the paper.
#
# Usage: scripts/report.sh [--work DIR] [--jobs N] [--seeds 0,1,2] [--keep] [--out FILE]
#                          [--figures DIR]
#   --work DIR     scratch folder for data and runs (default runs/study); emptied first
#   --jobs N       runs in parallel, one thread each (default: the number of cores)
#   --seeds LIST   training seeds, comma-separated, at least 3 (default 0,1,2)
#   --keep         keep DIR's finished runs and resume its partial ones instead of starting
#                  over (the report's wall time then covers only this invocation)
#   --out FILE     the report (default experiments/REPORT.md)
#   --figures DIR  its figures (default experiments/figures)
# Needs a built ./clipx and gnuplot (figures). About 35 minutes on 2 cores.
set -euo pipefail

# One function, read whole before it runs: editing this file under a running report cannot
# change what it does.
main() {
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
work=runs/study jobs=$(nproc 2>/dev/null || echo 1) seeds=0,1,2 keep="" out=experiments/REPORT.md
figs=experiments/figures
cmdline="scripts/report.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case $1 in
    --work | --jobs | --seeds | --out | --figures)
        [ $# -ge 2 ] || { echo "report: $1 needs a value" >&2; exit 2; }
        case $1 in
        --work) work=$2 ;; --jobs) jobs=$2 ;; --seeds) seeds=$2 ;; --out) out=$2 ;;
        --figures) figs=$2 ;;
        esac
        shift 2
        ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "report: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $seeds in *[!0-9,]* | ,* | *, | *,,*) echo "report: --seeds: '$seeds' is not a list like 0,1,2" >&2; exit 2 ;; esac
nseeds=$(echo "$seeds" | tr ',' '\n' | wc -l)
[ "$nseeds" -ge 3 ] || { echo "report: --seeds: at least 3 seeds" >&2; exit 2; }
CLIPX=$top/clipx
[ -x "$CLIPX" ] || { echo "report: no ./clipx; build it first (scripts/build.sh)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "report: the figures need gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
export CLIPX

t_start=$(date +%s)
elapsed() { echo $(($(date +%s) - $1)); }
say() { echo "report: $*" >&2; }

# Only a folder this script made (it holds .clipx-study) or an empty one is ever emptied.
if [ -z "$keep" ] && [ -e "$work" ]; then
    if [ -f "$work/.clipx-study" ] || [ -z "$(ls -A "$work" 2>/dev/null)" ]; then
        rm -rf "$work"
    else
        echo "report: $work is not empty and was not made by scripts/report.sh; give another --work" >&2
        exit 2
    fi
fi
mkdir -p "$work" "$figs" "$(dirname "$out")"
touch "$work/.clipx-study"
work=$(cd "$work" && pwd)
DATA=$work/data
PRE=$work/text-tower/pretrain/seed=0
SEEDS=$seeds

# ---- data and runs ----------------------------------------------------------------------------

t0=$(date +%s)
say "data into $DATA"
experiments/data/make-synth.sh "$DATA" >/dev/null
t_data=$(elapsed "$t0")

# The two-stage (issue 14), spurious-correlation (issue 15) and informative-attribute (issue 17)
# sections are scripts of their own on data of their own. They run beside the sweeps, one
# thread each, so the cores a sweep's last runs leave idle are not lost, and the report waits
# for them before it is written.
sections=$work/sections
mkdir -p "$sections"
section_pids=()
start_section() { # NAME SCRIPT: SCRIPT into WORK/NAME, its section into SECTIONS/NAME.md
    local name=$1 script=$2
    say "$name section beside the sweeps (progress in $sections/$name.log)"
    "$script" --work "$work/$name" --seeds "$seeds" --jobs 1 >"$sections/$name.md" \
        2>"$sections/$name.log" &
    section_pids+=("$!:$name")
}
stop_sections() {
    local p
    for p in "${section_pids[@]}"; do kill "${p%%:*}" 2>/dev/null; done
}
trap stop_sections EXIT
start_section retrain scripts/report_retrain.sh
start_section groups scripts/report_groups.sh
start_section attr scripts/report_attr.sh

FACTORS="text-tower clip-vs-sl vocab captions scale open-world trim-tail"
declare -A t_factor
FACTOR=""
# Called from experiments/FACTOR/sweeps.sh: one scripts/sweep.sh of a grid into WORK/FACTOR/NAME.
sweep() {
    local name=$1 cfg=$2 grid=$3
    shift 3
    say "$FACTOR/$name: $grid"
    scripts/sweep.sh --base "experiments/$FACTOR/$cfg" --grid "$grid" --out "$work/$FACTOR/$name" \
        --jobs "$jobs" --threads 1 --quiet "$@"
}
for FACTOR in $FACTORS; do
    t0=$(date +%s)
    # shellcheck disable=SC1090
    . "experiments/$FACTOR/sweeps.sh"
    t_factor[$FACTOR]=$(elapsed "$t0")
done
t_runs_end=$(date +%s)

# ---- every result in one table ----------------------------------------------------------------

# all.tsv: condition (FACTOR/SWEEP:run name without its seed), seed, then the metrics.
ALL=$work/all.tsv
METRICS="top1 head mid tail corr_acc corr_pred"
find "$work" -mindepth 3 -maxdepth 3 -name results.tsv | sort | while read -r f; do
    rel=${f#"$work"/}
    rel=${rel%/results.tsv}
    awk -F '\t' -v OFS='\t' -v sweep="$rel" -v metrics="$METRICS" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; nm = split(metrics, M, " "); next }
    {
        n = split($1, T, ","); c = ""
        for (i = 1; i <= n; i++) if (T[i] !~ /^seed=/) c = c (c == "" ? "" : ",") T[i]
        line = sweep ":" (c == "" ? "-" : c) OFS ("seed" in col ? $col["seed"] : "NA")
        for (m = 1; m <= nm; m++) line = line OFS $col[M[m]]
        print line
    }' "$f"
done >"$ALL"
nruns=$(find "$work" -mindepth 4 -maxdepth 4 -name model.ckpt | wc -l)

# The statistics: one awk program, asked one question a call.
STATS='
BEGIN {
    FS = "\t"; nm = split("top1 head mid tail corr_acc corr_pred", M, " ")
    for (m = 1; m <= nm; m++) idx[M[m]] = m
}
{
    key[$1] = 1
    if (!(($1, $2) in has)) { has[$1, $2] = 1; seeds[$1] = seeds[$1] " " $2 }
    for (m = 1; m <= nm; m++) v[$1, $2, m] = $(m + 2)
}
function sd(sum, sq, n,   var) {
    if (n < 2) return "nan"
    var = (sq - sum * sum / n) / (n - 1)
    return var > 0 ? sqrt(var) : 0
}
function cell(sum, sq, n, signed,   m, s) {
    if (n == 0) return "-"
    m = sum / n; s = sd(sum, sq, n)
    return sprintf(signed ? "%+.3f ± %.3f" : "%.3f ± %.3f", m, s)
}
# Per-seed values of condition a (or differences a - b on the seeds both have), metric m.
function collect(a, b, m,   n, k, S, x) {
    n = split(seeds[a], S, " "); cnt = 0; sum = 0; sq = 0
    for (k = 1; k <= n; k++) {
        if (b != "" && !((b, S[k]) in has)) continue
        x = v[a, S[k], m]
        if (x == "NA") continue
        if (b != "") { if (v[b, S[k], m] == "NA") continue; x -= v[b, S[k], m] }
        cnt++; sum += x; sq += x * x
    }
}
function need(c) { if (!(c in key)) { print "report: no runs for condition " c > "/dev/stderr"; bad = 1; exit 1 } }
END {
    if (bad) exit 1
    if (mode == "row" || mode == "diff") {
        need(a); if (mode == "diff") need(b)
        cells = ""; nrow = 0
        for (m = 1; m <= nm; m++) {
            collect(a, mode == "diff" ? b : "", m)
            if (cnt > nrow) nrow = cnt
            cells = cells " | " cell(sum, sq, cnt, mode == "diff")
        }
        # the runs (or pairs of runs) behind the row, then the cells
        print "| " label " | " nrow cells " |"
    } else if (mode == "verdict") {
        # spec: metric<,metric> ... the paper direction of a - b per metric. Prints the verdict
        # (reproduces / within / opposite / mixed), a tab, then the numbers.
        need(a); need(b)
        ns = split(spec, P, ","); good = 0; opp = 0; txt = ""
        for (i = 1; i <= ns; i++) {
            dir = substr(P[i], length(P[i])); name = substr(P[i], 1, length(P[i]) - 1)
            collect(a, b, idx[name])
            mean = cnt ? sum / cnt : 0; s = sd(sum, sq, cnt)
            ok = (dir == "<" ? mean < 0 : mean > 0)
            clear = ok && s != "nan" && (mean < 0 ? -mean : mean) > 2 * s
            if (clear) good++
            else if (!ok) opp++
            txt = txt sprintf("%s%s %+.3f ± %.3f", i > 1 ? ", " : "", name, mean, s)
        }
        verdict = good == ns ? "reproduces" : opp == ns ? "opposite" : opp == 0 ? "within" : "mixed"
        printf "%s\t%s (%d paired seeds)\n", verdict, txt, cnt
    } else if (mode == "mean") {
        need(a); collect(a, "", idx[metric]); printf "%.3f\n", cnt ? sum / cnt : 0
    } else if (mode == "pairs") {
        need(a); need(b); collect(a, b, idx[metric])
        printf "%.3f %s\n", cnt ? sum / cnt : 0, sd(sum, sq, cnt)
    }
}'
row() { awk -v mode=row -v label="$1" -v a="$2" "$STATS" "$ALL"; }
diffrow() { awk -v mode=diff -v label="$1" -v a="$2" -v b="$3" "$STATS" "$ALL"; }
meanof() { awk -v mode=mean -v a="$1" -v metric="$2" "$STATS" "$ALL"; }
# pairs A B METRIC: "mean ± sd" of the paired differences A - B.
pairs() {
    awk -v mode=pairs -v a="$1" -v b="$2" -v metric="$3" "$STATS" "$ALL" |
        awk '{ printf "%+.3f ± %.3f", $1, $2 }'
}
thead() {
    echo "| $1 | runs | top1 | head | mid | tail | corr_acc | corr_pred |"
    echo "|---|---|---|---|---|---|---|---|"
}

# finding TEXT A B SPEC [NOTE]: one line per finding of the paper, also gathered for the summary.
# SPEC lists metric< or metric> (the paper's direction of A - B); NOTE is said when it does not
# reproduce beyond the seeds' spread.
FINDINGS=$work/findings.md
: >"$FINDINGS"
finding() {
    local text=$1 a=$2 b=$3 spec=$4 note=${5:-} res verdict nums word
    res=$(awk -v mode=verdict -v a="$a" -v b="$b" -v spec="$spec" "$STATS" "$ALL")
    verdict=${res%%$'\t'*}
    nums=${res#*$'\t'}
    case $verdict in
    reproduces) word="**Reproduces** (same direction, beyond 2 standard deviations of the paired differences)" ;;
    within) word="**Same direction, not beyond the seeds' spread** (in at least one metric)" ;;
    opposite) word="**Does not reproduce** (opposite direction)" ;;
    *) word="**Partly reproduces** (some metrics go the other way)" ;;
    esac
    local line="- $text — $word: $nums."
    [ "$verdict" = reproduces ] || [ -z "$note" ] || line="$line $note"
    echo "$line"
    echo "$line" >>"$FINDINGS"
}

# figure NAME [--OPTION VALUE] LABEL@RUN...: clipx compare --plot of the runs (FACTOR/SWEEP/RUN
# folders under WORK), each named LABEL in the legend, into FIGURES/NAME.svg.
figure() {
    local name=$1 d
    shift
    d=$work/figure-runs/$name
    rm -rf "$d"
    mkdir -p "$d"
    local runs=() cargs=()
    while [ $# -gt 0 ]; do
        case $1 in
        --*) cargs+=("$1" "$2"); shift 2; continue ;;
        esac
        ln -s "$work/${1#*@}" "$d/${1%%@*}"
        runs+=("$d/${1%%@*}")
        shift
    done
    "$CLIPX" compare "${runs[@]}" "${cargs[@]}" --threads "$jobs" --quiet --no-nc1 \
        --plot "$figs/$name.svg" >/dev/null
    echo
    echo "![$name]($(realpath --relative-to="$(dirname "$out")" "$figs/$name.svg"))"
}

# Expected distinct classes in a batch of B drawn from counts (one count a line).
distinct() { awk -v B="$1" '{ n[NR] = $1; s += $1 } END { for (i in n) e += 1 - (1 - n[i] / s) ^ B; printf "%.0f", e }'; }
lt_counts() { cut -f2 "$DATA/lt/train-counts.tsv"; }
fm_counts() {
    "$CLIPX" stats experiments/data/fashion-mnist.yaml --subset experiments/data/fashion-mnist-lt100.subset \
        --json | tr -d ' \n' | sed 's/.*"counts":\[\([0-9,]*\)\].*/\1/' | tr ',' '\n'
}

# ---- the report ---------------------------------------------------------------------------------

t_tables=$(date +%s)
body=$work/body.md
# The conditions shared between factors (the same configuration is run once).
SL=clip-vs-sl/sl:- CLIP=clip-vs-sl/clip:- FSL=clip-vs-sl/fmnist-sl:- FCLIP=clip-vs-sl/fmnist-clip:-
V=vocab TT=text-tower
FROZEN=$TT/init:model.text.freeze=true INIT=$TT/init:model.text.freeze=false
RFROZEN=$TT/random-frozen:-
{
# ---------------------------------------------------------------------------------------------
echo "## 1. CLIP against SL on the same data"
echo
echo "The same long-tailed data, image tower and schedule; CLIP learns from the captions and is"
echo "evaluated zero-shot from prompt templates, SL from the labels with a linear head over all"
echo "classes (\`experiments/clip-vs-sl/\`)."
echo
thead "synthetic, 1,000 classes"
row "SL" "$SL"
row "CLIP" "$CLIP"
diffrow "CLIP − SL (paired)" "$CLIP" "$SL"
echo
thead "Fashion-MNIST-LT (head/mid/tail: thirds by count)"
row "SL" "$FSL"
row "CLIP" "$FCLIP"
diffrow "CLIP − SL (paired)" "$FCLIP" "$FSL"
echo
finding "CLIP's predictions are less biased towards frequent classes than SL's on the same data (lower corr_pred; synthetic)" \
    "$CLIP" "$SL" "corr_pred<"
finding "CLIP's per-class accuracy depends less on class frequency than SL's (lower corr_acc; synthetic)" \
    "$CLIP" "$SL" "corr_acc<"
finding "The same two on Fashion-MNIST-LT" "$FCLIP" "$FSL" "corr_pred<,corr_acc<" \
    "With 10 classes a Spearman correlation rests on 10 points, and seeds move it a lot."
echo
echo "CLIP's zero-shot accuracy differs from SL's by $(pairs "$CLIP" "$SL" top1) top-1 on the synthetic"
echo "data (head $(pairs "$CLIP" "$SL" head), tail $(pairs "$CLIP" "$SL" tail)) and by $(pairs "$FCLIP" "$FSL" top1) on"
echo "Fashion-MNIST-LT: lower correlations can come from a tail that gains or from a head that loses,"
echo "so the head and tail columns belong with them."
figure clip-vs-sl "SL@clip-vs-sl/sl/seed=0" "CLIP@clip-vs-sl/clip/seed=0"

# ---------------------------------------------------------------------------------------------
echo
echo "## 2. SL with vocabulary subsampling (dynamic classification)"
echo
echo "Each step scores only the batch's own classes plus classes drawn (weight uniform, linear = n_c,"
echo "or sqrt) until there are K; K = all is plain SL, the run of section 1 (\`experiments/vocab/\`)."
echo "A batch of 32, 128 or 512 samples holds about $(lt_counts | distinct 32), $(lt_counts | distinct 128)"
echo "and $(lt_counts | distinct 512) distinct classes of the 1,000 (expected value from the training"
echo "counts); a K at or below that scores just the batch's classes, so K = 1 and K = 64 are the same"
echo "run at batch 128, and at batch 512 K = 256 adds only a few classes."
echo
thead "random (linear) head, batch 128, linear weights"
row "K = all (SL)" "$SL"
for k in 512 256 128 64; do row "K = $k" "$V/k:vocab.k=$k"; done
row "K = 1 (the batch's classes only)" "$V/k:vocab.k=1"
diffrow "K = 128 − all (paired)" "$V/k:vocab.k=128" "$SL"
diffrow "K = 1 − all (paired)" "$V/k:vocab.k=1" "$SL"
diffrow "K = 64 − K = 1 (paired)" "$V/k:vocab.k=64" "$V/k:vocab.k=1"
echo
thead "weights of the drawn classes, batch 128"
for k in 128 256; do
    for w in uniform sqrt; do row "K = $k, $w" "$V/weight:vocab.weight=$w,vocab.k=$k"; done
    row "K = $k, linear" "$V/k:vocab.k=$k"
done
diffrow "K = 128: uniform − linear (paired)" "$V/weight:vocab.weight=uniform,vocab.k=128" "$V/k:vocab.k=128"
diffrow "K = 128: sqrt − linear (paired)" "$V/weight:vocab.weight=sqrt,vocab.k=128" "$V/k:vocab.k=128"
echo
thead "batch size"
for b in 32 128 512; do
    for k in 0 1 256; do
        lab="batch $b, K = $k"
        [ "$k" = 0 ] && lab="batch $b, K = all"
        if [ $b = 128 ]; then
            if [ $k = 0 ]; then row "$lab" "$SL"; else row "$lab" "$V/k:vocab.k=$k"; fi
        else row "$lab" "$V/batch:batch=$b,vocab.k=$k"; fi
    done
done
diffrow "batch 32: K = 1 − all (paired)" "$V/batch:batch=32,vocab.k=1" "$V/batch:batch=32,vocab.k=0"
diffrow "batch 128: K = 1 − all (paired)" "$V/k:vocab.k=1" "$SL"
diffrow "batch 512: K = 1 − all (paired)" "$V/batch:batch=512,vocab.k=1" "$V/batch:batch=512,vocab.k=0"
echo
thead "frozen text-embedding head (from the pre-trained CLIP), batch 128"
row "text head, K = all" "$V/text-head:vocab.k=0"
for k in 256 128 1; do row "text head, K = $k" "$V/text-head:vocab.k=$k"; done
diffrow "text head: K = 128 − all (paired)" "$V/text-head:vocab.k=128" "$V/text-head:vocab.k=0"
diffrow "text head K = 128 − random head K = all (paired)" "$V/text-head:vocab.k=128" "$SL"
echo
thead "Fashion-MNIST-LT, batch 16 (about $(fm_counts | distinct 16) of the 10 classes a batch)"
row "K = all (SL)" "$FSL"
for k in 8 6 4 1; do row "K = $k" "$V/fmnist:vocab.k=$k"; done
diffrow "K = 6 − all (paired)" "$V/fmnist:vocab.k=6" "$FSL"
echo
finding "SL with vocabulary subsampling (K = 128, linear weights) has lower corr_acc and corr_pred than full SL" \
    "$V/k:vocab.k=128" "$SL" "corr_acc<,corr_pred<"
finding "The smaller the vocabulary, the more robust: K = 1 against K = 512" \
    "$V/k:vocab.k=1" "$V/k:vocab.k=512" "corr_acc<,corr_pred<"
finding "Subsampling helps a frozen text-embedding head too (K = 128 against all classes)" \
    "$V/text-head:vocab.k=128" "$V/text-head:vocab.k=0" "corr_acc<,corr_pred<"
finding "Vocabulary subsampling on Fashion-MNIST-LT (K = 6 of 10, batch 16) against full SL" \
    "$V/fmnist:vocab.k=6" "$FSL" "corr_acc<,corr_pred<" \
    "With 10 classes a Spearman correlation rests on 10 points."
echo "- Check of the mechanism (not a claim of the paper): K at or below the batch's distinct classes changes nothing (K = 64 − K = 1 at batch 128: corr_pred $(pairs "$V/k:vocab.k=64" "$V/k:vocab.k=1" corr_pred), top1 $(pairs "$V/k:vocab.k=64" "$V/k:vocab.k=1" top1)), and the larger the batch, the less K = 1 changes (K = 1 − all, corr_pred: $(pairs "$V/batch:batch=32,vocab.k=1" "$V/batch:batch=32,vocab.k=0" corr_pred) at batch 32, $(pairs "$V/k:vocab.k=1" "$SL" corr_pred) at 128, $(pairs "$V/batch:batch=512,vocab.k=1" "$V/batch:batch=512,vocab.k=0" corr_pred) at 512)." |
    tee -a "$FINDINGS"
echo
echo "Weights at K = 128, corr_pred: uniform − linear $(pairs "$V/weight:vocab.weight=uniform,vocab.k=128" "$V/k:vocab.k=128" corr_pred),"
echo "sqrt − linear $(pairs "$V/weight:vocab.weight=sqrt,vocab.k=128" "$V/k:vocab.k=128" corr_pred). With linear weights"
echo "(the paper's default) the drawn classes are mostly frequent ones, so a rare class is scored"
echo "against least often."
figure vocab "SL-K=all@clip-vs-sl/sl/seed=0" "SL-K=128@vocab/k/vocab.k=128,seed=0" \
    "SL-K=1@vocab/k/vocab.k=1,seed=0" "text-head-K=128@vocab/text-head/vocab.k=128,seed=0"

# ---------------------------------------------------------------------------------------------
echo
echo "## 3. Caption descriptiveness"
echo
echo "CLIP on the same images (byte-identical features) with four kinds of captions"
echo "(\`experiments/captions/\`): template (\"a photo of a NAME.\", one caption per class); synonym (a"
echo "random template and one of three names); descriptive (a random template around the sample's own"
echo "attribute words, one of three names and, in 30% of samples, a co-occurring concept); descriptive"
echo "with the class name always (section 1's CLIP). Then the same template-against-descriptive pair"
echo "on images without co-occurring concepts, with attributes that move the image a third as much,"
echo "and with both (each pair shares its images, which differ from the others')."
echo
P="captions/modes:data="
Q="captions/variants:data="
thead "CLIP, zero-shot"
row "template" "${P}captions-template"
row "synonym" "${P}captions-synonym"
row "descriptive (synonyms)" "${P}captions-descriptive"
row "descriptive (class name)" "$CLIP"
diffrow "descriptive (name) − template (paired)" "$CLIP" "${P}captions-template"
diffrow "descriptive (synonyms) − template (paired)" "${P}captions-descriptive" "${P}captions-template"
diffrow "synonym − template (paired)" "${P}captions-synonym" "${P}captions-template"
echo
thead "what the descriptions describe"
for d in cooc0 attr0.1 attr0.1-cooc0; do
    case $d in
    cooc0) lab="no co-occurring concepts" ;;
    attr0.1) lab="attributes 0.1" ;;
    *) lab="attributes 0.1, no co-occurring concepts" ;;
    esac
    row "$lab: template" "${Q}$d-template"
    row "$lab: descriptive" "${Q}$d-descriptive"
    diffrow "$lab: descriptive − template (paired)" "${Q}$d-descriptive" "${Q}$d-template"
done
echo
tried=""
for d in cooc0 attr0.1 attr0.1-cooc0; do
    case $d in
    cooc0) lab="without co-occurring concepts" ;;
    attr0.1) lab="with attributes a third as strong" ;;
    *) lab="with both" ;;
    esac
    tried="$tried${tried:+; }$lab top1 $(pairs "${Q}$d-descriptive" "${Q}$d-template" top1), corr_acc $(pairs "${Q}$d-descriptive" "${Q}$d-template" corr_acc)"
done
finding "More descriptive captions make CLIP more robust and more discriminative (descriptive captions with the class name against template captions)" \
    "$CLIP" "${P}captions-template" "corr_acc<,corr_pred<,top1>" \
    "Tried, descriptive − template on images made without what the descriptions add: $tried. Likely reason: in the synthetic world the described attributes and co-occurring concepts are nuisance variation of the class (they move the image as much as the class spread does), so aligning images with them makes CLIP encode them, which class-name prompts cannot match; the bag-of-words text tower also cannot tell the main object from a co-occurring one. Fainter attributes shrink the accuracy cost, the more so without co-occurring concepts, but do not reverse it, while removing the co-occurring concepts alone does not shrink it; in the paper's web captions the extra words also carry class-relevant visual information."
figure captions "template@captions/modes/data=captions-template,seed=0" \
    "synonym@captions/modes/data=captions-synonym,seed=0" \
    "descriptive@captions/modes/data=captions-descriptive,seed=0" \
    "descriptive-name@clip-vs-sl/clip/seed=0"

# ---------------------------------------------------------------------------------------------
echo
echo "## 4. Data scale"
echo
echo "Fractions of the long-tailed training set, in proportion to the classes (a class keeps at least"
echo "one sample), same epochs (\`experiments/scale/\`); head/mid/tail by each subset's own counts, so"
echo "their membership changes with the fraction. Fraction 1 is the runs of sections 1 and 7."
echo
S="scale"
thead "fraction of the data"
for m in sl clip clip-frozen-text; do
    case $m in sl) lab=SL full=$SL ;; clip) lab=CLIP full=$CLIP ;; *) lab="CLIP, frozen pre-trained text tower" full=$FROZEN ;; esac
    for f in 0.125 0.25 0.5; do row "$lab, $f" "$S/$m:subset=scale-$f"; done
    row "$lab, 1" "$full"
done
diffrow "CLIP: 1 − 0.125 (paired)" "$CLIP" "$S/clip:subset=scale-0.125"
diffrow "SL: 1 − 0.125 (paired)" "$SL" "$S/sl:subset=scale-0.125"
diffrow "frozen − random text tower at 0.125 (paired)" "$S/clip-frozen-text:subset=scale-0.125" "$S/clip:subset=scale-0.125"
diffrow "frozen − random text tower at 1 (paired)" "$FROZEN" "$CLIP"
echo
finding "CLIP grows more robust and more discriminative with more data (all of it against 1/8)" \
    "$CLIP" "$S/clip:subset=scale-0.125" "corr_acc<,corr_pred<,top1>"
echo
echo "From 1/8 of the data to all of it SL's corr_acc changes by $(pairs "$SL" "$S/sl:subset=scale-0.125" corr_acc),"
echo "CLIP's by $(pairs "$CLIP" "$S/clip:subset=scale-0.125" corr_acc). A frozen pre-trained text tower adds"
echo "$(pairs "$S/clip-frozen-text:subset=scale-0.125" "$S/clip:subset=scale-0.125" top1) top-1 at 1/8 of the data and $(pairs "$FROZEN" "$CLIP" top1) with all of it."
figure scale "SL-0.125@scale/sl/subset=scale-0.125,seed=0" "SL-all@clip-vs-sl/sl/seed=0" \
    "CLIP-0.125@scale/clip/subset=scale-0.125,seed=0" "CLIP-all@clip-vs-sl/clip/seed=0"

# ---------------------------------------------------------------------------------------------
echo
echo "## 5. Open-world concepts"
echo
echo "The 1,000 evaluated classes keep the same counts; 0, 500 or 1,000 extra concepts (30,000 samples"
echo "for all of them, the same Zipf law) appear only in training (\`experiments/open-world/\`). SL's"
echo "head covers every concept; evaluation scores only the evaluated classes. This dataset has its"
echo "own draw of attribute directions, so its numbers differ a little from section 1's."
echo
O="open-world"
thead "open-world concepts in training"
for k in 0 1000; do row "SL, $k" "$O/sl:subset=open-$k"; done
for k in 0 500 1000; do row "CLIP, $k" "$O/clip:subset=open-$k"; done
diffrow "CLIP: 1,000 − 0 (paired)" "$O/clip:subset=open-1000" "$O/clip:subset=open-0"
diffrow "SL: 1,000 − 0 (paired)" "$O/sl:subset=open-1000" "$O/sl:subset=open-0"
echo
finding "Open-world concepts make CLIP more robust and more discriminative (1,000 extra concepts against none)" \
    "$O/clip:subset=open-1000" "$O/clip:subset=open-0" "corr_acc<,corr_pred<,top1>" \
    "A likely reason: CLIP's corr_pred is about 0 even without them, with no room to fall, and the extra concepts add only a third more data, spread thinly over 1,000 Zipf-distributed concepts that share no words with the evaluated classes' captions."
figure open-world "SL-0@open-world/sl/subset=open-0,seed=0" "SL-1000@open-world/sl/subset=open-1000,seed=0" \
    "CLIP-0@open-world/clip/subset=open-0,seed=0" "CLIP-1000@open-world/clip/subset=open-1000,seed=0"

# ---------------------------------------------------------------------------------------------
echo
echo "## 6. Trim-tail: classes with 0 or 1 training sample"
echo
echo "The 200 rarest classes cut to 0 or 1 sample (\`experiments/trim-tail/\`); here \"tail\" is the"
echo "accuracy on exactly those classes (tail < 2 training samples, head > 100). The frozen head and the"
echo "frozen text tower come from the CLIP pre-trained on balanced data of the same concepts, which knows"
echo "every class name (the paper uses a CLIP pre-trained on web data)."
echo
T="trim-tail"
for c in 0 1; do
    thead "$c sample(s) in each trimmed class"
    row "SL, random head" "$T/sl:subset=trim-c$c,vocab.k=0"
    row "SL, random head, K = 1" "$T/sl:subset=trim-c$c,vocab.k=1"
    row "SL, frozen text head" "$T/sl-text-head:subset=trim-c$c,vocab.k=0"
    row "SL, frozen text head, K = 1" "$T/sl-text-head:subset=trim-c$c,vocab.k=1"
    row "CLIP" "$T/clip:subset=trim-c$c"
    row "CLIP, frozen pre-trained text tower" "$T/clip-frozen-text:subset=trim-c$c"
    diffrow "frozen head K = 1 − random head (paired)" "$T/sl-text-head:subset=trim-c$c,vocab.k=1" "$T/sl:subset=trim-c$c,vocab.k=0"
    diffrow "frozen head: K = 1 − all (paired)" "$T/sl-text-head:subset=trim-c$c,vocab.k=1" "$T/sl-text-head:subset=trim-c$c,vocab.k=0"
    echo
done
finding "With 0 samples per trimmed class, SL with a frozen text head and vocabulary subsampling recognises them, SL with a random head does not (tail accuracy)" \
    "$T/sl-text-head:subset=trim-c0,vocab.k=1" "$T/sl:subset=trim-c0,vocab.k=0" "tail>"
finding "The same with 1 sample per trimmed class" \
    "$T/sl-text-head:subset=trim-c1,vocab.k=1" "$T/sl:subset=trim-c1,vocab.k=0" "tail>"
finding "Subsampling is what keeps the frozen head's knowledge of the trimmed classes (frozen head, K = 1 against all classes; 0 samples)" \
    "$T/sl-text-head:subset=trim-c0,vocab.k=1" "$T/sl-text-head:subset=trim-c0,vocab.k=0" "tail>"
figure trim-tail --thresholds 100,2 "SL-random@trim-tail/sl/subset=trim-c0,vocab.k=0,seed=0" \
    "SL-frozen-K=1@trim-tail/sl-text-head/subset=trim-c0,vocab.k=1,seed=0" \
    "CLIP@trim-tail/clip/subset=trim-c0,seed=0" \
    "CLIP-frozen-text@trim-tail/clip-frozen-text/subset=trim-c0,seed=0"

# ---------------------------------------------------------------------------------------------
echo
echo "## 7. The text tower: random, initialised from another run, frozen"
echo
echo "CLIP on the long-tailed data with its text tower random (trained: section 1's CLIP),"
echo "initialised from the pre-trained CLIP (balanced data of the same concepts) and fine-tuned, or"
echo "initialised and frozen; a frozen random text tower is the control (\`experiments/text-tower/\`)."
echo
thead "CLIP, zero-shot"
row "random" "$CLIP"
row "initialised, fine-tuned" "$INIT"
row "initialised, frozen" "$FROZEN"
row "random, frozen (control)" "$RFROZEN"
diffrow "initialised − random (paired)" "$INIT" "$CLIP"
diffrow "frozen − random (paired)" "$FROZEN" "$CLIP"
echo
echo "The pre-trained CLIP itself scores $(meanof "$TT/pretrain:-" top1) top-1 zero-shot on its own"
echo "balanced test split."
echo
finding "A pre-trained text tower, frozen, makes CLIP more robust and more discriminative than a random one" \
    "$FROZEN" "$CLIP" "corr_acc<,corr_pred<,top1>" \
    "Where corr_pred does not fall, a likely reason is that the class embeddings are fixed, from balanced data, while the image tower alone fits the long tail, leaning towards the frequent classes' embeddings."
finding "The same for a pre-trained text tower that is fine-tuned" \
    "$INIT" "$CLIP" "corr_acc<,corr_pred<,top1>" \
    "A likely reason: fine-tuning on the long-tailed captions lets the text tower drift back towards the imbalance."
figure text-tower "random@clip-vs-sl/clip/seed=0" \
    "initialised@text-tower/init/model.text.freeze=false,seed=0" \
    "frozen@text-tower/init/model.text.freeze=true,seed=0" \
    "random-frozen@text-tower/random-frozen/seed=0"
} >"$body"
t_tables=$(elapsed "$t_tables")
t0=$(date +%s)
for p in "${section_pids[@]}"; do
    if ! wait "${p%%:*}"; then
        say "the ${p#*:} section failed ($sections/${p#*:}.log):"
        tail -n 5 "$sections/${p#*:}.log" >&2
        exit 1
    fi
done
section_pids=()
t_sections_wait=$(elapsed "$t0")
t_total=$(elapsed "$t_start")

# ---- the header, the findings, the settings ------------------------------------------------------

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
fmt_t() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }
{
echo "# The controlled study of CLIP under data imbalance, rerun with clipx"
echo
echo "A rerun of the dynamic-classification analysis of \"Generalization Beyond Data Imbalance: A"
echo "Controlled Study on CLIP for Transferable Insights\" (Wen et al. 2024) on clipx's synthetic"
echo "image-text data and on Fashion-MNIST-LT. This file is written by \`scripts/report.sh\`; do not"
echo "edit it by hand."
echo
echo "- Made by: \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- Machine: $(uname -srm), $cpu, $(nproc) cores; runs $jobs at a time, 1 thread each"
echo "- clipx: $("$CLIPX" --version)$(git rev-parse --short HEAD 2>/dev/null | sed 's/^/, commit /')"
echo "- Wall time: $(fmt_t "$t_total") in all: data $(fmt_t "$t_data"), $nruns training runs and"
echo "  their evaluation $(fmt_t $((t_runs_end - t_start - t_data))) ($(for f in $FACTORS; do printf '%s %s, ' "$f" "$(fmt_t "${t_factor[$f]}")"; done | sed 's/, $//')),"
echo "  tables and figures $(fmt_t "$t_tables"); the two-stage, spurious-correlation and attribute sections ran"
echo "  beside the sweeps, one thread each (their own times are in their sections), and ended"
echo "  $(fmt_t "$t_sections_wait") after the tables"
echo "- Seeds: $seeds (training seeds: initialisation, batch order, sampling); the data are fixed (seed 0)."
echo
echo "## How to read it"
echo
echo "- corr_acc and corr_pred: Spearman correlation, over the evaluated classes, of the training count"
echo "  with the per-class test accuracy and with the number of test predictions of the class. Lower"
echo "  is more robust to the imbalance. top1 is the mean per-class accuracy on the balanced test split;"
echo "  head, mid, tail are its means over classes with more than 100, 20 to 100, and fewer than 20"
echo "  training samples (a dash: no class there)."
echo "- Each cell is the mean ± standard deviation over the seeds; \"runs\" counts them. A paired row"
echo "  is, per seed, method A minus method B on the same data with the same seed, then the mean ± standard"
echo "  deviation of those differences."
echo "- A finding **reproduces** when, in every metric it names, the paired difference has the paper's"
echo "  sign and is larger than twice its standard deviation over the seeds. Otherwise it has the same"
echo "  direction but not beyond the spread, partly reproduces (some metric goes the other way) or does"
echo "  not reproduce (every metric goes the other way); each such line says what was tried and the"
echo "  likely reason."
echo
echo "## Findings of the paper, one line each"
echo
cat "$FINDINGS"
echo "- Not measured yet: the paper's seventh finding (DINO with prototype subsampling) and the DeCLIP"
echo "  comparisons. clipx trains both objectives (\`objective: dino\`, \`objective: declip\` without its"
echo "  MLM term so far), but this report has no sweep of them yet, so neither claim is tested here."
echo
echo "## Settings"
echo
echo "- Synthetic data (\`experiments/data/make-synth.sh\`, \`clipx synth\`): 1,000 classes in 10"
echo "  superclasses, 2 latent modes each (latent dimension 16, within-class spread 0.35), rendered by a"
echo "  fixed random sine network into 64 observed features; Zipf (Pareto) training counts with imbalance"
echo "  ratio 500 ($(lt_counts | sort -n | tail -n 1) down to $(lt_counts | sort -n | head -n 1) samples, 60,000 in all), 20 test samples per class"
echo "  (20,000, balanced). Captions: a random template around the sample's attribute words (2 slots,"
echo "  each filled with probability 0.7; the attributes shift the latent too), the class name and, in 30%"
echo "  of samples, a co-occurring concept drawn by frequency (its prototype pulls the latent by 0.25)."
echo "  Variants: caption modes, data fractions, trimmed tails, open-world concepts, a balanced"
echo "  \"pretrain\" set of the same concepts."
echo "- Fashion-MNIST-LT: Debian's dataset-fashion-mnist, exponential profile with imbalance ratio 100"
echo "  (14,886 images; \`experiments/data/fashion-mnist-lt100.subset\`), captions composed from prompt"
echo "  templates and the class names or their synonyms."
echo "- Models: an MLP image tower 64 → 256 → 64 (ReLU; 784 → 256 → 64 on Fashion-MNIST); CLIP's text"
echo "  tower is the mean of 64-dimensional token embeddings then a linear map; symmetric InfoNCE with"
echo "  a learnable logit scale (initial 1/0.07, at most 100). SL: linear head, or the frozen class-prompt"
echo "  embeddings of the pre-trained CLIP (\`head: text\`); cross-entropy."
echo "- Training: AdamW (weight decay 1e-4), cosine schedule, batch 128, 30 epochs on the synthetic data"
echo "  (batch 16, 10 epochs, lr 0.001 on Fashion-MNIST-LT); learning rate 0.005 for SL and 0.01 for"
echo "  CLIP, each the better of the two for its objective on this data."
echo "- Evaluation (\`clipx compare\`): CLIP zero-shot from the dataset's 8 prompt templates, SL from its"
echo "  head; every run on the same balanced test split of its dataset."
echo "- Each factor's folder under \`experiments/\` holds its configs, its \`sweeps.sh\` (the grids, run"
echo "  by \`scripts/sweep.sh\`) and a README; the runs are under \`$(realpath --relative-to="$top" "$work" 2>/dev/null || echo "$work")\`, one"
echo "  \`results.tsv\` per sweep."
echo
cat "$body"
echo
# Issue 14's two-stage and post-hoc section and issue 15's spurious-correlation section (each
# its own script, also run alone; started after the data).
cat "$sections/retrain.md"
echo
cat "$sections/groups.md"
echo
# Issue 17's informative-attribute world: descriptive captions and open-world concepts that share
# attributes (its own script).
cat "$sections/attr.md"
} >"$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
say "wrote $out and $figs/*.svg in $(fmt_t "$(elapsed "$t_start")")"
}
main "$@"
