#!/usr/bin/env bash
# Where an export's memory peaks: runs a command and prints its resident set size (MB) every
# 10 ms, then the peak. A stage shows as a rise and a plateau (the README's "Memory" section
# reads the thread, async and encoding stages of L this way).
#
# Usage: benches/rss-timeline.sh COMMAND [ARGS...]
#   e.g. benches/rss-timeline.sh target/release/write-perfetto PROCESS --lake DIR -q -o /tmp/t
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
"$@" &
pid=$!
samples=()
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && samples+=("$rss")
  sleep 0.01
done
status=0
wait "$pid" || status=$?
echo "${samples[*]:-}"
peak=$(printf '%s\n' "${samples[@]:-}" | sort -n | tail -1)
echo "peak MB: ${peak:--}"

exit "$status"
