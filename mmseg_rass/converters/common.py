"""Loading reference checkpoints safely and mapping their keys by explicit rules."""
import re
from collections import Counter


def load_reference_checkpoint(path):
    """Load a checkpoint written by a reference implementation (``torch.save``).

    Read with ``weights_only=True`` (tensors and plain containers only) unless the user opted
    in to full unpickling (``--trust-checkpoint`` / ``MMSEG_RASS_TRUST_CHECKPOINTS=1``, see
    :func:`mmseg_rass.compat.trust_checkpoints`).

    Args:
        path (str): The file (``.pth`` / ``.pkl``).

    Returns:
        object: What the file holds (on the CPU).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is refused by safe loading (the message says how to opt in), or
            it is damaged or not a torch file.
    """
    from ..compat import UntrustedCheckpointError, load_local_checkpoint
    from ..errors import InputFileError
    try:
        return load_local_checkpoint(path, map_location='cpu')
    except (UntrustedCheckpointError, RuntimeError) as err:  # refused, or damaged / not torch
        raise InputFileError(str(err)) from None


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
