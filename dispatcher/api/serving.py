"""How uvicorn serves the API: address, TLS, and which proxies' headers are believed.

Kept apart from the supervisor so every exposure decision sits in one place and is
tested against a real server (tests/integration/api/test_exposure.py).
"""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp

from dispatcher.config import ApiSettings

#: How long an idle client connection is kept open. Well above the 5 s that clients keep
#: idle connections (httpx's default, browsers' are longer but retry): with uvicorn's own
#: 5 s, the server closed a connection just as a client sent on it, and that request
#: failed with a read error (seen by the operator console's and the tests' clients).
KEEP_ALIVE_S = 30


def server_config(app: ASGIApp, api: ApiSettings) -> uvicorn.Config:
    """The uvicorn configuration for ``app`` under ``api``.

    uvicorn's own default believes X-Forwarded-For from 127.0.0.1, so any process on the
    host could pick the client address written to the audit log; here forwarded headers
    are read only from ``api.trusted_proxies``, and not at all when it is empty.
    """
    trusted = list(api.trusted_proxies)
    return uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        # The C parser (a dependency): the pure-Python h11 that uvicorn falls back to
        # without it cost a third more CPU per API request.
        http="httptools",
        timeout_keep_alive=KEEP_ALIVE_S,
        proxy_headers=bool(trusted),
        # Never None: uvicorn would then read $FORWARDED_ALLOW_IPS or trust 127.0.0.1.
        forwarded_allow_ips=trusted or [],
        ssl_certfile=api.tls_cert_file,
        ssl_keyfile=api.tls_key_file,
    )
