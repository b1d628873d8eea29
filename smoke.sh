#!/usr/bin/env bash
# End-to-end smoke against the real binaries: builds if needed, starts vectord (with its
# embedded storaged) on free loopback ports in a temporary directory, runs the core
# round trip, then the G1P persistence acceptance (kill -9, restart, same state), prints
# one PASS/FAIL line per step, stops everything, and exits non-zero on any FAIL.
# Needs bash, curl and jq.
set -u
cd "$(dirname "$0")"

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "smoke.sh: $tool is required" >&2; exit 2; }
done

cargo build --release --quiet --bin vectord --bin storaged || { echo "FAIL build"; exit 1; }
BIN=./target/release/vectord

WORK=$(mktemp -d)
PID=""
FAILS=0
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SPORT=$(free_port)
URL="http://127.0.0.1:$PORT"

start() {
  : > "$WORK/empty.toml"
  "$BIN" --config "$WORK/empty.toml" --bind "127.0.0.1:$PORT" --storaged-bind "127.0.0.1:$SPORT" \
    --storaged-url "http://127.0.0.1:$SPORT" --data-dir "$WORK/data" >>"$WORK/vectord.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")" = 200 ] && return 0
    sleep 0.1
  done
  echo "vectord did not become ready; log:"; cat "$WORK/vectord.log"; return 1
}

PASSES=0
step() { # step NAME COMMAND...: runs the command, prints PASS or FAIL
  local name=$1; shift
  if out=$("$@" 2>&1); then echo "PASS $name"; PASSES=$((PASSES+1)); else echo "FAIL $name: $out"; FAILS=$((FAILS+1)); fi
}

# call METHOD PATH [BODY] -> prints "STATUS BODY"
call() {
  local body=${3:-}
  if [ -n "$body" ]; then
    curl -s -w '\n%{http_code}' -X "$1" -H 'Content-Type: application/json' -d "$body" "$URL$2"
  else
    curl -s -w '\n%{http_code}' -X "$1" "$URL$2"
  fi
}
expect() { # expect STATUS JQ_FILTER METHOD PATH [BODY]: status matches and the filter is true
  local want=$1 filter=$2; shift 2
  local res status body
  res=$(call "$@"); status=$(tail -n1 <<<"$res"); body=$(sed '$d' <<<"$res")
  [ "$status" = "$want" ] || { echo "status $status, want $want: $body"; return 1; }
  [ -z "$filter" ] || jq -e "$filter" >/dev/null <<<"$body" || { echo "check $filter failed on: $body"; return 1; }
}

ITEMS='{"items":[{"id":"a","vector":[1,0,0,0],"metadata":{"t":"x"}},{"id":"b","vector":[0,1,0,0]},{"id":"c","vector":[0,0,1,0]},{"id":"d","vector":[0.5,0.5,0.5,0.5]}]}'

start || exit 1
step "health" expect 200 '.status=="ok" and .persistence=="storaged"' GET /health
step "create index" expect 201 '.name=="smoke" and .dim==4' POST /vectors/index '{"name":"smoke","dim":4,"distance":"cosine"}'
step "add items" expect 200 '.added==4 and .count==4' POST /vectors/index/smoke/add "$ITEMS"
step "search finds an added vector first at distance 0" expect 200 '.results[0].id=="c" and (.results[0].distance|fabs) <= 1e-6' \
  POST /vectors/index/smoke/search '{"vector":[0,0,1,0],"k":3}'
step "get item" expect 200 '.id=="a" and .metadata.t=="x" and .vector==[1,0,0,0]' GET /vectors/index/smoke/items/a
step "delete item" expect 204 '' DELETE /vectors/index/smoke/items/b
step "deleted item is gone" expect 404 '.error.code=="item_not_found"' GET /vectors/index/smoke/items/b
step "flush" expect 200 '.persisted==true' POST /vectors/index/smoke/flush

# G1P: kill -9, restart, same state, exact graph
BEFORE=$(call POST /vectors/index/smoke/search '{"vector":[0.1,0.2,0.3,0.4],"k":3}' | sed '$d')
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=""
start || exit 1
step "G1P: index is back after kill -9" expect 200 '.count==3' GET /vectors/index/smoke
step "G1P: stored vector found at distance 0 after restart" expect 200 '.results[0].id=="d" and (.results[0].distance|fabs) <= 1e-6' \
  POST /vectors/index/smoke/search '{"vector":[0.5,0.5,0.5,0.5],"k":1}'
AFTER=$(call POST /vectors/index/smoke/search '{"vector":[0.1,0.2,0.3,0.4],"k":3}' | sed '$d')
step "G1P: same neighbours as before the kill" test "$BEFORE" = "$AFTER"
step "G1P: file is in storaged" test -f "$WORK/data/_vectors/smoke.lhv1"
step "delete index" expect 204 '' DELETE /vectors/index/smoke
step "G1P: delete removed _vectors/smoke.lhv1" test ! -e "$WORK/data/_vectors/smoke.lhv1"
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=""
start || exit 1
step "G1P: after another restart the index is gone" expect 200 '.indexes==0' GET /health
step "G1P: and 404" expect 404 '.error.code=="index_not_found"' GET /vectors/index/smoke
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=""
step "SIGTERM exits 0" test "$rc" = 0

echo "smoke: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
