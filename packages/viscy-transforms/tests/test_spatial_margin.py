"""Spatial transforms declare the read margin they need (``spatial_margin``).

viscy-data reads a window grown by this factor for training patches (duck-typed: it does not
import viscy-transforms).
"""

from __future__ import annotations

import math

import pytest

import viscy_transforms as vt


@pytest.mark.parametrize("name", ["BatchedRandAffined", "BatchedRand3DElasticd", "BatchedZoomd"])
def test_pixel_moving_transforms_declare_margin(name):
    assert getattr(vt, name).spatial_margin == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize(
    "name", ["BatchedRandFlipd", "BatchedRandGaussianNoised", "NormalizeSampled"]
)
def test_other_transforms_declare_none(name):
    assert getattr(getattr(vt, name), "spatial_margin", None) is None


def test_hcs_reads_the_declared_margin():
    from viscy_data.hcs import required_yx

    affine = vt.BatchedRandAffined(keys=["a"], prob=1.0, rotate_range=(3.14, 0, 0))
    assert required_yx([affine], (32, 32)) == (46, 46)
