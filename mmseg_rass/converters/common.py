"""Loading reference checkpoints safely and mapping their keys by explicit rules."""
import os.path as osp
import pickle
import re
from collections import Counter

import torch


def load_reference_checkpoint(path):
    """Load a checkpoint written by a reference implementation (``torch.save``).

    Read with ``weights_only=True`` (tensors and plain containers only) unless the user opted
    in to full unpickling (``--trust-checkpoint`` / ``MMSEG_RASS_TRUST_CHECKPOINTS=1``, see
    :func:`mmseg_rass.compat.trust_checkpoints`).

    Args:
        path (str): The file (``.pth`` / ``.pkl``).

    Returns:
        object: What the file holds (on the CPU).
    """
    from ..compat import TRUST_CHECKPOINT_FLAG, TRUST_CHECKPOINTS_ENV, trust_checkpoints
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} not found')
    trusted = trust_checkpoints()
    try:
        return torch.load(path, map_location='cpu', weights_only=not trusted)
    except (RuntimeError, EOFError) as err:  # truncated or not a torch file
        raise ValueError(f'cannot read checkpoint {path} ({err}): is it complete and written '
                         'by torch.save?') from err
    except pickle.UnpicklingError as err:  # what weights_only=True refuses
        if trusted:
            raise
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = next((line for line in lines if 'Unsupported global' in line), lines[0])
        raise ValueError(f'{path} cannot be read with weights_only=True ({reason}); it holds '
                         f'more than tensors and plain containers. If you trust the file, pass '
                         f'{TRUST_CHECKPOINT_FLAG} (or set {TRUST_CHECKPOINTS_ENV}=1; full '
                         'unpickling runs code from the file)') from err


class KeyMapper:
    """Maps every key of a source state dict by the first matching rule, or fails.

    Each rule is ``(regex, target)``: ``target`` is a replacement template (``\\1``) or a
    callable ``match -> str``; drop rules are ``(regex, reason)``. A key that matches no rule
    is an error, so that nothing is silently lost.

    Args:
        rules (list[tuple]): Map rules, tried in order.
        drops (list[tuple[str, str]]): Drop rules (regex, why the tensors are not needed).
        source (str): Name of the source, for errors.
    """

    def __init__(self, rules, drops, source):
        self.rules = [(re.compile(p), t) for p, t in rules]
        self.drops = [(re.compile(p), why) for p, why in drops]
        self.source = source

    def __call__(self, state):
        """Map ``state``.

        Returns:
            tuple[dict, Counter]: The mapped state dict and the number of dropped tensors per
            drop reason.
        """
        out, dropped, unknown = {}, Counter(), []
        for key, value in state.items():
            for pattern, why in self.drops:
                if pattern.search(key):
                    dropped[why] += 1
                    break
            else:
                for pattern, target in self.rules:
                    match = pattern.fullmatch(key)
                    if match:
                        new = target(match) if callable(target) else match.expand(target)
                        if new in out:
                            raise ValueError(f'{self.source}: {key} maps to {new}, which '
                                             'another key already filled')
                        out[new] = value
                        break
                else:
                    unknown.append(key)
        if unknown:
            raise ValueError(f'{self.source}: {len(unknown)} tensors match no conversion rule '
                             f'(first: {", ".join(sorted(unknown)[:5])}): is this the expected '
                             'checkpoint?')
        return out, dropped
