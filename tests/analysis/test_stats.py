from __future__ import annotations

import math

import pytest

from hpstudy.analysis._stats import holm


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, math.nan])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1])
