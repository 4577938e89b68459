"""The motion stage after the decoder: per-frame vertex offsets shaped by what was said.

`phone_layer` takes a model's prediction and the clip's timed phones (core.speech) and makes the
lips do what the phones require: seal at every /p b m/, stay apart at every other phone, open by
the vowel, and come back to the template in pauses; where no phones are trusted it falls back to
the model's phonetic head for the seal. It works on any model's prediction.

May import: numpy, scipy, core.lips, core.phones, core.corpus.articulation (the viseme targets),
core.models.base (MotionPrediction), core.speech (SpeechTiming). Never bpy.
"""
