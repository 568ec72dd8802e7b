"""``fleetd migrate``: create the database if needed and apply pending schema migrations."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dispatcher.cli.common import settings_from_args
from dispatcher.logs import configure_logging
from dispatcher.storage.errors import StorageError
from dispatcher.storage.migrate import apply_migrations


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``migrate`` subcommand."""
    parser = subparsers.add_parser(
        "migrate",
        help="apply pending database migrations",
        description=(
            "Create the configured database if it does not exist and apply pending schema "
            "migrations in order. Safe to run again; several at once wait for each other."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Apply migrations; print what was applied. Exit 1 with one line if that fails."""
    settings = settings_from_args(args)
    # Logs go to stderr and only when they matter: stdout is the list of versions applied.
    configure_logging("warning", "console")
    try:
        db = settings.database
        applied = asyncio.run(apply_migrations(db.owner_dsn, password=db.owner_password))
    except StorageError as exc:
        print(f"fleetd migrate: {exc}", file=sys.stderr)
        return 1
    if not applied:
        print("up to date")
    for version in applied:
        print(f"applied {version}")
    return 0
