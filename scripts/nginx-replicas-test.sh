#!/usr/bin/env bash
# deploy/nginx-replicas.conf, tested with Debian's nginx on loopback ports.
#
# What it does:
#   1. installs nginx-light with apt-get if no nginx is on the PATH;
#   2. starts storaged, a vectord primary and two vectord replicas (--replica, polling
#      every 200 ms) on free loopback ports, and nginx with the deploy configuration, its
#      ports replaced by those (every process stopped by its PID on exit);
#   3. through nginx: creates an index, adds items and flushes (these must reach the
#      primary: the X-Vectord-Upstream header nginx adds says which server answered), then
#      searches, gets and counts until the replicas serve the items (these must be answered
#      by a replica), and checks that "X-Vectord-Read: primary" sends a read to the primary;
#   4. stops one replica: reads keep being answered (by the other).
#
# How to run (it does not build: run `cargo build --release` first):
#   scripts/nginx-replicas-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release
for b in vectord storaged; do
  [ -x "$bin/$b" ] || { echo "nginx-replicas-test: $bin/$b not found: cargo build --release" >&2; exit 2; }
done
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx-light"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light) >/dev/null
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # url
  for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "nginx-replicas-test: $1 never answered" >&2; exit 1
}

sp=$(free_port); pp=$(free_port); r1=$(free_port); r2=$(free_port); np=$(free_port)
touch "$work/none.toml"
"$bin/storaged" --config "$work/none.toml" --bind "127.0.0.1:$sp" --root "$work/store" 2>"$work/storaged.log" &
pids+=($!)
wait_for "http://127.0.0.1:$sp/health"
common=(--config "$work/none.toml" --storaged-url "http://127.0.0.1:$sp")
"$bin/vectord" "${common[@]}" --no-embedded-storaged --bind "127.0.0.1:$pp" \
  --set "vectord.cache_dir=$work/cache-primary" 2>"$work/primary.log" &
pids+=($!)
for port in $r1 $r2; do
  "$bin/vectord" "${common[@]}" --replica --bind "127.0.0.1:$port" \
    --set vectord.replica_poll_ms=200 --set "vectord.cache_dir=$work/cache-$port" \
    2>"$work/replica-$port.log" &
  pids+=($!)
done
for port in $pp $r1 $r2; do wait_for "http://127.0.0.1:$port/ready"; done

mkdir -p "$work/nginx"
sed -e "s/127.0.0.1:3215/127.0.0.1:$pp/g" -e "s/127.0.0.1:3216/127.0.0.1:$r1/g" \
    -e "s/127.0.0.1:3217/127.0.0.1:$r2/g" -e "s/127.0.0.1:8080/127.0.0.1:$np/g" \
    deploy/nginx-replicas.conf >"$work/nginx/nginx.conf"
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx.log" &
pids+=($!)
nginx_pid=$!
N="http://127.0.0.1:$np"
wait_for "$N/health"

fail() { echo "nginx-replicas-test: FAIL: $*" >&2; exit 1; }
# Sends a request through nginx; prints "<status> <port of the server that answered>" (the
# last address in X-Vectord-Upstream: nginx lists every server it tried) and keeps the body.
call() { # method path [body] [extra curl args...]
  local method=$1 path=$2 body=${3:-}
  shift 3 || shift $#
  local headers="$work/headers" out
  out=$(curl -s -o "$work/body" -D "$headers" -w '%{http_code}' -X "$method" \
    -H 'Content-Type: application/json' ${body:+--data "$body"} "$@" "$N$path")
  local upstream
  upstream=$(grep -i '^x-vectord-upstream:' "$headers" | tr -d '\r' | awk '{print $NF}' | sed 's/.*://')
  echo "$out $upstream"
}
expect() { # "<status> <port>" status port-set what
  local got=$1 status=$2 ports=$3 what=$4
  [ "${got%% *}" = "$status" ] || fail "$what: status ${got%% *}, expected $status ($(cat "$work/body"))"
  case " $ports " in *" ${got##* } "*) ;; *) fail "$what: answered by port ${got##* }, expected one of $ports";; esac
}

expect "$(call POST /vectors/index '{"name":"docs","dim":3,"distance":"cosine"}')" 201 "$pp" "create"
expect "$(call POST /vectors/index/docs/add '{"items":[{"id":"a","vector":[1,0,0]},{"id":"b","vector":[0,1,0]},{"id":"c","vector":[0,0,1]}]}')" 200 "$pp" "add"
expect "$(call POST /vectors/index/docs/flush '{}')" 200 "$pp" "flush"
seen=0
for _ in $(seq 1 200); do
  got=$(call POST /vectors/index/docs/count '{}')
  if [ "${got%% *}" = 200 ] && grep -q '"count":3' "$work/body"; then seen=1; break; fi
  sleep 0.05
done
[ $seen = 1 ] || fail "the replicas never served the 3 items"
for _ in 1 2 3 4; do
  expect "$(call POST /vectors/index/docs/search '{"vector":[0,1,0],"k":1}')" 200 "$r1 $r2" "search"
  grep -q '"id":"b"' "$work/body" || fail "search answered $(cat "$work/body")"
done
expect "$(call GET /vectors/index/docs/items/c '')" 200 "$r1 $r2" "get item"
expect "$(call POST /vectors/index/docs/count '{}' -H 'X-Vectord-Read: primary')" 200 "$pp" "a read asked of the primary"
expect "$(call GET /health '')" 200 "$pp" "health"

# One replica down: reads go on.
kill "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
for _ in 1 2 3 4; do
  expect "$(call POST /vectors/index/docs/search '{"vector":[1,0,0],"k":1}')" 200 "$r2" "search with one replica down"
done
echo "nginx-replicas-test: 1 passed, 0 failed (primary :$pp, replicas :$r1 :$r2, nginx :$np)"
