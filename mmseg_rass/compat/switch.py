"""Reading a behaviour change's switch (an environment variable)."""
import os

OFF_VALUES = ('0', 'off', 'false', 'no')


def switched_on(env):
    """Whether the change switched by ``env`` is on: it is, unless ``env`` is 0/off/false/no."""
    return os.environ.get(env, '').strip().lower() not in OFF_VALUES
