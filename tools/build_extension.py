"""Build the installable extension zip: `.venv/bin/python tools/build_extension.py [--output-dir dist]`.

Runs Blender's own extension builder (the pip `bpy` wheel carries it; `--blender BIN` uses a
Blender binary instead) on the checkout, creating the output folder first, and prints the zip's
path, file count and size. What goes in is set by `[build]` in blender_manifest.toml.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def builder_command(blender: str | None) -> list[str]:
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    try:
        import bpy
    except ImportError:
        raise SystemExit("build_extension: no bpy module here; run it with .venv/bin/python (./setup.sh makes it) "
                         "or pass --blender /path/to/blender") from None
    cli = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    return [sys.executable, str(cli)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(REPO / "dist"), help="where the zip goes (created; default dist/)")
    parser.add_argument("--blender", default=None, help="a Blender binary to build with (default: the pip bpy's builder)")
    args = parser.parse_args(argv)
    output = Path(args.output_dir).resolve()
    output.mkdir(parents=True, exist_ok=True)
    command = builder_command(args.blender)
    validated = subprocess.run([*command, "validate", str(REPO)], capture_output=True, text=True)
    if validated.returncode != 0:
        print(validated.stdout + validated.stderr, file=sys.stderr)
        return 1
    built = subprocess.run([*command, "build", "--source-dir", str(REPO), "--output-dir", str(output)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        print(built.stdout + built.stderr, file=sys.stderr)
        return 1
    archives = sorted(output.glob("talking_head-*.zip"), key=os.path.getmtime)
    if not archives:
        print(f"build_extension: the builder reported success but left no zip in {output}", file=sys.stderr)
        return 1
    archive = archives[-1]
    with zipfile.ZipFile(archive) as handle:
        count = len(handle.namelist())
    print(f"built {archive} ({count} files, {archive.stat().st_size / 2**20:.1f} MiB); install it in Blender with "
          "Edit > Preferences > Get Extensions > Install from Disk", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
