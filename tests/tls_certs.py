"""Throw-away TLS material for tests: a CA and a server certificate for 127.0.0.1/localhost.

Made with the ``openssl`` command line (installed with the system's OpenSSL), so the test
suite needs no extra Python dependency.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TestCertificates:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> TestCertificates:
    """A fresh CA and a server certificate it signed (EC P-256, valid for a day)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "san.ext").write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "basicConstraints = CA:FALSE\n"
        "keyUsage = digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
    )
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=fleetd test CA", cwd=directory)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
             cwd=directory)  # fmt: skip
    for name in ("ca.key", "server.key"):
        (directory / name).chmod(0o644)  # a broker dropping privileges must read it
    return TestCertificates(
        directory / "ca.crt", directory / "server.crt", directory / "server.key"
    )
