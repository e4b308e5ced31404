#!/usr/bin/env bash
# Long fuzz run of the block decoder (the CI runs the same test with 20 000 iterations).
# Usage: benches/fuzz.sh [ITERATIONS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
WRITE_PERFETTO_FUZZ_ITERATIONS="${1:-10000000}" WRITE_PERFETTO_FUZZ_SEED="${2:-1}" \
  cargo test --release --test fuzz_decoder -- --nocapture 2>&1 | grep -E "fuzz:|panicked|test result"
