#!/usr/bin/env bash
# Exports every process of the fixture lakes (Rust and Unreal), and of a small generated lake, and checks each
# trace with the independent inspector (../shared/tools/inspect-trace): 0 errors and 0
# warnings required.
set -euo pipefail
cd "$(dirname "$0")/.."
inspect="${WRITE_PERFETTO_INSPECT_TRACE:-$(cd .. && pwd)/shared/tools/inspect-trace}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo build -q --bin write-perfetto
cargo build -q -p write-perfetto-test-lake --bin gen-lake
bin="${CARGO_TARGET_DIR:-target}/debug/write-perfetto"
gen="${CARGO_TARGET_DIR:-target}/debug/gen-lake"
lake="$(mktemp -d)"
trap 'rm -rf "$out" "$lake"' EXIT
cp fixtures/lake/lake.db "$lake/" && cp -r fixtures/lake/blobs "$lake/"
mkdir "$lake/unreal" && cp fixtures/unreal-lake/lake.db "$lake/unreal/" && cp -r fixtures/unreal-lake/blobs "$lake/unreal/"
"$gen" --out "$lake/generated" --seed 3 --processes 2 --threads 6 --spans 30000 --async-spans 3000 >/dev/null
check_lake() {
  local dir=$1
  for id in $("$bin" processes --lake "$dir" --json | python3 -c 'import json,sys; print("\n".join(p["process_id"] for p in json.load(sys.stdin)))'); do
  "$bin" "$id" --lake "$dir" -q -o "$out/$id.perfetto-trace"
  sha=$(sha256sum "$out/$id.perfetto-trace" | cut -d' ' -f1)
  echo "$id sha256=$sha"
  "$inspect" --strict -q "$out/$id.perfetto-trace"
done
}
check_lake "$lake"
check_lake "$lake/unreal"
check_lake "$lake/generated"
