#!/bin/sh
# Configure (once) and build clipx in the source folder. Extra arguments go to configure.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    autoreconf -fi >/dev/null
fi
if [ ! -f Makefile ] || [ "$#" -gt 0 ] || [ configure -nt config.status ]; then
    ./configure --quiet "$@"
fi
make -j"$(nproc)" >/dev/null
