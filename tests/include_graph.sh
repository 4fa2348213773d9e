#!/bin/sh
# The include graph of lib/: every file lives in a layer folder, no folder includes a layer
# above it (the order below, as doc/HACKING.md states it), and no two modules (a .c and its .h)
# include each other, directly or through others. Run by make check; prints each violation.
set -u
: "${TOP_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
layers="base conf data ops objective model optim run train eval"

# check_tree DIR: print each violation of DIR's lib/; exit status 1 when there is one.
check_tree() (
cd "$1" || exit 1
status=0
loose=$(find lib -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \))
if [ -n "$loose" ]; then
    echo "files outside a layer folder: $loose"
    status=1
fi

# One edge a line: "from-module to-module", modules named without .c/.h.
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
find lib -name '*.[ch]' | sort | while read -r f; do
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\(lib\/[^"]*\)\.h".*/\1/p' "$f" |
        while read -r to; do echo "${f%.*} $to"; done
done >"$edges"

# Upward includes and unknown folders.
awk -v layers="$layers" '
BEGIN { n = split(layers, L, " "); for (i = 1; i <= n; i++) rank[L[i]] = i }
{
    split($1, a, "/"); split($2, b, "/")
    if (!(a[2] in rank)) { print "unknown layer folder: lib/" a[2] " (" $1 ")"; bad = 1; next }
    if (!(b[2] in rank)) { print "include of an unknown layer: " $1 " -> " $2; bad = 1; next }
    if (rank[b[2]] > rank[a[2]]) { print "upward include: " $1 " (" a[2] ") -> " $2 " (" b[2] ")"; bad = 1 }
}
END { exit bad }' "$edges" || status=1

# Cycles between modules: depth-first search over the module graph.
awk '
{ if ($1 != $2) { adj[$1] = adj[$1] " " $2; nodes[$1]; nodes[$2] } }
function visit(u,    parts, k, v, i, path) {
    state[u] = 1; stack[++depth] = u
    k = split(adj[u], parts, " ")
    for (i = 1; i <= k; i++) {
        v = parts[i]
        if (state[v] == 1) {
            path = v; for (j = depth; j >= 1 && stack[j] != v; j--) path = stack[j] " -> " path
            print "include cycle: " v " -> " path; bad = 1
        } else if (state[v] == 0) visit(v)
    }
    depth--; state[u] = 2
}
END { for (u in nodes) state[u] = 0; for (u in nodes) if (state[u] == 0) visit(u); exit bad }' "$edges" || status=1

exit "$status"
)

# The checker must catch what it is for: a tree with a loose file, an upward include and a
# cycle between two modules of one folder.
bad=$(mktemp -d)
mkdir -p "$bad/lib/base" "$bad/lib/data"
echo '#include "lib/data/a.h"' >"$bad/lib/base/up.c"
echo '#include "lib/data/b.h"' >"$bad/lib/data/a.h"
echo '#include "lib/data/a.h"' >"$bad/lib/data/b.c"
echo '' >"$bad/lib/loose.c"
found=$(check_tree "$bad")
rm -rf "$bad"
for want in "files outside a layer folder" "upward include: lib/base/up" "include cycle"; do
    case "$found" in
    *"$want"*) ;;
    *) echo "FAIL: the checker misses: $want"; exit 1 ;;
    esac
done

if check_tree "$TOP_SRCDIR"; then
    echo "include graph: layered ($layers), no cycles"
    exit 0
fi
exit 1
