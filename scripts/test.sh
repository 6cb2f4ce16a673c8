#!/usr/bin/env bash
# Runs every test suite. Assets from ../shared are used when present (ETSTPM_SHARED overrides the path);
# tests that need them skip with a message when they are absent.
set -uo pipefail
cd "$(dirname "$0")/.."
export ETSTPM_SHARED="${ETSTPM_SHARED:-$(cd .. && pwd)/shared}"
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"
export PATH="$PWD/.venv/bin:$PATH"   # etstpm (parity test) and hadolint
failed=()
echo "== Jetson deployment checks (shellcheck, systemd-analyze, hadolint, script tests)"
bash deploy/jetson/check.sh || failed+=("deploy checks")
echo "== lint (eslint: src test bench; ruff: training bench/training; configs eslint.config.mjs, ruff.toml)"
npm run --silent lint || failed+=("eslint")
.venv/bin/ruff check training bench/training || failed+=("ruff")
echo "== training toolkit (pytest)"
.venv/bin/python -m pytest -q training/tests || failed+=("pytest")
echo "== daemon (node --test)"
npm test || failed+=("node tests")
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
