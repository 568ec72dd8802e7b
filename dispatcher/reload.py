"""SIGHUP: read the configuration file again and apply what can change without a restart.

:func:`plan_reload` compares the running settings with freshly loaded ones, key by key
(dotted as in the TOML file), and splits the changed keys into those applied live
(:data:`LIVE_KEYS`) and those that only a restart applies. The settings it returns are the
running ones with the live changes in and every other value left as it runs, so the
daemon never half-applies a change it cannot make (a new database DSN, API port,
facility list, ...). A file that does not load (bad TOML, a wrong value) is refused by
the caller before this runs: :class:`~dispatcher.config.ConfigError`, nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.config import Settings

#: Keys (or whole sections, ending in ".") applied while running:
#: log level and format (structlog is reconfigured), the alert thresholds and check
#: interval (the alert watch takes them on its next round).
LIVE_KEYS: tuple[str, ...] = ("daemon.log_level", "daemon.log_format", "alerts.")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload changes."""

    #: The running settings with the live changes applied (the rest as running).
    settings: Settings
    #: Changed keys applied now.
    applied: tuple[str, ...]
    #: Changed keys that take effect only after a restart (the running value stays).
    needs_restart: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.needs_restart)


def _is_live(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in LIVE_KEYS)


def flatten(settings: Settings) -> dict[str, Any]:
    """Every setting by its dotted key; lists (facilities, vehicles) are one value each.

    Python mode, not JSON: a ``SecretStr`` compares by its secret, so a changed password
    counts as changed (and is named, never shown).
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", settings.model_dump())
    return out


def changed_keys(current: Settings, new: Settings) -> list[str]:
    """The dotted keys whose values differ, sorted."""
    old, fresh = flatten(current), flatten(new)
    return sorted(k for k in old.keys() | fresh.keys() if old.get(k) != fresh.get(k))


def plan_reload(current: Settings, new: Settings) -> ReloadPlan:
    """Which of ``new``'s changes apply live, and the settings to run with afterwards."""
    keys = changed_keys(current, new)
    applied = tuple(k for k in keys if _is_live(k))
    needs_restart = tuple(k for k in keys if not _is_live(k))
    settings = current
    if applied:
        daemon = current.daemon.model_copy(
            update={"log_level": new.daemon.log_level, "log_format": new.daemon.log_format}
        )
        # model_copy skips validation: both values come from validated settings.
        settings = current.model_copy(update={"daemon": daemon, "alerts": new.alerts})
    return ReloadPlan(settings=settings, applied=applied, needs_restart=needs_restart)
