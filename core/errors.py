"""Errors meant for the person at the keyboard.

Every message says what is wrong and what to do about it; the Blender layer shows it in the
status bar and the command lines print it as one line, so none of them should need a traceback.
"""


class TalkingHeadError(Exception):
    """Base class: the message is complete and user-facing."""


class AudioError(TalkingHeadError):
    """The audio is missing, unreadable, empty or silent."""


class TopologyError(TalkingHeadError):
    """The mesh is not a FLAME-topology head."""


class ModelError(TalkingHeadError):
    """A model or style cannot be found, loaded or used."""


class ConfigError(TalkingHeadError):
    """A training config file holds a setting that cannot be used."""


class OutputError(TalkingHeadError):
    """The result cannot be written where it was asked to go."""


class Cancelled(TalkingHeadError):
    """The user stopped the job; nothing was written."""
