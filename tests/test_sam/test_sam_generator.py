"""The real segment_anything generator is wired correctly (tiny image encoder, random weights)."""
import numpy as np
import pytest
import torch

from mmseg_rass.sam import build_sam_mask_generator, select_largest_masks

SAM_RECORD_KEYS = {'segmentation', 'area', 'bbox', 'predicted_iou', 'point_coords',
                   'stability_score', 'crop_box'}


def test_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='sam_vit_b_01ec64.pth'):
        build_sam_mask_generator('vit_b', str(tmp_path / 'none.pth'))
    with pytest.raises(ValueError, match='unknown SAM model type'):
        build_sam_mask_generator('vit_x', str(tmp_path / 'none.pth'))


def test_real_generator_with_tiny_encoder(tmp_path, monkeypatch):
    import segment_anything
    from segment_anything.build_sam import _build_sam

    def tiny_sam(checkpoint=None):
        torch.manual_seed(0)
        return _build_sam(encoder_embed_dim=16, encoder_depth=1, encoder_num_heads=1,
                          encoder_global_attn_indexes=[], checkpoint=None)

    monkeypatch.setitem(segment_anything.sam_model_registry, 'vit_b', tiny_sam)
    ckpt = tmp_path / 'sam.pth'
    torch.save(tiny_sam().state_dict(), ckpt)  # read through the plug-in's safe loader
    gen = build_sam_mask_generator('vit_b', str(ckpt), points_per_side=2, pred_iou_thresh=-1e9,
                                   stability_score_thresh=-1e9, box_nms_thresh=1.0)
    assert isinstance(gen, segment_anything.SamAutomaticMaskGenerator)
    img = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    records = gen.generate(img)
    assert records  # thresholds off: every point prompt gives a mask
    for r in records:
        assert SAM_RECORD_KEYS <= set(r)
    masks, valid = select_largest_masks(records, 16, (24, 40))
    assert masks.shape == (16, 24, 40) and valid.sum() == min(len(records), 16)


def test_bad_sam_checkpoint_is_one_error_naming_it(tmp_path, monkeypatch):
    import segment_anything
    from segment_anything.build_sam import _build_sam

    from mmseg_rass.errors import CheckpointReadError, InputFileError
    monkeypatch.setitem(segment_anything.sam_model_registry, 'vit_b', lambda checkpoint=None:
                        _build_sam(encoder_embed_dim=16, encoder_depth=1, encoder_num_heads=1,
                                   encoder_global_attn_indexes=[], checkpoint=None))
    truncated = tmp_path / 'truncated.pth'
    torch.save({'w': torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(CheckpointReadError, match=f'cannot read checkpoint {truncated}: it is '
                       'damaged'):
        build_sam_mask_generator('vit_b', str(truncated))
    other = tmp_path / 'other.pth'
    torch.save({'decode_head.conv_seg.weight': torch.zeros(2)}, other)
    with pytest.raises(InputFileError, match=f'SAM checkpoint {other} does not fit SAM vit_b '
                       r'\(Error\(s\) in loading state_dict.*pass the vit_b checkpoint '
                       'sam_vit_b_01ec64.pth'):
        build_sam_mask_generator('vit_b', str(other))
