#!/usr/bin/env bash
# The first hour, as a newcomer lives it: the README's `[dependencies]` blocks
# and ten-line programs ("Start here"), copied into crates of their own outside
# the workspace (a fresh dependency resolve: today's reqwest, reqwest-middleware,
# ureq), with the adapters by path. Each must build without a warning from our
# crates and, run against the test issuer and API on loopback, print `200 OK`.
#
#   bash tests/newcomer/run.sh
#
# It uses the `test_issuer` example of the CLI (built here if missing; point
# TEST_ISSUER at another build). Build outputs go to CARGO_TARGET_DIR if set,
# else the workspace's target/, so dependencies the workspace built are reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR=$root/$CARGO_TARGET_DIR ;; esac

if [ -z "${TEST_ISSUER:-}" ]; then
  cargo build -q -p client-credentials-cli --example test_issuer
  TEST_ISSUER=$CARGO_TARGET_DIR/debug/examples/test_issuer
fi

work=$(mktemp -d)
issuer_pid=
cleanup() {
  if [ -n "$issuer_pid" ]; then kill "$issuer_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "newcomer: FAILED: $*" >&2; exit 1; }

# The n-th (1-based) fenced block of `kind` (toml, rust) in README's "Start here".
block() {
  awk -v kind="$1" -v want="$2" '
    /^## / { inside = ($0 == "## Start here") }
    inside && /^```/ {
      if (open) { open = 0; next }
      if ($0 ~ "^```" kind) { n++; open = (n == want); next }
    }
    open { print }
  ' README.md
}

# One crate per adapter: the README's block with the adapters by path.
make_crate() { # name, block number
  local dir=$work/$1
  mkdir -p "$dir/src"
  {
    printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n' "$1"
    block toml "$2" | sed -E "s#^client-credentials-([a-z]+) = \\{ version = \"[^\"]*\"#client-credentials-\\1 = { path = \"$root/adapters/\\1\"#"
    printf '\n[workspace]\n'
  } >"$dir/Cargo.toml"
  block rust "$2" >"$dir/src/main.rs"
  [ -s "$dir/src/main.rs" ] || fail "no program $2 under 'Start here' in README.md"
  grep -q 'path = ' "$dir/Cargo.toml" || fail "no adapter in [dependencies] block $2"
}
make_crate newcomer-blocking 1
make_crate newcomer-tokio 2

export CLIENT_SECRET=my-secret
"$TEST_ISSUER" --serve-secs 600 >"$work/issuer.env" &
issuer_pid=$!
for _ in $(seq 100); do
  grep -q '^API_URL=' "$work/issuer.env" 2>/dev/null && break
  sleep 0.1
done
grep -q '^API_URL=' "$work/issuer.env" || fail "the test issuer did not start"
# shellcheck disable=SC1091
. "$work/issuer.env"
export TOKEN_URL API_URL
export API_ORIGIN=${API_URL%/api}

for name in newcomer-blocking newcomer-tokio; do
  dir=$work/$name
  started=$SECONDS
  if ! (cd "$dir" && cargo build --quiet 2>"$work/$name.build"); then
    cat "$work/$name.build" >&2
    fail "$name does not build with the README's [dependencies]"
  fi
  # Warnings of path dependencies are shown (registry crates' are capped):
  # none may come from the workspace's own crates.
  if grep -nE "^warning" "$work/$name.build" | grep -q . && grep -q "$root" "$work/$name.build"; then
    cat "$work/$name.build" >&2
    fail "$name: the build warns about our crates"
  fi
  output=$(cd "$dir" && timeout 60 cargo run --quiet 2>&1) || { printf '%s\n' "$output" >&2; fail "$name did not run"; }
  [ "$output" = "200 OK" ] || { printf '%s\n' "$output" >&2; fail "$name printed '$output', not 200 OK"; }
  echo "ok    $name: builds, runs, 200 OK ($((SECONDS - started)) s)"
done
