#!/usr/bin/env bash
# Instructions per operation of each allocator on the allocator-direct
# workloads, counted by callgrind (repeatable on a noisy machine, unlike
# timings; blind to cache misses, which the timed bench shows).
# Usage: bench/count.sh [WORKLOAD...]   (default: churn pow2 pages)
#   WORKLOAD: churn | pow2 | pages | large | vec (alloc-count, per op)
#             | mixed (the mixed-* whole-program binaries, per entry)
#   ALLOCATORS="jemalloc reference tracking" picks the columns (default all).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p alloc-bench --bins >/dev/null 2>&1
bin=$target/release/alloc-count
collected() { sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
count() { # allocator workload rounds -> total instructions
    if [ "$2" = mixed ]; then
        local prog=$target/release/mixed-$1
        [ -x "$prog" ] || { echo -; return; }
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$prog" mixed "$(( $3 * 1000 ))" 2>&1 | collected
    else
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" "$3" 2>&1 | collected
    fi
}
ops_per_round() {
    case "$1" in
        churn) echo 1000 ;; pow2 | pages) echo 64 ;; large) echo 8 ;; vec) echo 1 ;; mixed) echo 1000 ;;
    esac
}
title() {
    case "$1" in
        jemalloc) echo "bare jemalloc" ;; reference) echo "reference (zero memory)" ;;
        reference-trailer) echo "reference (trailer always)" ;; tracking) echo "hybrid (default)" ;;
        *) echo "$1" ;;
    esac
}
read -r -a allocators <<<"${ALLOCATORS:-jemalloc reference reference-trailer tracking trailer}"
workloads=("$@"); [ ${#workloads[@]} -eq 0 ] && workloads=(churn pow2 pages)
head="| workload (instructions per op)"; rule="|---"
for a in "${allocators[@]}"; do head="$head | $(title "$a")"; rule="$rule|---:"; done
printf '%s |\n%s|\n' "$head" "$rule"
for w in "${workloads[@]}"; do
    row="| $w"
    for a in "${allocators[@]}"; do
        lo=$(count "$a" "$w" 20); hi=$(count "$a" "$w" 120)
        if [ "$lo" = - ] || [ "$hi" = - ]; then row="$row | -"; continue; fi
        row="$row | $(( (hi - lo) / (100 * $(ops_per_round "$w")) ))"
    done
    echo "$row |"
done
