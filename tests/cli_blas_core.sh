#!/bin/sh
# The BLAS kernels: clipx version says which core runs and why; a user's OPENBLAS_CORETYPE
# (even empty) is kept; a weak pick is replaced by one re-execution that keeps argv, stdout and
# the exit status.
. "$TOP_SRCDIR/tests/lib.sh"

core_line() { grep '^blas core: ' "$WORK/out"; }

expect_exit 0 env -u OPENBLAS_CORETYPE "$CLIPX" version &&
    expect_grep "^blas core: [A-Za-z0-9_]+ \((OpenBLAS's own pick|chosen by clipx for this CPU, was [A-Za-z0-9_]+)\)$" \
        "$WORK/out" "version, no OPENBLAS_CORETYPE"
expect_grep '^blas threading: (openmp|pthreads|serial)$' "$WORK/out" "version threading"
expect_grep '^cpu: .*best core ' "$WORK/out" "version cpu"

expect_exit 0 env OPENBLAS_CORETYPE=Haswell "$CLIPX" version &&
    expect_grep '^blas core: [A-Za-z0-9_]+ \(set by OPENBLAS_CORETYPE=Haswell\)$' "$WORK/out" \
        "version, OPENBLAS_CORETYPE=Haswell"
# A DYNAMIC_ARCH OpenBLAS takes it (a single-core build runs its own core whatever is set).
if grep -q DYNAMIC_ARCH "$WORK/out"; then
    expect_grep '^blas core: Haswell ' "$WORK/out" "the core Haswell in use"
fi

expect_exit 0 env OPENBLAS_CORETYPE= "$CLIPX" version &&
    expect_grep '^blas core: [A-Za-z0-9_]+ \(set by OPENBLAS_CORETYPE, empty' "$WORK/out" \
        "version, OPENBLAS_CORETYPE empty"

# A wrong pick, simulated: Prescott treated as OpenBLAS's own. On a CPU with AVX or better
# clipx re-executes itself with the CPU's best core; on an older one it keeps Prescott.
expect_exit 0 "$CLIPX" version
best=$(sed -n 's/^cpu: .*best core \([A-Za-z0-9_]*\).*/\1/p' "$WORK/out")
sim="env CLIPX_TEST_CORETYPE_AS_PICK=1 OPENBLAS_CORETYPE=Prescott"
expect_exit 0 $sim "$CLIPX" version
if [ "$best" = none ]; then
    expect_grep "^blas core: Prescott \(OpenBLAS's own pick\)$" "$WORK/out" "simulated pick, old CPU"
else
    expect_grep "^blas core: $best \(chosen by clipx for this CPU, was Prescott\)$" "$WORK/out" \
        "simulated wrong pick"
    grep -q DYNAMIC_ARCH "$WORK/out" && expect_grep "DYNAMIC_ARCH.* $best " "$WORK/out" "OpenBLAS's own config line"
fi
# The re-executed process has the same arguments, standard output and exit status.
expect_exit 0 "$CLIPX" help train && cp "$WORK/out" "$WORK/help-direct"
expect_exit 0 $sim "$CLIPX" help train && cmp -s "$WORK/out" "$WORK/help-direct" ||
    fail "help train differs after the re-execution"
$sim "$CLIPX" help train | cmp -s - "$WORK/help-direct" || fail "help train through a pipe differs"
expect_exit 2 $sim "$CLIPX" no-such-command && expect_one_error_line
expect_exit 2 $sim "$CLIPX" version "an argument with spaces" && expect_one_error_line
expect_grep "an argument with spaces" "$WORK/err" "the re-executed argv"

finish
