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


@TRANSFORMS.register_module()
class LoadHQImage(LoadImage):
    """Load the HQ image of a paired super-resolution sample (``results['hq_path']``, set by
    ``RealISRDataset``) into ``results['hq_img']`` and check its size against the LQ image.

    A sample without ``hq_path`` (a photo given to mmseg's inferencer, which reuses the test
    dataloader's pipeline) passes unchanged: no HQ image exists, and what needs one (a
    full-reference metric) fails naming it.

    Args:
        scale (int): The HQ image must be exactly ``scale`` × the LQ image (``img``).
        **kwargs: As :class:`LoadImage` (the LQ image's loading arguments).
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def transform(self, results):
        if 'hq_path' not in results:
            return results
        hq = super().transform(dict(img_path=results['hq_path']))['img']
        lq_shape = results['img'].shape[:2]
        expected = (self.scale * lq_shape[0], self.scale * lq_shape[1])
        if hq.shape[:2] != expected:
            raise ValueError(f'HQ image {results["hq_path"]} is {hq.shape[:2]}, expected '
                             f'{expected} = {self.scale} x its LQ image {results["img_path"]} '
                             f'{lq_shape}: set the scale of the set (LQ images already at the '
                             'HQ size, as in RealSR V3, need scale=1 or the x4 copies)')
        results['hq_img'] = hq
        return results
