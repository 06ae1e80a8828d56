#!/usr/bin/env bash
# End to end: the main job over the tracker against
# the same program over bare jemalloc. Builds `ckptdb` (TrackingAlloc<Jemalloc>)
# and `ckptdb-bare` (src/bin/ckptdb-bare.rs: the same src/cli/, only the
# #[global_allocator] differs) with `cargo build --release`, copies both to a
# scratch directory, runs them alternately N times with the same arguments
# and a fresh data directory per run, and prints a Markdown table: user CPU,
# system CPU, wall time and peak RSS per run, medians, run-to-run ranges
# (min-max) and the ratios tracked/bare of the medians.
#
# Usage: bench/e2e.sh [--runs N] [--lock FILE] [--keep] [-- MAIN-JOB ARGS...]
#   --runs N      rounds (default 5); each round runs both binaries, the order
#                 alternating (tracked first in odd rounds, bare first in even)
#   --lock FILE   hold `flock FILE` for the whole measurement phase (build
#                 excluded). On the shared 2-core machine use /work/bench.lock
#                 (or wrap the script in `flock /work/bench.lock`; not both,
#                 that would wait on itself). Default: no lock.
#   --keep        keep the scratch directory (binaries, outputs, timings)
#   -- ARGS       main-job arguments replacing the defaults below
# Default main-job arguments: the job's own defaults (500k writes, 4 threads,
# checkpoints every 40k writes, restart in the middle) with leak checks
# counting and recording off: `--sample-bytes 0 --leak-sites off`, plus
# `--progress off`. Peak RSS is the kernel's maximum resident set size
# (GNU time %M, from getrusage). The bare build has no tracker: its runs
# print "drained: unchecked (no tracker)"; only the tracked build checks for
# leaks, and a tracked run that does not exit 0 aborts the benchmark.
# Needs GNU time (/usr/bin/time); installed with apt-get when missing and
# running as root.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
lock=""
keep=0
job_args=(--sample-bytes 0 --leak-sites off --progress off)
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --lock) lock="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --) shift; job_args=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "e2e.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$runs" in '' | *[!0-9]* | 0) echo "e2e.sh: --runs needs a positive number" >&2; exit 2 ;; esac

if ! /usr/bin/time --version 2>&1 | grep -q 'GNU'; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "e2e.sh: installing GNU time" >&2
        apt-get install -y -qq time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
    else
        echo "e2e.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2
        exit 2
    fi
fi

# The revision measured: taken before the build, so later edits do not show.
rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (dirty)')"
echo "e2e.sh: building (cargo build --release --bin ckptdb --bin ckptdb-bare)" >&2
cargo build --release --bin ckptdb --bin ckptdb-bare >&2
target="${CARGO_TARGET_DIR:-target}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/ckptdb-e2e.XXXXXX")"
if [ "$keep" = 0 ]; then
    trap 'rm -rf "$scratch"' EXIT
else
    echo "e2e.sh: keeping $scratch" >&2
fi
cp "$target/release/ckptdb" "$scratch/ckptdb-tracked"
cp "$target/release/ckptdb-bare" "$scratch/ckptdb-bare"

# One run: binary name, round -> "user sys wall maxrss_kb" in $scratch/t.NAME.ROUND
one() {
    local name="$1" round="$2" data
    data="$(mktemp -d "$scratch/data.XXXXXX")"
    local rc=0
    /usr/bin/time -f '%U %S %e %M' -o "$scratch/t.$name.$round" \
        "$scratch/ckptdb-$name" --data-dir "$data/db" "${job_args[@]}" \
        >"$scratch/out.$name.$round" 2>&1 || rc=$?
    rm -rf "$data"
    if [ "$rc" != 0 ]; then
        echo "e2e.sh: ckptdb-$name exited $rc in round $round; its output:" >&2
        tail -30 "$scratch/out.$name.$round" >&2
        exit 1
    fi
    # Keep only the figures line (time prints "Command exited..." first on failure).
    tail -1 "$scratch/t.$name.$round" >"$scratch/t.$name.$round.x"
    mv "$scratch/t.$name.$round.x" "$scratch/t.$name.$round"
    echo "e2e.sh: round $round $name: $(cat "$scratch/t.$name.$round") (user s, sys s, wall s, max RSS KiB)" >&2
}

measure() {
    for ((r = 1; r <= runs; r++)); do
        if ((r % 2)); then one tracked "$r"; one bare "$r"; else one bare "$r"; one tracked "$r"; fi
    done
}

if [ -n "$lock" ]; then
    echo "e2e.sh: waiting for the lock $lock" >&2
    exec 9>>"$lock"
    flock 9
    measure
    flock -u 9
    exec 9>&-
else
    measure
fi

# The tracked build's own verdict line, to show the leak checks counted.
verdict="$(grep '^verdict:' "$scratch/out.tracked.1" || true)"

echo "## ckptdb end to end: TrackingAlloc<Jemalloc> (tracked) vs bare jemalloc"
echo
echo "commit $rev, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $runs rounds (order alternating, tracked first in odd rounds)"
echo "arguments: ckptdb ${job_args[*]} --data-dir <fresh temporary directory>"
echo "tracked build, round 1: ${verdict:-no verdict line}"
echo "bare build: no tracker, its leak checks count nothing (expected for this comparison)"
echo

awk -v runs="$runs" -v dir="$scratch" '
function median(a, n,   i, j, t, b) {
    for (i = 1; i <= n; i++) b[i] = a[i]
    for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
    return (n % 2) ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
}
function lo(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
function hi(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
BEGIN {
    split("tracked bare", who, " ")
    for (r = 1; r <= runs; r++) for (w = 1; w <= 2; w++) {
        f = dir "/t." who[w] "." r
        getline line < f; close(f)
        split(line, v, " ")
        # metric 1 user, 2 sys, 3 wall (s), 4 peak RSS (MiB)
        x[1, w, r] = v[1]; x[2, w, r] = v[2]; x[3, w, r] = v[3]; x[4, w, r] = v[4] / 1024
    }
    fmt[1] = "%.2f"; fmt[2] = "%.2f"; fmt[3] = "%.2f"; fmt[4] = "%.1f"
    print "| round | user s tracked | user s bare | sys s tracked | sys s bare | wall s tracked | wall s bare | peak RSS MiB tracked | peak RSS MiB bare |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (r = 1; r <= runs; r++) {
        row = "| " r " (" ((r % 2) ? "T,B" : "B,T") ")"
        for (m = 1; m <= 4; m++) for (w = 1; w <= 2; w++) row = row " | " sprintf(fmt[m], x[m, w, r])
        print row " |"
    }
    mrow = "| **median**"; rrow = "| range (min-max)"; qrow = "| **tracked/bare** (medians)"
    for (m = 1; m <= 4; m++) {
        for (w = 1; w <= 2; w++) {
            for (r = 1; r <= runs; r++) a[r] = x[m, w, r]
            med[w] = median(a, runs)
            mrow = mrow " | **" sprintf(fmt[m], med[w]) "**"
            rrow = rrow " | " sprintf(fmt[m], lo(a, runs)) "-" sprintf(fmt[m], hi(a, runs))
        }
        ratio[m] = (med[2] > 0) ? med[1] / med[2] : 0
        qrow = qrow " | **" sprintf("%.3fx", ratio[m]) "** | "
    }
    print mrow " |"; print rrow " |"; print qrow "|"
    printf "\ntracked/bare, medians of %d rounds: user CPU %.3fx, system CPU %.3fx, wall %.3fx, peak RSS %.3fx (%+.1f%%)\n", \
        runs, ratio[1], ratio[2], ratio[3], ratio[4], (ratio[4] - 1) * 100
}'
