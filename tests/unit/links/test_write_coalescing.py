"""PUBACKs written in one burst leave in one send(); everything else at once, in order."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from dispatcher.links.mqtt import _coalesce_writes

PUBACK_1 = b"\x40\x02\x00\x01"
PUBACK_2 = b"\x40\x02\x00\x02"
PINGREQ = b"\xc0\x00"


def fake_client() -> tuple[Any, list[bytes]]:
    sent: list[bytes] = []
    protocol = SimpleNamespace(_transport=object(), write_data=sent.append)
    return SimpleNamespace(_connection=SimpleNamespace(_protocol=protocol)), sent


async def test_pubacks_are_sent_together_after_the_burst() -> None:
    client, sent = fake_client()
    _coalesce_writes(client)
    write = client._connection._protocol.write_data
    write(PUBACK_1)
    write(PUBACK_2)
    assert sent == []  # held until the loop comes round
    await asyncio.sleep(0)
    assert sent == [PUBACK_1 + PUBACK_2]


async def test_other_packets_go_at_once_after_queued_acks() -> None:
    client, sent = fake_client()
    _coalesce_writes(client)
    write = client._connection._protocol.write_data
    write(PUBACK_1)
    write(PINGREQ)
    assert sent == [PUBACK_1, PINGREQ]
    await asyncio.sleep(0)
    assert sent == [PUBACK_1, PINGREQ]  # nothing sent twice


async def test_applied_once_per_protocol_and_skipped_without_internals() -> None:
    client, sent = fake_client()
    _coalesce_writes(client)
    _coalesce_writes(client)  # a second connect callback on the same protocol
    client._connection._protocol.write_data(PUBACK_1)
    await asyncio.sleep(0)
    assert sent == [PUBACK_1]
    _coalesce_writes(SimpleNamespace())  # a gmqtt without these internals: left alone
