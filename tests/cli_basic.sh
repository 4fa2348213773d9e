#!/bin/sh
# The binary's contract: help, version, exit codes, and a checked stdout.
. "$TOP_SRCDIR/tests/lib.sh"

expect_exit 0 "$CLIPX" --help && expect_grep '^Usage: clipx COMMAND' "$WORK/out" "--help"
expect_exit 0 "$CLIPX" help && expect_grep '^Commands:' "$WORK/out" "help"
expect_exit 0 "$CLIPX" -h
expect_exit 2 "$CLIPX" && expect_grep '^Usage:' "$WORK/err" "no-argument usage"

expect_exit 0 "$CLIPX" --version && expect_grep '^clipx [0-9]+\.[0-9]+\.[0-9]+$' "$WORK/out" "--version"
expect_exit 0 "$CLIPX" version && expect_grep '^clipx [0-9]' "$WORK/out" "version"

# Every listed command has help, three ways, all the same text.
commands=$("$CLIPX" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF && !/^Commands:/ {print $1}')
[ -n "$commands" ] || fail "no commands listed"
for c in $commands; do
    expect_exit 0 "$CLIPX" help "$c" || continue
    cp "$WORK/out" "$WORK/help1"
    expect_grep "^Usage: clipx $c" "$WORK/help1" "help $c"
    expect_exit 0 "$CLIPX" "$c" --help && cmp -s "$WORK/out" "$WORK/help1" || fail "$c --help differs from help $c"
    expect_exit 0 "$CLIPX" "$c" -h && cmp -s "$WORK/out" "$WORK/help1" || fail "$c -h differs from help $c"
    # Every command refuses an unknown option with a usage error.
    expect_exit 2 "$CLIPX" "$c" --no-such-option && expect_one_error_line
    # An empty --out is a usage error naming the flag, for every command that has --out.
    if grep -q -- '--out' "$WORK/help1"; then
        expect_exit 2 "$CLIPX" "$c" --out "" && expect_one_error_line && expect_grep '[-][-]out' "$WORK/err" "$c --out ''"
    fi
    # The man page documents every command.
    grep -q "^\.SS \"\\?$c" "$TOP_SRCDIR/doc/clipx.1" || fail "doc/clipx.1 lacks a section for $c"
done

expect_exit 2 "$CLIPX" no-such-command && expect_one_error_line
expect_grep "no-such-command" "$WORK/err" "unknown command error"
expect_exit 2 "$CLIPX" help no-such-command && expect_one_error_line
expect_exit 2 "$CLIPX" version extra-argument && expect_one_error_line

# A full disk on stdout is a failure, not a silent success.
if [ -w /dev/full ]; then
    "$CLIPX" --help >/dev/full 2>"$WORK/err"
    [ $? -eq 1 ] || fail "--help to /dev/full did not exit 1"
    expect_grep 'standard output' "$WORK/err" "full-disk error"
fi

finish
