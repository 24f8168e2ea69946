"""edge.signal.labels: class order and magnitude bins (numpy only, no torch)."""
from __future__ import annotations

import numpy as np
import pytest

from edge.signal import labels
from edge.signal.labels import (
    CLASSES,
    MAG_BIN_CENTRES,
    MAG_BIN_EDGES,
    N_MAG_BINS,
    bin_to_magnitude,
    class_index,
    expected_magnitude,
    magnitude_to_bin,
    magnitudes_to_bins,
    softmax,
)


def test_constants():
    assert CLASSES == ("fracture", "rockfall", "earthquake", "noise")
    assert labels.N_CLASSES == 4
    assert N_MAG_BINS == 30 and labels.MAG_BIN_WIDTH == 0.1
    assert labels.MAG_MIN == 0.0 and labels.MAG_MAX == 3.0
    assert MAG_BIN_EDGES.shape == (31,) and MAG_BIN_CENTRES.shape == (30,)
    assert MAG_BIN_CENTRES[0] == pytest.approx(0.05) and MAG_BIN_CENTRES[-1] == pytest.approx(2.95)
    np.testing.assert_allclose(np.diff(MAG_BIN_CENTRES), 0.1, atol=1e-12)
    with pytest.raises(ValueError):
        MAG_BIN_CENTRES[0] = 1.0  # read-only


def test_class_index():
    assert [class_index(c) for c in CLASSES] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        class_index("landslide")


@pytest.mark.parametrize(
    "m, idx",
    [(0.0, 0), (0.05, 0), (0.0999, 0), (0.1, 1), (0.3, 3), (0.7, 7), (1.0, 10), (1.45, 14),
     (2.9, 29), (2.95, 29), (3.0, 29), (5.2, 29), (-0.5, 0), (-3.0, 0)],
)
def test_magnitude_to_bin(m, idx):
    assert magnitude_to_bin(m) == idx
    assert isinstance(magnitude_to_bin(m), int)


def test_every_decimal_edge_goes_up():
    # 0.3 / 0.1 is 2.9999999999999996 in binary floating point.
    for i in range(N_MAG_BINS):
        assert magnitude_to_bin(round(0.1 * i, 1)) == i
        assert magnitude_to_bin(bin_to_magnitude(i)) == i


def test_magnitudes_to_bins_vectorised():
    m = np.array([-1.0, 0.0, 0.3, 1.25, 2.99, 10.0])
    out = magnitudes_to_bins(m)
    assert out.dtype == np.int64
    assert out.tolist() == [magnitude_to_bin(v) for v in m]


def test_nan_rejected():
    with pytest.raises(ValueError):
        magnitude_to_bin(float("nan"))
    with pytest.raises(ValueError):
        magnitudes_to_bins([0.1, np.nan])


def test_bin_to_magnitude():
    assert bin_to_magnitude(0) == pytest.approx(0.05)
    assert bin_to_magnitude(12) == pytest.approx(1.25)
    assert bin_to_magnitude(29) == pytest.approx(2.95)
    assert isinstance(bin_to_magnitude(3), float)
    for bad in (-1, 30):
        with pytest.raises(IndexError):
            bin_to_magnitude(bad)


def test_expected_magnitude_argmax_and_mean():
    p = np.zeros(30)
    p[12] = 0.6
    p[14] = 0.4
    assert expected_magnitude(p) == pytest.approx(1.25)  # station default: argmax centre
    assert expected_magnitude(p, method="mean") == pytest.approx(0.6 * 1.25 + 0.4 * 1.45)
    # unnormalised input for "mean"
    assert expected_magnitude(2 * p, method="mean") == pytest.approx(0.6 * 1.25 + 0.4 * 1.45)
    uniform = np.full(30, 1 / 30)
    assert expected_magnitude(uniform, method="mean") == pytest.approx(1.5)


def test_expected_magnitude_batch():
    rng = np.random.default_rng(0)
    p = softmax(rng.normal(size=(5, 30)))
    out = expected_magnitude(p)
    assert out.shape == (5,)
    np.testing.assert_allclose(out, MAG_BIN_CENTRES[p.argmax(1)])
    means = expected_magnitude(p, method="mean")
    assert ((means > 0.05) & (means < 2.95)).all()


def test_expected_magnitude_rejects_bad_input():
    with pytest.raises(ValueError):
        expected_magnitude(np.ones(29))
    with pytest.raises(ValueError):
        expected_magnitude(np.ones(30), method="median")
    with pytest.raises(ValueError):
        expected_magnitude(np.zeros(30), method="mean")
    with pytest.raises(ValueError):
        expected_magnitude(np.full(30, np.nan))


def test_softmax():
    z = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    p = softmax(z)
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.25, 0.75]])
