#!/usr/bin/env python3
"""Write a Mosquitto ACL file for a fleetd deployment: one block per robot.

Why a block per robot: a VDA 5050 robot's topics carry two levels of identity,
``uagv/v2/{manufacturer}/{serialNumber}/...``. A Mosquitto ``pattern`` substitutes %u or %c
as one whole level, and refuses any username or client id containing '/', so no pattern
can tie both levels to one login. A block per robot can, exactly.

Drivers have a single-level id (``fleetd/driver/v1/{driverId}/...``), so one set of
``pattern`` lines covers them all: a driver logs in with its driverId as username.

Input: a file with one robot per line, ``manufacturer serialNumber [username]`` (default
username ``manufacturer.serialNumber``); blank lines and ``#`` comments are skipped.

    scripts/gen_acl.py robots.txt > /etc/mosquitto/fleetd/acl
    scripts/gen_acl.py --fleetd-user fleetd-a --fleetd-user fleetd-b robots.txt > acl
    scripts/gen_acl.py --sim-user fleetd-sim robots.txt > acl   # test rigs

The shipped broker config ties client ids to usernames (``use_username_as_clientid``), so
every fleetd daemon on one broker (an active and a standby) needs a login of its own:
``--fleetd-user`` may be given once per daemon, each gets fleetd's rights.

Standard library only, so it runs with the system python3 on the broker host.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: VDA 5050 2.0 topic levels (manufacturer, serialNumber): A-Z a-z 0-9 _ . : -
_VDA_LEVEL = re.compile(r"[A-Za-z0-9_.:-]+")
#: Mosquitto usernames as the password file and ACL file can hold them: no ':' (the password
#: file's separator), no whitespace, and none of '+', '#', '/' (refused by pattern checks).
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]+")
_PREFIX = re.compile(r"[^#+\s]+(/[^#+\s]+)*")

ROBOT_WRITES = ("state", "connection", "visualization", "factsheet")
ROBOT_READS = ("order", "instantActions")
DRIVER_WRITES = ("connection", "status", "offerResponse", "trip", "commandAck")
DRIVER_READS = ("offer", "command")


@dataclass(frozen=True, slots=True)
class Robot:
    manufacturer: str
    serial: str
    username: str


class InputError(Exception):
    """A line of the robots file cannot be used; the message says which and why."""


def parse_robots(lines: Iterable[str], source: str = "<robots>") -> list[Robot]:
    """Robots from ``manufacturer serialNumber [username]`` lines."""
    robots: list[Robot] = []
    seen_users: set[str] = set()
    seen_ids: set[tuple[str, str]] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{number}"
        fields = line.split()
        if len(fields) not in (2, 3):
            raise InputError(f"{where}: expected 'manufacturer serialNumber [username]'")
        manufacturer, serial = fields[0], fields[1]
        for name, value in (("manufacturer", manufacturer), ("serialNumber", serial)):
            if not _VDA_LEVEL.fullmatch(value):
                raise InputError(f"{where}: {name} {value!r} is not [A-Za-z0-9_.:-]+ (VDA 5050)")
        username = fields[2] if len(fields) == 3 else f"{manufacturer}.{serial}"
        if not _USERNAME.fullmatch(username):
            raise InputError(
                f"{where}: username {username!r} must be [A-Za-z0-9_.@-]+ "
                "(give one as the third field if the serial number has a ':')"
            )
        if username in seen_users:
            raise InputError(f"{where}: username {username!r} is used twice")
        if (manufacturer, serial) in seen_ids:
            raise InputError(f"{where}: robot {manufacturer}/{serial} is listed twice")
        seen_users.add(username)
        seen_ids.add((manufacturer, serial))
        robots.append(Robot(manufacturer, serial, username))
    return robots


def render(
    robots: list[Robot],
    *,
    vda_prefix: str,
    driver_prefix: str,
    fleetd_users: Sequence[str],
    sim_user: str | None,
) -> str:
    """The ACL file's text."""
    out = [
        "# Mosquitto ACL for fleetd, written by scripts/gen_acl.py; edit the robots list and",
        "# regenerate rather than editing this file. Reload: kill -HUP $(pidof mosquitto).",
        "# A client may only do what a line grants it; everything else is denied (a denied",
        "# PUBLISH is dropped silently, a denied SUBSCRIBE is refused in the SUBACK).",
        "",
        "# fleetd: reads everything robots and drivers send, sends orders, instant actions,",
        "# job offers and driver commands. One login per daemon (client ids are usernames).",
    ]
    for fleetd_user in fleetd_users:
        out += [
            f"user {fleetd_user}",
            f"topic read {vda_prefix}/#",
            f"topic write {vda_prefix}/+/+/order",
            f"topic write {vda_prefix}/+/+/instantActions",
            f"topic read {driver_prefix}/#",
            *(f"topic write {driver_prefix}/+/{t}" for t in DRIVER_READS),
            "# The broker's own count of dropped messages (fleetd's metrics and readiness).",
            "topic read $SYS/broker/publish/messages/dropped",
            "",
        ]
    if sim_user:
        out += [
            "# The fleet simulator (test rigs only): plays every robot and driver.",
            f"user {sim_user}",
            f"topic readwrite {vda_prefix}/#",
            f"topic readwrite {driver_prefix}/#",
            "",
        ]
    out += [
        "# Robots: one block each; a robot may publish only its own VDA 5050 topics and read",
        "# only its own orders. 'deny' keeps it from posing as a driver via the patterns below.",
    ]
    for r in robots:
        base = f"{vda_prefix}/{r.manufacturer}/{r.serial}"
        out.append(f"user {r.username}")
        out.append(f"topic deny {driver_prefix}/#")
        out += [f"topic write {base}/{t}" for t in ROBOT_WRITES]
        out += [f"topic read {base}/{t}" for t in ROBOT_READS]
        out.append("")
    out += [
        "# Drivers: username = driverId; each may publish only its own driver topics and read",
        "# only its own offers and commands. Patterns apply to every user, after its own lines.",
        *(f"pattern write {driver_prefix}/%u/{t}" for t in DRIVER_WRITES),
        *(f"pattern read {driver_prefix}/%u/{t}" for t in DRIVER_READS),
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a Mosquitto ACL file for fleetd (one block per robot).",
    )
    parser.add_argument("robots", type=Path, help="file of 'manufacturer serialNumber [username]'")
    parser.add_argument("--vda-prefix", default="uagv/v2", help="mqtt.vda_interface/major")
    parser.add_argument("--driver-prefix", default="fleetd/driver/v1", help="mqtt.driver_prefix")
    parser.add_argument(
        "--fleetd-user",
        action="append",
        dest="fleetd_users",
        help="a fleetd daemon's broker username (default fleetd); once per daemon",
    )
    parser.add_argument("--sim-user", help="also grant this simulator user everything (rigs)")
    args = parser.parse_args(argv)

    for name in ("vda_prefix", "driver_prefix"):
        if not _PREFIX.fullmatch(getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be topic levels without wildcards")
    fleetd_users: list[str] = args.fleetd_users or ["fleetd"]
    for flag, value in [*(("fleetd-user", u) for u in fleetd_users), ("sim-user", args.sim_user)]:
        if value is not None and not _USERNAME.fullmatch(value):
            parser.error(f"--{flag} must be [A-Za-z0-9_.@-]+")
    if len(set(fleetd_users)) != len(fleetd_users) or args.sim_user in fleetd_users:
        parser.error("--fleetd-user and --sim-user must all differ")
    try:
        text = args.robots.read_text(encoding="utf-8")
        robots = parse_robots(text.splitlines(), str(args.robots))
    except OSError as exc:
        sys.stderr.write(f"gen_acl: cannot read {args.robots}: {exc.strerror}\n")
        return 2
    except InputError as exc:
        sys.stderr.write(f"gen_acl: {exc}\n")
        return 2
    taken = {*fleetd_users, args.sim_user}
    clash = [r.username for r in robots if r.username in taken]
    if clash:
        sys.stderr.write(f"gen_acl: robot usernames clash with service users: {clash}\n")
        return 2
    sys.stdout.write(
        render(
            robots,
            vda_prefix=args.vda_prefix,
            driver_prefix=args.driver_prefix,
            fleetd_users=fleetd_users,
            sim_user=args.sim_user,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
