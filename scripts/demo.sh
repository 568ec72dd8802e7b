#!/usr/bin/env bash
# See fleetd work: the daemon, a simulated fleet (20 robots, 5 drivers) and the live status view
# (`fleetd status`, full screen, when stdout is a terminal; q quits it early). When stdout is
# not a terminal (CI, a pipe) it prints the plain status table every 2 s instead.
#
#   scripts/demo.sh                   runs for 30 s, then stops everything it started
#   DEMO_SECONDS=120 scripts/demo.sh  runs for two minutes
#   DEMO_SECONDS=0 scripts/demo.sh    runs until Ctrl-C
#
# Logs: .run/fleetd.log (daemon) and .run/sim.log (simulator). Safe to run again: processes
# left over from an earlier run (pid files in .run/) are stopped first. fleetd's own settings
# apply as usual (FLEETD_CONFIG, FLEETD_API__PORT, ...).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

RUN_DIR="$REPO/.run"
FLEETD="$REPO/.venv/bin/fleetd"
PY="$REPO/.venv/bin/python"
DEMO_SECONDS="${DEMO_SECONDS:-30}"
READY_TIMEOUT_S="${DEMO_READY_TIMEOUT_S:-60}"
STOP_TIMEOUT_S="${DEMO_STOP_TIMEOUT_S:-20}"
# The simulated vehicles run this many times faster than real time, so a newcomer sees
# missions driven to the end (and a robot charging) within the first minute.
TIME_SCALE="${DEMO_TIME_SCALE:-5}"

DAEMON_PID=""
SIM_PID=""
IN_LOOP=0
STOP_REQUESTED=0

say() { printf '[demo] %s\n' "$*"; }
die() {
    printf '[demo] ERROR: %s\n' "$*" >&2
    exit 1
}

case "$DEMO_SECONDS" in
    '' | *[!0-9]*) die "DEMO_SECONDS must be a whole number of seconds (0 = until Ctrl-C)" ;;
esac

# Is the process alive (and not a zombie waiting to be reaped)?
alive() {
    local state
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ "$state" != Z ] && [ "$state" != X ]
}

cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# SIGTERM, wait up to STOP_TIMEOUT_S, then SIGKILL.
stop_process() {
    local pid="$1" name="$2" deadline
    alive "$pid" || return 0
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while alive "$pid"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "$name did not stop within ${STOP_TIMEOUT_S}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null || true
}

# Stop a process a previous run left behind, if its pid file still names a fleetd process.
stop_leftover() {
    local pidfile="$RUN_DIR/$1.pid" what="$2" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && alive "$pid" && [[ "$(cmdline_of "$pid")" == *"fleetd $what"* ]]; then
        say "found a $1 process from an earlier run"
        stop_process "$pid" "$1"
    fi
    rm -f "$pidfile"
}

cleanup() {
    trap - EXIT INT TERM
    stop_process "$SIM_PID" simulator
    stop_process "$DAEMON_PID" daemon
    rm -f "$RUN_DIR/sim.pid" "$RUN_DIR/fleetd.pid"
    say "logs: .run/fleetd.log, .run/sim.log"
}

on_int() {
    if [ "$IN_LOOP" = 1 ]; then
        STOP_REQUESTED=1 # leave the status loop, show the final snapshot, then clean up
    else
        exit 130
    fi
}

trap cleanup EXIT
trap on_int INT
trap 'exit 143' TERM

log_tail() {
    printf '[demo] --- last lines of %s ---\n' "$1" >&2
    tail -n 40 "$1" >&2 || true
}

# HTTP status code of a GET (000 when nothing answers).
http_status() {
    "$PY" - "$1" <<'PY'
import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as resp:
        print(resp.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print("000")
PY
}

# --- 1. setup and leftovers -----------------------------------------------------------------

bash scripts/setup.sh
mkdir -p "$RUN_DIR"
stop_leftover sim "sim"
stop_leftover fleetd "run"

BASE_URL="$("$PY" -c 'from dispatcher.config import load_settings; print(load_settings().api.base_url)')" ||
    die "cannot read fleetd's settings (see above)"
READY_URL="$BASE_URL/readyz"
if [ "$(http_status "$READY_URL")" != 000 ]; then
    die "something already answers on $BASE_URL (another fleetd?); stop it or set FLEETD_API__PORT"
fi

# --- 2. the daemon --------------------------------------------------------------------------

# The demo's vehicles are simulated and made up on the spot: register them on first contact
# (the default, "reject", refuses vehicles neither configured nor stored).
export FLEETD_FLEET__UNKNOWN_VEHICLES="${FLEETD_FLEET__UNKNOWN_VEHICLES:-register}"
# The simulated drivers drive TIME_SCALE times faster than real ones: the plausibility
# limit on their fixes' speed (15 m/s for real drivers) scales with it.
FLEETD_FLEET__DRIVER_MAX_SPEED_MPS="${FLEETD_FLEET__DRIVER_MAX_SPEED_MPS:-$(awk -v s="$TIME_SCALE" 'BEGIN { print 15 * s }')}"
export FLEETD_FLEET__DRIVER_MAX_SPEED_MPS

say "starting the daemon: fleetd run (log: .run/fleetd.log)"
# setsid: a Ctrl-C in this terminal reaches only this script, which then stops the
# processes in order (they handle SIGINT themselves and would otherwise quit at once).
setsid "$FLEETD" run >"$RUN_DIR/fleetd.log" 2>&1 &
DAEMON_PID=$!
echo "$DAEMON_PID" >"$RUN_DIR/fleetd.pid"

say "waiting up to ${READY_TIMEOUT_S}s for $READY_URL"
deadline=$((SECONDS + READY_TIMEOUT_S))
while :; do
    code="$(http_status "$READY_URL")"
    [ "$code" = 200 ] && break
    if ! alive "$DAEMON_PID"; then
        log_tail "$RUN_DIR/fleetd.log"
        die "the daemon exited before it was ready"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        log_tail "$RUN_DIR/fleetd.log"
        die "the daemon was not ready within ${READY_TIMEOUT_S}s (last answer: HTTP $code)"
    fi
    sleep 0.5
done
say "daemon ready (pid $DAEMON_PID)"

# --- 3. an operator token -------------------------------------------------------------------

token_out="$("$FLEETD" token create --role operator --name demo)" || die "fleetd token create failed"
FLEETD_TOKEN="$(printf '%s\n' "$token_out" | awk 'NF { last = $NF } END { print last }')"
[ -n "$FLEETD_TOKEN" ] || die "fleetd token create printed no token"
export FLEETD_TOKEN
say "operator token created; try it while the demo runs:"
say "  curl -H \"Authorization: Bearer $FLEETD_TOKEN\" $BASE_URL/v1/vehicles"

# --- 4. the simulated fleet -----------------------------------------------------------------

# configs/scenarios/demo.toml: the fleet, the workload and a fault in the first minute.
say "starting the simulator: fleetd sim run demo --time-scale $TIME_SCALE (log: .run/sim.log)"
setsid "$FLEETD" sim run demo --time-scale "$TIME_SCALE" >"$RUN_DIR/sim.log" 2>&1 &
SIM_PID=$!
echo "$SIM_PID" >"$RUN_DIR/sim.pid"
sleep 1
if ! alive "$SIM_PID"; then
    log_tail "$RUN_DIR/sim.log"
    die "the simulator exited at once"
fi

# --- 5. the live status view (a terminal) or table (anything else) ------------------------

if [ "$DEMO_SECONDS" -eq 0 ]; then
    how_long="until Ctrl-C"
else
    how_long="for ${DEMO_SECONDS}s (DEMO_SECONDS=0 runs until Ctrl-C)"
fi
end=$((SECONDS + DEMO_SECONDS))
if [ -t 1 ] && [ -t 0 ] && [ "${DEMO_PLAIN:-0}" != 1 ]; then
    say "live view $how_long: ? lists the keys, q quits (DEMO_PLAIN=1: the plain table)"
    sleep 1
    "$FLEETD" status --for "$DEMO_SECONDS" || say "(fleetd status failed, exit $?)"
    STOP_REQUESTED=1
    if ! alive "$DAEMON_PID"; then
        log_tail "$RUN_DIR/fleetd.log"
        die "the daemon stopped unexpectedly"
    fi
fi
IN_LOOP=1
while [ "$STOP_REQUESTED" = 0 ]; do
    if [ -t 1 ]; then printf '\033[H\033[2J'; else echo; fi
    say "$(date +%T)  fleetd status, every 2 s, $how_long"
    "$FLEETD" status --once || say "(fleetd status failed, exit $?)"
    if ! alive "$DAEMON_PID"; then
        log_tail "$RUN_DIR/fleetd.log"
        die "the daemon stopped unexpectedly"
    fi
    if ! alive "$SIM_PID"; then
        log_tail "$RUN_DIR/sim.log"
        die "the simulator stopped unexpectedly"
    fi
    if [ "$DEMO_SECONDS" -gt 0 ] && [ "$SECONDS" -ge "$end" ]; then
        break
    fi
    sleep 2 || true
done
IN_LOOP=0

# --- 6. a machine-readable snapshot, then stop ----------------------------------------------

echo
say "fleetd status --once --json (first lines):"
# No pipe into head: where SIGPIPE is ignored (some CI runners) the writer would fail loudly.
snapshot="$("$FLEETD" status --once --json)" || say "(fleetd status --json failed)"
head -n 20 <<<"${snapshot:-}"
echo
say "done; stopping the simulator and the daemon"
# The simulator prints what became of the missions it created when it stops.
stop_process "$SIM_PID" simulator
SIM_PID=""
summary="$(grep -E '^missions: ' "$RUN_DIR/sim.log" | tail -n 1 || true)"
say "${summary:-missions: no summary (see .run/sim.log)}"
