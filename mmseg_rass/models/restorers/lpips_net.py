"""LPIPS network (the ``lpips`` package's architecture) loaded from a local weights file."""
import os.path as osp

import torch


def load_lpips(path, net='vgg'):
    """Build ``lpips.LPIPS(net=net)`` without downloading and load its full state dict.

    Args:
        path (str): A torch file holding the whole ``lpips.LPIPS(net=net).state_dict()``
            (backbone + linear layers), e.g. saved once with
            ``torch.save(lpips.LPIPS(net='vgg').state_dict(), 'lpips_vgg.pth')`` on a machine
            that has the weights.
        net (str): ``'vgg'`` or ``'alex'``.

    Returns:
        lpips.LPIPS: Frozen, in eval mode; call ``net(x, y)`` with images (B, 3, H, W) in
        [-1, 1] to get distances (B, 1, 1, 1).
    """
    import lpips
    if not osp.isfile(str(path)):
        raise FileNotFoundError(f'LPIPS weights {path} not found: `lpips_path` must be a torch '
                                f'file with lpips.LPIPS(net={net!r}).state_dict() (backbone + '
                                'linear layers); omit it to train/evaluate without LPIPS')
    model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    state = torch.load(str(path), map_location='cpu', weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f'{path} is not an lpips.LPIPS(net={net!r}) state dict: {err}') from err
    return model.eval().requires_grad_(False)
