"""The ``fleetd`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed ``argparse.Namespace`` and returning an exit code.
Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dispatcher.logs import configure_logging
from dispatcher.storable_text import UNSTORABLE_MESSAGE, unstorable

#: Subcommand modules, in the order ``fleetd --help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "dispatcher.cli.run",
    "dispatcher.cli.migrate",
    "dispatcher.cli.status",
    "dispatcher.cli.token",
    "dispatcher.cli.mission",
    "dispatcher.cli.audit",
    "dispatcher.cli.layout",
    "dispatcher.cli.plan",
    "sim.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetd",
        description="Dispatch and fleet control for wheelchair transport robots and drivers.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: $FLEETD_CONFIG, else built-in defaults)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, value in sorted(vars(args).items()):
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and unstorable(t) for t in texts):
            parser.error(f"argument {name}: {UNSTORABLE_MESSAGE}")  # exits with status 2
    # Until a subcommand configures logging itself (run, sim), logs are warnings on stderr:
    # stdout carries the command's output (JSON, tokens) and must stay clean.
    configure_logging("warning", "console")
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
