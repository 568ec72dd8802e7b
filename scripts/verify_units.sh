#!/usr/bin/env bash
# Check fleetd's systemd units with `systemd-analyze verify` (a step of scripts/test.sh).
#
#   scripts/verify_units.sh                 every systemd/*.service
#   scripts/verify_units.sh FILE.service    only these
#
# systemd need not run here (containers, CI): systemd-analyze (Debian package `systemd`,
# which scripts/setup.sh installs) checks the files offline. It refuses a unit whose
# ExecStart= binary does not exist, and /opt/fleetd/.venv/bin/fleetd exists only on an
# installed host, so the units are checked inside a temporary root (--root) holding:
# systemd's own units (the targets ours are ordered against), an executable stand-in at
# every absolute path our Exec*= lines name, and our units in /etc/systemd/system.
# systemd-analyze reports unknown keys and bad values as warnings with exit status 0, so
# any output at all counts as a failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "verify_units: systemd-analyze not found (Debian: apt-get install systemd; scripts/setup.sh installs it)" >&2
    exit 1
fi

units=("$@")
if [ "${#units[@]}" -eq 0 ]; then
    units=("$REPO"/systemd/*.service)
fi

root="$(mktemp -d "${TMPDIR:-/tmp}/fleetd-units.XXXXXX")"
trap 'rm -rf "$root"' EXIT

# systemd's own units: sysinit.target, basic.target, network-online.target, ...
system_units=""
for dir in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -f "$dir/sysinit.target" ]; then
        system_units="$dir"
        break
    fi
done
if [ -z "$system_units" ]; then
    echo "verify_units: systemd's unit directory (sysinit.target) not found" >&2
    exit 1
fi
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -r "$system_units" "$root/usr/lib/systemd/system"

for unit in "${units[@]}"; do
    cp "$unit" "$root/etc/systemd/system/"
    # The first word of every Exec*= line, without systemd's prefixes (-@:+!).
    sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' "$unit" | while read -r bin; do
        mkdir -p "$root$(dirname "$bin")"
        printf '#!/bin/sh\nexit 0\n' >"$root$bin"
        chmod 0755 "$root$bin"
    done
done

failed=0
for unit in "${units[@]}"; do
    name="$(basename "$unit")"
    out="$(systemd-analyze verify --man=no --generators=no --root="$root" \
        "$root/etc/systemd/system/$name" 2>&1)" && rc=0 || rc=$?
    if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
        printf 'verify_units: %s: FAILED (exit %s)\n%s\n' "$name" "$rc" "${out//$root/}" >&2
        failed=1
    else
        printf 'verify_units: %s: ok\n' "$name"
    fi
done
exit "$failed"
