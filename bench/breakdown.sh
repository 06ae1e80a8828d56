#!/usr/bin/env bash
# Where one allocator's instructions per operation go, by function and by
# source file (inlined code is charged to the file it comes from), from
# callgrind at two round counts (the difference, so start-up is not
# counted) divided by the operations; the TOP (default 20) largest rows.
# Usage: bench/breakdown.sh ALLOCATOR WORKLOAD   (as bench/count.sh;
#        churn: per alloc+free pair; mixed: per entry of the mixed-ALLOCATOR
#        binary, where the allocator's code sits in __rust_alloc & co.)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p alloc-bench --bins >/dev/null 2>&1
a=$1 w=$2
case "$w" in churn | mixed) ops=1000 ;; pow2 | pages) ops=64 ;; large) ops=8 ;; vec) ops=1 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in 20 120; do
    if [ "$w" = mixed ]; then
        run=("$target/release/mixed-$a" mixed "$((r * 1000))")
    else
        run=("$target/release/alloc-count" "$a" "$w" "$r")
    fi
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$r" "${run[@]}" >/dev/null 2>&1
    callgrind_annotate --auto=no --threshold=100 "$tmp/cg.$r" 2>/dev/null |
        sed -n '/file:function/,$p' | tail -n +3 |
        sed -E 's/^ *([0-9,]+) \([^)]*\) +/\1\t/; s/ \[[^]]*\]$//' | tr -d , >"$tmp/t.$r"
done
report() { # key-extractor title
    echo "| $2 | instructions per op |"
    echo "|---|---:|"
    join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 \
        <(awk -F'\t' -v OFS='\t' "{ $1 } END { for (k in s) print k, s[k] }" "$tmp/t.20" | sort -t $'\t' -k1,1) \
        <(awk -F'\t' -v OFS='\t' "{ $1 } END { for (k in s) print k, s[k] }" "$tmp/t.120" | sort -t $'\t' -k1,1) |
        awk -F'\t' -v ops="$ops" '{ d = ($3 - $2) / (100 * ops); if (d >= 0.5 || d <= -0.5) printf "| %s | %.1f |\n", $1, d }' |
        sort -t '|' -k3 -rn | head -n "${TOP:-20}"
}
# function: the symbol after the last ':' of "file:function"
report 'n = split($2, p, ":"); f = $2; sub(/^[^:]*:/, "", f); s[f] += $1' "function ($a, $w)"
echo
# source file of the instructions inside the workload's own function (or,
# for mixed, the allocator shims)
report 'if ($2 ~ /alloc_bench::|__rust_(alloc|dealloc|realloc)/) { f = $2; sub(/:[^:]*(alloc_bench::|__rustc::).*$/, "", f); sub(/^.*\/(src|library)\//, "", f); s[f] += $1 }' "inlined source file within the workload loop or the shims ($a, $w)"
