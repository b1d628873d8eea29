#!/usr/bin/env bash
# Property-based API test of vectord against its own OpenAPI document, with schemathesis.
#
# What it does:
#   1. installs schemathesis (pinned, from PyPI) into ~/.cache/vectord-schemathesis if missing;
#   2. starts the already-built target/release/vectord --ephemeral on a free loopback port
#      (killed by a trap on EXIT, by its PID);
#   3. waits for GET /ready, then seeds the index "seeded" (dim 4, cosine) with items a, b, c
#      (to read) and x, y, z (to delete), so that routes with {name} / {id} path parameters
#      also reach existing resources;
#   4. runs `st run http://127.0.0.1:PORT/openapi.json` with every check but the ones listed
#      below as false positives, twice (examples/coverage/fuzzing, then stateful; the index
#      is seeded again before each), for a bounded time in all (SCHEMATHESIS_MAX_TIME
#      seconds, default 150: the whole script takes about 2.5-3 minutes on 2 cores);
#   5. exits non-zero when schemathesis reports any failure (a 5xx, a status or body the
#      document does not describe, data the document allows being refused, ...).
#
# How to run (from anywhere; it does not build: run `cargo build --release` first):
#   scripts/schemathesis.sh                       # arguments are passed on to `st run`, e.g.
#   scripts/schemathesis.sh --report junit,ndjson # (then keep them: SCHEMATHESIS_REPORT_DIR)
# Environment knobs:
#   VECTORD_BIN             the binary to test (default target/release/vectord)
#   SCHEMATHESIS_MAX_TIME   time budget of the two `st run`s in seconds (default 150)
#   SCHEMATHESIS_SEED       a seed to reproduce an earlier run (printed at the end of each run)
#   SCHEMATHESIS_REPORT_DIR where to write the JUnit reports (default: a temp dir, removed)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv="$HOME/.cache/vectord-schemathesis"
vectord_bin="${VECTORD_BIN:-target/release/vectord}"
max_time="${SCHEMATHESIS_MAX_TIME:-150}"

if [ ! -x "$vectord_bin" ]; then
  echo "schemathesis.sh: $vectord_bin not found: build it first (cargo build --release)" >&2
  exit 2
fi

# 1. schemathesis, pinned.
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis==$SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

work="$(mktemp -d)"
report_dir="${SCHEMATHESIS_REPORT_DIR:-$work/report}"
vectord_pid=""
cleanup() {
  if [ -n "$vectord_pid" ] && kill -0 "$vectord_pid" 2>/dev/null; then
    kill "$vectord_pid" 2>/dev/null || true
    wait "$vectord_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 2. vectord on a free loopback port.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
"$vectord_bin" --ephemeral --bind "127.0.0.1:$port" >"$work/vectord.log" 2>&1 &
vectord_pid=$!

# 3. ready, then seed.
for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready" || true)" = 200 ]; then break; fi
  if ! kill -0 "$vectord_pid" 2>/dev/null; then
    echo "schemathesis.sh: vectord exited at start-up:" >&2; cat "$work/vectord.log" >&2; exit 2
  fi
  sleep 0.1
done
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready" || true)" != 200 ]; then
  echo "schemathesis.sh: vectord not ready after 10 s:" >&2; cat "$work/vectord.log" >&2; exit 2
fi
post() { # path body expected-status
  local code
  code="$(curl -s -o "$work/seed.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$2" "$base$1")"
  if [ "$code" != "$3" ]; then
    echo "schemathesis.sh: seeding POST $1 answered $code, not $3: $(cat "$work/seed.out")" >&2; exit 2
  fi
}
# Not "docs": the document's examples name "docs", so schemathesis would delete it at once.
seed() {
  curl -s -o /dev/null -X DELETE "$base/vectors/index/seeded" || true
  post /vectors/index '{"name":"seeded","dim":4,"distance":"cosine"}' 201
  post /vectors/index/seeded/add '{"items":[
  {"id":"a","vector":[1,0,0,0],"metadata":{"lang":"en"}},
  {"id":"b","vector":[0,1,0,0],"metadata":{"lang":"de"}},
  {"id":"c","vector":[0.5,0.5,0,0]},
  {"id":"x","vector":[0,0,1,0]}, {"id":"y","vector":[0,0,0,1]}, {"id":"z","vector":[1,1,1,1]}]}' 200
}

# 4. schemathesis. Its configuration:
#  - path parameters {name} and {id} are drawn half of the time from the seeded index and
#    items (the rest is generated), so that add/search/flush/items reach a real index and
#    real items instead of answering 404 to random names; GET reads a, b, c and DELETE
#    deletes x, y, z (fuzzing may run the DELETE first).
#  - two runs, each from a fresh seed: first the examples, coverage and fuzzing phases
#    (2/3 of the time), then the stateful phase (sequences of calls linked by their
#    responses: create, add, search, delete, use after delete...). DELETE
#    /vectors/index/{name} runs in the stateful phase only: in the others it learns
#    "seeded" from GET /vectors/index and deletes it within seconds, and every other
#    {name} route then tests only 404s (run together, the stateful phase does the same,
#    hence two runs). Its one parameter, a name in the path, is fuzzed the same way on
#    GET /vectors/index/{name}.
#  - the checks are chosen here, not with --checks on the command line: a command-line
#    --checks overrides the per-operation settings below.
#  - positive_data_acceptance is off for add, search and search/batch only. A false
#    positive there that no document can fix: the vector must have as many numbers as the
#    *index* it goes to has dimensions (a constraint across resources), must not be all
#    zero under cosine, its norm must stay under 1e18 under l2/ip, ids are limited in bytes
#    (JSON Schema counts characters), ids must be unique in a batch, ef must be >= k, and
#    the k of a batch search must add up to at most 10,000. The server is
#    right to answer 400 to such schema-valid bodies. Every other check stays on, on
#    every operation (negative_data_rejection included: the server must refuse all that
#    the document forbids).
cat >"$work/schemathesis.toml" <<'EOF'
# Every check, unless switched off for an operation below.
[checks]
enabled = true

[dictionaries.index_names]
values = ["seeded"]

[dictionaries.items_to_read]
values = ["a", "b", "c"]

[dictionaries.items_to_delete]
values = ["x", "y", "z"]

[[operations]]
include-operation-id = "delete"
phases.coverage.enabled = false
phases.fuzzing.enabled = false

[[operations]]
include-operation-id = ["describe", "flush"]
parameters = { "path.name" = { dictionary = "index_names", probability = 0.5 } }

[[operations]]
include-operation-id = ["add", "search", "search_batch"]
parameters = { "path.name" = { dictionary = "index_names", probability = 0.5 } }
checks.positive_data_acceptance.enabled = false

# get_items, count_items and delete_items refuse some schema-valid bodies on purpose (a
# cursor with ids, a delete that selects nothing), as add and search refuse a vector of the
# wrong dimension.
[[operations]]
include-operation-id = ["get_items", "count_items", "delete_items"]
parameters = { "path.name" = { dictionary = "index_names", probability = 0.5 } }
checks.positive_data_acceptance.enabled = false

# declare_fields refuses another kind for a field an earlier request declared (a
# constraint across requests, which no document can state).
[[operations]]
include-operation-id = "declare_fields"
parameters = { "path.name" = { dictionary = "index_names", probability = 0.5 } }
checks.positive_data_acceptance.enabled = false

[[operations]]
include-operation-id = "get_item"
parameters = { "path.name" = { dictionary = "index_names", probability = 0.5 }, "path.id" = { dictionary = "items_to_read", probability = 0.5 } }

[[operations]]
include-operation-id = "delete_item"
parameters = { "path.name" = { dictionary = "index_names", probability = 0.5 }, "path.id" = { dictionary = "items_to_delete", probability = 0.5 } }
EOF

seed_args=()
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then seed_args=(--seed "$SCHEMATHESIS_SEED"); fi
mkdir -p "$report_dir"
status=0
st_run() { # time-budget phases, then extra arguments for `st run`
  local budget="$1" phases="$2"; shift 2
  local cmd=("$venv/bin/st" --config-file "$work/schemathesis.toml" --no-color run "$base/openapi.json"
    --phases "$phases"
    --workers 1
    --max-examples 50
    --max-time "$budget"
    --request-timeout 10
    --generation-database none
    --report junit --report-dir "$report_dir" --report-junit-path "$report_dir/junit-${phases//,/-}.xml"
    "${seed_args[@]}" "$@")
  echo "+ ${cmd[*]}"
  # From the temp dir: schemathesis leaves its caches there, not in the repository.
  (cd "$work" && "${cmd[@]}") || status=$?
}
seed
st_run $((max_time * 2 / 3)) examples,coverage,fuzzing "$@"
seed
st_run $((max_time - max_time * 2 / 3)) stateful "$@"

# 5. The verdict: schemathesis exits 1 on failures (in either run); a dead vectord, or
#    one that logged an internal error, is a failure too.
if ! kill -0 "$vectord_pid" 2>/dev/null; then
  echo "schemathesis.sh: vectord died during the run:" >&2; tail -50 "$work/vectord.log" >&2
  status=1
fi
# vectord's own error lines (internal errors, contained panics); actix_http's "request parse
# error" lines are left out: they log what a client sent, which schemathesis does on purpose.
if grep -Eq 'ERROR +vectord|panicked' "$work/vectord.log"; then
  echo "schemathesis.sh: vectord logged errors during the run:" >&2
  grep -E 'ERROR +vectord|panicked' "$work/vectord.log" | head -20 >&2
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "schemathesis: no failures"
else
  echo "schemathesis: FAILED (exit $status)" >&2
fi
exit "$status"
