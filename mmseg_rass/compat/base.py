"""What every patch module shares: reading a change's switch, replacing a function once."""
import functools
import os

OFF_VALUES = ('0', 'off', 'false', 'no')


def switched_on(env):
    """Whether the change switched by ``env`` is on: it is, unless ``env`` is 0/off/false/no."""
    return os.environ.get(env, '').strip().lower() not in OFF_VALUES


def patched(function):
    """Mark ``function`` as the plug-in's replacement (so that patching twice is a no-op)."""
    function.is_mmseg_rass_patch = True
    return function


def replace(owner, name):
    """Decorator: ``owner.name`` becomes ``function(original, *args, **kwargs)``, once.

    Idempotent (an attribute already replaced is left alone); the replacement carries the
    original's name and docstring and ``__wrapped__``, and is marked with :func:`patched`.
    """

    def install(function):
        original = getattr(owner, name)
        if getattr(original, 'is_mmseg_rass_patch', False):
            return original

        @patched
        @functools.wraps(original)
        def replacement(*args, **kwargs):
            return function(original, *args, **kwargs)

        setattr(owner, name, replacement)
        return replacement

    return install
