"""The Real-ISR quality metrics from pyiqa (IQA-PyTorch), built offline from local weights.

pyiqa downloads every network's weights on first use; here nothing is downloaded. The metrics
read their files from one local folder laid out like torch's hub cache (``$TORCH_HOME/hub``),
which is what pyiqa fills on a machine with internet access::

    TORCH_HOME=/tmp/iqa python -c "import pyiqa; [pyiqa.create_metric(m, device='cpu') for m in
        ('dists', 'niqe', 'musiq', 'maniqa-pipal', 'clipiqa', 'fid')]"
    # then use /tmp/iqa/hub as `iqa_weights_dir`

A missing file fails with one error naming the file and its download address. While a metric
is built, downloads are refused (torch hub, pyiqa, CLIP), timm backbones are built without
their ImageNet weights (pyiqa's metric checkpoint holds them all, loaded strictly) and every
``torch.load`` runs with ``weights_only=True`` unless the user trusts checkpoints
(``MMSEG_RASS_TRUST_CHECKPOINTS=1``).
"""
import contextlib
import os.path as osp

import numpy as np
import torch

from ..compat.checkpoints import load_guarded, torch_load_policy

PYIQA_URL = 'https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/{}'
TORCHVISION_URL = 'https://download.pytorch.org/models/{}'
CLIP_URL = ('https://openaipublic.azureedge.net/clip/models/'
            'afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt')

# name → (pyiqa metric, full reference?, files under the weights folder with their sources).
# The versions the Real-ISR papers report (OSEDiff's test_metrics.py: `musiq`, `maniqa-pipal`,
# `clipiqa`, `niqe`, `dists`, clean-FID with Inception features).
IQA_METRICS = dict(
    DISTS=('dists', True, [('checkpoints/vgg16-397923af.pth',
                            TORCHVISION_URL.format('vgg16-397923af.pth')),
                           ('pyiqa/DISTS_weights-f5e65c96.pth',
                            PYIQA_URL.format('DISTS_weights-f5e65c96.pth'))]),
    NIQE=('niqe', False, [('pyiqa/niqe_modelparameters.mat',
                           PYIQA_URL.format('niqe_modelparameters.mat'))]),
    MUSIQ=('musiq', False, [('pyiqa/musiq_koniq_ckpt-e95806b9.pth',
                             PYIQA_URL.format('musiq_koniq_ckpt-e95806b9.pth'))]),
    MANIQA=('maniqa-pipal', False, [('pyiqa/MANIQA_PIPAL-ae6d356b.pth',
                                     PYIQA_URL.format('MANIQA_PIPAL-ae6d356b.pth'))]),
    CLIPIQA=('clipiqa', False, [('clip/RN50.pt', CLIP_URL)]),
    FID=('fid', True, [('pyiqa/pt_inception-2015-12-05-6726825d.pth',
                        PYIQA_URL.format('pt_inception-2015-12-05-6726825d.pth'))]),
)


class MissingWeightsError(FileNotFoundError):
    """A metric's weights file is not in the local weights folder."""


def missing_files(name, weights_dir):
    """``[(path, url)]`` of the files metric ``name`` needs that ``weights_dir`` lacks."""
    files = IQA_METRICS[name][2]
    if weights_dir is None:
        return [(f'<iqa_weights_dir>/{rel}', url) for rel, url in files]
    return [(osp.join(weights_dir, rel), url) for rel, url in files
            if not osp.isfile(osp.join(weights_dir, rel))]


def _missing_error(name, path, url):
    return MissingWeightsError(
        f'{name} needs the weights file {path}, which is missing: download {url} to that path '
        '(or fill the folder with pyiqa on a machine with internet, see '
        'mmseg_rass/evaluation/iqa.py) and set RestorationMetric(iqa_weights_dir=...)')


@contextlib.contextmanager
def _offline(name, weights_dir):
    """Build pyiqa networks from ``weights_dir`` only: no downloads, timm without its weights."""
    import pyiqa.archs.clip_model as clip_model
    import pyiqa.utils.download_util as download_util
    import timm
    import torch.hub

    def refuse(url, dst, *args, **kwargs):
        raise _missing_error(name, dst, url)

    def local_clip(url, root):
        path = osp.join(root, osp.basename(url))
        if not osp.isfile(path):
            raise _missing_error(name, path, url)
        return path

    def no_pretrained(*args, **kwargs):
        kwargs['pretrained'] = False
        return create_model(*args, **kwargs)

    create_model = timm.create_model
    saved = (torch.hub.get_dir(), torch.hub.download_url_to_file,
             download_util.download_url_to_file, download_util.DEFAULT_CACHE_DIR,
             clip_model._download)
    torch.hub.set_dir(weights_dir)
    torch.hub.download_url_to_file = download_util.download_url_to_file = refuse
    download_util.DEFAULT_CACHE_DIR = osp.join(weights_dir, 'pyiqa')
    clip_model._download = local_clip
    timm.create_model = no_pretrained
    try:
        yield
    finally:
        torch.hub.set_dir(saved[0])
        torch.hub.download_url_to_file, download_util.download_url_to_file = saved[1:3]
        download_util.DEFAULT_CACHE_DIR, clip_model._download = saved[3:]
        timm.create_model = create_model


def build_iqa_network(name, weights_dir):
    """pyiqa's network of metric ``name`` (a key of :data:`IQA_METRICS`), eval mode, CPU.

    Raises:
        MissingWeightsError: a file is not in ``weights_dir`` (the first one is named).
    """
    if name not in IQA_METRICS:
        raise KeyError(f'unknown IQA metric {name!r}: use one of {sorted(IQA_METRICS)}')
    missing = missing_files(name, weights_dir)
    if missing:
        raise _missing_error(name, *missing[0])
    import pyiqa

    def build():
        with _offline(name, osp.abspath(weights_dir)), torch_load_policy():
            return pyiqa.create_metric(IQA_METRICS[name][0], device='cpu').net.eval()

    return load_guarded(osp.join(weights_dir, IQA_METRICS[name][2][-1][0]), build)


def clean_fid_input(img):
    """uint8 RGB (3, H, W) → (1, 3, 299, 299) in [-1, 1], clean-FID's resize (pyiqa's default):
    PIL bicubic per channel on float values, clipped to [0, 255]."""
    from PIL import Image
    channels = [np.asarray(Image.fromarray(c.astype(np.float32), mode='F').resize(
        (299, 299), resample=Image.BICUBIC)).clip(0, 255) for c in img.numpy()]
    return (torch.from_numpy(np.stack(channels))[None] - 128) / 128


class IQAScorer:
    """One pyiqa metric on uint8 RGB images (3, H, W): a score per image, or FID features.

    Args:
        name (str): A key of :data:`IQA_METRICS`.
        weights_dir (str): The local weights folder.
    """

    def __init__(self, name, weights_dir):
        self.name = name
        self.full_reference = IQA_METRICS[name][1]
        self.net = build_iqa_network(name, weights_dir)

    @torch.no_grad()
    def score(self, img, ref=None):
        """The metric of ``img`` (against ``ref`` for full-reference metrics)."""
        x = img.float()[None] / 255.
        if self.full_reference:
            return float(self.net(x, ref.float()[None] / 255.))
        return float(self.net(x))

    @torch.no_grad()
    def features(self, img):
        """FID: the 2048-d Inception pool features (numpy) of one image."""
        return self.net.model(clean_fid_input(img), False, False)[0].reshape(-1).numpy()

    @staticmethod
    def fid(feats, ref_feats):
        """Fréchet distance between two sets of features (N, 2048), as pyiqa computes it."""
        from pyiqa.archs.fid_arch import frechet_distance
        feats, ref_feats = np.stack(feats), np.stack(ref_feats)
        return float(frechet_distance(feats.mean(0), np.cov(feats, rowvar=False),
                                      ref_feats.mean(0), np.cov(ref_feats, rowvar=False)))
