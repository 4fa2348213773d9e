#!/bin/sh
# Install what is missing, build with autotools, run `make check`; on failure print the logs
# of the failing tests. Extra arguments go to configure (e.g. --enable-asan --enable-ubsan).
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh test
with_mpi=""
if command -v mpicc >/dev/null 2>&1; then with_mpi="--with-mpi"; fi
scripts/build.sh $with_mpi "$@"
jobs=$(nproc)
status=0
make -j"$jobs" check || status=$?
# One closing line over every Check assertion group and shell test.
checks=$(cat tests/check_*.log 2>/dev/null | sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' |
    awk '{t += $1; f += $2 + $3} END {print t + 0, f + 0}')
# A skipped shell test (an optional tool is missing) is neither passed nor failed.
shells=$(find tests -name '*.trs' ! -name 'check_*' -exec grep -h '^:test-result:' {} + 2>/dev/null |
    awk '$2 == "PASS" {p++} $2 == "SKIP" {s++} $2 != "PASS" && $2 != "SKIP" {f++} END {print p + 0, f + 0, s + 0}')
set -- $checks $shells
echo "checks: $(($1 - $2 + $3)) passed, $(($2 + $4)) failed, $5 skipped"
if [ "$status" -eq 0 ]; then
    exit 0
fi
echo "---- logs of failing tests ----" >&2
for log in $(find tests -name '*.log' ! -name 'test-suite.log'); do
    trs="${log%.log}.trs"
    if [ -f "$trs" ] && grep -Eq '^:test-result: (FAIL|ERROR|XPASS)' "$trs"; then
        echo "==== $log" >&2
        tail -n 60 "$log" >&2
    fi
done
exit 1
