"""The ``flinq`` command (also ``python -m flinq``).

Each subcommand lives in its own module, listed in SUBCOMMANDS, which
provides ``register(subparsers)``: it adds its parser and sets ``run`` (a
callable taking the parsed namespace and returning the exit status) as that
parser's default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

#: Modules that register a subcommand, in help order.
SUBCOMMANDS = ("flinq.admin", "flinq.bench.cli")


class CommandError(Exception):
    """A usage problem found after parsing (exit status 2, one-line message)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (try '{self.prog} --help')\n")


def build_parser() -> ArgumentParser:
    """The top-level parser with every subcommand registered."""
    from flinq import __version__

    parser = ArgumentParser(prog="flinq", description="flinq: fast queues for Python.")
    parser.add_argument("--version", action="version", version=f"flinq {__version__}")
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the flinq command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(arguments)
    args.argv = arguments
    try:
        status: int = args.run(args)
    except CommandError as exc:
        prog = getattr(args, "prog", parser.prog)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
