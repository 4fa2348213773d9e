#!/bin/sh
# One command from a fresh Debian 12 machine to a first result: install what is missing,
# build, and run the main job on clipx's own synthetic data (no download).
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh quickstart
scripts/build.sh
./clipx --version
./clipx --help
