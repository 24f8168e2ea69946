"""edge.signal.arpick (ObsPy's AR-AIC picker without ``obspy.signal``, scipy's linear
detrend without ``scipy.signal``/``scipy.linalg``) against ObsPy and scipy themselves, bit for
bit, on real three-component recordings with the parameters the station's ML uses
(edge.station.event_magnitude)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, read
from obspy.signal.trigger import ar_pick as obspy_ar_pick
from scipy.signal import detrend as scipy_detrend

from edge.signal import arpick
from edge.station.event_magnitude import AR_PICK_WINDOWS


def _zne(st: Stream) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    by = {tr.stats.channel[-1]: tr for tr in st}
    m = min(len(tr.data) for tr in by.values())
    z, n, e = (np.ascontiguousarray(by[c].data[:m], dtype=np.float32) for c in "ZNE")
    return z, n, e, float(by["Z"].stats.sampling_rate)


def _recordings(obspy_data: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """RJOB (``obspy.read()``, 100 Hz), RJOB of 2005-08-01 (ObsPy's ar_pick example, 200 Hz)
    and UH3 (50 Hz), each as float32 Z, N, E and the rate."""
    loc = [np.loadtxt(obspy_data / f"loc_RJOB20050801145719850.{c}", dtype=np.float32) for c in "zne"]
    uh3 = Stream()
    for c in "ZNE":
        uh3 += read(str(obspy_data / f"BW.UH3._.SH{c}.D.2010.147.cut.slist.gz"))
    return {"RJOB": _zne(read()), "loc_RJOB": (*loc, 200.0), "UH3": _zne(uh3)}


def test_private_lapack_module_loads() -> None:
    """scipy's compiled LAPACK module is where arpick expects it (else the public, heavier
    scipy.linalg is used: same results, +26 MB on the station)."""
    assert arpick.PRIVATE_LAPACK


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_detrend_linear_equals_scipy(obspy_data: Path, dtype) -> None:
    for z, n, e, _ in _recordings(obspy_data).values():
        for x in (z, n, e, z[:777]):
            x = x.astype(dtype)
            got, want = arpick.detrend_linear(x), scipy_detrend(x, type="linear")
            assert got.dtype == want.dtype
            assert np.abs(got).max() > 0
            np.testing.assert_array_equal(got, want)


def test_ar_pick_equals_obspy_bit_for_bit(obspy_data: Path) -> None:
    picked = 0
    for name, (z, n, e, fs) in _recordings(obspy_data).items():
        f2 = min(20.0, 0.45 * fs)  # as edge.station.event_magnitude.pick_p_s
        cuts = [slice(None), slice(int(5 * fs), int(25 * fs)), slice(0, int(8 * fs))]
        for cut in cuts:
            a, b, c = z[cut], n[cut], e[cut]
            for lta_p, sta_p, lta_s, sta_s in AR_PICK_WINDOWS:
                for s_pick in (True, False):
                    args = (fs, 1.0, f2, lta_p, sta_p, lta_s, sta_s, 2, 8, 0.1, 0.2)
                    want = obspy_ar_pick(a, b, c, *args, s_pick=s_pick)
                    got = arpick.ar_pick(a, b, c, *args, s_pick=s_pick)
                    assert got == want, (name, cut, lta_p, s_pick)
                    picked += want[0] > 0 and want[1] > want[0]
        assert np.array_equal(z, _recordings(obspy_data)[name][0])  # inputs left as they were
    assert picked >= 6  # real P and S picks among them, not only zeros


def test_ar_pick_small_amplitudes_are_scaled_as_obspy(obspy_data: Path) -> None:
    """Velocity-sized data (m/s, far below 100): both scale to 1e6 before the C picker."""
    z, n, e, fs = _recordings(obspy_data)["loc_RJOB"]
    a, b, c = (x * np.float32(1e-9) for x in (z, n, e))
    args = (fs, 1.0, 20.0, 1.0, 0.1, 4.0, 1.0, 2, 8, 0.1, 0.2)
    assert arpick.ar_pick(a, b, c, *args) == obspy_ar_pick(a, b, c, *args)


def test_ar_pick_rejects_components_of_different_lengths() -> None:
    x = np.zeros(100, dtype=np.float32)
    with pytest.raises(ValueError, match="same length"):
        arpick.ar_pick(x, x, x[:50], 100.0, 1.0, 20.0, 1.0, 0.1, 4.0, 1.0, 2, 8, 0.1, 0.2)
