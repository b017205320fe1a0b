#!/usr/bin/env bash
# The README's shell recipes for the `client-credentials` command, run for real
# against the workspace's test issuer on loopback (no network, no account):
#   1. curl with `--header`: a token straight into an Authorization header;
#   2. a cron job with `--cache`: many runs, one token request per token lifetime;
#   3. exit codes: a wrong secret is told apart from an unreachable provider.
# Each recipe checks its outcome; the script exits non-zero if one fails. CI runs it.
#
#   bash adapters/cli/examples/recipes.sh
#
# It uses the debug builds of the command and of the `test_issuer` example
# (built here if missing); point CLIENT_CREDENTIALS / TEST_ISSUER elsewhere to
# use other builds.
set -euo pipefail
cd "$(dirname "$0")/../../.."

if [ -z "${CLIENT_CREDENTIALS:-}" ] || [ -z "${TEST_ISSUER:-}" ]; then
  cargo build -q -p client-credentials-cli --bin client-credentials --example test_issuer
fi
CLIENT_CREDENTIALS=${CLIENT_CREDENTIALS:-$PWD/target/debug/client-credentials}
TEST_ISSUER=${TEST_ISSUER:-$PWD/target/debug/examples/test_issuer}
client-credentials() { "$CLIENT_CREDENTIALS" "$@"; }

work=$(mktemp -d)
issuer_pid=
cleanup() {
  if [ -n "$issuer_pid" ]; then kill "$issuer_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "recipes.sh: FAILED: $*" >&2; exit 1; }

# The test issuer and a protected API: client `my-client` with this secret; it
# prints ISSUER, TOKEN_URL and API_URL as shell assignments.
export CLIENT_SECRET=my-secret
"$TEST_ISSUER" --serve-secs 120 >"$work/issuer.env" &
issuer_pid=$!
for _ in $(seq 100); do
  grep -q '^API_URL=' "$work/issuer.env" 2>/dev/null && break
  sleep 0.1
done
grep -q '^API_URL=' "$work/issuer.env" || fail "the test issuer did not start"
# shellcheck source=/dev/null
. "$work/issuer.env"

echo "== 1. curl with --header (issuer $ISSUER)"
# As in the README: the token endpoint is discovered from the issuer.
orders=$(curl -fsS -H "Authorization: $(client-credentials token --header \
           --issuer "$ISSUER" --client-id my-client \
           --scope orders:read --cache "$work/orders-token.json")" \
     "$API_URL/orders")
echo "$orders"
case $orders in *'"ok":true'*) ;; *) fail "the API did not accept the token" ;; esac

echo "== 2. a cron job with --cache"
# In a crontab (every minute; the cache file is reused across runs):
#   * * * * *  curl -fsS -H "Authorization: $(client-credentials token --header --issuer https://auth.example.com --client-id my-client --client-secret-file /run/secrets/client --scope orders:read --cache ~/.cache/orders-token.json)" https://api.example.com/orders
# Here: five runs of the same job, back to back, with the cache of recipe 1;
# every run uses the token recipe 1 fetched (tokens are random: equal means reused).
cached_token() {
  client-credentials token --issuer "$ISSUER" --client-id my-client \
    --scope orders:read --cache "$work/orders-token.json"
}
first=$(cached_token)
cron_job() {
  curl -fsS -H "Authorization: $(client-credentials token --header \
         --issuer "$ISSUER" --client-id my-client \
         --scope orders:read --cache "$work/orders-token.json")" \
       "$API_URL/orders" >/dev/null
}
for run in 1 2 3 4 5; do cron_job || fail "cron run $run"; done
[ "$(cached_token)" = "$first" ] || fail "the cache was not reused"
echo "5 runs, one token"
[ "$(stat -c %a "$work/orders-token.json")" = 600 ] || fail "the cache file is not mode 0600"
# The same secret from a file instead of the environment (trailing newline ignored).
printf '%s\n' "$CLIENT_SECRET" >"$work/secret"
client-credentials token --token-url "$TOKEN_URL" --client-id my-client \
  --client-secret-file "$work/secret" --scope orders:write >/dev/null || fail "--client-secret-file"

echo "== 3. exit codes"
# As in the README: 3 = the provider refused (fix the configuration),
# 4 = unreachable or failing (try again later).
classify() {
  local status=0
  token=$(client-credentials token --token-url "$1" --client-id my-client 2>/dev/null) || status=$?
  case $status in
    0) echo "token" ;;
    3) echo "credentials or scope rejected: fix the configuration" ;;
    4) echo "provider unreachable or failing: try again later" ;;
    *) echo "other failure ($status)" ;;
  esac
}
verdict=$(CLIENT_SECRET=wrong-secret classify "$TOKEN_URL")
echo "wrong secret: $verdict"
[ "$verdict" = "credentials or scope rejected: fix the configuration" ] || fail "wrong secret: $verdict"
# A port nothing listens on: connection refused, retried with back-off (~1.5 s), then exit 4.
verdict=$(classify "http://127.0.0.1:1/token")
echo "nothing listening: $verdict"
[ "$verdict" = "provider unreachable or failing: try again later" ] || fail "unreachable: $verdict"

echo "recipes.sh: all recipes passed"
