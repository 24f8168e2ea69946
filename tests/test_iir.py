"""edge.signal.iir (Butterworth design in numpy, scipy's sosfilt kernel loaded without
``scipy.signal``) and edge.trigger.clib (ObsPy's C library without ``obspy.signal``) against
scipy and ObsPy themselves, on a real recording; and the station's imports without either
package init (what halves its memory: docs/performance.md)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, read
from obspy.signal.filter import bandpass as obspy_bandpass
from obspy.signal.filter import highpass as obspy_highpass
from obspy.signal.trigger import classic_sta_lta
from scipy.signal import iirfilter, sosfilt

from edge.signal import iir
from edge.trigger.clib import clibsignal, head_stalta_t

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def uh1(obspy_data: Path) -> Trace:
    return read(str(obspy_data / "BW.UH1._.SHZ.D.2010.147.cut.slist.gz"))[0]


@pytest.mark.parametrize("corners", [1, 2, 3, 4, 5, 8])
def test_butter_sos_equals_scipy_iirfilter(corners: int) -> None:
    for wn in [(0.008, 0.16), (0.01, 0.2), (0.04, 0.4), (0.2, 0.9), (0.4, 0.45)]:
        got = iir.butter_sos(corners, wn, "band")
        want = iirfilter(corners, list(wn), btype="band", ftype="butter", output="sos")
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    for w in (0.008, 0.3, 0.9):
        for btype in ("highpass", "lowpass"):
            got = iir.butter_sos(corners, w, btype)
            want = iirfilter(corners, w, btype=btype, ftype="butter", output="sos")
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_butter_sos_is_cached_and_returns_writable_copies() -> None:
    a = iir.butter_sos(4, (0.1, 0.3), "band")
    a[0, 0] = 99.0  # a caller's copy: the cached design is untouched
    b = iir.butter_sos(4, (0.1, 0.3), "band")
    assert b[0, 0] != 99.0 and b.flags.writeable
    np.testing.assert_array_equal(b, iirfilter(4, [0.1, 0.3], btype="band", ftype="butter", output="sos"))
    with pytest.raises(ValueError, match="wn"):
        iir.butter_sos(4, (0.3, 0.1), "band")
    with pytest.raises(ValueError, match="wn"):
        iir.butter_sos(4, 1.0, "highpass")


def test_private_kernel_loaded_and_equal_to_public_sosfilt(uh1: Trace) -> None:
    """Fail loudly when scipy moves its kernel (the fallback is correct but imports all of
    scipy.signal: +75 MB on the station)."""
    assert iir.PRIVATE_KERNEL, "scipy/signal/_sosfilt.* is gone: re-measure the station's memory"
    x = uh1.data.astype(np.float64)
    sos = iir.butter_sos(4, (0.4, 0.8), "band")
    np.testing.assert_array_equal(iir.sosfilt(sos, x), sosfilt(sos, x))
    # carried state: two halves equal the whole
    zi = np.zeros((len(sos), 2))
    halves = np.concatenate([iir.sosfilt(sos, x[:1000], zi), iir.sosfilt(sos, x[1000:], zi)])
    np.testing.assert_array_equal(halves, sosfilt(sos, x))


@pytest.mark.parametrize("zerophase", [False, True])
def test_bandpass_and_highpass_equal_obspy_bit_for_bit(uh1: Trace, zerophase: bool) -> None:
    fs = uh1.stats.sampling_rate
    np.testing.assert_array_equal(iir.bandpass(uh1.data, 2.0, 20.0, fs, 4, zerophase),
                                  obspy_bandpass(uh1.data, 2.0, 20.0, fs, 4, zerophase))
    np.testing.assert_array_equal(iir.highpass(uh1.data, 1.0, fs, 4, zerophase),
                                  obspy_highpass(uh1.data, 1.0, fs, 4, zerophase))
    with pytest.warns(UserWarning):  # ObsPy high-passes at freqmin above Nyquist; so do we
        want = obspy_bandpass(uh1.data, 2.0, 30.0, fs, 4, zerophase)
    np.testing.assert_array_equal(iir.bandpass(uh1.data, 2.0, 30.0, fs, 4, zerophase), want)
    with pytest.raises(ValueError, match="above Nyquist"):
        iir.bandpass(uh1.data, 30.0, 40.0, fs)


def test_clib_stalta_equals_obspy_classic_sta_lta(uh1: Trace) -> None:
    """ObsPy's private loader still gives its C library with ``stalta`` as declared here."""
    x = np.ascontiguousarray(uh1.data, dtype=np.float64)
    nsta, nlta = 25, 500
    head = np.zeros(1, dtype=head_stalta_t)
    head["N"], head["nsta"], head["nlta"] = x.size, nsta, nlta
    out = np.empty(x.size)
    assert clibsignal.stalta(head, x, out) == 0
    want = classic_sta_lta(x, nsta, nlta)
    assert np.any(want > 3.0)  # the recording has events: not a comparison of zeros
    np.testing.assert_array_equal(out, want)


def test_station_imports_neither_scipy_signal_nor_obspy_signal() -> None:
    """``microseis run``'s modules load without the package inits that pull matplotlib and
    all of scipy (a fresh interpreter: this test process has imported both)."""
    code = ("import sys, json, edge.cli.run, edge.station.daemon, edge.station.assemble, "
            "edge.station.event_magnitude, edge.signal.aic; "
            "print(json.dumps(sorted(m for m in ('scipy.signal', 'obspy.signal', 'matplotlib', "
            "'scipy.stats', 'scipy.fft', 'scipy.linalg') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

