#!/usr/bin/env bash
# etstpm-notify-relay with real unix datagram sockets: forwards what the "container" sends to the upstream
# NOTIFY_SOCKET (path and abstract), drops MAINPID, passes signals to the child, exits with its status.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
RELAY="$JETSON_DIR/bin/etstpm-notify-relay"
PY="$(command -v python3)"

start_listener() { # start_listener ADDRESS OUTFILE -> LISTENER pid, waits until bound
  "$PY" "$HERE/notify_listener.py" "$1" "$2" &
  LISTENER=$!
  for _ in $(seq 100); do grep -q listening "$2" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
wait_lines() { # wait_lines FILE N
  for _ in $(seq 100); do [ "$(wc -l <"$1")" -ge "$2" ] && return 0; sleep 0.05; done
  return 1
}

# 1. Messages from the child reach systemd's socket; MAINPID is dropped; the child's exit status is returned.
setup
start_listener "$T/systemd.sock" "$T/got" || fail "listener did not start"
NOTIFY_SOCKET="$T/systemd.sock" "$RELAY" --socket "$T/run/notify.sock" -- env NOTIFY_SOCKET="$T/run/notify.sock" \
  "$PY" "$HERE/notify_send.py" "READY=1
STATUS=1 camera streaming
MAINPID=4242" "WATCHDOG=1" "STOPPING=1"; rc=$?
wait_lines "$T/got" 4 || true
kill "$LISTENER" 2>/dev/null; wait "$LISTENER" 2>/dev/null
check "relay: exit status of the child (0)" eq "$rc" 0
check "relay: READY=1 and STATUS forwarded in one datagram" contains "$T/got" "READY=1|STATUS=1 camera streaming"
check "relay: WATCHDOG=1 forwarded" contains "$T/got" "WATCHDOG=1"
check "relay: STOPPING=1 (sent just before exit) forwarded" contains "$T/got" "STOPPING=1"
check "relay: MAINPID from the container namespace dropped" lacks "$T/got" "MAINPID"
check "relay: socket removed on exit" test ! -e "$T/run/notify.sock"
teardown

# 2. Abstract upstream socket ("@..."), socket mode for a non-root container user, non-zero child status.
setup
name="@etstpm-relay-test-$$"
start_listener "$name" "$T/got" || fail "abstract listener did not start"
# shellcheck disable=SC2016 # the inner script expands its own positional parameters
NOTIFY_SOCKET="$name" "$RELAY" --socket "$T/run/notify.sock" -- bash -c '
  stat -c %a "$0" >"$1"; NOTIFY_SOCKET="$0" python3 "$2" "READY=1"; exit 7' \
  "$T/run/notify.sock" "$T/mode" "$HERE/notify_send.py"; rc=$?
wait_lines "$T/got" 2 || true
kill "$LISTENER" 2>/dev/null; wait "$LISTENER" 2>/dev/null
check "relay: exit status of the child (7)" eq "$rc" 7
check "relay: forwards to an abstract NOTIFY_SOCKET" contains "$T/got" "READY=1"
check "relay: socket writable by the container user (0666)" eq "$(cat "$T/mode")" 666
teardown

# 3. SIGTERM to the relay (systemctl stop, KillMode=mixed) reaches the child once; the relay returns its status.
setup
# shellcheck disable=SC2016 # the inner script expands its own positional parameters
"$RELAY" --socket "$T/run/notify.sock" -- bash -c '
  trap "echo term >>\"$0\"; exit 0" TERM; trap "echo hup >>\"$0\"" HUP
  echo started >>"$0"; while :; do sleep 0.05; done' "$T/signals" &
relay=$!
for _ in $(seq 100); do grep -q started "$T/signals" 2>/dev/null && break; sleep 0.05; done
kill -HUP "$relay"
# Wait for the child's HUP trap to run before sending TERM (a fixed pause failed on a loaded machine).
for _ in $(seq 200); do grep -q hup "$T/signals" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$relay"
wait "$relay"; rc=$?
check "relay: SIGHUP forwarded (camera reload)" contains "$T/signals" "hup"
check "relay: SIGTERM forwarded" contains "$T/signals" "term"
check "relay: SIGTERM delivered once" eq "$(grep -c term "$T/signals")" 1
check "relay: exits with the child's status after SIGTERM" eq "$rc" 0
teardown

# 4. Without NOTIFY_SOCKET (run by hand) the relay still runs the command and discards notifications.
setup
env -u NOTIFY_SOCKET "$RELAY" --socket "$T/run/notify.sock" -- env NOTIFY_SOCKET="$T/run/notify.sock" \
  "$PY" "$HERE/notify_send.py" "READY=1"; rc=$?
check "relay: runs without systemd" eq "$rc" 0
teardown

finish
