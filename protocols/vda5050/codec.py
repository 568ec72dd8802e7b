"""Decode what robots send, encode what fleetd sends, and build outgoing messages.

``decode`` runs on the MQTT receive path for every message (>10k/s): ``state`` and
``visualization`` go through the msgspec fast path (:mod:`.fast`) first, everything else
and whatever the fast path does not accept through one ``model_validate_json`` on the
raw bytes. Rejections carry a short detail naming the first offending field, built only
when a message fails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from protocols.errors import MessageRejected, RejectReason, validate_wire
from protocols.vda5050 import fast
from protocols.vda5050.base import VDA_VERSION, BlockingType, format_timestamp
from protocols.vda5050.models import (
    Action,
    ActionParameter,
    Connection,
    Edge,
    Factsheet,
    InstantActions,
    Node,
    Order,
    State,
    Visualization,
)
from protocols.vda5050.topics import Topic, VdaTopic

#: What a robot publishes and fleetd accepts (the fast path's twins of State and
#: Visualization carry the same fields under the same names).
InboundMessage = State | Connection | Visualization | Factsheet | fast.State | fast.Visualization
#: What fleetd publishes (and a robot, or the simulator, decodes).
OutboundMessage = Order | InstantActions

_INBOUND: dict[Topic, type[State | Connection | Visualization | Factsheet]] = {
    Topic.STATE: State,
    Topic.CONNECTION: Connection,
    Topic.VISUALIZATION: Visualization,
    Topic.FACTSHEET: Factsheet,
}
_OUTBOUND: dict[Topic, type[OutboundMessage]] = {
    Topic.ORDER: Order,
    Topic.INSTANT_ACTIONS: InstantActions,
}

# Operator commands as VDA 5050 instant actions (docs/protocols/vda5050.md).
PAUSE = "startPause"
RESUME = "stopPause"
CANCEL_ORDER = "cancelOrder"
START_CHARGING = "startCharging"
STOP_CHARGING = "stopCharging"
STATE_REQUEST = "stateRequest"


def decode(topic: Topic, payload: bytes) -> InboundMessage:
    """Parse and validate a robot's message for an inbound ``topic``.

    Raises :class:`MessageRejected`: ``unknown_topic`` for ``order``/``instantActions``
    (fleetd is the master control and never consumes them), ``malformed_json`` when the
    payload is not JSON, ``schema_invalid`` when it is JSON but not a valid message.
    Unknown extra fields are ignored.
    """
    if topic is Topic.STATE:
        state = fast.decode_state(payload)
        if state is not None:
            return state
    elif topic is Topic.VISUALIZATION:
        vis = fast.decode_visualization(payload)
        if vis is not None:
            return vis
    model = _INBOUND.get(topic)
    if model is None:
        raise MessageRejected(RejectReason.UNKNOWN_TOPIC, f"fleetd does not consume {topic!s}")
    return validate_wire(model, payload)


def decode_outbound(topic: Topic, payload: bytes) -> OutboundMessage:
    """Parse an ``order`` or ``instantActions`` message, as a robot would (simulator, tests).

    Raises :class:`MessageRejected` like :func:`decode`.
    """
    model = _OUTBOUND.get(topic)
    if model is None:
        raise MessageRejected(RejectReason.UNKNOWN_TOPIC, f"{topic!s} is not sent to robots")
    return validate_wire(model, payload)


class _Identified(Protocol):
    @property
    def manufacturer(self) -> str | None: ...

    @property
    def serial_number(self) -> str | None: ...


def check_identity(msg: _Identified, vt: VdaTopic) -> None:
    """Refuse a message whose payload names another robot than its topic.

    A message published on one robot's topic that claims to be another robot is either
    a misconfigured robot or a spoof; either way it must not update the one it names.
    Fields the payload leaves out (all header fields are optional in ``visualization``)
    are not compared. Raises :class:`MessageRejected` with ``identity_mismatch``.
    """
    manufacturer, serial = msg.manufacturer, msg.serial_number
    if (manufacturer is not None and manufacturer != vt.manufacturer) or (
        serial is not None and serial != vt.serial_number
    ):
        raise MessageRejected(
            RejectReason.IDENTITY_MISMATCH,
            f"payload names {manufacturer}/{serial}, topic is {vt.manufacturer}/{vt.serial_number}",
        )


#: VDA 5050 section 6.4: ``version`` is ``Major.Minor.Patch`` (e.g. ``2.0.0``).
_VERSION = re.compile(r"^(?P<major>[0-9]{1,3})\.[0-9]{1,3}\.[0-9]{1,3}$")
#: Distinct version strings remembered as checked (a robot repeats its own on every message).
_VERSION_CACHE_SIZE = 64


class VersionCheck:
    """Refuses messages whose header ``version`` is not of the interface's major version.

    The topic's ``v2`` level names the major version (section 6.5); a message claiming
    another major (``9.9.9`` on ``uagv/v2``) speaks a protocol fleetd does not, whatever
    its fields happen to parse as. Minor and patch may differ (2.1.0 is compatible by
    VDA 5050's own rules). Each distinct version string is checked once: the hot path is
    one set look-up.
    """

    def __init__(self, major: int) -> None:
        self.major = major
        self._good: set[str] = set()

    def check(self, version: str | None) -> None:
        """Raise :class:`MessageRejected` (``version_mismatch``) for a foreign version.

        ``None`` (an optional header left out, as ``visualization`` may) is accepted.
        """
        if version is None or version in self._good:
            return
        match = _VERSION.match(version)
        if match is None:
            raise MessageRejected(
                RejectReason.VERSION_MISMATCH,
                f"version {version[:20]!r} is not Major.Minor.Patch",
            )
        if int(match["major"]) != self.major:
            raise MessageRejected(
                RejectReason.VERSION_MISMATCH,
                f"version {version!r} is not of major version {self.major}",
            )
        if len(self._good) >= _VERSION_CACHE_SIZE:
            self._good.clear()
        self._good.add(version)


def encode(msg: BaseModel) -> bytes:
    """Serialise a message for MQTT: camelCase keys, optional fields left out."""
    return msg.model_dump_json(by_alias=True, exclude_none=True).encode()


# --------------------------------------------------------------------------------------
# Building outgoing messages


def make_header(
    header_id: int, manufacturer: str, serial: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The five header fields of section 6.4, keyed by their wire names.

    ``header_id`` is per robot and per topic, incremented by the caller for every message
    it sends. ``timestamp`` is ``now`` (default: the current time) in UTC with ms and Z.
    """
    return {
        "headerId": header_id,
        "timestamp": format_timestamp(now if now is not None else datetime.now(UTC)),
        "version": VDA_VERSION,
        "manufacturer": manufacturer,
        "serialNumber": serial,
    }


def header_fields(
    header_id: int, manufacturer: str, serial: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The header as Python field names and values, for ``model_copy(update=...)``.

    ``model_copy`` does not validate, so this returns a real ``datetime`` (UTC, truncated
    to milliseconds as on the wire) rather than the string :func:`make_header` gives.
    """
    stamp = now if now is not None else datetime.now(UTC)
    stamp = stamp.astimezone(UTC) if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return {
        "header_id": header_id,
        "timestamp": stamp.replace(microsecond=stamp.microsecond // 1000 * 1000),
        "version": VDA_VERSION,
        "manufacturer": manufacturer,
        "serial_number": serial,
    }


def instant_action(
    action_type: str,
    *,
    blocking_type: BlockingType | str = BlockingType.HARD,
    params: Mapping[str, str | float | bool] | None = None,
    action_id: str | None = None,
    description: str | None = None,
) -> Action:
    """One action, with a fresh UUID as ``actionId`` unless one is given.

    The id is how the robot's ``actionStates`` report this action back; keep it to
    match the outcome (it also serves as the command's correlation id).
    """
    return Action(
        action_type=action_type,
        action_id=action_id or str(uuid.uuid4()),
        blocking_type=BlockingType(blocking_type),
        action_description=description,
        action_parameters=(
            [ActionParameter(key=k, value=v) for k, v in params.items()] if params else None
        ),
    )


def pause_action(*, action_id: str | None = None) -> Action:
    """``startPause``: stop driving at once, keep the order (resumable)."""
    return instant_action(PAUSE, action_id=action_id)


def resume_action(*, action_id: str | None = None) -> Action:
    """``stopPause``: resume a paused order."""
    return instant_action(RESUME, action_id=action_id)


def cancel_order_action(*, action_id: str | None = None) -> Action:
    """``cancelOrder``: stop (possibly at the next node) and delete the order."""
    return instant_action(CANCEL_ORDER, action_id=action_id)


def start_charging_action(*, action_id: str | None = None) -> Action:
    """``startCharging``, for a robot already standing at a charger."""
    return instant_action(START_CHARGING, action_id=action_id)


def stop_charging_action(*, action_id: str | None = None) -> Action:
    """``stopCharging``, before sending a charging robot a new order."""
    return instant_action(STOP_CHARGING, action_id=action_id)


def state_request_action(*, action_id: str | None = None) -> Action:
    """``stateRequest``: ask for a state message now (e.g. after fleetd restarts)."""
    return instant_action(STATE_REQUEST, blocking_type=BlockingType.NONE, action_id=action_id)


def emergency_stop_action(*, action_id: str | None = None) -> Action:
    """The closest VDA 5050 v2.0 has to a remote e-stop: a HARD ``startPause``.

    2.0 defines no e-stop instant action. ``startPause`` stops driving immediately
    (``cancelOrder`` may drive on to the next node) and keeps the order, so an operator
    decides afterwards to resume or cancel. This is a software stop over MQTT, not a
    safety function; see docs/protocols/vda5050.md.
    """
    return instant_action(PAUSE, action_id=action_id, description="fleetd emergency stop")


def make_instant_actions(
    header_id: int,
    manufacturer: str,
    serial: str,
    actions: Iterable[Action],
    *,
    now: datetime | None = None,
) -> InstantActions:
    """An ``instantActions`` message carrying ``actions`` for one robot."""
    return InstantActions.model_validate(
        {**make_header(header_id, manufacturer, serial, now=now), "actions": list(actions)}
    )


def make_order(
    header_id: int,
    manufacturer: str,
    serial: str,
    *,
    order_id: str,
    order_update_id: int,
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    zone_set_id: str | None = None,
    now: datetime | None = None,
) -> Order:
    """An ``order`` message (a new order, or an update of ``order_id``)."""
    return Order.model_validate(
        {
            **make_header(header_id, manufacturer, serial, now=now),
            "orderId": order_id,
            "orderUpdateId": order_update_id,
            "nodes": list(nodes),
            "edges": list(edges),
            "zoneSetId": zone_set_id,
        }
    )
