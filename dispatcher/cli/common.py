"""Pieces every subcommand shares: loading settings with the documented exit status."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dispatcher.config import CONFIG_ENV_VAR, ConfigError, Settings, load_settings


class ConfigExit(SystemExit):
    """Raised after a configuration error has been printed; exit status 2."""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Load settings for a subcommand; on error print every bad key and exit with status 2."""
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"fleetd: {exc}", file=sys.stderr)
        raise ConfigExit(2) from exc


def config_dir_from_args(args: argparse.Namespace) -> Path | None:
    """The directory of the configuration file in use (relative layout paths start there),
    or None when settings come from defaults and the environment only."""
    path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV_VAR) or None
    return Path(path).resolve().parent if path else None
