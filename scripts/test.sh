#!/usr/bin/env bash
# Runs every test suite. Assets from ../shared are used when present (ETSTPM_SHARED overrides the path);
# tests that need them skip with a message when they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
export ETSTPM_SHARED="${ETSTPM_SHARED:-$(cd .. && pwd)/shared}"
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"
status=0
echo "== training toolkit (pytest)"
.venv/bin/python -m pytest -q training/tests || status=1
echo "== daemon (node --test)"
npm test || status=1
exit $status
