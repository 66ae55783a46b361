"""Prompt sources (empty, class_names, gt, tags), the tag cache and cached text embeddings."""
import copy
import glob
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_rass.models import prompts
from mmseg_rass.models.backbones import RASSBackbone

CLASSES = ['road', 'traffic light', 'car']


def _sample(labels=None, img_path=None, size=32):
    sample = SegDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                         ori_shape=(size, size), img_path=img_path))
    if labels is not None:
        sample.gt_sem_seg = PixelData(data=torch.full((1, size, size), labels, dtype=torch.long))
    return sample


def _tagger(rgb):
    """A stand-in tagger: a tag from the image's mean colour."""
    return ['street', f'tone{rgb.mean():.2f}']


def _other_tagger(rgb):
    return 'another tagger'


TRAIN_SPLIT = dict(data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                   pipeline=[dict(type='LoadImage'), dict(type='Degrade', preset='rass_x1')])
TAGS = dict(type='tags', tagger='test', degradation=None)


@pytest.fixture(scope='module')
def tag_cache(demo_data_root, tmp_path_factory, tool_loader):
    tool = tool_loader('make_prompt_tags')
    path = str(tmp_path_factory.mktemp('tags') / 'tags.json')
    dataset = dict(type='DemoCityscapesDataset', data_root=str(demo_data_root), **TRAIN_SPLIT)
    counts = tool.make_tags(dataset, path, _tagger, dict(name='test'), {}, image='clean')
    again = tool.make_tags(dataset, path, _tagger, dict(name='test'), {}, image='clean')
    assert counts == dict(tagged=4, skipped=0, identity='test', degradation=None)
    assert again == dict(counts, tagged=0, skipped=4)
    images = sorted(glob.glob(f'{demo_data_root}/leftImg8bit/train/*/*.png'))
    return path, images


def test_sources_and_clear_errors():
    assert prompts.build_prompt_source('empty').kind == 'empty'
    assert prompts.build_prompt_source('gt').oracle
    assert not prompts.build_prompt_source('class_names').oracle
    with pytest.raises(ValueError, match="unknown prompt 'tag'.*dict\\(type='tags'"):
        prompts.build_prompt_source('tag')
    with pytest.raises(ValueError, match='bad prompt arguments'):
        prompts.build_prompt_source(dict(type='class_names', sep=';'))
    with pytest.raises(FileNotFoundError, match='make_prompt_tags.py'):
        prompts.build_prompt_source(dict(TAGS, cache='/nonexistent/tags.json'))
    with pytest.raises(ValueError, match='needs tagger=.*and degradation='):
        prompts.build_prompt_source(dict(type='tags', cache='tags.json', tagger='ram'))


def test_scr_test_prompt_uses_no_labels_and_gt_is_logged_as_oracle(monkeypatch):
    model = MODELS.build(dict(type='SCRRestorer', arch='tiny', class_names=CLASSES,
                              lpips_weight=0, scl_loss=None))
    assert model.prompts.sources['train'].kind == 'gt'
    assert model.prompts.sources['test'].kind == 'class_names'
    batch = [_sample(labels=0), _sample(labels=2)]
    train_text, train_pos = model.encode_prompts(batch, training=True)
    assert train_pos == [{0: [1, 2, 3, 4]}, {2: [1, 2, 3]}]  # byte tokens of "road" / "car"
    assert not torch.allclose(train_text[0], train_text[1])
    test_text, test_pos = model.encode_prompts(batch, training=False)
    assert torch.equal(test_text[0], test_text[1])  # the GT does not reach the test prompt
    assert test_pos[0] == test_pos[1] and list(test_pos[0]) == [0, 1, 2]
    ids, _ = prompts.build_class_prompt(model.tokenizer, CLASSES, [0, 1, 2])
    torch.testing.assert_close(test_text[0], model.text_encoder(ids[None])[0][0])

    logged = []
    from mmseg_rass.models.restorers import scr_restorer
    monkeypatch.setattr(scr_restorer, 'print_log', lambda msg, **kw: logged.append(msg))
    model.prompts.sources['test'] = prompts.build_prompt_source('gt')
    model.eval()
    model.encode_prompts(batch, training=False)
    model.encode_prompts(batch, training=False)
    assert len(logged) == 1 and 'ORACLE' in logged[0]


def test_tags_are_looked_up_by_content_and_precomputed(tag_cache, tmp_path, monkeypatch):
    path, images = tag_cache
    backbone = RASSBackbone(arch='tiny', out_channels=16, prompt=dict(TAGS, cache=path),
                            prompt_cache_dir=str(tmp_path / 'embeds'))
    assert not hasattr(backbone, 'text_encoder') and backbone.prompts.text_encoder is None
    assert backbone.text_embeds is None  # per image
    files = glob.glob(str(tmp_path / 'embeds' / 'text_embeds_*.safetensors'))
    assert len(files) == 1  # every distinct tag prompt, encoded once at build time

    moved = tmp_path / 'moved.png'
    shutil.copy(images[0], moved)  # same bytes elsewhere: same tags
    ctx, _ = backbone.prompts('train', [_sample(img_path=images[0]), _sample(img_path=str(moved))])
    assert ctx.shape == (2, 77, 32) and torch.equal(ctx[0], ctx[1])
    cached = {e['tags'] for e in prompts.PromptTagCache(path).entries.values()}
    texts = {backbone.prompts.sources['train'].text_of(p) for p in images}
    assert texts == cached and all(t.startswith('street, tone') for t in texts)

    moved.write_bytes(moved.read_bytes() + b'\0')  # changed content: never stale tags
    with pytest.raises(KeyError, match='moved.png .* has no tags from tagger .test. for the '
                       'image file as it is .*it has no tags of any tagger.*make_prompt_tags.py'):
        backbone.prompts('train', [_sample(img_path=str(moved))])

    # a second build reuses the embedding file: the text encoder runs for nothing
    monkeypatch.setattr(prompts.PromptConditioner, '_encode', lambda *a: pytest.fail('encoded'))
    again = RASSBackbone(arch='tiny', out_channels=16, prompt=dict(TAGS, cache=path),
                         prompt_cache_dir=str(tmp_path / 'embeds'))
    torch.testing.assert_close(again.prompts('train', [_sample(img_path=images[0])])[0],
                               ctx[:1], atol=1e-3, rtol=1e-3)  # stored in fp16


def test_tags_of_another_tagger_or_degradation_are_never_reused(demo_data_root, tmp_path,
                                                               tool_loader):
    """The cache key is image bytes + tagger identity + degradation: a second tagger or the
    LQ image's tags written into the same cache add entries; each lookup finds its own."""
    tool = tool_loader('make_prompt_tags')
    path = str(tmp_path / 'tags.json')
    dataset = dict(type='DemoCityscapesDataset', data_root=str(demo_data_root), **TRAIN_SPLIT)
    tool.make_tags(dataset, path, _tagger, dict(name='test'), {}, image='clean')
    lq = tool.make_tags(dataset, path, _tagger, dict(name='test'), {}, image='pipeline')
    assert lq['tagged'] == 4 and lq['degradation'] == [dict(type='Degrade', preset='rass_x1')]
    other = tool.make_tags(dataset, path, _other_tagger, dict(name='other', version='2'), {},
                           image='clean')
    assert other == dict(tagged=4, skipped=0, identity='other@2', degradation=None)
    image = sorted(glob.glob(f'{demo_data_root}/leftImg8bit/train/*/*.png'))[0]

    def text(**spec):
        return prompts.build_prompt_source(dict(type='tags', cache=path, **spec)).text_of(image)

    clean = text(tagger='test', degradation=None)
    degraded = text(tagger='test', degradation=dict(type='Degrade', preset='rass_x1'))
    assert clean.startswith('street, tone') and degraded.startswith('street, tone')
    assert clean != degraded  # the LQ image was tagged (its mean colour differs), not the file
    assert text(tagger='other', degradation=None) == text(tagger='other@2', degradation=None) \
        == 'another tagger'
    with pytest.raises(KeyError, match=r"no tags from tagger 'other@2' for the LQ image of "
                       r"Degrade\(preset=rass_x1.*it has tags from other@2 on the file as it is; "
                       r'test on an LQ image of it; test on the file as it is'):
        text(tagger='other', degradation=dict(type='Degrade', preset='rass_x1'))
    with pytest.raises(KeyError, match="no tags from tagger 'test' for the LQ image of "
                       r'Degrade\(preset=rass_x1, severity=2'):
        text(tagger='test', degradation=dict(type='Degrade', preset='rass_x1', severity=2))
    with pytest.raises(ValueError, match="no tags from a tagger 'ram' \\(it has: other@2, test\\)"):
        text(tagger='ram', degradation=None)
    # the same name with other weights: a new identity, and the bare name no longer chooses
    weights = tmp_path / 'weights.pth'
    weights.write_bytes(b'new weights')
    again = tool.make_tags(dataset, path, _other_tagger, dict(name='test', weights=str(weights)),
                           {}, image='clean')
    assert again['tagged'] == 4 and again['identity'].startswith('test#sha256:')
    with pytest.raises(ValueError, match="2 taggers named 'test'.*set tagger= to the identity you mean"):
        text(tagger='test', degradation=None)
    assert text(tagger=again['identity'], degradation=None) == 'another tagger'


def test_rass_per_image_prompts_need_the_hook_and_train_with_it(tag_cache, monkeypatch):
    from mmengine.optim import OptimWrapper

    from mmseg_rass.hooks.rass_prompt_hook import attach_prompt_hooks
    path, images = tag_cache
    backbone = dict(type='RASSBackbone', arch='tiny', out_channels=16,
                    prompt=dict(TAGS, cache=path), test_prompt='gt',
                    class_names=[f'c{i}' for i in range(19)])
    model = MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3,
                               bgr_to_rgb=True, size=(64, 64)),
        backbone=backbone,
        decode_head=dict(type='FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 32], channels=16, num_classes=19,
                         norm_cfg=dict(type='BN', requires_grad=True)),
        test_cfg=ConfigDict(mode='whole')))  # mmseg reads test_cfg.mode
    assert hasattr(model.backbone, 'text_encoder')  # the gt test prompt encodes on the fly
    samples = [_sample(labels=i, img_path=p, size=64) for i, p in enumerate(images[:2])]
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)] * 2,
                data_samples=samples)
    optim = OptimWrapper(torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3))
    with pytest.raises(RuntimeError, match="RASSPromptHook"):
        model.train_step(data, optim)
    assert attach_prompt_hooks(model) == 1 and attach_prompt_hooks(model) == 1  # idempotent
    encoded = []
    original = prompts.PromptConditioner._encode
    monkeypatch.setattr(prompts.PromptConditioner, '_encode',
                        lambda self, ids: encoded.append(len(ids)) or original(self, ids))
    losses = model.train_step(data, optim)
    assert torch.isfinite(losses['loss']) and not encoded  # tags: precomputed
    assert model.backbone._batch_context is None  # cleared after the forward

    from mmseg_rass.models.backbones import rass_backbone
    logged = []
    monkeypatch.setattr(rass_backbone, 'print_log', lambda msg, **kw: logged.append(msg))
    model.eval()
    out = model.test_step(dict(inputs=data['inputs'][:1], data_samples=samples[:1]))
    assert out[0].pred_sem_seg.shape == (64, 64)
    assert encoded and len(logged) == 1 and 'ORACLE' in logged[0]


def test_class_names_need_a_prompt_that_uses_them():
    with pytest.raises(ValueError, match="used by the 'class_names'"):
        RASSBackbone(arch='tiny', out_channels=16, class_names=CLASSES)  # prompt 'empty'
    with pytest.raises(ValueError, match='needs the dataset class names'):
        RASSBackbone(arch='tiny', out_channels=16, prompt='class_names')
    bb = RASSBackbone(arch='tiny', out_channels=16, prompt='class_names', class_names=CLASSES)
    assert bb.text_embeds.shape == (1, 77, 32) and not hasattr(bb, 'text_encoder')


def test_pooled_class_context_survives_a_copy_of_the_model():
    model = MODELS.build(dict(type='SCRRestorer', arch='tiny', class_names=CLASSES,
                              lpips_weight=0, scl_loss=None,
                              test_prompt=dict(type='class_names', pooled=True)))
    model.eval()
    batch = [_sample(), _sample()]
    context, positions = model.encode_prompts(batch, training=False)
    assert context.shape == (2, len(CLASSES), 32) and positions[0] == {0: [0], 1: [1], 2: [2]}
    copied, _ = copy.deepcopy(model).encode_prompts(batch, training=False)
    torch.testing.assert_close(copied, context)
    model.prompts.sources['test'] = prompts.build_prompt_source(
        dict(type='class_names', pooled=True, template='{}'))
    with pytest.raises(RuntimeError, match="template '\\{\\}' was not prepared"):
        model.encode_prompts(batch, training=False)
