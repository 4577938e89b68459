"""Farm baking without a Blender binary: `.venv/bin/python tools/bake.py --blend shot.blend --object Head ...`.

The same arguments and exit codes as `blender -c talking_head bake` (see `--help`); it runs the
checkout through the pip `bpy` module, with no symlink or install step.
"""

from __future__ import annotations

import sys

from checkout_package import import_checkout


def main(argv: list[str] | None = None) -> int:
    import_checkout()
    from talking_head.blender.cli import main as cli_main

    return cli_main(["bake", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
