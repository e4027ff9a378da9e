"""The ``rusty-telemetry`` command (also ``python -m rt``)."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rusty-telemetry",
        description="Record and analyse sim-racing UDP telemetry (Assetto Corsa, Project CARS).",
    )
    parser.add_argument("--version", action="version", version=f"rusty-telemetry {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    layouts = sub.add_parser("layouts", help="print the declared packet layouts as Markdown tables")
    layouts.add_argument("kind", nargs="*", help="packet kinds to print (default: all)")
    return parser


def _cmd_layouts(args: argparse.Namespace) -> int:
    from .protocols import default_protocols
    from .protocols.layout import markdown_table

    protos = default_protocols()
    names = args.kind or [k.name for k in protos.kinds]
    unknown = [n for n in names if n not in protos.kind_id]
    if unknown:
        print(f"unknown packet kind(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    for name in names:
        layout = protos[name]
        print(markdown_table(layout))
        if layout.doc:
            print(f"\n{layout.doc}")
        print()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "layouts":
        return _cmd_layouts(args)
    parser.print_help()
    return 0
