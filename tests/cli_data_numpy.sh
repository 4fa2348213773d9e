#!/bin/sh
# NPY files written by `clipx synth` load in numpy with the shapes their dataset.yaml promises
# (scripts/check_synth_numpy.py). Skipped when Debian's python3 lacks numpy.
. "$TOP_SRCDIR/tests/lib.sh"

if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    echo "skipping: /usr/bin/python3 cannot import numpy"
    exit 77
fi
expect_exit 0 "$CLIPX" synth --out "$WORK/f32" --classes 12 --n 2000 --dim 24 --open-world 0.2 --label-noise 0.1 --quiet
expect_exit 0 /usr/bin/python3 "$TOP_SRCDIR/scripts/check_synth_numpy.py" "$WORK/f32" ||
    sed 's/^/  /' "$WORK/err" >&2
expect_exit 0 "$CLIPX" synth --out "$WORK/u8" --classes 5 --n 700 --dim 7 --dtype uint8 --profile exp --quiet
expect_exit 0 /usr/bin/python3 "$TOP_SRCDIR/scripts/check_synth_numpy.py" "$WORK/u8" ||
    sed 's/^/  /' "$WORK/err" >&2
finish
