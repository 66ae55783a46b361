# The Real-ISR x4 test sets of SegSR's paper (and of StableSR, SeeSR, OSEDiff), as RealISRDataset
# dataloaders. Folders as StableSR publishes them (the copies SeeSR and OSEDiff evaluate on):
#   DIV2K-Val  data/real_isr/DIV2K_V2_val/{lq,gt}/*.png       3000 pairs, LQ 128x128, HQ 512x512
#              (Real-ESRGAN degradation of DIV2K-Val crops)
#   RealSR     data/real_isr/RealSR/{test_LR,test_HR}/*.png  100 pairs (Canon, Nikon), 128 / 512
#   DRealSR    data/real_isr/DRealSR/{test_LR,test_HR}/*.png 93 pairs, 128 / 512
#   RealLQ250  data/real_isr/RealLQ250/*.png                 250 real LQ photos, no HQ image
# Other layouts need only other suffixes: DIV2K's own x4 set is img_suffix='x4.png' (LQ
# 0801x4.png) with hq_suffix='.png' (HQ 0801.png); DRealSR's release is img_suffix='_x4.png',
# hq_suffix='_x1.png'. The HQ image must be exactly 4x its LQ image (LoadHQImage checks).
# OST-Val, the paper's other synthetic set, is made like DIV2K-Val: 512x512 crops of OST300
# degraded to 128x128 (tools/make_lq_set.py --preset realesrgan_x4), then a paired set.
# No labels: these sets are evaluated with RestorationMetric only.
scale = 4
paired_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadHQImage', scale=scale),
    dict(type='PackRestorationInputs'),
]
lq_only_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackRestorationInputs')]
test_pipeline = lq_only_pipeline  # mmseg's inference API on a photo (tools/upscale.py tiles)


def _loader(data_prefix, pipeline, data_root='data/real_isr'):
    return dict(batch_size=1, num_workers=2, persistent_workers=True,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(type='RealISRDataset', data_root=data_root, data_prefix=data_prefix,
                             pipeline=pipeline))


div2k_val = _loader(dict(img_path='DIV2K_V2_val/lq', hq_path='DIV2K_V2_val/gt'), paired_pipeline)
realsr = _loader(dict(img_path='RealSR/test_LR', hq_path='RealSR/test_HR'), paired_pipeline)
drealsr = _loader(dict(img_path='DRealSR/test_LR', hq_path='DRealSR/test_HR'), paired_pipeline)
reallq250 = _loader(dict(img_path='RealLQ250'), lq_only_pipeline)
