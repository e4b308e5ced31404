#!/usr/bin/env bash
# Window benchmark (issue 15): a process of SPANS thread spans (a tenth as many async spans)
# spread over 8 hours, generated once (cached outside the repository); then exports of a
# 10-second and a 10-minute window in its middle, and of the whole process, each cold (cache
# emptied) and warm: median wall time and peak RSS of RUNS runs, trace bytes, and how many
# thread partition files a warm export of the window reads (strace, when installed).
#
# Usage: benches/export-window.sh
# Env:   SPANS  thread spans (default 10000000)     RUNS  runs per figure (default 3)
#        WRITE_PERFETTO_BENCH_DIR  lakes and results (default /var/tmp/write-perfetto-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${WRITE_PERFETTO_BENCH_DIR:-/var/tmp/write-perfetto-bench}"
runs="${RUNS:-3}"
spans="${SPANS:-10000000}"
mkdir -p "$bench_dir"
cargo build --release -q --bin write-perfetto
cargo build --release -q -p write-perfetto-test-lake --bin gen-lake
target="${CARGO_TARGET_DIR:-target}/release"
source benches/lib.sh

lake="$bench_dir/window-lake-$spans"
if [ ! -f "$lake/lake.db" ]; then
  rm -rf "$lake"
  echo "generating lake ($spans spans over 8 hours): $lake" >&2
  "$target/gen-lake" --out "$lake" --seed 1 --threads 16 --spans "$spans" \
    --async-spans $((spans / 10)) --duration 8h >"$lake.report.json"
fi
process=$(process_of --lake "$lake")

# Thread partition files a warm export opens (after one export made the cache current).
files_read() { # files_read CACHE ARGS...
  local cache=$1
  shift
  command -v strace >/dev/null || { echo "-"; return; }
  strace -f -e trace=openat "$target/write-perfetto" "$process" --lake "$lake" --cache "$cache" \
    -q -o /dev/null "$@" 2>&1 | grep -c 'thread_spans/.*\.parquet' || true
}

results="$bench_dir/results-window.json"
echo "[" >"$results.tmp"
printf '%-8s %8s %9s %8s %9s %12s %11s\n' window cold_s cold_MB warm_s warm_MB bytes files_read
first=1
for window in 10s 10m whole; do
  case "$window" in
    whole) args=() ;;
    *) args=(--begin +4h --end "+4h$window") ;;
  esac
  out=$(mktemp -d)
  read -r ct cr wt wr < <(cold_and_warm "$process" "$out" --lake "$lake" "${args[@]}")
  bytes=$(stat -c %s "$out/trace")
  files=$(files_read "$out/cache" "${args[@]}")
  rm -rf "$out"
  printf '%-8s %8s %9d %8s %9d %12d %11s\n' "$window" "$ct" $((cr / 1024)) "$wt" $((wr / 1024)) "$bytes" "$files"
  [ $first = 1 ] || echo "," >>"$results.tmp"
  first=0
  printf '{"window":"%s","cold_s":%s,"cold_rss_kb":%d,"warm_s":%s,"warm_rss_kb":%d,"bytes":%d,"thread_files_read":"%s"}' \
    "$window" "$ct" "$cr" "$wt" "$wr" "$bytes" "$files" >>"$results.tmp"
done
echo "]" >>"$results.tmp"
mv "$results.tmp" "$results"
echo "results: $results" >&2
