"""Image loading with a clear error for unreadable files."""
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImage(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file and what to do when it cannot be decoded.

    mmcv's transform fails on a corrupt file with an unrelated ``AttributeError`` on ``None``;
    this one raises ``ValueError`` naming the path. Arguments are those of
    :class:`mmcv.transforms.LoadImageFromFile`.
    """

    def transform(self, results):
        path = results['img_path']
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'image {path} does not exist: check data_root and the '
                                    'dataset\'s data_prefix, or re-generate the data') from e
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        except Exception:
            img = None
        if img is None:
            raise ValueError(f'cannot decode image {path} ({len(img_bytes)} bytes): the file is '
                             'corrupt or not an image; replace it or remove it from the split')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
