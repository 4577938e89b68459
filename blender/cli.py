"""The `talking_head` command line: subcommands shared by `blender -c talking_head` and
`python -m talking_head`."""

from __future__ import annotations

import sys

USAGE = ("usage: talking_head bake [options] | talking_head adapt [options]   "
         "(talking_head bake --help, talking_head adapt --help)")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], list(argv[1:])
    if command == "bake":
        from .bake import main as bake

        return bake(rest)
    if command == "adapt":  # the same arguments as `python -m core adapt`: one implementation
        from ..core.cli import main as core_main

        return core_main(["adapt", *rest])
    print(f"error: unknown command '{command}'. {USAGE}", file=sys.stderr)
    return 2
