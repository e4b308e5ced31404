#!/usr/bin/env bash
# Log and metrics export benchmark: generates (once, cached outside the repository) a process
# with as many measures as log entries and no spans, 16 thread streams without blocks, then
# measures cold and warm exports with the release binary: wall time and peak RSS (median of
# RUNS runs), trace bytes, log entries + measures per second warm. Before timing, one export's
# --json summary must count every generated entry and measure.
#
# Usage: benches/export-logs.sh [SIZES...]     sizes: S (100k log entries + 100k measures),
#                                              M (1M + 1M); default M
# Env:   WRITE_PERFETTO_BENCH_DIR  lakes and results (default /var/tmp/write-perfetto-bench)
#        RUNS                      runs per figure (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${WRITE_PERFETTO_BENCH_DIR:-/var/tmp/write-perfetto-bench}"
runs="${RUNS:-3}"
sizes=("${@:-M}")
read -r -a sizes <<<"${sizes[*]}"
mkdir -p "$bench_dir"
cargo build --release -q --bin write-perfetto
cargo build --release -q -p write-perfetto-test-lake --bin gen-lake
target="${CARGO_TARGET_DIR:-target}/release"
source benches/lib.sh

records_of() { case "$1" in S) echo 100000 ;; M) echo 1000000 ;; *) echo "unknown size $1" >&2; exit 2 ;; esac; }

# The lake of a size (generated on first use).
lake_of() {
  local size=$1 n dir="$bench_dir/logs-lake-$1"
  n=$(records_of "$size")
  if [ ! -f "$dir/lake.db" ]; then
    rm -rf "$dir"
    echo "generating lake ($n log entries, $n measures): $dir" >&2
    "$target/gen-lake" --out "$dir" --seed 42 --threads 16 --spans 0 --async-spans 0 \
      --logs "$n" --measures "$n" >"$dir.report.json"
  fi
  echo "$dir"
}

# Fails unless the export shows every log entry and measure of the lake.
check_counts() { # check_counts PROCESS LAKE N SCRATCH
  "$target/write-perfetto" "$1" --lake "$2" --cache "$4/check-cache" -q --json -o "$4/check-trace" |
    python3 -c 'import json, sys
s = json.load(sys.stdin); n = int(sys.argv[1])
got = (s["log_entries"]["total"], s["metrics"]["samples"])
sys.exit(0 if got == (n, n) else f"exported {got}, expected {n} of each")' "$3"
}

results="$bench_dir/results-logs.json"
echo "[" >"$results.tmp"
printf '%-4s %10s %10s %10s %10s %12s %14s\n' size cold_s cold_MB warm_s warm_MB bytes records/s_warm
first=1
for size in "${sizes[@]}"; do
  lake=$(lake_of "$size")
  process=$(process_of --lake "$lake")
  n=$(records_of "$size")
  out=$(mktemp -d)
  check_counts "$process" "$lake" "$n" "$out"
  read -r ct cr wt wr < <(cold_and_warm "$process" "$out" --lake "$lake")
  bytes=$(stat -c %s "$out/trace")
  rps=$(awk -v n="$((2 * n))" -v t="$wt" 'BEGIN {printf "%.0f", (t>0)? n/t : 0}')
  printf '%-4s %10s %10d %10s %10d %12d %14s\n' "$size" "$ct" $((cr / 1024)) "$wt" $((wr / 1024)) "$bytes" "$rps"
  [ $first = 1 ] || echo "," >>"$results.tmp"
  first=0
  printf '{"size":"%s","log_entries":%d,"measures":%d,"cold_s":%s,"cold_rss_kb":%d,"warm_s":%s,"warm_rss_kb":%d,"bytes":%d,"records_per_s_warm":%s}\n' \
    "$size" "$n" "$n" "$ct" "$cr" "$wt" "$wr" "$bytes" "$rps" >>"$results.tmp"
  rm -rf "$out"
done
echo "]" >>"$results.tmp"
mv "$results.tmp" "$results"
echo "results: $results" >&2
