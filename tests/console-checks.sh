#!/usr/bin/env bash
# The console's checks that need more than cargo (issue 12): Debian's chromium
# driven by Playwright through the console, and schemathesis fuzzing /api
# against a live web with its OpenAPI document. Installs what is missing.
# Needs PostgreSQL on DATABASE_URL's server (default 127.0.0.1:5432) and a
# debug build (`cargo build`). Run from anywhere: bash tests/console-checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# --- browser: chromium + playwright-core ------------------------------------
if ! command -v chromium >/dev/null; then
  echo "installing chromium"
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --silent)
rm -rf target/console-screenshots
cargo test --test it console::browser -- --ignored --nocapture
echo "screenshots: $(ls target/console-screenshots | tr '\n' ' ')"

# --- schemathesis against a live web ----------------------------------------
if ! command -v schemathesis >/dev/null; then
  echo "installing schemathesis"
  python3 -m pip install --quiet "schemathesis>=4,<5"
fi
cargo build --quiet
base="${DATABASE_URL%/*}"
db="switchboard_schemathesis"
psql "$base/postgres" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
DATABASE_URL="$base/$db" ./target/debug/switchboard migrate
port=18199
DATABASE_URL="$base/$db" API_TOKENS=schemathesis-token-0123456789abcdef0123 PORT=$port RUST_LOG=warn ./target/debug/switchboard web &
web=$!
trap 'kill $web 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
# Every operation, a few dozen cases each, stateful links included; fails on
# a server error or on any response the document does not describe.
report=$(mktemp)
set +e
schemathesis run "http://127.0.0.1:$port/api/openapi.json" \
  --header "Authorization: Bearer schemathesis-token-0123456789abcdef0123" \
  --max-examples 25 --seed 12 --no-color \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  >"$report" 2>&1
status=$?
set -e
tail -n 30 "$report"
operations=$(grep -oE 'Tested: [0-9]+' "$report" | grep -oE '[0-9]+' || echo 0)
cases=$(grep -oE '[0-9]+ generated' "$report" | grep -oE '[0-9]+' || echo 0)
echo "schemathesis: $operations operations, $cases cases, exit $status"
exit $status
