# Shared by the export benchmarks (sourced): measuring one run, cold and warm medians, process ids.
# Needs $target (the directory of the release binaries).

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One measured export: prints "seconds max_rss_kb".
measure() { # measure PROCESS CACHE OUT LAKE-ARGS...
  local process=$1 cache=$2 out=$3 log
  shift 3
  log=$(mktemp)
  /usr/bin/time -v "$target/write-perfetto" "$process" "$@" --cache "$cache" -q -o "$out" 2>"$log"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  rm -f "$log"
  echo "$wall $rss"
}

process_of() { "$target/write-perfetto" processes "$@" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["process_id"])'; }

# RUNS cold exports (cache emptied first), then RUNS warm ones, into OUT/cache and OUT/trace:
# prints the medians "cold_s cold_rss_kb warm_s warm_rss_kb". Needs $runs.
cold_and_warm() { # cold_and_warm PROCESS OUT LAKE-ARGS...
  local process=$1 out=$2 t r
  shift 2
  local cold_t=() cold_r=() warm_t=() warm_r=()
  for _ in $(seq "$runs"); do
    rm -rf "$out/cache"
    read -r t r < <(measure "$process" "$out/cache" "$out/trace" "$@")
    cold_t+=("$t"); cold_r+=("$r")
  done
  for _ in $(seq "$runs"); do
    read -r t r < <(measure "$process" "$out/cache" "$out/trace" "$@")
    warm_t+=("$t"); warm_r+=("$r")
  done
  echo "$(printf '%s\n' "${cold_t[@]}" | median) $(printf '%s\n' "${cold_r[@]}" | median)" \
    "$(printf '%s\n' "${warm_t[@]}" | median) $(printf '%s\n' "${warm_r[@]}" | median)"
}
