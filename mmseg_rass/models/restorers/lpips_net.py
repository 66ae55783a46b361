"""LPIPS (the ``lpips`` package's network) from local weights: nothing is downloaded.

The calibrated linear layers ship inside the ``lpips`` package (``lpips/weights/v0.1/<net>.pth``);
the ImageNet backbone does not (the package asks torchvision to download it). ``load_lpips``
takes the backbone from a local file instead: torchvision's own VGG16 / AlexNet checkpoint
(``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth``, see ``docs/scr.md``), or a whole
``lpips.LPIPS(net=...).state_dict()`` saved on a machine that has the weights.
"""
import os.path as osp

import torch

from ...lora import check_keys

# torchvision checkpoint names, for messages
TORCHVISION_FILES = dict(vgg='vgg16-397923af.pth', alex='alexnet-owt-7be5be79.pth')


def _package_linear_layers(lpips_module, net):
    path = osp.join(osp.dirname(lpips_module.__file__), 'weights', 'v0.1', f'{net}.pth')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: the installed lpips package lacks its '
                                'calibrated linear layers (reinstall lpips==0.1.4)')
    return torch.load(path, map_location='cpu', weights_only=True)


def _backbone_from_torchvision(model, state, path):
    """Copy torchvision ``features.{i}.*`` tensors into the lpips slices (``net.sliceK.{i}.*``)."""
    targets = {}
    for key in model.net.state_dict():
        _, index, param = key.split('.', 2)  # sliceK, i, weight|bias
        targets[f'features.{index}.{param}'] = f'net.{key}'
    features = {k: v for k, v in state.items() if k.startswith('features.')}
    dropped = [k for k in state if not k.startswith(('features.', 'classifier.'))]
    if dropped:
        raise ValueError(f'{path}: unexpected tensors {dropped[:5]} in a torchvision checkpoint')
    check_keys(targets, features, 'the LPIPS backbone', path)
    return {targets[k]: v for k, v in features.items()}


def load_lpips(path, net='vgg'):
    """Build ``lpips.LPIPS(net=net)`` (v0.1) offline: package linear layers + local backbone.

    Args:
        path (str): torchvision's ImageNet checkpoint of the backbone
            (``vgg16-397923af.pth`` for ``'vgg'``, ``alexnet-owt-7be5be79.pth`` for ``'alex'``),
            or a file with a whole ``lpips.LPIPS(net=net).state_dict()``.
        net (str): ``'vgg'`` (OSEDiff's loss) or ``'alex'``.

    Returns:
        lpips.LPIPS: Frozen, in eval mode; ``model(x, y)`` with images (B, 3, H, W) in [-1, 1]
        gives distances (B, 1, 1, 1).
    """
    import lpips
    if net not in TORCHVISION_FILES:
        raise ValueError(f'LPIPS net must be one of {sorted(TORCHVISION_FILES)}, got {net!r}')
    if path is None or not osp.isfile(str(path)):
        raise FileNotFoundError(
            f'LPIPS backbone weights {path} not found: `lpips_path` must be torchvision\'s '
            f'{TORCHVISION_FILES[net]} (https://download.pytorch.org/models/'
            f'{TORCHVISION_FILES[net]}, see docs/scr.md) or a saved lpips.LPIPS(net={net!r}) '
            'state dict')
    model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    state = torch.load(str(path), map_location='cpu', weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds a {type(state).__name__}, not a state dict')
    if any(k.startswith('features.') for k in state):
        full = _backbone_from_torchvision(model, state, str(path))
        linear = _package_linear_layers(lpips, net)  # lin{k}.*, also registered as lins.{k}.*
        full.update(linear)
        full.update({k.replace('lin', 'lins.', 1): v for k, v in linear.items()})
        full.update({k: v for k, v in model.state_dict().items()  # input scaling constants
                     if k.startswith('scaling_layer.')})
    else:
        full = state
    check_keys(model.state_dict(), full, f'lpips.LPIPS(net={net!r})', str(path))
    model.load_state_dict(full)
    return model.eval().requires_grad_(False)
