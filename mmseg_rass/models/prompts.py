"""Text prompts of the Stable Diffusion models (SCR, RASS): pluggable sources, cached embeddings.

A prompt source says what text conditions each image; :class:`PromptConditioner` turns it into
CLIP text-encoder states (B, L, D), memoised by token ids and, for sources whose prompts are
known in advance (``empty``, ``class_names``, ``tags``), computed once when the model is built —
so the text encoder does not run in the training step (and RASS drops it).

Sources (the ``prompt`` / ``test_prompt`` arguments of ``SCRRestorer`` and ``RASSBackbone``):

* ``'empty'`` — the empty prompt.
* ``'class_names'`` or ``dict(type='class_names', separator=',', pooled=False,
  template='a photo of a {}')`` — all classes of the dataset in one prompt
  (``"road, sidewalk, ..."``, cut at 77 tokens); no label is used, so it is the non-oracle
  default at test. ``pooled=True`` instead gives one pooled embedding of
  ``template.format(name)`` per class (context (1, N, D)).
* ``'gt'`` — the classes present in the image's GT label map: an **oracle**; meant for
  training, logged as oracle whenever it is used at validation/test.
* ``dict(type='tags', cache='tags.json', tagger='ram', degradation=None, template='{}')`` —
  per-image tag strings (RAM / DAPE / any tagger run elsewhere) from a cache written by
  ``tools/make_prompt_tags.py``, keyed by the image file's bytes, the tagger's identity and
  the degradation that made the tagged image from the file (``None``: the file as it is).
"""
import hashlib
import json
import os
import os.path as osp
from collections import OrderedDict

import torch
from mmengine.logging import print_log

from ..sam.prior_io import file_sha256

TAGS_FORMAT = 'mmseg_rass.prompt_tags.v2'


def build_class_prompt(tokenizer, class_names, class_ids, separator=','):
    """Token ids of ``"name_a, name_b, ..."`` and the positions of each class's sub-tokens.

    Each name is tokenised on its own and the pieces are joined with the separator's tokens, so
    the positions are exact (CLIP's pre-tokeniser splits at spaces and punctuation, so this
    equals tokenising the joined string). Classes that no longer fit in
    ``tokenizer.model_max_length`` (77) tokens are left out.

    Args:
        tokenizer (CLIPTokenizer): The text encoder's tokenizer.
        class_names (Sequence[str]): Names of all dataset classes (dataset metainfo ``classes``).
        class_ids (Iterable[int]): Classes to name, in order.
        separator (str): Text between names. Default ``','``.

    Returns:
        tuple[Tensor, dict[int, list[int]]]: Ids (max_length, ) padded with the pad token, and
        class id -> token positions (0 is the start token).
    """
    max_length = tokenizer.model_max_length
    sep = tokenizer(separator, add_special_tokens=False).input_ids if separator else []
    ids, positions = [tokenizer.bos_token_id], {}
    for k in class_ids:
        name = class_names[k].replace('_', ' ')
        piece = tokenizer(name, add_special_tokens=False).input_ids
        glue = sep if positions else []
        if len(ids) + len(glue) + len(piece) + 1 > max_length:
            break
        ids += glue
        positions[int(k)] = list(range(len(ids), len(ids) + len(piece)))
        ids += piece
    ids.append(tokenizer.eos_token_id)
    ids += [tokenizer.pad_token_id] * (max_length - len(ids))
    return torch.tensor(ids, dtype=torch.long, device='cpu'), positions


def present_classes(seg_label, num_classes, ignore_index=255):
    """Sorted class ids present in a label map (values outside [0, num_classes) are skipped)."""
    values = torch.unique(seg_label)
    return [int(v) for v in values if v != ignore_index and 0 <= v < num_classes]


def tokenize(tokenizer, text):
    """Token ids (max_length, ) on the CPU of ``text``, padded / cut to the tokenizer's 77
    tokens."""
    ids = tokenizer(text, padding='max_length', truncation=True,
                    max_length=tokenizer.model_max_length).input_ids
    return torch.tensor(ids, dtype=torch.long, device='cpu')


def resolve_class_names(class_names, owner):
    """A list of names, or the ``METAINFO['classes']`` of a registered dataset type."""
    if isinstance(class_names, str):
        from mmseg.registry import DATASETS
        dataset = DATASETS.get(class_names)
        if dataset is None or 'classes' not in getattr(dataset, 'METAINFO', {}):
            raise ValueError(f'{owner}: class_names={class_names!r} is neither a list of names '
                             'nor a registered dataset type with METAINFO classes')
        class_names = dataset.METAINFO['classes']
    return list(class_names)


# --------------------------------------------------------------------------- sources
class PromptSource:
    """What text conditions each image.

    Attributes:
        kind (str): Registry name (``empty``, ``class_names``, ``gt``, ``tags``).
        per_image (bool): Whether the prompt depends on the image (else one prompt for all).
        oracle (bool): Whether the prompt is made from the labels.
        needs_class_names (bool): Whether the dataset class names are needed.
    """
    kind = None
    per_image = False
    oracle = False
    needs_class_names = False

    def describe(self):
        """Short text for logs."""
        return self.kind

    def known_prompts(self, tokenizer, class_names):
        """Token-id prompts (each (77, )) known before seeing data (precomputed), or []."""
        return []

    def prompts(self, tokenizer, class_names, data_samples):
        """Per image: token ids (77, ) and class id -> token positions."""
        raise NotImplementedError


class EmptyPrompt(PromptSource):
    """The empty prompt (``''``) for every image."""
    kind = 'empty'

    def known_prompts(self, tokenizer, class_names):
        return [tokenize(tokenizer, '')]

    def prompts(self, tokenizer, class_names, data_samples):
        return [(tokenize(tokenizer, ''), {}) for _ in data_samples]


class ClassNamesPrompt(PromptSource):
    """All dataset classes in one prompt, or one pooled embedding per class.

    Args:
        separator (str): Text between names. Default ``','``.
        pooled (bool): One pooled text embedding of ``template.format(name)`` per class
            (context (1, N, D)) instead of one 77-token prompt. Default False.
        template (str): Per-class text of the pooled variant. Default ``'a photo of a {}'``.
    """
    kind = 'class_names'
    needs_class_names = True

    def __init__(self, separator=',', pooled=False, template='a photo of a {}'):
        self.separator = separator
        self.pooled = pooled
        self.template = template

    def describe(self):
        return 'class_names (pooled)' if self.pooled else 'class_names'

    def known_prompts(self, tokenizer, class_names):
        return [] if self.pooled else [self._prompt(tokenizer, class_names)[0]]

    def _prompt(self, tokenizer, class_names):
        return build_class_prompt(tokenizer, class_names, range(len(class_names)), self.separator)

    def prompts(self, tokenizer, class_names, data_samples):
        ids, positions = self._prompt(tokenizer, class_names)
        return [(ids, positions) for _ in data_samples]


class GTClassPrompt(PromptSource):
    """The names of the classes present in each image's GT label map (an oracle).

    Args:
        separator (str): Text between names. Default ``','``.
        ignore_index (int): Label of ignored pixels. Default 255.
    """
    kind = 'gt'
    per_image = True
    oracle = True
    needs_class_names = True

    def __init__(self, separator=',', ignore_index=255):
        self.separator = separator
        self.ignore_index = ignore_index

    def prompts(self, tokenizer, class_names, data_samples):
        out = []
        for sample in data_samples:
            if 'gt_sem_seg' not in sample:
                raise KeyError('the `gt` prompt names the classes of the GT label map, but the '
                               f'sample of {sample.metainfo.get("img_path")} has no gt_sem_seg: '
                               'add LoadAnnotations to the pipeline, or use another prompt')
            classes = present_classes(sample.gt_sem_seg.data, len(class_names), self.ignore_index)
            out.append(build_class_prompt(tokenizer, class_names, classes, self.separator))
        return out


class TagPrompt(PromptSource):
    """Per-image tag strings from a tag cache (``tools/make_prompt_tags.py``).

    An image's tags are looked up by the SHA-256 of its file, the tagger and the degradation;
    tags of another tagger or degradation are never used (the lookup fails, naming the image
    and how to make its tags).

    Args:
        cache (str): JSON file of format ``mmseg_rass.prompt_tags.v2``.
        tagger (str): The tagger's identity (``name[@version][#sha256:...]``) or its name as
            given to ``make_prompt_tags.py --tagger-name`` (one identity of that name in the
            cache).
        degradation (dict | list[dict] | None): What made the tagged image from the file:
            ``None`` for the file as it is (clean images, or files already degraded), else the
            ``Degrade`` config(s) of the dataset, run deterministically (seeded from the file
            name) — e.g. ``dict(type='Degrade', preset='rass_x1')`` for ``DegradedDataset``.
            Required: a wrong guess would condition LQ images on clean-image tags or back.
        template (str): Prompt text made of the tags. Default ``'{}'``.
    """
    kind = 'tags'
    per_image = True

    def __init__(self, cache, tagger=None, degradation=Ellipsis, template='{}'):
        if tagger is None or degradation is Ellipsis:
            raise ValueError(
                "the 'tags' prompt needs tagger= (the --tagger-name given to "
                'tools/make_prompt_tags.py) and degradation= (None for tags of the image files '
                'as they are, or the Degrade config that made the tagged LQ images)')
        self.cache = str(cache)
        self.template = template
        self.store = PromptTagCache(self.cache)
        self.tagger = self.store.resolve_tagger(tagger)
        self.degradation = degradation
        self._hashes = {}

    def describe(self):
        return f'tags ({self.cache}, tagger {self.tagger}, {describe_degradation(self.degradation)})'

    def known_prompts(self, tokenizer, class_names):
        steps = degradation_steps(self.degradation)
        texts = sorted({self.template.format(e['tags']) for e in self.store.entries.values()
                        if e['tagger'] == self.tagger and
                        (e['degradation'] or {}).get('steps') == steps})
        return [tokenize(tokenizer, t) for t in texts]

    def text_of(self, img_path):
        """The prompt text of one image file (looked up by content, tagger and degradation)."""
        if img_path is None:
            raise KeyError('the `tags` prompt looks images up by their file: the data sample '
                           'has no img_path metainfo')
        stat = os.stat(img_path)
        memo_key = (img_path, stat.st_size, stat.st_mtime_ns)
        if memo_key not in self._hashes:
            self._hashes[memo_key] = file_sha256(img_path)
        digest = self._hashes[memo_key]
        tags = self.store.lookup(digest, self.tagger, degradation_key(self.degradation, img_path))
        if tags is None:
            made = self.store.image_records(digest)
            has = ('it has tags from ' + '; '.join(made) if made else
                   'it has no tags of any tagger there')
            image = '--image clean ' if self.degradation is None else ''
            raise KeyError(
                f'{img_path} (sha256 {digest[:12]}…) has no tags from tagger {self.tagger!r} '
                f'for {describe_degradation(self.degradation)} in the tag cache {self.cache} '
                f'({has}): write them with `python tools/make_prompt_tags.py CONFIG --split '
                f'SPLIT {image}--tagger MODULE:CALLABLE --tagger-name '
                f'{self.store.taggers[self.tagger]["name"]} --out {self.cache}`')
        return self.template.format(tags)

    def prompts(self, tokenizer, class_names, data_samples):
        return [(tokenize(tokenizer, self.text_of(s.metainfo.get('img_path'))), {})
                for s in data_samples]


PROMPT_SOURCES = dict(empty=EmptyPrompt, class_names=ClassNamesPrompt, gt=GTClassPrompt,
                      tags=TagPrompt)


def build_prompt_source(spec, owner='model'):
    """Build a prompt source from ``'empty'`` / ``'class_names'`` / ``'gt'`` or a dict with
    ``type`` one of those or ``'tags'`` (see the module docstring)."""
    if isinstance(spec, PromptSource):
        return spec
    cfg = dict(type=spec) if isinstance(spec, str) else dict(spec or {})
    kind = cfg.pop('type', None)
    if kind not in PROMPT_SOURCES:
        raise ValueError(f'{owner}: unknown prompt {spec!r}; use one of \'empty\', '
                         "'class_names', 'gt' or dict(type='tags', cache='tags.json', "
                         "tagger='ram', degradation=None)")
    try:
        return PROMPT_SOURCES[kind](**cfg)
    except TypeError as err:
        raise ValueError(f'{owner}: bad prompt arguments {spec!r}: {err}') from err


# --------------------------------------------------------------------------- tag cache
def tagger_identity(name, version=None, weights=None):
    """Identity of a tagger: ``name``, ``@version`` if given, ``#sha256:<16 hex>`` of the
    weights file if given."""
    identity = name + (f'@{version}' if version else '')
    return identity + (f'#sha256:{file_sha256(weights)[:16]}' if weights else '')


def degradation_steps(degradation):
    """JSON-normalised ``Degrade`` settings (preset, severity, overrides) of a degradation
    config (a dict, a list of dicts, or None)."""
    if not degradation:
        return None
    from ..sam.extract import degradation_spec
    steps = [degradation] if isinstance(degradation, dict) else list(degradation)
    return [degradation_spec(dict(step)) for step in steps]


def degradation_key(degradation, img_path):
    """What made the tagged image from the file ``img_path``: None (the file as it is), or the
    deterministic ``Degrade`` settings and the file name that seeds them."""
    steps = degradation_steps(degradation)
    return None if steps is None else dict(steps=steps, seed_name=osp.basename(img_path))


def describe_degradation(degradation):
    """Short text of a degradation config for messages."""
    steps = degradation_steps(degradation)
    if steps is None:
        return 'the image file as it is'
    return 'the LQ image of ' + ' + '.join(
        f'Degrade(preset={s["preset"]}, severity={s["severity"]}, overrides={s["overrides"]})'
        for s in steps)


def tag_entry_key(image_sha256, tagger, degradation):
    """Cache key of one image's tags: SHA-256 of its file, the tagger identity, the
    :func:`degradation_key`."""
    text = json.dumps([image_sha256, tagger, degradation], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def read_tag_cache(path):
    """The JSON of a tag cache (``format``, ``runs``, ``taggers``, ``entries``), checked."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'prompt tag cache {path} not found: write it with '
                                '`python tools/make_prompt_tags.py CONFIG --split SPLIT --out '
                                f'{path} --tagger MODULE:CALLABLE --tagger-name NAME`')
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} is not a JSON tag cache: {err}') from err
    fmt = data.get('format') if isinstance(data, dict) else None
    if fmt == 'mmseg_rass.prompt_tags.v1':
        raise ValueError(f'{path} is a v1 tag cache, keyed by image bytes only (it cannot tell '
                         'which tagger and degradation made each entry): write a new cache with '
                         'tools/make_prompt_tags.py')
    if fmt != TAGS_FORMAT:
        raise ValueError(f'{path} is not a prompt tag cache (format {TAGS_FORMAT!r}); write '
                         'it with tools/make_prompt_tags.py')
    return data


class PromptTagCache:
    """A tag cache file: entries keyed by :func:`tag_entry_key`.

    Args:
        path (str): The JSON file (:func:`write_prompt_tags`).
    """

    def __init__(self, path):
        self.path = path
        data = read_tag_cache(path)
        self.taggers = data['taggers']
        self.entries = data['entries']

    def resolve_tagger(self, tagger):
        """The identity of ``tagger``: an identity with a version / weights hash, or a name that
        only one identity in the cache has."""
        if tagger in self.taggers and self.taggers[tagger]['name'] != tagger:
            return tagger
        named = sorted(i for i, t in self.taggers.items() if t['name'] == tagger)
        if len(named) == 1:
            return named[0]
        known = ', '.join(sorted(self.taggers)) or 'none'
        if named:
            raise ValueError(f'{self.path} holds tags of {len(named)} taggers named {tagger!r} '
                             f'({", ".join(named)}): set tagger= to the identity you mean (one '
                             'made without --tagger-version / --tagger-weights is chosen by its '
                             'name only while it is the only one of that name)')
        raise ValueError(f'{self.path} has no tags from a tagger {tagger!r} (it has: {known}): '
                         'write them with tools/make_prompt_tags.py --tagger-name '
                         f'{tagger}, or set tagger= to one of those')

    def lookup(self, image_sha256, tagger, degradation):
        """Tags of an image, or None."""
        entry = self.entries.get(tag_entry_key(image_sha256, tagger, degradation))
        return None if entry is None else entry['tags']

    def image_records(self, image_sha256):
        """Which taggers / degradations the cache holds tags of for an image (for messages)."""
        return sorted({f'{e["tagger"]} on ' + ('the file as it is' if e['degradation'] is None
                                                else 'an LQ image of it')
                       for e in self.entries.values() if e['image_sha256'] == image_sha256})


def write_prompt_tags(path, entries, tagger, info):
    """Write (or extend) a tag cache atomically.

    Args:
        path (str): JSON file.
        entries (dict[str, dict]): :func:`tag_entry_key` -> ``dict(image_sha256=..., tagger=...,
            degradation=..., path=..., tags=...)``.
        tagger (dict): The tagger's record: ``identity``, ``name``, ``version``,
            ``weights_sha256``.
        info (dict): What made the tags (tagger, pipeline, split), recorded per run.
    """
    data = (read_tag_cache(path) if osp.isfile(path) else
            dict(format=TAGS_FORMAT, runs=[], taggers={}, entries={}))
    data['taggers'][tagger['identity']] = {k: v for k, v in tagger.items() if k != 'identity'}
    data['runs'].append(info)
    data['entries'].update(entries)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def drop_tag_prompts(backbone_cfg):
    """Replace ``tags`` prompt sources in a model part's config by the empty prompt (for tools
    that count parameters or time a step: a tag cache holds no parameters and costs one lookup
    per image). Returns whether any was replaced."""
    replaced = False
    for key in ('prompt', 'test_prompt'):
        spec = backbone_cfg.get(key)
        if isinstance(spec, dict) and spec.get('type') == 'tags':
            backbone_cfg[key] = 'empty'
            replaced = True
    return replaced


# --------------------------------------------------------------------------- embeddings
def _ids_key(ids):
    return hashlib.sha1(ids.to(torch.int64).cpu().numpy().tobytes()).hexdigest()


def _to_cpu(tensor):
    """``tensor`` on the CPU (meta tensors, for shape-only builds, stay where they are)."""
    return tensor if tensor.is_meta else tensor.cpu()


def _module_fingerprint(module):
    """SHA-256 of a module's parameters and buffers (content, not path)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class PromptConditioner:
    """Text-encoder states for prompt sources, cached by token ids.

    Prompts a source knows in advance are encoded by :meth:`prepare` (in memory, or with
    ``cache_dir`` into a safetensors file named after the content hash of the encoder weights
    and the prompts, read lazily later); other prompts (``gt``) are encoded on first use and
    memoised (at most ``max_memo`` entries).

    Args:
        text_encoder (CLIPTextModel): The frozen text encoder.
        tokenizer (CLIPTokenizer): Its tokenizer.
        sources (dict[str, PromptSource]): Sources by use (e.g. ``train``, ``test``).
        class_names (list[str], optional): Dataset class names (``class_names``/``gt``).
        cache_dir (str, optional): Folder for precomputed embedding files.
        max_memo (int): Most on-the-fly embeddings kept. Default 1024.
        owner (str): Model name for messages.
    """

    def __init__(self, text_encoder, tokenizer, sources, class_names=None, cache_dir=None,
                 max_memo=1024, owner='model'):
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.sources = sources
        self.class_names = class_names
        self.cache_dir = cache_dir
        self.max_memo = max_memo
        self.owner = owner
        self.memo = OrderedDict()
        self.fixed = {}
        self.stores = []  # (keys, file) of precomputed embedding files
        self._handles = {}  # file -> open safetensors handle (not copied or pickled)
        self.pooled = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_handles'] = {}
        return state

    @property
    def needs_encoder(self):
        """Whether prompts must still be encoded during training/testing (``gt`` sources)."""
        return any(s.per_image and not s.known_prompts(self.tokenizer, self.class_names or [])
                   for s in self.sources.values())

    def check_class_names(self):
        for use, source in self.sources.items():
            if source.needs_class_names and not self.class_names:
                raise ValueError(f'{self.owner}: the {use} prompt {source.kind!r} needs the '
                                 'dataset class names: set `class_names` (a list or a dataset '
                                 'type such as \'ADE20KDataset\')')

    @torch.no_grad()
    def _encode(self, ids):
        if self.text_encoder is None:
            raise RuntimeError(f'{self.owner}: a prompt was not precomputed and the text '
                               'encoder was released')
        device = next(self.text_encoder.parameters()).device
        return self.text_encoder(ids.to(device))[0].float()

    @torch.no_grad()
    def prepare(self):
        """Encode every prompt the sources know in advance (and pooled class contexts)."""
        self.check_class_names()
        ids = {}
        for source in self.sources.values():
            if isinstance(source, ClassNamesPrompt) and source.pooled:
                self.pooled[source.template] = self._pooled_context(source)
            for row in source.known_prompts(self.tokenizer, self.class_names):
                ids.setdefault(_ids_key(row), row)
        missing = {k: v for k, v in ids.items() if k not in self.fixed and not self._stored(k)}
        if not missing:
            return
        device = next(self.text_encoder.parameters()).device
        on_meta = device.type == 'meta'
        if self.cache_dir is None or on_meta:
            for key, row in missing.items():
                self.fixed[key] = _to_cpu(self._encode(row[None])[0])
            return
        self.stores.append(self._store_file(missing))

    def _stored(self, key):
        return any(key in keys for keys, _ in self.stores)

    def _store_file(self, rows):
        """Encode ``rows`` into (or reuse) a content-named safetensors file (read lazily)."""
        from safetensors import safe_open
        from safetensors.torch import save_file
        digest = hashlib.sha256(_module_fingerprint(self.text_encoder).encode())
        for key in sorted(rows):
            digest.update(key.encode())
        path = osp.join(self.cache_dir, f'text_embeds_{digest.hexdigest()[:24]}.safetensors')
        if not osp.isfile(path):
            print_log(f'{self.owner}: encoding {len(rows)} prompts into {path}', logger='current')
            keys = sorted(rows)
            tensors = {}
            for start in range(0, len(keys), 64):
                chunk = keys[start:start + 64]
                states = self._encode(torch.stack([rows[k] for k in chunk])).half().cpu()
                tensors.update({k: s.contiguous() for k, s in zip(chunk, states)})
            os.makedirs(self.cache_dir, exist_ok=True)
            tmp = f'{path}.tmp{os.getpid()}'
            save_file(tensors, tmp)
            os.replace(tmp, path)
        with safe_open(path, framework='pt') as handle:
            return set(handle.keys()), path

    @torch.no_grad()
    def _pooled_context(self, source):
        texts = [source.template.format(c) for c in self.class_names]
        ids = self.tokenizer(texts, padding='max_length', truncation=True,
                             max_length=self.tokenizer.model_max_length,
                             return_tensors='pt').input_ids
        device = next(self.text_encoder.parameters()).device
        return _to_cpu(self.text_encoder(input_ids=ids.to(device)).pooler_output[None].float())

    def _pooled(self, source):
        """(1, N, D) pooled class context of ``source`` (keyed by its template, so copies of
        the conditioner keep it)."""
        if source.template not in self.pooled:
            raise RuntimeError(f'{self.owner}: the pooled class_names prompt with template '
                               f'{source.template!r} was not prepared: call prepare() after '
                               'changing prompt sources')
        return self.pooled[source.template]

    def _lookup(self, ids):
        key = _ids_key(ids)
        if key in self.fixed:
            return self.fixed[key]
        for keys, path in self.stores:
            if key in keys:
                if path not in self._handles:
                    from safetensors import safe_open
                    self._handles[path] = safe_open(path, framework='pt')
                return self._handles[path].get_tensor(key).float()
        if key in self.memo:
            self.memo.move_to_end(key)
            return self.memo[key]
        states = _to_cpu(self._encode(ids[None])[0])
        self.memo[key] = states
        if len(self.memo) > self.max_memo:
            self.memo.popitem(last=False)
        return states

    def encode_text(self, text):
        """(1, 77, D) states of a fixed text (memoised)."""
        return self._lookup(tokenize(self.tokenizer, text))[None]

    def static_context(self, use):
        """(1, L, D) context of a source that is the same for every image."""
        source = self.sources[use]
        if source.per_image:
            raise ValueError(f'{self.owner}: the {use} prompt {source.kind!r} is per image')
        if isinstance(source, ClassNamesPrompt) and source.pooled:
            return self._pooled(source)
        ids, _ = source.prompts(self.tokenizer, self.class_names, [None])[0]
        return self._lookup(ids)[None]

    def __call__(self, use, data_samples, device=None):
        """Context (B, L, D) and per-image class token positions for a batch.

        Args:
            use (str): Which source (a key of ``sources``).
            data_samples (list[SegDataSample]): The batch (img_path / gt_sem_seg as needed).
            device (torch.device, optional): Where the context goes.
        """
        source = self.sources[use]
        if isinstance(source, ClassNamesPrompt) and source.pooled:
            positions = {k: [k] for k in range(len(self.class_names))}
            context = self._pooled(source).expand(len(data_samples), -1, -1)
            return context.to(device), [positions] * len(data_samples)
        prompts = source.prompts(self.tokenizer, self.class_names, data_samples)
        context = torch.stack([self._lookup(ids) for ids, _ in prompts])
        return context.to(device), [positions for _, positions in prompts]
