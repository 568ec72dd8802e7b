"""Pieces every subcommand shares: loading settings with the documented exit status."""

from __future__ import annotations

import argparse
import sys

from dispatcher.config import ConfigError, Settings, load_settings


class ConfigExit(SystemExit):
    """Raised after a configuration error has been printed; exit status 2."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Load settings for a subcommand; on error print every bad key and exit with status 2."""
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"fleetd: {exc}", file=sys.stderr)
        raise ConfigExit(2) from exc
