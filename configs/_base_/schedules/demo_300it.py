# 300 iterations of AdamW with poly decay; one validation and one checkpoint at the end.
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01), clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=300, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=300, max_keep_ckpts=1))
randomness = dict(seed=0)
