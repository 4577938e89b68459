"""Prepare real recorded speech with phone times, in one command, outside the repository.

    .venv/bin/python tools/real_speech.py --out /work/data/real_speech [--limit N]

Source: Debian's Asterisk core prompts (one US English speaker, Allison; 16 kHz G.722; CC-BY-SA-3.0),
`apt-get install asterisk-core-sounds-en-g722 asterisk-core-sounds-en ffmpeg`: the first holds the
audio, the second the transcripts (core-sounds-en.txt.gz), ffmpeg decodes G.722. Each prompt whose
transcript is plain words becomes `OUT/asterisk/<prompt>.wav` (16 kHz mono) with its forced
alignment `<prompt>.phone.json` (pocketsphinx, the format of ../shared/audio/librivox), so
`python -m core evaluate --audio-only OUT/asterisk` reads it as it reads the shared clips. This
speaker is not among ../shared/audio's, so it can tune what those clips then measure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ASTERISK_AUDIO = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
INSTALL_HINT = "apt-get install asterisk-core-sounds-en-g722 asterisk-core-sounds-en ffmpeg"
DIGITS = "zero one two three four five six seven eight nine".split()


def spoken(transcript: str) -> str | None:
    """A prompt's transcript as dictionary words (digits spelled out, '#' as 'pound'); None for
    prompts that are not speech ('[beep tone]') or that hold other symbols."""
    if "[" in transcript or "<" in transcript:
        return None
    text = re.sub(r"\b(\d)\b", lambda m: f" {DIGITS[int(m.group(1))]} ", transcript.replace("#", " pound "))
    if re.search(r"\d|[*@%$&+=/]", text):
        return None
    words = re.findall(r"[a-z']+", text.lower().replace("-", " "))
    return " ".join(words) or None


def read_prompts(path: Path = ASTERISK_TRANSCRIPTS) -> dict[str, str]:
    """{prompt name: transcript} from core-sounds-en.txt.gz's 'name: words' lines."""
    prompts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            name, sep, words = line.partition(":")
            if sep and not line.startswith(";") and "/" not in name and name.strip():
                prompts[name.strip()] = words.strip()
    return prompts


def alignment_json(phones: list[tuple[str, float, float]], transcript: str) -> dict:
    """Phone times in pocketsphinx's JSON layout (one pseudo-word holding every phone), as
    core.evaluate.read_phone_alignment reads it."""
    entries = [{"b": round(start, 3), "d": round(end - start, 3), "p": 1.0, "t": phone} for phone, start, end in phones]
    duration = round(phones[-1][2], 3) if phones else 0.0
    return {"b": 0.0, "d": duration, "t": transcript, "w": [{"b": 0.0, "d": duration, "t": transcript, "w": entries}]}


def decode(source: Path, target: Path) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-ac", "1", "-ar", "16000", str(target)],
                   check=True)


def prepare_asterisk(out: Path, limit: int | None = None, log=print) -> tuple[int, int]:
    """Decode and align the Asterisk prompts into out/asterisk; returns (written, skipped)."""
    from core.align import align_phones
    from core.audio import load_audio
    from core.errors import TalkingHeadError

    folder = out / "asterisk"
    folder.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    prompts = sorted(read_prompts().items())
    for name, transcript in prompts[:limit] if limit else prompts:
        words = spoken(transcript)
        source = ASTERISK_AUDIO / f"{name}.g722"
        wav, alignment = folder / f"{name}.wav", folder / f"{name}.phone.json"
        if words is None or not source.is_file():
            skipped += 1
            continue
        if alignment.is_file():  # done by an earlier run
            written += 1
            continue
        partial = folder / f".{name}.part.wav"
        try:
            decode(source, partial)
            phones = align_phones(load_audio(str(partial)), words)
        except (subprocess.CalledProcessError, TalkingHeadError, ValueError) as exc:
            log(f"skipped {name}: {exc}")
            partial.unlink(missing_ok=True)
            skipped += 1
            continue
        os.replace(partial, wav)
        alignment.write_text(json.dumps(alignment_json(phones, words)), encoding="utf-8")
        written += 1
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (outside the repository; created)")
    parser.add_argument("--limit", type=int, default=None, help="prepare only the first N prompts (alphabetical)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in (ASTERISK_AUDIO, ASTERISK_TRANSCRIPTS) if not p.exists()]
    if missing or shutil.which("ffmpeg") is None:
        print(f"error: the Asterisk prompts or ffmpeg are not installed ({', '.join(missing) or 'ffmpeg'}); "
              f"install them with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    if REPO in out.parents or out == REPO:
        print("error: --out is inside the repository; real speech data stays outside it (e.g. ../data/real_speech)",
              file=sys.stderr)
        return 2
    written, skipped = prepare_asterisk(out, args.limit, log=lambda m: print(m, file=sys.stderr))
    print(f"wrote {written} aligned prompts to {out / 'asterisk'} ({skipped} skipped: not speech, or not alignable)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
