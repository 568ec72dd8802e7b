"""What the served API exposes: HTTPS in the process, whose forwarded headers count, /docs.

Against a whole daemon on a real port: these are properties of how uvicorn is configured,
which an in-process ASGI client would not exercise.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import asyncpg
import httpx

from dispatcher.config import Settings
from tests.conftest import api_client, db_pool, eventually, running_daemon
from tests.tls_certs import make_certificates

SPOOFED = "203.0.113.9"


async def _denied_source(pool: asyncpg.Pool) -> str | None:
    rows = await pool.fetch("SELECT source FROM audit_log WHERE action = 'auth.denied'")
    return str(rows[-1]["source"]) if rows else None


async def _denied(pool: asyncpg.Pool) -> bool:
    return await _denied_source(pool) is not None


def _with(settings: Settings, **api: object) -> Settings:
    return settings.model_copy(update={"api": settings.api.model_copy(update=api)})


class TestForwardedHeaders:
    async def test_a_local_process_cannot_choose_the_audit_source(self, settings: Settings) -> None:
        """With no trusted proxy, X-Forwarded-For from 127.0.0.1 is ignored: the audit row
        names the TCP peer (uvicorn's default would believe it)."""
        async with (
            running_daemon(settings) as running,
            api_client(running.base_url) as client,
            db_pool(settings.database.dsn, max_size=1) as pool,
        ):
            r = await client.get("/v1/vehicles", headers={"X-Forwarded-For": SPOOFED})
            assert r.status_code == 401
            await eventually(lambda: _denied(pool))
            assert await _denied_source(pool) == "127.0.0.1"

    async def test_a_configured_proxy_is_believed(self, settings: Settings) -> None:
        """Listed in api.trusted_proxies, the proxy's X-Forwarded-For names the client."""
        async with (
            running_daemon(_with(settings, trusted_proxies=["127.0.0.1"])) as running,
            api_client(running.base_url) as client,
            db_pool(settings.database.dsn, max_size=1) as pool,
        ):
            r = await client.get("/v1/vehicles", headers={"X-Forwarded-For": SPOOFED})
            assert r.status_code == 401
            await eventually(lambda: _denied(pool))
            assert await _denied_source(pool) == SPOOFED


class TestTlsAndDocs:
    async def test_https_in_the_process_and_docs_off(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """With a certificate the API speaks only HTTPS (verified against the test CA), and
        api.docs = false hides /docs while /openapi.json stays."""
        certs = make_certificates(tmp_path / "tls")
        tls = _with(settings, tls_cert_file=certs.cert, tls_key_file=certs.key, docs=False)
        async with running_daemon(tls):
            url = f"https://127.0.0.1:{tls.api.port}"
            trust = ssl.create_default_context(cafile=certs.ca)
            async with httpx.AsyncClient(base_url=url, verify=trust) as client:
                assert (await client.get("/healthz")).status_code == 200
                assert (await client.get("/docs")).status_code == 404
                assert (await client.get("/openapi.json")).status_code == 200
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tls.api.port}") as plain:
                try:
                    r = await plain.get("/healthz")
                except httpx.HTTPError:
                    pass  # the TLS server hung up on cleartext
                else:
                    assert r.status_code != 200

    async def test_docs_served_in_development_by_default(self, settings: Settings) -> None:
        """The development profile keeps /docs."""
        async with running_daemon(settings) as running, api_client(running.base_url) as client:
            assert (await client.get("/docs")).status_code == 200


class TestKeepAlive:
    async def test_an_idle_connection_outlives_the_clients_keep_alive(
        self, settings: Settings
    ) -> None:
        """A connection idle for 6 s (past httpx's 5 s keep-alive) is still open, so a
        client never sends on a connection the server is closing (with uvicorn's own 5 s
        that race failed a request now and then with a read error)."""
        async with running_daemon(settings) as running:
            host, port = running.base_url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            try:
                for _ in range(2):
                    writer.write(request)
                    await writer.drain()
                    status = await asyncio.wait_for(reader.readline(), 5)
                    assert status.startswith(b"HTTP/1.1 200"), status
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    await asyncio.sleep(6)
            finally:
                writer.close()
