#!/usr/bin/env bash
# Thread-count benchmark (issue 18): the same 400,000 thread spans + 40,000 async spans in a
# process of 16 or 2,000 threads, and 20,000 threads of 20 spans each; generated once (cached
# outside the repository), then cold and warm exports with the release binary: median wall time
# and peak RSS of RUNS runs, trace bytes, bytes per span event.
#
# Usage: benches/export-threads.sh [CASES...]   cases: 16 2000 20000; default 16 2000
# Env:   WRITE_PERFETTO_BENCH_DIR  lakes and results (default /var/tmp/write-perfetto-bench)
#        RUNS                      runs per figure (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${WRITE_PERFETTO_BENCH_DIR:-/var/tmp/write-perfetto-bench}"
runs="${RUNS:-3}"
cases=("${@:-16 2000}")
read -r -a cases <<<"${cases[*]}"
mkdir -p "$bench_dir"
cargo build --release -q --bin write-perfetto
cargo build --release -q -p write-perfetto-test-lake --bin gen-lake
target="${CARGO_TARGET_DIR:-target}/release"
source benches/lib.sh

# Thread spans of a case (async spans: a tenth).
spans_of() { case "$1" in 16 | 2000 | 20000) echo 400000 ;; *) echo "unknown case $1" >&2; exit 2 ;; esac; }

# The lake of a case (generated on first use).
lake_of() {
  local threads=$1 spans dir="$bench_dir/threads-lake-$1"
  spans=$(spans_of "$threads")
  if [ ! -f "$dir/lake.db" ]; then
    rm -rf "$dir"
    echo "generating lake ($threads threads, $spans spans): $dir" >&2
    "$target/gen-lake" --out "$dir" --seed 42 --threads "$threads" --spans "$spans" \
      --async-spans $((spans / 10)) --max-depth 20 >"$dir.report.json"
  fi
  echo "$dir"
}

results="$bench_dir/results-threads.json"
echo "[" >"$results.tmp"
printf '%-6s %10s %10s %10s %10s %12s %10s\n' threads cold_s cold_MB warm_s warm_MB bytes B/event
first=1
for threads in "${cases[@]}"; do
  lake=$(lake_of "$threads")
  process=$(process_of --lake "$lake")
  spans=$(spans_of "$threads")
  events=$((2 * (spans + spans / 10)))
  out=$(mktemp -d)
  read -r ct cr wt wr < <(cold_and_warm "$process" "$out" --lake "$lake")
  bytes=$(stat -c %s "$out/trace")
  bpe=$(awk -v b="$bytes" -v e="$events" 'BEGIN {printf "%.1f", b/e}')
  printf '%-6s %10s %10d %10s %10d %12d %10s\n' "$threads" "$ct" $((cr / 1024)) "$wt" $((wr / 1024)) "$bytes" "$bpe"
  [ $first = 1 ] || echo "," >>"$results.tmp"
  first=0
  printf '{"threads":%d,"spans":%d,"cold_s":%s,"cold_rss_kb":%d,"warm_s":%s,"warm_rss_kb":%d,"bytes":%d,"bytes_per_event":%s}\n' \
    "$threads" "$spans" "$ct" "$cr" "$wt" "$wr" "$bytes" "$bpe" >>"$results.tmp"
  rm -rf "$out"
done
echo "]" >>"$results.tmp"
mv "$results.tmp" "$results"
echo "results: $results" >&2
