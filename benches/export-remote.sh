#!/usr/bin/env bash
# Remote-lake benchmark (issue 15): the M process (1M thread spans + 100k async spans) in a
# PostgreSQL lake with its payloads in S3 (moto_server), both behind a TCP proxy that adds a
# round trip of RTT_MS to every exchange, as a lake in a data center would. Cold (the lake's
# partition catalog emptied first) and warm exports through the proxy, the partitions kept in
# the lake (its database and object store); then the same process on local disk (embedded
# lake, local cache) in the same run. Median wall time and peak RSS of RUNS runs, and the CPU
# time the S3 server and the proxies used meanwhile (on 2 cores they compete with the export).
#
# Usage: benches/export-remote.sh
# Env:   RTT_MS  added round trip (default 25)     RUNS  runs per figure (default 3)
#        WRITE_PERFETTO_BENCH_DIR  local lake and results (default /var/tmp/write-perfetto-bench)
# Needs: PostgreSQL's initdb/pg_ctl/psql, moto_server, curl, python3. Everything it starts (a
# throwaway cluster, moto, two proxies, in a temporary directory) is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir="${WRITE_PERFETTO_BENCH_DIR:-/var/tmp/write-perfetto-bench}"
runs="${RUNS:-3}"
rtt_ms="${RTT_MS:-25}"
mkdir -p "$bench_dir"
cargo build --release -q --bin write-perfetto
cargo build --release -q -p write-perfetto-test-lake --bin gen-lake --bin latency-proxy
target="${CARGO_TARGET_DIR:-target}/release"
source benches/lib.sh

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/pg/postmaster.pid" ] && as_postgres pg_ctl -D "$work/pg" stop -m immediate >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# PostgreSQL refuses to run as root: its tools then run as the postgres OS user.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

pg_port=$(free_port)
mkdir "$work/pg" && chown postgres "$work/pg" 2>/dev/null || true
as_postgres initdb -D "$work/pg" -U postgres --auth=trust >/dev/null
as_postgres pg_ctl -D "$work/pg" -l "$work/pg/log" -w \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c 'CREATE DATABASE lake' >/dev/null

s3_port=$(free_port)
moto_server -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
servers=($!) # whose CPU time is reported: the S3 server and the proxies share our 2 cores
wait_for_port "$s3_port"
curl -sf -X PUT "http://127.0.0.1:$s3_port/lake" >/dev/null
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true

# The lake is written directly; exports go through the proxies.
echo "generating the M lake in PostgreSQL + S3" >&2
AWS_ENDPOINT="http://127.0.0.1:$s3_port" "$target/gen-lake" \
  --postgres "postgres://postgres@127.0.0.1:$pg_port/lake" --blobs s3://lake \
  --seed 1 --threads 16 --spans 1000000 --async-spans 100000 >"$work/report.json"
process=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process_ids"][0])' "$work/report.json")

pg_proxy=$(free_port) s3_proxy=$(free_port)
for pair in "$pg_proxy $pg_port" "$s3_proxy $s3_port"; do
  read -r from to <<<"$pair"
  "$target/latency-proxy" "$from" "$to" "$rtt_ms" >/dev/null &
  pids+=($!) servers+=($!)
  wait_for_port "$from"
done

if [ -n "${BENCH_HOLD:-}" ]; then # set up, print how to export, wait to be killed
  echo "AWS_ENDPOINT=http://127.0.0.1:$s3_proxy $target/write-perfetto $process --lake postgres://postgres@127.0.0.1:$pg_proxy/lake --blobs s3://lake"
  echo "direct: AWS_ENDPOINT=http://127.0.0.1:$s3_port --lake postgres://postgres@127.0.0.1:$pg_port/lake"
  sleep infinity
fi

# CPU seconds the S3 server and the proxies have used so far (PostgreSQL's are small).
servers_cpu() {
  local ticks=0 pid
  for pid in "${servers[@]}"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

remote_run() { # remote_run: one export through the proxies, "seconds max_rss_kb servers_cpu_s"
  local log before
  log=$(mktemp)
  before=$(servers_cpu)
  AWS_ENDPOINT="http://127.0.0.1:$s3_proxy" /usr/bin/time -v "$target/write-perfetto" "$process" \
    --lake "postgres://postgres@127.0.0.1:$pg_proxy/lake" --blobs s3://lake -q \
    -o "$work/remote-trace" 2>"$log"
  awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" |
    awk -F: '{ if (NF==3) printf "%s ", $1*3600+$2*60+$3; else printf "%s ", $1*60+$2 }'
  awk -F': ' '/Maximum resident set size/ {printf "%s ", $2}' "$log"
  awk -v a="$before" -v b="$(servers_cpu)" 'BEGIN {printf "%.2f\n", b - a}'
  rm -f "$log"
}
forget_partitions() {
  psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d lake \
    -c 'DELETE FROM write_perfetto_partitions' >/dev/null 2>&1 || true
}

cold_t=() cold_r=() cold_c=() warm_t=() warm_r=() warm_c=()
for _ in $(seq "$runs"); do
  forget_partitions
  read -r t r c < <(remote_run)
  cold_t+=("$t"); cold_r+=("$r"); cold_c+=("$c")
done
for _ in $(seq "$runs"); do
  read -r t r c < <(remote_run)
  warm_t+=("$t"); warm_r+=("$r"); warm_c+=("$c")
done
remote="$(printf '%s\n' "${cold_t[@]}" | median) $(printf '%s\n' "${cold_r[@]}" | median)"
remote="$remote $(printf '%s\n' "${warm_t[@]}" | median) $(printf '%s\n' "${warm_r[@]}" | median)"
servers="$(printf '%s\n' "${cold_c[@]}" | median) $(printf '%s\n' "${warm_c[@]}" | median)"

# The same process on local disk (benches/export.sh's M lake, same generator arguments).
local_lake="$bench_dir/lake-M"
if [ ! -f "$local_lake/lake.db" ]; then
  rm -rf "$local_lake"
  "$target/gen-lake" --out "$local_lake" --seed 1 --threads 16 --spans 1000000 \
    --async-spans 100000 >"$local_lake.report.json"
fi
local_process=$(process_of --lake "$local_lake")
local_out=$(mktemp -d)
read -r lct lcr lwt lwr < <(cold_and_warm "$local_process" "$local_out" --lake "$local_lake")
rm -rf "$local_out"

read -r rct rcr rwt rwr <<<"$remote"
read -r sct swt <<<"$servers"
printf '%-22s %8s %9s %8s %9s %15s\n' where cold_s cold_MB warm_s warm_MB servers_cpu_s
printf '%-22s %8s %9d %8s %9d %15s\n' "remote (+${rtt_ms} ms RTT)" "$rct" $((rcr / 1024)) "$rwt" $((rwr / 1024)) "$sct / $swt"
printf '%-22s %8s %9d %8s %9d\n' "local disk" "$lct" $((lcr / 1024)) "$lwt" $((lwr / 1024))
results="$bench_dir/results-remote.json"
printf '{"rtt_ms":%s,"remote":{"cold_s":%s,"cold_rss_kb":%d,"warm_s":%s,"warm_rss_kb":%d,"cold_servers_cpu_s":%s,"warm_servers_cpu_s":%s},"local":{"cold_s":%s,"cold_rss_kb":%d,"warm_s":%s,"warm_rss_kb":%d}}\n' \
  "$rtt_ms" "$rct" "$rcr" "$rwt" "$rwr" "$sct" "$swt" "$lct" "$lcr" "$lwt" "$lwr" >"$results"
echo "results: $results" >&2
