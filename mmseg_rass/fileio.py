"""Small file helpers shared by the plug-in's caches: atomic JSON, source-code digests."""
import functools
import hashlib
import json
import os
import os.path as osp


def dump_json_atomic(obj, path, **kwargs):
    """Write ``obj`` as JSON atomically (an interrupted write never leaves a truncated file).

    Args:
        obj: JSON-serialisable object.
        path (str): Destination file.
        **kwargs: ``json.dump`` options; default ``indent=2``.
    """
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, **dict(dict(indent=2), **kwargs))
    os.replace(tmp, path)


@functools.lru_cache(maxsize=None)
def source_digest(subpackage, stems):
    """SHA-256 of the plug-in's source files ``mmseg_rass/<subpackage>/<stem>*.py``.

    A cache keyed by it is recomputed when the code that made it changes.

    Args:
        subpackage (str): Folder under ``mmseg_rass`` (e.g. ``'transforms'``).
        stems (str | tuple[str]): File-name prefixes to include.

    Returns:
        str: Hex digest over the sorted file names and contents.
    """
    folder = osp.join(osp.dirname(osp.abspath(__file__)), subpackage)
    digest = hashlib.sha256()
    for name in sorted(p for p in os.listdir(folder) if p.startswith(stems) and p.endswith('.py')):
        with open(osp.join(folder, name), 'rb') as f:
            digest.update(name.encode() + b'\0' + f.read())
    return digest.hexdigest()
