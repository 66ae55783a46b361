"""Real-ISR image folders: paired HQ/LQ benchmarks, LQ-only photos, pseudo-labelled HQ images."""
import json
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .utils import check_split_dirs


def read_label_meta(path):
    """``classes`` and ``palette`` of a pseudo-label folder's ``meta.json``
    (``tools/make_pseudo_labels.py``)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'label_meta {path} does not exist: it is the meta.json that '
                                'tools/make_pseudo_labels.py writes next to the label maps')
    with open(path, encoding='utf-8') as f:
        meta = json.load(f)
    if not meta.get('classes') or len(meta.get('palette', [])) != len(meta['classes']):
        raise ValueError(f'label_meta {path} needs `classes` and one `palette` colour per class')
    return dict(classes=tuple(meta['classes']), palette=[list(c) for c in meta['palette']])


@DATASETS.register_module()
class RealISRDataset(BaseSegDataset):
    """A folder of images for super-resolution, with the HQ images and labels it has.

    * paired benchmarks (DIV2K-Val, RealSR, DRealSR): ``img_path`` = the LQ folder,
      ``hq_path`` = the HQ folder; the HQ image of ``<stem><img_suffix>`` is
      ``<stem><hq_suffix>`` (``LoadHQImage`` reads it, ``PackRestorationInputs`` packs it);
    * LQ-only photos (RealLQ250): ``img_path`` only — no-reference metrics only;
    * training on any image folder: ``img_path`` = the HQ images (degraded online),
      ``seg_map_path`` = their pseudo-labels, ``label_meta`` = the labelling model's classes.

    Sets without labels evaluate restoration only (no ``IoUMetric`` in their configs).

    Args:
        img_suffix (str): Suffix of the (LQ) images listed. Default ``'.png'``.
        hq_suffix (str): Suffix of the HQ images (``data_prefix['hq_path']``). Default
            ``'.png'``.
        seg_map_suffix (str): Suffix of the label maps. Default ``'.png'``.
        label_meta (str, optional): ``meta.json`` of a pseudo-label folder: its ``classes`` and
            ``palette`` become the dataset's.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments (``data_root``,
            ``data_prefix`` with ``img_path``, optional ``hq_path`` and ``seg_map_path``, ...).
    """

    def __init__(self, img_suffix='.png', hq_suffix='.png', seg_map_suffix='.png',
                 label_meta=None, metainfo=None, **kwargs):
        self.hq_suffix = hq_suffix
        if label_meta is not None:
            metainfo = dict(metainfo or {}, **read_label_meta(label_meta))
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         metainfo=metainfo, **kwargs)

    def load_data_list(self):
        check_split_dirs(self, 'set data_root/data_prefix to the folders of the set')
        hq_dir = self.data_prefix.get('hq_path')
        if hq_dir and not osp.isdir(hq_dir):
            raise FileNotFoundError(f'{type(self).__name__}: hq_path folder {hq_dir} does not '
                                    f'exist (data_root={self.data_root!r})')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(f'{type(self).__name__}: no *{self.img_suffix} images in '
                                    f'{self.data_prefix.get("img_path")}')
        if hq_dir:
            missing = []
            for info in data_list:
                rel = osp.relpath(info['img_path'], self.data_prefix['img_path'])
                info['hq_path'] = osp.join(hq_dir, rel[:-len(self.img_suffix)] + self.hq_suffix)
                if not osp.isfile(info['hq_path']):
                    missing.append(info['hq_path'])
            if missing:
                raise FileNotFoundError(
                    f'{type(self).__name__}: {len(missing)} of {len(data_list)} images have no '
                    f'HQ image, e.g. {missing[0]} (HQ name = LQ name with {self.img_suffix!r} '
                    f'replaced by hq_suffix={self.hq_suffix!r})')
        return data_list
