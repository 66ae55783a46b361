from . import (backbones, data_preprocessors, decode_heads, losses, necks, restorers,  # noqa: F401
               segmentors)
