from . import backbones, data_preprocessors, losses, necks, restorers, segmentors  # noqa: F401
