#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each; FUZZ_SECONDS
# or the first argument overrides it; further arguments pick targets).
# Exits non-zero when a target crashes. Skips, with a message and status 0,
# when no nightly toolchain is installed (libFuzzer needs nightly).
# New corpus entries go to a scratch directory, never into fuzz/corpus.
# The run is seeded (FUZZ_SEED, default 1) so CI explores the same inputs on
# every run and a failure reproduces; set FUZZ_SEED=0 for a random seed.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-${FUZZ_SECONDS:-30}}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(token_response exchange_response error_response discovery_document jwt_exp retry_after stored_token token_source www_authenticate resource_metadata)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped, no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "fuzz: $target for ${seconds}s"
    if ! cargo +nightly fuzz run ${FUZZ_TARGET_DIR:+--target-dir "$FUZZ_TARGET_DIR"} "$target" \
        "$scratch/$target" "corpus/$target" -- -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" >"$scratch/$target.log" 2>&1; then
        tail -n 60 "$scratch/$target.log"
        echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target/)"
        status=1
    else
        grep -E "^#[0-9]+[[:space:]]+DONE" "$scratch/$target.log" | tail -n 1 || true
    fi
done
exit "$status"
