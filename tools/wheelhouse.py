"""Fill a folder with every wheel Talking Head needs on a target machine, for studios without internet:

    .venv/bin/python tools/wheelhouse.py --platform windows --out //server/wheels/talking_head [--cuda]

Run it on any machine that can reach PyPI; then point *Preferences > Talking Head > Wheel Folder*
at the folder and press Install Dependencies on the offline machines (pip --no-index --find-links).
`--print` shows the pip command without running it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.dependencies import REQUIREMENTS, TORCH_INDEXES  # noqa: E402

# pip --platform tags a wheel for Blender's Python 3.11 on each target may carry
PLATFORMS = {
    "linux": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"],
    "windows": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64", "macosx_14_0_arm64"],
}
# the numpy Blender 4.2 to 5.x brings; pinned so the folder's numpy matches Blender's own
BLENDER_NUMPY = "numpy==1.26.4"


def download_command(platform: str, out: str, cuda: bool, python: str = sys.executable) -> list[str]:
    """The pip download command for one target platform."""
    if platform not in PLATFORMS:
        raise SystemExit(f"wheelhouse: --platform must be one of {', '.join(PLATFORMS)}, not '{platform}'")
    if cuda and platform == "macos-arm64":
        raise SystemExit("wheelhouse: there is no CUDA build of torch for macOS; leave out --cuda (it uses MPS)")
    command = [python, "-m", "pip", "download", "--only-binary=:all:", "--python-version", "3.11",
               "--implementation", "cp", "--dest", out, "--disable-pip-version-check"]
    for tag in PLATFORMS[platform]:
        command += ["--platform", tag]
    if platform != "macos-arm64":  # PyPI's Linux/Windows torch is the CUDA one; the CPU one has its own index
        command += ["--extra-index-url", TORCH_INDEXES["cuda" if cuda else "cpu"]]
    return command + [*REQUIREMENTS, BLENDER_NUMPY]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", required=True, choices=sorted(PLATFORMS), help="the machines to install on")
    parser.add_argument("--out", required=True, help="the wheel folder to fill (created)")
    parser.add_argument("--cuda", action="store_true", help="the NVIDIA GPU build of torch (default: the CPU build)")
    parser.add_argument("--print", action="store_true", help="print the pip command instead of running it")
    args = parser.parse_args(argv)
    command = download_command(args.platform, args.out, args.cuda)
    if args.print:
        print(" ".join(command))
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command)
    if result.returncode != 0:
        print(f"wheelhouse: pip download failed (exit {result.returncode}); see its messages above", file=sys.stderr)
        return 1
    count = len(list(Path(args.out).glob("*.whl")))
    print(f"wheelhouse: {count} wheels in {args.out} for {args.platform}; choose this folder as the Wheel Folder in "
          "Talking Head's preferences", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
