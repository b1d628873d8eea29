#!/usr/bin/env bash
# Runs storaged's S3 tests against Garage (https://garagehq.deuxfleurs.fr), a production
# S3-compatible object store, instead of the moto server CI uses.
#
# Not run by CI: building Garage takes 11-22 minutes on a 2-core machine. Usage:
#
#   scripts/garage-test.sh            # use `garage` from $GARAGE or the PATH, else build it
#   scripts/garage-test.sh --keep     # leave Garage running afterwards (prints how to reach it)
#
# What it does:
#   1. finds `garage`, or installs it: cargo install garage --locked --version 2.5.0
#      into $GARAGE_INSTALL_ROOT (default ~/.cache/vectord-garage);
#   2. writes a single-node configuration (sqlite metadata, fresh rpc secret) in a temporary
#      directory, with S3, RPC and admin APIs on free loopback ports;
#   3. starts `garage server --single-node --default-bucket`, which creates an access key
#      (GARAGE_DEFAULT_ACCESS_KEY / GARAGE_DEFAULT_SECRET_KEY, generated here) and the bucket
#      GARAGE_DEFAULT_BUCKET with read/write rights for that key;
#   4. runs every storaged test with STORAGED_TEST_S3_* pointing at it (see
#      src/storaged/testing.rs) and STORAGED_TEST_REQUIRE_S3=1, so that an S3 run cannot be
#      skipped: the unit tests (`cargo test --release --lib storaged`: HTTP routes, store,
#      model-based property test) and the real-binary tests (tests/storaged_client.rs,
#      tests/storaged_*.rs), and the read replicas' test (tests/replicas.rs: a primary and
#      two replicas, each through a storaged of its own on the same bucket and prefix);
#   5. stops Garage (by its PID) and removes its directory, unless --keep.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
for arg in "$@"; do
  case "$arg" in
    --keep) keep=true ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

GARAGE_VERSION=2.5.0
garage_bin="${GARAGE:-}"
if [ -z "$garage_bin" ]; then
  root="${GARAGE_INSTALL_ROOT:-$HOME/.cache/vectord-garage}"
  if command -v garage >/dev/null; then
    garage_bin="$(command -v garage)"
  elif [ -x "$root/bin/garage" ]; then
    garage_bin="$root/bin/garage"
  else
    echo "garage not found: building it (cargo install garage --locked --version $GARAGE_VERSION, 11-22 min)"
    start=$(date +%s)
    cargo install garage --locked --version "$GARAGE_VERSION" --root "$root"
    echo "garage built in $(( $(date +%s) - start )) s"
    garage_bin="$root/bin/garage"
  fi
fi
echo "using $("$garage_bin" --version | head -1) ($garage_bin)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

dir="$(mktemp -d -t vectord-garage.XXXXXX)"
s3_port=$(free_port); rpc_port=$(free_port); admin_port=$(free_port)
cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
EOF

export GARAGE_DEFAULT_ACCESS_KEY="GK$(hex 12)"
export GARAGE_DEFAULT_SECRET_KEY="$(hex 32)"
export GARAGE_DEFAULT_BUCKET=storaged-test

"$garage_bin" -c "$dir/garage.toml" server --single-node --default-bucket >"$dir/garage.log" 2>&1 &
garage_pid=$!
stop() {
  if [ "$keep" = true ]; then
    echo "Garage keeps running: PID $garage_pid, S3 at http://127.0.0.1:$s3_port, directory $dir"
    echo "  bucket $GARAGE_DEFAULT_BUCKET, region garage, access key $GARAGE_DEFAULT_ACCESS_KEY, secret key $GARAGE_DEFAULT_SECRET_KEY (a throwaway local store)"
    echo "  stop it with: kill $garage_pid && rm -rf $dir"
    return
  fi
  kill "$garage_pid" 2>/dev/null || true
  wait "$garage_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT

# Ready once the bucket exists (the single-node layout and the default bucket come first).
for _ in $(seq 1 300); do
  if ! kill -0 "$garage_pid" 2>/dev/null; then
    echo "garage exited; its log:" >&2; cat "$dir/garage.log" >&2; exit 1
  fi
  if "$garage_bin" -c "$dir/garage.toml" bucket info "$GARAGE_DEFAULT_BUCKET" >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
"$garage_bin" -c "$dir/garage.toml" bucket info "$GARAGE_DEFAULT_BUCKET" >/dev/null
echo "Garage serves S3 on http://127.0.0.1:$s3_port (bucket $GARAGE_DEFAULT_BUCKET)"

export STORAGED_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export STORAGED_TEST_S3_BUCKET="$GARAGE_DEFAULT_BUCKET"
export STORAGED_TEST_S3_REGION=garage
export STORAGED_TEST_S3_ACCESS_KEY_ID="$GARAGE_DEFAULT_ACCESS_KEY"
export STORAGED_TEST_S3_SECRET_ACCESS_KEY="$GARAGE_DEFAULT_SECRET_KEY"
export STORAGED_TEST_S3_NAME="$("$garage_bin" --version | head -1)"
export STORAGED_TEST_REQUIRE_S3=1

# (and the read replicas, each with a storaged of its own on the bucket: tests/replicas.rs)
tests=(--test storaged_client --test replicas)
for f in tests/storaged_*.rs; do
  [ -e "$f" ] && tests+=(--test "$(basename "$f" .rs)")
done
cargo test --release --lib storaged
cargo test --release "${tests[@]}"
echo "storaged S3 tests passed on $STORAGED_TEST_S3_NAME"
