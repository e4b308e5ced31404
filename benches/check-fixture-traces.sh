#!/usr/bin/env bash
# Exports every process of the fixture lake and checks each trace with the independent
# inspector (../shared/tools/inspect-trace): 0 errors and 0 warnings required.
set -euo pipefail
cd "$(dirname "$0")/.."
inspect="${WRITE_PERFETTO_INSPECT_TRACE:-$(cd .. && pwd)/shared/tools/inspect-trace}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo build -q
bin="${CARGO_TARGET_DIR:-target}/debug/write-perfetto"
lake="$(mktemp -d)"
trap 'rm -rf "$out" "$lake"' EXIT
cp -r fixtures/lake/. "$lake/"
for id in $("$bin" processes --lake "$lake" --json | python3 -c 'import json,sys; print("\n".join(p["process_id"] for p in json.load(sys.stdin)))'); do
  "$bin" "$id" --lake "$lake" -q -o "$out/$id.perfetto-trace"
  sha=$(sha256sum "$out/$id.perfetto-trace" | cut -d' ' -f1)
  echo "$id sha256=$sha"
  "$inspect" --strict -q "$out/$id.perfetto-trace"
done
