"""The `talking_head` command line: subcommands shared by `blender -c talking_head` and
`python -m talking_head`."""

from __future__ import annotations

import sys

USAGE = "usage: talking_head bake [options]   (talking_head bake --help for the options)"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], list(argv[1:])
    if command == "bake":
        from .bake import main as bake

        return bake(rest)
    print(f"error: unknown command '{command}'. {USAGE}", file=sys.stderr)
    return 2
