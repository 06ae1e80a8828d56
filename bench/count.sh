#!/usr/bin/env bash
# Instructions per operation of each allocator on the allocator-direct
# workloads, counted by callgrind (repeatable on a noisy machine, unlike
# timings; blind to cache misses, which the timed bench shows).
# Usage: bench/count.sh [WORKLOAD...]   (default: churn pow2 pages)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p alloc-bench --bin alloc-count >/dev/null 2>&1
bin=target/release/alloc-count
count() { # allocator workload rounds -> total instructions
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
ops_per_round() {
    case "$1" in
        churn) echo 1000 ;; pow2 | pages) echo 64 ;; large) echo 8 ;; vec) echo 1 ;;
    esac
}
workloads=("$@"); [ ${#workloads[@]} -eq 0 ] && workloads=(churn pow2 pages)
printf '| workload (instructions per op) | bare jemalloc | hybrid (default) | by address | trailer |\n|---|---:|---:|---:|---:|\n'
for w in "${workloads[@]}"; do
    row="| $w"
    for a in jemalloc tracking by-address trailer; do
        lo=$(count "$a" "$w" 20); hi=$(count "$a" "$w" 120)
        row="$row | $(( (hi - lo) / (100 * $(ops_per_round "$w")) ))"
    done
    echo "$row |"
done
