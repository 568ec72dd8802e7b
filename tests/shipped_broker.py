"""A private Mosquitto running the SHIPPED configuration (configs/mosquitto/fleetd.conf).

Only what cannot be the same in a test is changed: file paths (a temporary directory),
ports (free ones on 127.0.0.1), the process user, and no pid file. Every other line, the
security settings included, is used as shipped; a line this module expects but no longer
finds fails the test, so the test cannot silently drift from the file it claims to check.
Logins come from a password file hashed by ``mosquitto_passwd -U`` and the ACL from
``scripts/gen_acl.py``, as docs/operations.md describes.
"""

from __future__ import annotations

import contextlib
import getpass
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, free_port
from tests.tls_certs import TestCertificates, make_certificates

SHIPPED_CONF = REPO / "configs" / "mosquitto" / "fleetd.conf"


@dataclass(frozen=True, slots=True)
class ShippedBroker:
    port: int
    tls_port: int
    certs: TestCertificates
    log: Path


def _rewrite(text: str, *, d: Path, port: int, tls_port: int, certs: TestCertificates) -> str:
    """The shipped config with the deployment-specific lines replaced."""
    rules: list[tuple[str, str]] = [
        (r"^pid_file .*$", "# pid_file: none in tests"),
        (r"^user .*$", f"user {getpass.getuser()}"),
        (r"^persistence_location .*$", f"persistence_location {d}/"),
        (r"^log_dest file .*$", f"log_dest file {d / 'mosquitto.log'}"),
        (r"^password_file .*$", f"password_file {d / 'passwd'}"),
        (r"^acl_file .*$", f"acl_file {d / 'acl'}"),
        (r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1"),
        (r"^listener 8883$", f"listener {tls_port} 127.0.0.1"),
        (r"^certfile .*$", f"certfile {certs.cert}"),
        (r"^keyfile .*$", f"keyfile {certs.key}"),
        (r"^cafile .*$", f"cafile {certs.ca}"),
    ]
    for pattern, replacement in rules:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.M)
        if count != 1:
            raise AssertionError(f"{SHIPPED_CONF} has no line matching {pattern!r}")
    return text


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {log.read_text() if log.exists() else ''}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise RuntimeError("private mosquitto did not start")


@contextlib.contextmanager
def shipped_broker(
    d: Path,
    logins: Mapping[str, str],
    robots: str,
    *,
    vda_prefix: str,
    driver_prefix: str,
    fleetd_users: Sequence[str] = ("fleetd",),
) -> Iterator[ShippedBroker]:
    """Run Mosquitto with the shipped config in ``d``; ``robots`` is gen_acl's input, and
    each of ``fleetd_users`` gets fleetd's rights."""
    d.mkdir(parents=True, exist_ok=True)
    certs = make_certificates(d / "certs")
    passwd = d / "passwd"
    passwd.write_text("".join(f"{user}:{pw}\n" for user, pw in logins.items()))
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, timeout=30)
    (d / "robots.txt").write_text(robots)
    acl = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_acl.py"), str(d / "robots.txt"),
         "--vda-prefix", vda_prefix, "--driver-prefix", driver_prefix,
         *(arg for user in fleetd_users for arg in ("--fleetd-user", user))],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    (d / "acl").write_text(acl.stdout)
    port, tls_port = free_port(), free_port()
    conf = d / "mosquitto.conf"
    conf.write_text(
        _rewrite(SHIPPED_CONF.read_text(), d=d, port=port, tls_port=tls_port, certs=certs)
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL)
    try:
        _wait_for(port, proc, d / "mosquitto.log")
        _wait_for(tls_port, proc, d / "mosquitto.log")
        yield ShippedBroker(port, tls_port, certs, d / "mosquitto.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
