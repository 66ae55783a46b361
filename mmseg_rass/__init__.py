"""mmseg_rass: semantic segmentation of low-quality images as an mmsegmentation plug-in.

Importing the package applies :mod:`mmseg_rass.compat` and registers every component into
mmseg's registries (``custom_imports = dict(imports=['mmseg_rass'])`` in a config).
"""
from . import compat

compat.apply()

from . import datasets, evaluation, hooks, models, transforms  # noqa: E402,F401

__version__ = '0.1.0'
