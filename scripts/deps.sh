#!/bin/sh
# Install the Debian packages clipx needs that are missing. As root it runs apt-get; otherwise
# it prints the one apt-get line to run. Usage: scripts/deps.sh [build|test|quickstart|bench|fuzz|all]
set -eu
what=${1:-build}

build_pkgs="build-essential autoconf automake pkg-config libopenblas-dev libopenblas-openmp-dev libyaml-dev zlib1g-dev check libpng-dev libjpeg62-turbo-dev"
test_pkgs="libopenmpi-dev openmpi-bin gnuplot-nox wordnet-base"
data_pkgs="dataset-fashion-mnist"
bench_pkgs="python3-torch python3-numpy python3-sklearn python3-pil time"
# scripts/fuzz.sh only: clang with libFuzzer and the sanitizer runtimes
fuzz_pkgs="clang"

case "$what" in
build) pkgs="$build_pkgs" ;;
test) pkgs="$build_pkgs $test_pkgs" ;;
quickstart) pkgs="$build_pkgs gnuplot-nox" ;;
bench) pkgs="$build_pkgs $test_pkgs $data_pkgs $bench_pkgs" ;;
fuzz) pkgs="$build_pkgs $fuzz_pkgs" ;;
all) pkgs="$build_pkgs $test_pkgs $data_pkgs $bench_pkgs" ;;
*) echo "usage: scripts/deps.sh [build|test|quickstart|bench|fuzz|all]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "clipx needs these Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
