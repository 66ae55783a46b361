"""Degrade refuses numeric values that are not what they look like (issue 16)."""
import math

import numpy as np
import pytest
from mmseg.registry import TRANSFORMS


@pytest.mark.parametrize('severity', [2.0, 2.5, True, '2', 0, 6])
def test_severity_must_be_an_integer_1_to_5(severity):
    with pytest.raises(ValueError, match=r'Degrade: severity=.* must be an integer 1-5'):
        TRANSFORMS.build(dict(type='Degrade', preset='blur', severity=severity))


def test_numpy_integer_severity_is_an_integer():
    a = TRANSFORMS.build(dict(type='Degrade', preset='noise', severity=np.int64(3)))
    b = TRANSFORMS.build(dict(type='Degrade', preset='noise', severity=3))
    assert a.cfg == b.cfg


@pytest.mark.parametrize('key,value', [
    ('noise_range', [math.nan, 10]), ('noise_range', [1, math.inf]),
    ('jpeg_range', [30, math.nan]), ('blur_sigma', [math.nan, math.nan]),
    ('rotation_range', [-math.inf, 0]), ('resize_prob', [math.nan, 0.5, 0.5]),
    ('kernel_prob', [math.nan] * 6), ('blur_prob', math.nan)])
def test_nan_and_infinite_values_are_refused(key, value):
    with pytest.raises(ValueError, match=f'Degrade: {key}='):
        TRANSFORMS.build(dict(type='Degrade', preset='rass_x1', **{key: value}))
