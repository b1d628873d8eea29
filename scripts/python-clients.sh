#!/usr/bin/env bash
# The Python packages' tests: clients/python (the `vectord` client, sync and async) and
# clients/langchain (`langchain-vectord`, with LangChain's standard vector-store tests),
# each against a real target/release/vectord that its pytest fixture starts on a free
# loopback port and stops by its PID.
#
# Installs the packages and their test dependencies (pinned, from PyPI) into a venv under
# ~/.cache/vectord-clients, once; the packages themselves are installed editable, so the
# venv follows the working tree. Build vectord first (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$HOME/.cache/vectord-clients"
pins=(numpy==2.4.6 pytest==9.2.0 pytest-asyncio==1.5.0
      langchain-core==1.8.3 langchain-tests==1.1.9 "setuptools>=68")
stamp="$venv/.installed-$(printf '%s ' "${pins[@]}" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing the Python clients' test dependencies into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "${pins[@]}"
  touch "$stamp"
fi
"$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e clients/python -e clients/langchain

(cd clients/python && "$venv/bin/python" -m pytest -q -p no:cacheprovider)
(cd clients/langchain && "$venv/bin/python" -m pytest -q -p no:cacheprovider)
