"""Speech as words and phones: what was said, and when.

The first stage of the data path (audio + words and phones -> features -> decoder -> offsets):
a transcript given by the animator, or transcribed from the audio by Whisper tiny.en's decoder,
is force-aligned to the audio into timed words and phones (`SpeechTiming`), which the motion
stage's phone layer (core.motion) turns into seals, openings and rest.

May import: numpy, the standard library, core.errors, core.audio, core.align, core.phones,
core.whisper (for its log-mel and model folder); optional ctranslate2 and tokenizers for
transcription. Never bpy, never the models or the motion stage.
"""

from .timing import SpeechTiming, Word, read_transcript_option, speech_timing

__all__ = ["SpeechTiming", "Word", "read_transcript_option", "speech_timing"]
