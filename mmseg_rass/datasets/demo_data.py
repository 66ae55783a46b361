"""A small, deterministic, street-scene-like dataset in Cityscapes layout.

Scenes are drawn from a seeded random generator: sky, buildings with windows, road with lane
marks, sidewalks, terrain, vegetation, fences, poles with signs and lights, cars, buses, people
and bicycles, with surface texture and a lighting gradient. Labels are Cityscapes train ids (19
classes, 255 = ignore on a thin band around cars and people, like Cityscapes' unlabelled
borders).

Surface texture is spatially correlated (white noise blurred with a Gaussian of
:data:`TEXTURE_CORRELATION_PX` pixels, rescaled to the class's standard deviation), as real
surfaces are; generator version 1 painted i.i.d. per-pixel noise, which is sensor noise rather
than texture (the degradations add that) and which no ×8 autoencoder can encode (see
``docs/tiny_sd.md``). A folder written by the generator carries a manifest
(:data:`MANIFEST_NAME`: generator version and settings); :func:`ensure_demo_cityscapes`
regenerates a folder whose manifest is missing or differs, and never reuses a stale one.
"""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np

# No imports from the package: tools/gpu_check.py loads this file alone.
CITY = 'demo_city'
IGNORE = 255
# Cityscapes train ids of the classes drawn here.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)

# Base colours (RGB) per class, jittered per scene.
_COLOURS = {
    ROAD: (90, 88, 92), SIDEWALK: (170, 160, 165), BUILDING: (140, 110, 95), WALL: (160, 150, 130),
    FENCE: (120, 120, 100), POLE: (70, 70, 70), LIGHT: (230, 180, 40), SIGN: (220, 220, 40),
    VEGETATION: (60, 120, 45), TERRAIN: (150, 170, 90), SKY: (120, 170, 230), PERSON: (200, 60, 70),
    RIDER: (230, 90, 40), CAR: (40, 60, 160), TRUCK: (60, 90, 120), BUS: (50, 130, 140),
    TRAIN: (80, 100, 110), MOTORCYCLE: (20, 20, 200), BICYCLE: (130, 40, 30),
}


# Version of the scene generator: bump it whenever the same settings would give other bytes.
GENERATOR_VERSION = 2
MANIFEST_NAME = 'demo_data_manifest.json'
MANIFEST_FORMAT = 'mmseg_rass.demo_cityscapes'
# Correlation length (Gaussian blur sigma, pixels) of the surface texture.
TEXTURE_CORRELATION_PX = 3.0
_TEXTURE_KERNEL = cv2.getGaussianKernel(int(6 * TEXTURE_CORRELATION_PX) | 1,
                                        TEXTURE_CORRELATION_PX, cv2.CV_32F)
# Blurring white noise scales its std by sum(k^2) (separable kernel): undo that.
_TEXTURE_GAIN = 1.0 / float((_TEXTURE_KERNEL ** 2).sum())


def _texture(rng, mask, std):
    """Correlated texture of standard deviation ``std`` on the bounding box of ``mask``.

    Returns:
        tuple[np.ndarray, tuple[slice, slice]] | None: (h, w) float32 texture and the box, or
        None for an empty mask.
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    pad = len(_TEXTURE_KERNEL) // 2
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    noise = rng.standard_normal((rows[-1] - rows[0] + 1 + 2 * pad,
                                 cols[-1] - cols[0] + 1 + 2 * pad), np.float32)
    smooth = cv2.sepFilter2D(noise, -1, _TEXTURE_KERNEL, _TEXTURE_KERNEL,
                             borderType=cv2.BORDER_REFLECT)
    return smooth[pad:-pad, pad:-pad] * (_TEXTURE_GAIN * std), box


def _fill(img, label, mask, cls, rng, texture=8.0):
    """Paint ``mask`` with the class colour plus jitter and correlated texture of std
    ``texture``."""
    colour = np.array(_COLOURS[cls], np.float32) + rng.uniform(-20, 20, 3)
    drawn = _texture(rng, mask, texture)
    if drawn is None:
        return
    tex, box = drawn
    sub = mask[box]
    img[box][sub] = np.clip(colour + tex[..., None], 0, 255)[sub]
    label[box][sub] = cls


def _poly(shape, points):
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(points)).astype(np.int32)], 1)
    return mask.astype(bool)


def _rect(shape, x0, y0, x1, y1):
    mask = np.zeros(shape, bool)
    mask[max(int(y0), 0):max(int(y1), 0), max(int(x0), 0):max(int(x1), 0)] = True
    return mask


def _ellipse(shape, cx, cy, ax, ay):
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, (int(cx), int(cy)), (max(int(ax), 1), max(int(ay), 1)), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def _draw_car(img, label, rng, x, base_y, scale, cls=CAR):
    shape = label.shape
    w, h = 60 * scale * (1.6 if cls == BUS else 1.0), 26 * scale * (1.8 if cls == BUS else 1.0)
    body = _rect(shape, x, base_y - h, x + w, base_y - 0.2 * h)
    cabin = _rect(shape, x + 0.2 * w, base_y - 1.45 * h, x + 0.8 * w, base_y - h) if cls == CAR \
        else np.zeros(shape, bool)
    obj = body | cabin
    _fill(img, label, obj, cls, rng)
    for wx in (x + 0.2 * w, x + 0.8 * w):  # dark wheels, same class
        wheel = _ellipse(shape, wx, base_y - 0.2 * h, 0.12 * w, 0.2 * h)
        img[wheel] = 25
        label[wheel] = cls
        obj |= wheel
    windows = _rect(shape, x + 0.25 * w, base_y - 1.35 * h, x + 0.75 * w, base_y - 1.05 * h) \
        if cls == CAR else _rect(shape, x + 0.05 * w, base_y - 0.9 * h, x + 0.95 * w, base_y - 0.6 * h)
    img[windows] = (img[windows] * 0.4 + 60).astype(img.dtype)
    return obj


def _draw_person(img, label, rng, x, base_y, scale, cls=PERSON):
    shape = label.shape
    h = 48 * scale
    body = _ellipse(shape, x, base_y - 0.55 * h, 0.14 * h, 0.3 * h)
    head = _ellipse(shape, x, base_y - 0.92 * h, 0.08 * h, 0.08 * h)
    legs = _rect(shape, x - 0.1 * h, base_y - 0.3 * h, x + 0.1 * h, base_y)
    obj = body | head | legs
    _fill(img, label, obj, cls, rng, texture=12)
    if cls == RIDER:  # a bicycle under the rider
        bike = _ellipse(shape, x - 0.2 * h, base_y, 0.15 * h, 0.15 * h) | \
            _ellipse(shape, x + 0.2 * h, base_y, 0.15 * h, 0.15 * h)
        bike &= ~obj
        _fill(img, label, bike, BICYCLE, rng)
        obj |= bike
    return obj


def render_scene(rng, height, width):
    """Draw one scene.

    Args:
        rng (numpy.random.Generator): source of all randomness.
        height (int): image height in pixels.
        width (int): image width in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: RGB image (H, W, 3) uint8 and train-id label (H, W) uint8.
    """
    shape = (height, width)
    img = np.zeros((height, width, 3), np.float32)
    label = np.full(shape, SKY, np.uint8)
    horizon = height * rng.uniform(0.38, 0.5)
    ys = np.linspace(0, 1, height)[:, None, None]
    _fill(img, label, np.ones(shape, bool), SKY, rng, texture=3)
    img += (1 - ys) * 30  # brighter towards the top of the sky

    # Buildings along the skyline, with window grids.
    x = -rng.uniform(0, 40)
    while x < width:
        bw = rng.uniform(0.12, 0.3) * width
        top = horizon - rng.uniform(0.1, 0.35) * height
        cls = BUILDING if rng.random() > 0.15 else WALL
        block = _rect(shape, x, top, x + bw, horizon + 2)
        _fill(img, label, block, cls, rng, texture=6)
        if cls == BUILDING:
            for wy in np.arange(top + 6, horizon - 6, 12):
                for wx in np.arange(x + 5, x + bw - 6, 10):
                    win = _rect(shape, wx, wy, wx + 5, wy + 6)
                    img[win] = img[win] * 0.5 + 40
        x += bw + rng.uniform(0, 12)

    # Ground: terrain strip, sidewalks, road trapezoid with lane marks.
    ground = _rect(shape, 0, horizon, width, height)
    _fill(img, label, ground, SIDEWALK, rng)
    vx = width * rng.uniform(0.4, 0.6)
    road = _poly(shape, [(vx - 8, horizon), (vx + 8, horizon), (width * 1.1, height), (-width * 0.1, height)])
    _fill(img, label, road, ROAD, rng, texture=5)
    for t in np.linspace(0.1, 1.0, 7):
        y = horizon + t * (height - horizon)
        mark = _rect(shape, vx - 1.5 * t * 6, y, vx + 1.5 * t * 6, y + 6 * t)
        img[mark] = 225
    for side in (0, 1):
        if rng.random() < 0.6:
            x0, x1 = (0, width * 0.12) if side == 0 else (width * 0.88, width)
            strip = _rect(shape, x0, horizon, x1, horizon + 0.12 * (height - horizon)) & ~road
            _fill(img, label, strip, TERRAIN, rng)

    # Vegetation: trees (trunk as pole-coloured vegetation) and hedges.
    for _ in range(rng.integers(1, 4)):
        cx = rng.uniform(0, width)
        cy = horizon - rng.uniform(0.05, 0.2) * height
        r = rng.uniform(0.06, 0.14) * height
        crown = _ellipse(shape, cx, cy, r * 1.3, r)
        trunk = _rect(shape, cx - 3, cy, cx + 3, horizon + 0.05 * height)
        _fill(img, label, crown | trunk, VEGETATION, rng, texture=18)
    if rng.random() < 0.5:
        fence = _rect(shape, 0, horizon - 0.05 * height, width * rng.uniform(0.1, 0.3), horizon + 4)
        _fill(img, label, fence, FENCE, rng, texture=4)

    # Poles with a sign or a traffic light.
    for _ in range(rng.integers(1, 3)):
        px = rng.choice([rng.uniform(0.02, 0.3), rng.uniform(0.7, 0.98)]) * width
        ptop = horizon - rng.uniform(0.15, 0.3) * height
        pole = _rect(shape, px - 2, ptop, px + 2, horizon + 0.15 * height)
        _fill(img, label, pole, POLE, rng, texture=3)
        cls = SIGN if rng.random() < 0.5 else LIGHT
        box = _rect(shape, px - 6, ptop - 8, px + 6, ptop + 10)
        _fill(img, label, box, cls, rng, texture=4)

    # Vehicles and people, far to near, with an ignore band around them.
    objects = np.zeros(shape, bool)
    items = []
    for _ in range(rng.integers(1, 4)):
        items.append(('car', rng.uniform(0, 1)))
    for _ in range(rng.integers(0, 4)):
        items.append(('person', rng.uniform(0, 1)))
    for kind, depth in sorted(items, key=lambda it: it[1]):
        base_y = horizon + (0.1 + 0.85 * depth) * (height - horizon)
        scale = (0.3 + 1.2 * depth) * height / 256
        if kind == 'car':
            cls = rng.choice([CAR, CAR, CAR, BUS, TRUCK])
            x = rng.uniform(0.05, 0.8) * width
            objects |= _draw_car(img, label, rng, x, base_y, scale, cls=cls)
        else:
            cls = RIDER if rng.random() < 0.25 else PERSON
            x = rng.choice([rng.uniform(0.02, 0.25), rng.uniform(0.75, 0.98)]) * width
            objects |= _draw_person(img, label, rng, x, base_y, scale, cls=cls)
    border = cv2.dilate(objects.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~objects
    label[border] = IGNORE

    # Global lighting: a horizontal gradient and an exposure factor.
    light = rng.uniform(0.75, 1.15) * (1 + rng.uniform(-0.2, 0.2) * np.linspace(-1, 1, width))
    img = img * light[None, :, None]
    return np.clip(img, 0, 255).astype(np.uint8), label


def _listdir(folder):
    return os.listdir(folder) if osp.isdir(folder) else []


def _split_dirs(out_dir):
    """The folders the generator writes: (split, image folder, label folder)."""
    return [(split, osp.join(out_dir, 'leftImg8bit', split, CITY),
             osp.join(out_dir, 'gtFine', split, CITY)) for split in ('train', 'val')]


def demo_data_manifest(num_train=200, num_val=50, height=256, width=512, seed=0):
    """The manifest a folder made with these settings carries (generator version included)."""
    return dict(format=MANIFEST_FORMAT, generator_version=GENERATOR_VERSION,
                num_train=int(num_train), num_val=int(num_val), height=int(height),
                width=int(width), seed=int(seed))


def read_demo_manifest(out_dir):
    """The folder's manifest, or None when it has none (or an unreadable one)."""
    path = osp.join(out_dir, MANIFEST_NAME)
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def demo_data_status(out_dir, **settings):
    """Why ``out_dir`` is not the demo data of these settings, or None when it is.

    Args:
        out_dir (str): Dataset root.
        **settings: :func:`demo_data_manifest` arguments.

    Returns:
        str | None: e.g. ``'written by generator version 1 (now 2)'``, ``'absent'``.
    """
    want = demo_data_manifest(**settings)
    manifest = read_demo_manifest(out_dir)
    if manifest is None:
        found = any(_listdir(d) for _, *dirs in _split_dirs(out_dir) for d in dirs)
        return (f'it has images but no valid {MANIFEST_NAME} (an older generator or an '
                'interrupted run)') if found else 'absent'
    if manifest.get('format') != MANIFEST_FORMAT:
        return f'{MANIFEST_NAME} is not a demo-data manifest'
    if manifest.get('generator_version') != GENERATOR_VERSION:
        return (f'written by generator version {manifest.get("generator_version")} '
                f'(now {GENERATOR_VERSION})')
    changed = [f'{k} {manifest.get(k)} -> {v}' for k, v in want.items() if manifest.get(k) != v]
    if changed:
        return f'written with other settings ({", ".join(changed)})'
    for split, *dirs in _split_dirs(out_dir):
        for folder in dirs:
            count = len(_listdir(folder))
            if count != want[f'num_{split}']:
                return f'{folder} holds {count} files, expected {want[f"num_{split}"]}'
    return None


def check_generator_version(data_root, owner):
    """Refuse (one line) demo data written by another generator version or without manifest.

    Args:
        data_root (str): Dataset root.
        owner (str): Name for the message (the dataset class).
    """
    manifest = read_demo_manifest(data_root) or {}
    if manifest.get('format') != MANIFEST_FORMAT or \
            manifest.get('generator_version') != GENERATOR_VERSION:
        raise ValueError(
            f'{owner}: {data_root} was not written by the current demo-data generator (version '
            f'{GENERATOR_VERSION}; its {MANIFEST_NAME} says '
            f'{manifest.get("generator_version", "nothing")}): regenerate it with '
            f'`python tools/make_demo_data.py --out {data_root}`')


def make_demo_cityscapes(out_dir, num_train=200, num_val=50, height=256, width=512, seed=0):
    """Write the demo dataset in Cityscapes layout under ``out_dir`` (always rewriting it).

    Files: ``leftImg8bit/{train,val}/demo_city/demo_city_000000_XXXXXX_leftImg8bit.png`` and
    ``gtFine/{train,val}/demo_city/..._gtFine_labelTrainIds.png``, then the manifest
    :data:`MANIFEST_NAME` (written last, so an interrupted run leaves none). The generator's
    folders are emptied first (other content of ``out_dir`` is kept). The same arguments always
    give the same bytes.

    Args:
        out_dir (str): dataset root (created if absent).
        num_train (int): number of training images.
        num_val (int): number of validation images.
        height (int): image height.
        width (int): image width.
        seed (int): base seed; image ``i`` of split ``s`` uses ``(seed, s, i)``.

    Returns:
        str: ``out_dir``.
    """
    if num_train < 1 or num_val < 1 or height < 32 or width < 32:
        raise ValueError('make_demo_cityscapes needs num_train, num_val >= 1 and an image of '
                         f'at least 32x32, got {num_train}, {num_val}, {height}x{width}')
    manifest = demo_data_manifest(num_train, num_val, height, width, seed)
    os.makedirs(out_dir, exist_ok=True)
    if osp.isfile(osp.join(out_dir, MANIFEST_NAME)):
        os.remove(osp.join(out_dir, MANIFEST_NAME))
    for split_id, (split, img_dir, ann_dir) in enumerate(_split_dirs(out_dir)):
        for folder in (img_dir, ann_dir):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
        for i in range(manifest[f'num_{split}']):
            rng = np.random.default_rng([seed, split_id, i])
            img, label = render_scene(rng, height, width)
            stem = f'{CITY}_{split_id:06d}_{i:06d}'
            cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), img[..., ::-1])
            cv2.imwrite(osp.join(ann_dir, f'{stem}_gtFine_labelTrainIds.png'), label)
    # written last: an interrupted run leaves no (or an unreadable) manifest, so it is redone
    with open(osp.join(out_dir, MANIFEST_NAME), 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=2)
    return out_dir


def ensure_demo_cityscapes(out_dir, num_train=200, num_val=50, height=256, width=512, seed=0):
    """Make sure ``out_dir`` holds the demo data of these settings: keep it when its manifest
    matches, else (re)generate it — a stale folder is never reused.

    Returns:
        str | None: Why it was (re)generated (:func:`demo_data_status`), None when it was kept.

    Raises:
        ValueError: ``out_dir`` holds other cities' images and no manifest (e.g. a real
            Cityscapes): it is left alone.
    """
    settings = dict(num_train=num_train, num_val=num_val, height=height, width=width, seed=seed)
    others = sorted({city for split in ('train', 'val')
                     for city in _listdir(osp.join(out_dir, 'leftImg8bit', split))} - {CITY})
    if others and read_demo_manifest(out_dir) is None:
        raise ValueError(f'{out_dir} holds other images (leftImg8bit/*/{others[0]}) and no '
                         f'{MANIFEST_NAME}: not a demo-data folder, not written into; pass '
                         'another --out')
    reason = demo_data_status(out_dir, **settings)
    if reason is not None:
        make_demo_cityscapes(out_dir, **settings)
    return reason
