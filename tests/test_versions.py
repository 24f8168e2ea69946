"""Model version order (edge.model.versions): SemVer precedence, and sensible for the rest."""
from __future__ import annotations

import pytest

from edge.model.versions import compare_versions

# each list is strictly increasing (the SemVer 2.0.0 examples, section 11, and more)
ORDERS = [
    ["0.0.1", "0.1.0", "1.0.0", "1.9.3", "1.10.0", "2.0.0"],
    ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
     "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"],
    ["v1", "1.1", "2026.5", "2026.12"],
]


@pytest.mark.parametrize("order", ORDERS)
def test_orders(order):
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            assert compare_versions(a, b) == (i > j) - (i < j), (a, b)


@pytest.mark.parametrize("a, b", [("1.2", "1.2.0"), ("1.0.0+build.1", "1.0.0+build.2"), ("v2.0.0", "2.0.0")])
def test_equal(a, b):
    assert compare_versions(a, b) == 0 and compare_versions(b, a) == 0
