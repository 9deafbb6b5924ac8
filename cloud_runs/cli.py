"""The ``cloud-runs`` command line.

Each subcommand imports what it needs when it runs, so ``cloud-runs --help``
stays fast and never imports Prefect, Docker or Modal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cloud_runs.errors import CloudRunsError


def _forge_serve(args: argparse.Namespace) -> int:
    from cloud_runs.forge.cli import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-runs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    forge = commands.add_parser("forge", help="the local GitHub-compatible server").add_subparsers(
        dest="forge_command", required=True
    )
    serve = forge.add_parser("serve", help="serve a local forge until interrupted")
    serve.add_argument("--root", help="directory for repositories and state (default: a temporary one)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.set_defaults(handler=_forge_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CloudRunsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
