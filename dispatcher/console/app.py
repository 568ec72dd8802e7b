"""The Textual application of ``fleetd status`` (see docs/status-view.md).

Panels: the top bar (live or STALE, counts, role), the vehicles table, the missions panel,
the alerts panel, the details pane of the selected row with its recent events and the
actions the token's role allows, and the facility map when the terminal is large enough.
Data comes from :class:`~dispatcher.console.client.Feed` (a snapshot, then the event
stream); the tables are redrawn from :class:`~dispatcher.console.model.FleetState` on every
change and once a second (ages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog
from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Input, Static

from dispatcher.console.braille import draw_map
from dispatcher.console.client import ApiProblem, DaemonClient, Feed, Snapshot
from dispatcher.console.model import (
    MISSION_ACTIONS,
    SHORT_ALERT_KINDS,
    VEHICLE_ACTIONS,
    Action,
    Column,
    FleetState,
    SortKey,
    VehicleFilter,
    allowed_actions,
    fit_columns,
)
from dispatcher.console.widgets import ChoiceScreen, ConfirmScreen, HelpScreen

log = structlog.get_logger(__name__)

#: The map panel shows from this terminal size up (columns, rows).
MAP_MIN_SIZE = (110, 30)
#: Seconds between two refreshes of the vehicle list (battery, positions and heartbeats
#: are telemetry, not events); status changes arrive on the stream at once.
TELEMETRY_REFRESH_S = 5.0
#: Events arriving within this many seconds are drawn together.
REDRAW_S = 0.1
#: Seconds between two looks at vehicles and missions an event named (fetched in batches).
DETAIL_FETCH_S = 0.2

#: Below this many columns the right-hand panels take a fixed width and the tables keep
#: their key columns (the others go, zone and heartbeat first).
NARROW_WIDTH = 100
#: The right-hand panels' width (columns) below :data:`NARROW_WIDTH`.
NARROW_RIGHT = 30

# Each table's columns; a column with ``drop`` goes when the table is too narrow for all
# (highest first), so 80x24 shows the key ones whole and a wider terminal shows the rest.
VEHICLE_COLUMNS = (
    Column("name", "VEHICLE"),
    Column("kind", "KIND", drop=1),
    Column("status", "STATUS"),
    Column("battery", "BATTERY"),
    Column("heartbeat", "BEAT", drop=2),
    Column("mission", "MISSION"),
    Column("zone", "ZONE", drop=3),
)
MISSION_COLUMNS = (
    Column("flag", "!"),
    Column("id", "MISSION"),
    Column("priority", "PRIO", drop=3),
    Column("status", "STATUS"),
    Column("vehicle", "VEHICLE", drop=1),
    Column("waiting", "WAIT", drop=2),
)
ALERT_COLUMNS = (
    Column("flag", "!"),
    Column("kind", "ALERT"),
    Column("subject", "WHO"),
    Column("age", "AGE", drop=1),
)
SORT_CYCLE = (
    SortKey.NAME,
    SortKey.STATUS,
    SortKey.BATTERY,
    SortKey.HEARTBEAT,
    SortKey.KIND,
    SortKey.ZONE,
)
STATUS_STYLE = {
    "offline": "bold red",
    "error": "bold red",
    "maintenance": "magenta",
    "paused": "yellow",
    "charging": "cyan",
    "idle": "green",
}
BATTERY_STYLE = {"low": "bold red", "mid": "yellow", "ok": "green", "unknown": "dim"}
RESOLVE_CHOICES = ["fail", "complete", "reassign"]
#: The key of each action, as the details pane lists them (the bindings say the same).
ACTION_KEYS = {
    Action.PAUSE: "p",
    Action.RESUME: "r",
    Action.CHARGE: "c",
    Action.CANCEL_MISSION: "x",
    Action.RESOLVE_MISSION: "d",
    Action.ACKNOWLEDGE: "a",
}


class StatusApp(App[None]):
    """``fleetd status``: the fleet, live."""

    TITLE = "fleetd status"
    CSS = """
    Screen { layout: vertical; }
    #topbar { height: 1; background: $primary-background; padding: 0 1; }
    #topbar.stale { background: $error; color: $text; text-style: bold; }
    #filter { display: none; height: 3; }
    #filter.shown { display: block; }
    #main { height: 1fr; }
    #left { width: 3fr; }
    #right { width: 2fr; min-width: 30; }
    #main.narrow #right { width: 30; }
    DataTable { scrollbar-size-vertical: 1; }
    #vehicles { height: 3fr; border: round $primary; }
    #missions { height: 2fr; border: round $primary; }
    #alerts { height: 1fr; border: round $warning; }
    #details { height: 1fr; border: round $primary; padding: 0 1; overflow-y: auto; }
    #map { height: 1fr; border: round $primary; display: none; }
    #map.shown { display: block; }
    .stale DataTable { opacity: 60%; }
    DataTable:focus { border: round $accent; }
    #help-box, #confirm-box {
        width: 78; height: auto; max-height: 100%; border: thick $accent;
        background: $surface; padding: 1 2;
    }
    HelpScreen, ConfirmScreen, ChoiceScreen { align: center middle; }
    #confirm-buttons { height: 3; margin-top: 1; }
    #confirm-buttons Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Keys"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("S", "sort_reverse", "Reverse", show=False),
        Binding("m", "toggle_map", "Map", show=False),
        Binding("p", "vehicle('pause')", "Pause"),
        Binding("r", "vehicle('resume')", "Resume"),
        Binding("c", "vehicle('charge')", "Charge"),
        Binding("x", "cancel_mission", "Cancel"),
        Binding("d", "resolve_mission", "Resolve"),
        Binding("a", "acknowledge", "Ack"),
        Binding("escape", "clear_filter", "Clear", show=False),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        client: DaemonClient,
        *,
        facility: str | None = None,
        telemetry_refresh_s: float = TELEMETRY_REFRESH_S,
        run_for_s: float | None = None,
    ) -> None:
        super().__init__()
        self._run_for_s = run_for_s
        self.client = client
        self.facility = facility
        self.state = FleetState()
        self.feed = Feed(client, self)
        self.vehicle_filter = VehicleFilter()
        self.sort = SortKey.NAME
        self.sort_reverse = False
        self.map_wanted = True
        self.layout_doc: dict[str, Any] | None = None
        self.selected: tuple[str, str] | None = None  # ("vehicle" | "mission" | "alert", id)
        self.lost_at: datetime | None = None
        self.message = ""
        self._dirty_vehicles: set[str] = set()
        self._dirty_missions: set[str] = set()
        self._telemetry_s = telemetry_refresh_s
        self._changed = asyncio.Event()
        self._ui_ready = False
        self._redraw_pending = False
        #: Table id -> the column keys it shows now (they follow the terminal's width).
        self._shown: dict[str, tuple[str, ...]] = {}

    # Layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("fleetd status: connecting...", id="topbar")
        yield Input(placeholder="filter: words, kind:robot status:idle zone:ward", id="filter")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield DataTable(id="vehicles", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="missions", cursor_type="row")
            with Vertical(id="right"):
                yield DataTable(id="alerts", cursor_type="row")
                yield Static("", id="details")
                yield Static("", id="map")
        yield Footer()

    def on_mount(self) -> None:
        vehicles = self.query_one("#vehicles", DataTable)
        vehicles.border_title = "Vehicles"
        self.query_one("#missions", DataTable).border_title = "Missions"
        self.query_one("#alerts", DataTable).border_title = "Alerts"
        self._narrow()
        self.query_one("#details", Static).border_title = "Details"
        self.query_one("#map", Static).border_title = "Map"
        vehicles.focus()
        self._ui_ready = True
        self.run_worker(self._connection(), name="status.feed", group="feed", exclusive=True)
        self.set_interval(1.0, self.redraw)
        if self._run_for_s:
            self.set_timer(self._run_for_s, self.exit)

    async def _connection(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.feed.run(), name="status.events")
            tg.create_task(self._details_loop(), name="status.details")
            tg.create_task(self._telemetry_loop(), name="status.telemetry")

    def on_resize(self) -> None:
        self._narrow()
        # The tables have their new sizes after this refresh: choose their columns then.
        self.call_after_refresh(self.redraw)

    def _narrow(self) -> None:
        self.query_one("#main").set_class(self.size.width < NARROW_WIDTH, "narrow")

    async def on_unmount(self) -> None:
        self._ui_ready = False
        await self.client.aclose()

    # The feed -----------------------------------------------------------------------------

    def feed_snapshot(self, snapshot: Snapshot) -> None:
        self.state.apply_snapshot(
            vehicles=snapshot.vehicles,
            missions=snapshot.missions,
            alerts=snapshot.alerts,
            zones=snapshot.zones,
            me=snapshot.me,
            unavailable=snapshot.unavailable,
            summary=snapshot.summary,
        )
        self.lost_at = None
        # Where each running mission is (to pickup, passenger on board) is in its timeline.
        self._dirty_missions |= {
            mid for mid, m in self.state.missions.items() if m.get("status") == "in_progress"
        }
        self._changed.set()
        if self.layout_doc is None and "vehicles" not in snapshot.unavailable:
            self.run_worker(self._load_layout(snapshot), group="layout", exclusive=True)
        self.redraw()
        self.refresh_bindings()

    def feed_event(self, name: str, data: Mapping[str, Any], event_id: str | None) -> None:
        subject = self.state.apply_event(name, data, event_id)
        if not subject:
            return
        if name.startswith("vehicle."):
            self._dirty_vehicles.add(subject)
        elif name.startswith("mission.") and subject in self.state.missions:
            self._dirty_missions.add(subject)
        self._changed.set()
        self._redraw_soon()

    def _redraw_soon(self) -> None:
        """Redraw within :data:`REDRAW_S`: a burst of events costs one redraw."""
        if not self._redraw_pending:
            self._redraw_pending = True
            self.set_timer(REDRAW_S, self._redraw_now)

    def _redraw_now(self) -> None:
        self._redraw_pending = False
        self.redraw()

    def feed_lost(self, reason: str) -> None:
        if self.lost_at is None:
            self.lost_at = datetime.now(UTC)
        self.state.mark_stale(reason)
        self.redraw()

    async def _load_layout(self, snapshot: Snapshot) -> None:
        facility = self.facility or str(snapshot.me.get("facility_id") or "") or None
        if facility is None and snapshot.vehicles:
            facility = str(snapshot.vehicles[0].get("facility_id"))
        if facility:
            try:
                self.layout_doc = await self.client.layout(facility)
            except Exception as exc:  # httpx: the daemon went away since the snapshot
                # The feed says so itself; the next snapshot tries again. A worker that
                # raised would end the whole view.
                log.debug("status.layout_failed", error=repr(exc))
                return
            self.redraw()

    async def _details_loop(self) -> None:
        """Fetch the vehicles and missions events named (their whole record)."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            await asyncio.sleep(DETAIL_FETCH_S)  # gather a burst of events into one pass
            vehicles, self._dirty_vehicles = self._dirty_vehicles, set()
            missions, self._dirty_missions = self._dirty_missions, set()
            try:
                for vid in vehicles:
                    self.state.update_vehicle(await self.client.get(f"/v1/vehicles/{vid}"))
                for mid in missions:
                    self.state.update_mission(await self.client.get(f"/v1/missions/{mid}"))
            except (ApiProblem, OSError, ValueError) as exc:
                log.debug("status.detail_failed", error=str(exc))
            except Exception as exc:  # httpx errors: the feed notices the loss itself
                log.debug("status.detail_failed", error=repr(exc))
            self._redraw_soon()

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self._telemetry_s)
            if self.state.stale or "vehicles" in self.state.unavailable:
                continue
            try:
                for v in await self.client.pages("/v1/vehicles"):
                    self.state.update_vehicle(v)
            except Exception as exc:  # the feed notices a lost daemon and says so
                log.debug("status.telemetry_failed", error=repr(exc))
                continue
            self.redraw()

    # Drawing ------------------------------------------------------------------------------

    def topbar_text(self) -> str:
        s = self.state
        counts = s.counts()
        role = f"role {s.role}" if s.role else ""
        if s.stale:
            since = self.lost_at.strftime("%H:%M:%S") if self.lost_at else "-"
            as_of = s.as_of.astimezone().strftime("%H:%M:%S") if s.as_of else "never"
            return (
                f"STALE: daemon lost since {since} ({s.stale_reason}); data as of {as_of}; "
                "reconnecting..."
            )
        parts = [
            "LIVE",
            f"vehicles {counts['vehicles']} ({counts['online']} online)",
            f"missions {counts['missions']}",
            f"alerts {counts['alerts']}",
            role,
        ]
        if self.vehicle_filter != VehicleFilter():
            parts.append("filtered")
        if self.message:
            parts.append(self.message)
        return "  |  ".join(p for p in parts if p)

    def redraw(self) -> None:
        """Draw every panel from the state (the widgets are gone while the app exits)."""
        if not self._ui_ready:
            return
        try:
            self._redraw()
        except NoMatches:
            return

    def _redraw(self) -> None:
        top = self.query_one("#topbar", Static)
        top.update(self.topbar_text())
        top.set_class(self.state.stale, "stale")
        self.query_one("#main").set_class(self.state.stale, "stale")
        now = datetime.now(UTC)
        self._draw_vehicles(now)
        self._draw_missions(now)
        self._draw_alerts(now)
        self._draw_details()
        self._draw_map()

    @staticmethod
    def _room(table: DataTable[Any]) -> int:
        """Cells across the table has for its columns (a vertical scrollbar's kept free)."""
        return max(0, table.content_region.width - table.styles.scrollbar_size_vertical)

    def _fill(
        self,
        table: DataTable[Any],
        columns: tuple[Column, ...],
        rows: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Replace the rows, keeping the cursor on the same row key where it still is.
        The columns shown are those that fit the table's width (:func:`fit_columns`)."""
        widths = {
            c.key: max(
                (
                    cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))
                    for _, cells in rows
                    if (cell := cells[c.key]) is not None
                ),
                default=0,
            )
            for c in columns
        }
        shown = fit_columns(columns, widths, self._room(table), table.cell_padding)
        keys = tuple(c.key for c in shown)
        current: str | None = None
        if table.row_count and 0 <= table.cursor_row < table.row_count:
            current = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        if self._shown.get(table.id or "") != keys:
            table.clear(columns=True)
            for c in shown:
                table.add_column(c.label, key=c.key)
            self._shown[table.id or ""] = keys
        else:
            table.clear()
        for key, cells in rows:
            table.add_row(*(cells[k] for k in keys), key=key)
        if current is not None:
            order = [k for k, _ in rows]
            if current in order:
                table.move_cursor(row=order.index(current), animate=False)

    def _draw_vehicles(self, now: datetime) -> None:
        table = self.query_one("#vehicles", DataTable)
        rows = self.state.vehicle_rows(
            now=now, flt=self.vehicle_filter, sort=self.sort, reverse=self.sort_reverse
        )
        arrow = "v" if self.sort_reverse else "^"
        table.border_title = (
            f"Vehicles {len(rows)}/{len(self.state.vehicles)}  sort {self.sort.value} {arrow}"
        )
        if "vehicles" in self.state.unavailable:
            table.border_title = "Vehicles: not visible to this token"
        self._fill(
            table,
            VEHICLE_COLUMNS,
            [
                (
                    r.id,
                    {
                        "name": Text(
                            ("! " if r.alert else "") + r.name, style="bold" if r.alert else ""
                        ),
                        "kind": r.kind,
                        "status": Text(r.status, style=STATUS_STYLE.get(r.status, "")),
                        "battery": Text(r.battery, style=BATTERY_STYLE[r.battery_level]),
                        "heartbeat": r.heartbeat,
                        "mission": r.mission,
                        "zone": r.zone,
                    },
                )
                for r in rows
            ],
        )

    def _draw_missions(self, now: datetime) -> None:
        table = self.query_one("#missions", DataTable)
        rows = self.state.mission_rows(now=now)
        table.border_title = f"Missions {len(rows)} open"
        if "missions" in self.state.unavailable:
            table.border_title = "Missions: not visible to this token"
        cells = []
        for r in rows:
            flag = "DECIDE" if r.decision else "LATE" if r.late else ""
            style = "bold red" if r.decision else "yellow" if r.late else ""
            cells.append(
                (
                    r.id,
                    {
                        "flag": Text(flag, style=style),
                        "id": r.short_id,
                        "priority": r.priority,
                        "status": r.status,
                        "vehicle": r.vehicle,
                        "waiting": r.waiting,
                    },
                )
            )
        self._fill(table, MISSION_COLUMNS, cells)

    def _draw_alerts(self, now: datetime) -> None:
        table = self.query_one("#alerts", DataTable)
        rows = self.state.alert_rows(now=now)
        new = sum(1 for r in rows if r.new)
        table.border_title = f"Alerts {len(rows)}" + (f"  {new} NEW" if new else "")
        # Narrow (80x24): the kind in a word and a mission's bare id, so who it is about
        # still shows whole (the details pane has the full message).
        short = self.size.width < NARROW_WIDTH
        cells = []
        for r in rows:
            kind = SHORT_ALERT_KINDS.get(r.kind, r.kind) if short else r.kind
            subject = r.subject.removeprefix("mission ") if short else r.subject
            flag = "ack" if r.acknowledged else "NEW" if r.new else "!"
            style = (
                "dim"
                if r.acknowledged
                else "bold reverse red"
                if r.new and r.severity == "critical"
                else "bold red"
                if r.severity == "critical"
                else "yellow"
            )
            cells.append(
                (
                    r.id,
                    {
                        "flag": Text(flag, style=style),
                        "kind": Text(kind.replace("_", " "), style=style),
                        "subject": subject,
                        "age": r.age,
                    },
                )
            )
        self._fill(table, ALERT_COLUMNS, cells)

    def offered_actions(self) -> list[Action]:
        """The actions the token's role allows for what is selected."""
        perms = self.state.permissions
        if self.selected is None:
            return []
        kind, _ = self.selected
        if kind == "vehicle":
            return allowed_actions(perms, VEHICLE_ACTIONS)
        if kind == "mission":
            return allowed_actions(perms, MISSION_ACTIONS)
        return allowed_actions(perms, (Action.ACKNOWLEDGE,))

    def _draw_details(self) -> None:
        pane = self.query_one("#details", Static)
        if self.selected is None:
            pane.update("Select a row (enter or click) for its details.  ? for keys")
            return
        kind, key = self.selected
        if kind == "vehicle":
            lines = self._vehicle_details(key)
        elif kind == "mission":
            lines = self._mission_details(key)
        else:
            lines = self._alert_details(key)
        lines.append(self._actions_line())
        lines += self._recent_lines(kind, key)
        pane.update(Text("\n".join(lines)))

    def _vehicle_details(self, key: str) -> list[str]:
        """The details pane's lines for a vehicle: name, status, mission, place, errors."""
        v = self.state.vehicles.get(key, {})
        battery = v.get("battery")
        lat, lon = v.get("lat"), v.get("lon")
        mission = v.get("mission_id") or self.state.mission_of(key)
        online = "online" if v.get("online") else "offline"
        lines = [
            f"{v.get('name', key[:8])}  ({v.get('kind', '?')}, {online})",
            f"status {self.state.display_status(v)}  battery "
            + (f"{battery:.0f}%" if battery is not None else "unknown"),
            f"mission {mission or '-'}",
            f"zone {self.state.zone_of(v) or '-'}  at "
            + (f"{lat:.6f},{lon:.6f}" if lat is not None and lon is not None else "unknown"),
        ]
        errors = v.get("errors") or []
        lines += [
            f"error {e.get('level')}: {e.get('type')} {e.get('description', '')}"
            for e in errors[:3]
        ]
        return lines

    def _mission_details(self, key: str) -> list[str]:
        """The details pane's lines for a mission (and whether it waits for a decision)."""
        m = self.state.missions.get(key, {})
        lines = [
            f"mission {key}",
            f"{m.get('status', 'closed')}  priority {m.get('priority', '-')}",
            f"vehicle {m.get('vehicle_id') or '-'}",
            f"created {str(m.get('created_at', '-'))[:19]}",
        ]
        if key in self.state.decision_missions():
            lines.append("waits for an operator decision (d: resolve)")
        return lines

    def _alert_details(self, key: str) -> list[str]:
        """The details pane's lines for an alert: kind, message, raised and acknowledged."""
        a = self.state.alerts.get(key, {})
        return [
            f"{a.get('severity', '')} {a.get('kind', '')}",
            str(a.get("message", "")),
            f"raised {str(a.get('raised_at', '-'))[:19]}",
            f"acknowledged by {a.get('acknowledged_by')}"
            if a.get("acknowledged_at")
            else "not acknowledged",
        ]

    def _actions_line(self) -> str:
        """``actions: p pause  r resume ...``: the offered actions with their keys."""
        offered = self.offered_actions()
        return "actions: " + (
            "  ".join(f"{ACTION_KEYS[a]} {a.value}" for a in offered)
            if offered
            else "none for this role"
        )

    def _recent_lines(self, kind: str, key: str) -> list[str]:
        """The selection's last few events, newest first (an alert: its subject's)."""
        subject = key
        if kind == "alert":
            subject = str(self.state.alerts.get(key, {}).get("subject_id", key))
        recent = self.state.recent_events(subject)[-8:]
        if not recent:
            return []
        return ["recent:"] + [
            f" {e.at.astimezone().strftime('%H:%M:%S')} {e.text}" for e in reversed(recent)
        ]

    def _map_fits(self) -> bool:
        width, height = self.size
        return self.map_wanted and width >= MAP_MIN_SIZE[0] and height >= MAP_MIN_SIZE[1]

    def _draw_map(self) -> None:
        panel = self.query_one("#map", Static)
        shown = self._map_fits() and self.layout_doc is not None
        panel.set_class(shown, "shown")
        if not shown or self.layout_doc is None:
            return
        doc = self.layout_doc
        cols = max(10, panel.size.width - 2)
        rows = max(4, panel.size.height - 2)
        marks = []
        selected = self.selected[1] if self.selected and self.selected[0] == "vehicle" else None
        for vid, v in self.state.vehicles.items():
            if v.get("lat") is None or v.get("lon") is None:
                continue
            char = (
                "@"
                if vid == selected
                else "x"
                if not v.get("online")
                else "R"
                if v.get("kind") == "robot"
                else "D"
            )
            marks.append((float(v["lat"]), float(v["lon"]), char))
        lines = draw_map(
            cols, rows, doc.get("nodes", []), doc.get("edges", []), marks, doc.get("bounds")
        )
        panel.update(Text("\n".join(lines)))
        panel.border_title = f"Map {doc.get('name', '')}  R robot D driver x offline @ selected"

    # Selection ----------------------------------------------------------------------------

    @on(DataTable.RowHighlighted)
    @on(DataTable.RowSelected)
    def _row(self, event: DataTable.RowHighlighted | DataTable.RowSelected) -> None:
        kind = {"vehicles": "vehicle", "missions": "mission", "alerts": "alert"}.get(
            event.data_table.id or ""
        )
        if kind is None or event.row_key.value is None:
            return
        if not event.data_table.has_focus and isinstance(event, DataTable.RowHighlighted):
            return
        self.selected = (kind, str(event.row_key.value))
        if kind == "alert":
            self.state.new_alerts.discard(self.selected[1])
        self._draw_details()
        self._draw_map()
        self.refresh_bindings()

    @on(DataTable.HeaderSelected, "#vehicles")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        try:
            wanted = SortKey(str(event.column_key.value))
        except ValueError:
            return
        if wanted == self.sort:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort, self.sort_reverse = wanted, False
        self.redraw()

    # Actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Actions the token's role lacks are not offered (hidden from the footer, keys
        do nothing); ``None`` greys out an action that needs another selection."""
        needs: dict[str, tuple[Action, str]] = {
            "vehicle": (Action.PAUSE, "vehicle"),
            "cancel_mission": (Action.CANCEL_MISSION, "mission"),
            "resolve_mission": (Action.RESOLVE_MISSION, "mission"),
            "acknowledge": (Action.ACKNOWLEDGE, "alert"),
        }
        if action not in needs:
            return True
        act, kind = needs[action]
        if not allowed_actions(self.state.permissions, (act,)):
            return False
        return True if self.selected is not None and self.selected[0] == kind else None

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.vehicle_filter = VehicleFilter()
        self.query_one("#vehicles", DataTable).focus()
        self.redraw()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.vehicle_filter = VehicleFilter.parse(event.value)
        self.redraw()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#filter", Input).remove_class("shown")
        self.query_one("#vehicles", DataTable).focus()

    def set_filter(self, query: str) -> None:
        """Filter the vehicles table as if typed in the filter bar."""
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.value = query
        self.vehicle_filter = VehicleFilter.parse(query)
        self.redraw()

    def action_sort(self) -> None:
        i = SORT_CYCLE.index(self.sort)
        self.sort = SORT_CYCLE[(i + 1) % len(SORT_CYCLE)]
        self.redraw()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.redraw()

    def action_toggle_map(self) -> None:
        self.map_wanted = not self.map_wanted
        self.redraw()

    def _say(self, text: str) -> None:
        self.message = text
        self.notify(text, timeout=4)
        self.redraw()

    async def _confirmed(self, question: str) -> bool:
        answer = await self.push_screen_wait(ConfirmScreen(question))
        return bool(answer)

    async def _do(self, what: str, call: Any) -> None:
        try:
            await call
        except ApiProblem as exc:
            self._say(f"{what} refused: {exc.message}")
            return
        except Exception as exc:  # the daemon went away mid-request
            self._say(f"{what} failed: {exc!r}")
            return
        self._say(f"{what}: done")

    def _selected(self, kind: str) -> str | None:
        if self.selected is None or self.selected[0] != kind:
            return None
        return self.selected[1]

    def action_vehicle(self, command: str) -> None:
        vid = self._selected("vehicle")
        if vid is None or not allowed_actions(self.state.permissions, (Action(command),)):
            return
        name = self.state.vehicles.get(vid, {}).get("name", vid[:8])
        self.run_worker(self._vehicle_command(vid, str(name), command), group="actions")

    async def _vehicle_command(self, vid: str, name: str, command: str) -> None:
        if await self._confirmed(f"{command.capitalize()} vehicle {name}?"):
            await self._do(f"{command} {name}", self.client.vehicle_command(vid, command))

    def action_cancel_mission(self) -> None:
        mid = self._selected("mission")
        if mid is None or not allowed_actions(self.state.permissions, (Action.CANCEL_MISSION,)):
            return
        self.run_worker(self._cancel(mid), group="actions")

    async def _cancel(self, mid: str) -> None:
        if await self._confirmed(f"Cancel mission {mid[:8]}?"):
            await self._do(
                f"cancel {mid[:8]}", self.client.cancel_mission(mid, "cancelled from fleetd status")
            )

    def action_resolve_mission(self) -> None:
        mid = self._selected("mission")
        if mid is None or not allowed_actions(self.state.permissions, (Action.RESOLVE_MISSION,)):
            return
        self.run_worker(self._resolve(mid), group="actions")

    async def _resolve(self, mid: str) -> None:
        choice = await self.push_screen_wait(
            ChoiceScreen(f"Resolve mission {mid[:8]}: what happened?", RESOLVE_CHOICES)
        )
        if choice and await self._confirmed(f"Resolve mission {mid[:8]} as {choice!r}?"):
            await self._do(f"resolve {mid[:8]}", self.client.resolve_mission(mid, choice))

    def action_acknowledge(self) -> None:
        aid = self._selected("alert")
        if aid is None or not allowed_actions(self.state.permissions, (Action.ACKNOWLEDGE,)):
            return
        self.run_worker(self._acknowledge(aid), group="actions")

    async def _acknowledge(self, aid: str) -> None:
        a = self.state.alerts.get(aid, {})
        if await self._confirmed(f"Acknowledge alert: {a.get('message', aid[:8])}?"):
            await self._do("acknowledge", self.client.acknowledge_alert(aid))
