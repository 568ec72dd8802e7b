#!/usr/bin/env bash
# Set up everything fleetd needs on a Debian 12 machine, then the virtualenv and database.
#
# Idempotent and non-interactive: each step checks first and only acts when something is
# missing, so a second run takes a few seconds. Works as root or through sudo, and without
# systemd (containers): services are started directly and checked with a real probe.
#
# Overrides (environment):
#   FLEETD_SKIP_SERVICES=1   do not install system packages or start services
#   FLEETD_SKIP_DB=1         do not create or migrate the database (fleetd migrate)
#   FLEETD_FORCE_INSTALL=1   reinstall the Python package even if pyproject.toml is unchanged
#   FLEETD_PYTHON=python3.12 interpreter for a new .venv (must be >= 3.11)
#   FLEETD_PG_VERSION=15     PostgreSQL major version to install and start (default: the
#                            installed one, else 15)
#   FLEETD_WAIT_S=30         how long to wait for each service to answer
#   FLEETD_CONFIG, FLEETD_DATABASE__DSN, FLEETD_MQTT__USERNAME, ...   as for fleetd itself
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

VENV="$REPO/.venv"
STAMP="$VENV/.fleetd-install-stamp"
WAIT_S="${FLEETD_WAIT_S:-30}"
APT_UPDATED=0

log() { printf '[setup] %s\n' "$*"; }
die() {
    printf '[setup] ERROR: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly, or through sudo (never prompting when not on a terminal).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        die "need root for: $* (run as root, or install sudo)"
    fi
}

# Poll a probe command until it succeeds or WAIT_S seconds pass.
wait_until() {
    local deadline=$((SECONDS + WAIT_S))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.5
    done
}

show_log_tail() {
    local file="$1"
    if as_root test -r "$file"; then
        printf '[setup] --- last lines of %s ---\n' "$file" >&2
        as_root tail -n 30 "$file" >&2 || true
    else
        printf '[setup] (no log at %s)\n' "$file" >&2
    fi
}

# --- system packages ------------------------------------------------------------------------

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

pkg_available() {
    apt-cache show "$1" >/dev/null 2>&1
}

apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
}

# Install whichever of the named packages are missing (apt-get update only if needed).
install_missing() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    apt_update_once
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        --no-install-recommends "${missing[@]}"
}

# systemd-analyze, which scripts/verify_units.sh (a step of scripts/test.sh) checks the unit
# files with. It comes in Debian's `systemd` package; installing that package neither
# starts systemd nor makes it PID 1 (that is systemd-sysv), so containers are unaffected.
install_unit_checker() {
    if command -v systemd-analyze >/dev/null 2>&1; then
        return 0
    fi
    install_missing systemd
    command -v systemd-analyze >/dev/null 2>&1 ||
        die "the systemd package is installed but systemd-analyze is missing"
}

# The PostgreSQL major version: FLEETD_PG_VERSION, else the newest installed, else 15.
detect_pg_version() {
    if [ -n "${FLEETD_PG_VERSION:-}" ]; then
        echo "$FLEETD_PG_VERSION"
        return
    fi
    local v
    v="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null |
        sort -n | tail -n 1)"
    echo "${v:-15}"
}

install_system_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        die "this script installs packages with apt (Debian 12); install PostgreSQL 15 + PostGIS 3, \
Redis 7 and Mosquitto 2 yourself and re-run with FLEETD_SKIP_SERVICES=1"
    fi
    install_missing python3-venv redis-server redis-tools mosquitto mosquitto-clients make
    install_unit_checker

    PG_VERSION="$(detect_pg_version)"
    if ! pkg_installed "postgresql-$PG_VERSION"; then
        apt_update_once
        if ! pkg_available "postgresql-$PG_VERSION"; then
            # Not Debian 12: take the distribution's PostgreSQL, whatever its version.
            log "postgresql-$PG_VERSION is not available here; installing the distribution's postgresql"
            install_missing postgresql
            PG_VERSION="$(detect_pg_version)"
        fi
    fi
    install_missing "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION" \
        "postgresql-$PG_VERSION-postgis-3"
    log "system packages present (PostgreSQL $PG_VERSION + PostGIS 3, Redis, Mosquitto)"
}

# --- services (no systemd) ------------------------------------------------------------------

pg_probe() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2; }

# Can the postgres user log in over 127.0.0.1 without a password prompt?
pg_login_probe() {
    PGCONNECT_TIMEOUT=5 psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'SELECT 1' \
        >/dev/null 2>&1
}

start_postgres() {
    local v="$PG_VERSION" logfile="/var/log/postgresql/postgresql-$PG_VERSION-main.log"
    if pg_probe; then
        log "PostgreSQL: already accepting connections on 127.0.0.1:5432"
    else
        if [ ! -d "/etc/postgresql/$v/main" ]; then
            log "PostgreSQL: creating cluster $v/main"
            as_root pg_createcluster "$v" main
        fi
        local port
        port="$(as_root pg_conftool "$v" main show -s port 2>/dev/null || echo 5432)"
        if [ "$port" != 5432 ]; then
            # pg_createcluster picks the next free port when 5432 was busy at install time.
            die "cluster $v/main is configured for port $port, fleetd expects 5432: set
    'port = 5432' in /etc/postgresql/$v/main/postgresql.conf (or point FLEETD_DATABASE__DSN
    at port $port and start it yourself with FLEETD_SKIP_SERVICES=1)"
        fi
        as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
        log "PostgreSQL: starting cluster $v/main"
        as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start ||
            true # "already running" and real failures alike are judged by the probe below
        if ! wait_until pg_probe; then
            show_log_tail "$logfile"
            die "PostgreSQL did not accept connections on 127.0.0.1:5432 within ${WAIT_S}s"
        fi
        log "PostgreSQL: up"
    fi

    if pg_login_probe; then
        return 0
    fi
    # Debian's default pg_hba.conf asks for a password on 127.0.0.1. fleetd's defaults and the
    # tests connect as postgres over loopback without one, so allow exactly that (development
    # machines only; production uses its own role and password, see docs/operations.md).
    local hba="/etc/postgresql/$v/main/pg_hba.conf"
    as_root test -f "$hba" || die "cannot log in as postgres@127.0.0.1 and $hba does not exist"
    if as_root grep -q '# fleetd setup.sh' "$hba"; then
        die "postgres@127.0.0.1 login fails although $hba already has fleetd's trust lines"
    fi
    log "PostgreSQL: postgres@127.0.0.1 cannot log in; adding loopback trust lines to $hba"
    local tmp
    tmp="$(mktemp)"
    {
        echo '# fleetd setup.sh: the postgres user may connect over loopback without a password'
        echo 'host    all    postgres    127.0.0.1/32    trust    # fleetd setup.sh'
        echo 'host    all    postgres    ::1/128         trust    # fleetd setup.sh'
        as_root cat "$hba"
    } >"$tmp"
    as_root cp "$hba" "$hba.before-fleetd"
    as_root install -o postgres -g postgres -m 0640 "$tmp" "$hba"
    rm -f "$tmp"
    as_root pg_ctlcluster --skip-systemctl-redirect "$v" main reload
    if ! wait_until pg_login_probe; then
        die "postgres@127.0.0.1 still cannot log in after changing $hba"
    fi
    log "PostgreSQL: postgres@127.0.0.1 can log in"
}

redis_probe() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

start_redis() {
    local logfile=/var/log/redis/fleetd.log
    if redis_probe; then
        log "Redis: already answering PING on 127.0.0.1:6379"
        return 0
    fi
    as_root mkdir -p /var/lib/redis /var/log/redis
    log "Redis: starting"
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile "$logfile" || true
    if ! wait_until redis_probe; then
        show_log_tail "$logfile"
        die "Redis did not answer PING on 127.0.0.1:6379 within ${WAIT_S}s"
    fi
    log "Redis: up"
}

# An MQTT round trip: publish a retained QoS 1 message, read it back, then clear it.
# The login goes in the clients' options files ($XDG_CONFIG_HOME/mosquitto_pub and
# mosquitto_sub) in a private directory, never on a command line (which every local user
# can read in ps or /proc/PID/cmdline).
mqtt_probe() {
    local topic="fleetd/setup/probe/$$" got conf rc=0
    conf="$(mktemp -d)"
    if [ -n "${FLEETD_MQTT__USERNAME:-}" ]; then
        (
            umask 077
            printf -- '-u %s\n-P %s\n' "$FLEETD_MQTT__USERNAME" "${FLEETD_MQTT__PASSWORD:-}" \
                >"$conf/mosquitto_pub"
            cp "$conf/mosquitto_pub" "$conf/mosquitto_sub"
        )
    fi
    {
        XDG_CONFIG_HOME="$conf" mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -r -t "$topic" -m ping &&
            got="$(XDG_CONFIG_HOME="$conf" mosquitto_sub -h 127.0.0.1 -p 1883 -q 1 -t "$topic" \
                -C 1 -W 3)" &&
            { XDG_CONFIG_HOME="$conf" mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -r -t "$topic" -n \
                || true; } &&
            [ "$got" = "ping" ]
    } || rc=1
    rm -rf "$conf"
    return "$rc"
}

start_mosquitto() {
    local logfile=/var/log/mosquitto/mosquitto.log
    if mqtt_probe >/dev/null 2>&1; then
        log "Mosquitto: MQTT round trip on 127.0.0.1:1883 works"
        return 0
    fi
    as_root mkdir -p /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
    if id mosquitto >/dev/null 2>&1; then
        as_root chown mosquitto:mosquitto /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
    fi
    log "Mosquitto: starting"
    as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    if ! wait_until mqtt_probe; then
        show_log_tail "$logfile"
        die "Mosquitto did not complete an MQTT round trip on 127.0.0.1:1883 within ${WAIT_S}s"
    fi
    log "Mosquitto: up"
}

# --- Python ---------------------------------------------------------------------------------

py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; }

find_python() {
    local c
    for c in ${FLEETD_PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$c" >/dev/null 2>&1 && py_ok "$c"; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] && py_ok "$VENV/bin/python"; then
        log "virtualenv: reusing $VENV ($("$VENV/bin/python" -V 2>&1))"
        return 0
    fi
    if [ -e "$VENV" ]; then
        die "$VENV exists but has no working Python >= 3.11; remove it and run again"
    fi
    local py
    py="$(find_python)" || die "no Python >= 3.11 found (set FLEETD_PYTHON)"
    log "virtualenv: creating $VENV with $py ($("$py" -V 2>&1))"
    "$py" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
}

# Does the venv import this checkout's code (an editable install of this very directory)?
installed_here() {
    [ -x "$VENV/bin/fleetd" ] &&
        "$VENV/bin/python" -c 'import sys, dispatcher; sys.exit(not dispatcher.__file__.startswith(sys.argv[1]))' \
            "$REPO/" 2>/dev/null
}

install_package() {
    local want have=""
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
    if [ -f "$STAMP" ]; then have="$(cat "$STAMP")"; fi
    # The stamp alone is not enough: the editable install must also point at this checkout.
    if [ "${FLEETD_FORCE_INSTALL:-0}" != 1 ] && [ "$want" = "$have" ] && installed_here; then
        log "python package: up to date (pyproject.toml unchanged since the last install)"
        return 0
    fi
    log "python package: pip install -e '.[dev]'"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -e '.[dev]'
    printf '%s\n' "$want" >"$STAMP"
}

# The two database roles of docs/operations.md ("Database roles"), for trying the split on
# this machine: fleetd_runtime (NOLOGIN; migration 0006 grants it what the daemon needs) and
# the login fleetd_app, a member of it. The default configuration keeps using the postgres
# superuser for both; to run as fleetd_app set
#   FLEETD_DATABASE__DSN=postgresql://fleetd_app@127.0.0.1:5432/fleetd
#   FLEETD_DATABASE__MIGRATION_DSN=postgresql://postgres@127.0.0.1:5432/fleetd
# No password: loopback is trusted on a development machine (production: docs).
create_db_roles() {
    if ! pg_login_probe; then
        log "database roles: skipped (cannot log in as postgres over 127.0.0.1)"
        return 0
    fi
    psql -w -q -h 127.0.0.1 -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetd_runtime') THEN
        CREATE ROLE fleetd_runtime NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetd_app') THEN
        CREATE ROLE fleetd_app LOGIN IN ROLE fleetd_runtime;
    END IF;
END;
$$;
SQL
    log "database roles: fleetd_runtime and its login fleetd_app exist"
}

# --- main -----------------------------------------------------------------------------------

main() {
    local started=$SECONDS
    log "repository: $REPO"
    if [ "${FLEETD_SKIP_SERVICES:-0}" = 1 ]; then
        log "services: skipped (FLEETD_SKIP_SERVICES=1)"
    else
        install_system_packages
        start_postgres
        start_redis
        start_mosquitto
    fi

    ensure_venv
    install_package

    if [ "${FLEETD_SKIP_DB:-0}" = 1 ]; then
        log "database: skipped (FLEETD_SKIP_DB=1)"
    else
        create_db_roles || die "could not create the database roles (see above)"
        # Creates the configured database if it is missing (PostGIS comes with migration 0001).
        log "database: $VENV/bin/fleetd migrate (creates the database if missing, then migrates)"
        "$VENV/bin/fleetd" migrate || die "fleetd migrate failed (see above)"
    fi
    log "done in $((SECONDS - started))s"
}

# Sourced (tests call single functions), define only; run when executed.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
