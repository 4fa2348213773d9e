# Shared helpers for the shell tests: source it, then call the functions below.
# Needs CLIPX (the binary) and TOP_SRCDIR from the test environment (see Makefile.am).
set -u
: "${CLIPX:?CLIPX must name the clipx binary}"
: "${TOP_SRCDIR:?TOP_SRCDIR must name the source folder}"

TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clipx-$TEST_NAME-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILURES=0

fail() {
    echo "FAIL: $*" >&2
    FAILURES=$((FAILURES + 1))
}

# expect_exit CODE CMD...: run CMD with stdout/stderr captured in $WORK/out and $WORK/err.
expect_exit() {
    local want=$1
    shift
    "$@" >"$WORK/out" 2>"$WORK/err"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        fail "exit $got, wanted $want: $*"
        sed 's/^/  stderr: /' "$WORK/err" | head -5 >&2
        return 1
    fi
    return 0
}

# expect_grep PATTERN FILE [WHAT]: FILE must contain PATTERN (extended regex).
expect_grep() {
    grep -Eq -- "$1" "$2" || { fail "${3:-$2} lacks /$1/"; sed 's/^/  | /' "$2" | head -5 >&2; }
}

expect_no_grep() {
    if grep -Eq -- "$1" "$2"; then fail "${3:-$2} has /$1/"; fi
}

# expect_one_error_line: the last command's stderr is exactly one line starting "clipx: ".
expect_one_error_line() {
    local n
    n=$(wc -l <"$WORK/err")
    [ "$n" -eq 1 ] || fail "stderr has $n lines, wanted 1"
    expect_grep '^clipx: ' "$WORK/err" stderr
}

finish() {
    if [ "$FAILURES" -ne 0 ]; then
        echo "$TEST_NAME: $FAILURES failure(s)" >&2
        exit 1
    fi
    echo "$TEST_NAME: ok"
    exit 0
}
