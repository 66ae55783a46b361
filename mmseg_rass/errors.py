"""Errors caused by what the user passed (a file, a config key): tools report them in one line.

Each class also derives from the built-in type callers already catch (``FileNotFoundError``,
``ValueError``, ...). :func:`mmseg_rass.tools_entry.run_cli` ends a tool on any
:class:`UserError` with ``error: <message>`` on stderr and a non-zero exit status, no
traceback. Messages name the file or key and say what to do.
"""
import pickle


class UserError(Exception):
    """Bad input from the user (a file, an option, a config key), not a bug."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint path that does not exist."""


class CheckpointReadError(UserError, RuntimeError):
    """A checkpoint that cannot be read: empty, truncated, damaged or not a torch file."""


class UntrustedCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint holds Python objects that safe (``weights_only=True``) loading refuses."""


class InputNotFoundError(UserError, FileNotFoundError):
    """An input the user named (an image, a folder, a config) that does not exist."""


class InputFileError(UserError, ValueError):
    """An input file refused, damaged or of the wrong kind: an image that cannot be read, a
    checkpoint of another model, a file a converter does not take."""


class ParameterError(UserError, ValueError):
    """A transform or tool parameter out of its range (the message names the key)."""


class ConfigError(UserError, ValueError):
    """A config that does not fit what the tool does: a missing or unusable key, a model of
    another kind (the message names the config and the key)."""
