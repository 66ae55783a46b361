# Evaluate RASS + Mask2Former on RealLQ, the authors' real low-quality set with ADE20K labels,
# in the layout of their release (Detectron2's ADE20K layout; they run it with
# DETECTRON2_DATASETS=/path/to/RealLQ):
#   data/RealLQ/ADEChallengeData2016/images/validation/*.jpg
#   data/RealLQ/ADEChallengeData2016/annotations_detectron2/validation/*.png  (0..149, 255 ignore)
#   python tools/test.py configs/rass/rass_mask2former_released_real_lq.py CHECKPOINT
_base_ = ['./rass_mask2former_released_ade20k_val.py']
val_dataloader = dict(dataset=dict(data_root='data/RealLQ/ADEChallengeData2016'))
test_dataloader = val_dataloader
