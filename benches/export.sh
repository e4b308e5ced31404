#!/usr/bin/env bash
# Export benchmark: generates synthetic lakes once (cached outside the repository), then
# measures cold and warm exports with the release binary: wall time and peak RSS (median of
# RUNS runs), trace bytes, bytes per span event, spans per second.
#
# Usage: benches/export.sh [SIZES...]          sizes: S (100k spans) M (1M) L (10M); default S M L
# Env:   WRITE_PERFETTO_BENCH_DIR  lakes and results (default /var/tmp/write-perfetto-bench)
#        RUNS                      runs per figure (default 3)
#        BENCH_POSTGRES=URL        measure PostgreSQL lakes instead: URL of a server
#                                  (postgres://user@host:port); each size gets its database
#                                  wp_bench_<size>, created and generated on first use, with
#                                  its payloads under the bench directory. The partition cache
#                                  is a local directory either way (--cache), so that "cold"
#                                  means the same thing for both backends.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${WRITE_PERFETTO_BENCH_DIR:-/var/tmp/write-perfetto-bench}"
runs="${RUNS:-3}"
postgres="${BENCH_POSTGRES:-}"
sizes=("${@:-S M L}")
read -r -a sizes <<<"${sizes[*]}"
mkdir -p "$bench_dir"
cargo build --release -q --bin write-perfetto
cargo build --release -q -p write-perfetto-test-lake --bin gen-lake
target="${CARGO_TARGET_DIR:-target}/release"

spans_of() { case "$1" in S) echo 100000 ;; M) echo 1000000 ;; L) echo 10000000 ;; *) echo "unknown size $1" >&2; exit 2 ;; esac; }

generate() { # generate SIZE DESTINATION-ARGS...
  local spans
  spans=$(spans_of "$1")
  shift
  echo "generating lake ($spans spans): $*" >&2
  "$target/gen-lake" "$@" --seed 42 --threads 16 --spans "$spans" \
    --async-spans $((spans / 10)) --max-depth 20
}

# The write-perfetto arguments naming the lake of a size (generated on first use).
lake_args_of() {
  local size=$1
  if [ -n "$postgres" ]; then
    local db blobs
    db="wp_bench_$(echo "$size" | tr '[:upper:]' '[:lower:]')"
    blobs="$bench_dir/pg-blobs-$size"
    if [ -z "$(psql "$postgres/postgres" -tAc "select 1 from pg_database where datname = '$db'")" ]; then
      psql -q "$postgres/postgres" -c "create database $db" >&2
      rm -rf "$blobs"
      mkdir -p "$blobs"
      generate "$size" --postgres "$postgres/$db" --blobs "file://$blobs" >"$bench_dir/pg-$size.report.json"
    fi
    echo "--lake $postgres/$db --blobs file://$blobs"
  else
    local dir="$bench_dir/lake-$size"
    if [ ! -f "$dir/lake.db" ]; then
      rm -rf "$dir"
      generate "$size" --out "$dir" >"$dir.report.json"
    fi
    echo "--lake $dir"
  fi
}

source benches/lib.sh

results="$bench_dir/results${postgres:+-postgres}.json"
echo "[" >"$results.tmp"
printf '%-4s %10s %10s %10s %10s %12s %10s %12s\n' size cold_s cold_MB warm_s warm_MB bytes B/event spans/s_warm
first=1
for size in "${sizes[@]}"; do
  read -r -a lake_args <<<"$(lake_args_of "$size")"
  process=$(process_of "${lake_args[@]}")
  spans=$(spans_of "$size")
  total_spans=$((spans + spans / 10))
  events=$((2 * total_spans))
  out=$(mktemp -d)
  read -r ct cr wt wr < <(cold_and_warm "$process" "$out" "${lake_args[@]}")
  bytes=$(stat -c %s "$out/trace")
  bpe=$(awk -v b="$bytes" -v e="$events" 'BEGIN {printf "%.1f", b/e}')
  sps=$(awk -v s="$total_spans" -v t="$wt" 'BEGIN {printf "%.0f", (t>0)? s/t : 0}')
  printf '%-4s %10s %10d %10s %10d %12d %10s %12s\n' "$size" "$ct" $((cr / 1024)) "$wt" $((wr / 1024)) "$bytes" "$bpe" "$sps"
  [ $first = 1 ] || echo "," >>"$results.tmp"
  first=0
  printf '{"size":"%s","spans":%d,"cold_s":%s,"cold_rss_kb":%d,"warm_s":%s,"warm_rss_kb":%d,"bytes":%d,"bytes_per_event":%s,"spans_per_s_warm":%s}\n' \
    "$size" "$total_spans" "$ct" "$cr" "$wt" "$wr" "$bytes" "$bpe" "$sps" >>"$results.tmp"
  rm -rf "$out"
done
echo "]" >>"$results.tmp"
mv "$results.tmp" "$results"
echo "results: $results" >&2
