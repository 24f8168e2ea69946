"""The ML chain without the package inits of ``obspy.signal`` and ``scipy.signal``
(edge.signal.seismometer, edge.signal.iir.sosfiltfilt, edge.signal.instrument's FFT) against
ObsPy and scipy themselves on real recordings, and a station-like ML computation in a fresh
interpreter that loads neither (docs/performance.md, "Half the memory")."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
from obspy import Trace, read
from obspy.signal.invsim import cosine_taper as obspy_cosine_taper
from obspy.signal.invsim import paz_to_freq_resp as obspy_paz_to_freq_resp
from obspy.signal.invsim import simulate_seismometer as obspy_simulate
from obspy.signal.util import _npts2nfft
from scipy.signal import sosfilt_zi as scipy_sosfilt_zi
from scipy.signal import sosfiltfilt as scipy_sosfiltfilt

from edge.signal import iir, instrument, seismometer
from edge.signal.magnitude import WOOD_ANDERSON_PAZ, wood_anderson_displacement

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def velocities(obspy_data: Path) -> list[Trace]:
    """RJOB's three components (100 Hz) and UH1 (200 Hz) as velocity-sized float64 (m/s)."""
    out = []
    for tr in [*read(), read(str(obspy_data / "BW.UH1._.SHZ.D.2010.147.cut.slist.gz"))[0]]:
        tr.data = tr.data.astype(np.float64) * 1e-9
        out.append(tr)
    return out


def test_npts2nfft_and_cosine_taper_equal_obspy() -> None:
    for n in [*range(2, 300), 2499, 2500, 2501, 4999, 7777, 30001, 900014, 900015]:
        assert seismometer.npts2nfft(n) == _npts2nfft(n), n
    for n in (7, 10, 101, 3000, 7501):
        for p in (0.0, 0.05, 0.1, 0.5, 1.0):
            np.testing.assert_array_equal(seismometer.cosine_taper(n, p), obspy_cosine_taper(n, p))


def test_paz_to_freq_resp_equals_obspy() -> None:
    paz = WOOD_ANDERSON_PAZ
    for t_samp, nfft in ((0.01, 1000), (0.004, 6002), (0.02, 60000)):
        got = seismometer.paz_to_freq_resp(paz["poles"], paz["zeros"], paz["gain"], t_samp, nfft)
        want = obspy_paz_to_freq_resp(paz["poles"], paz["zeros"], paz["gain"], t_samp, nfft)
        np.testing.assert_array_equal(got, want)


def test_wood_anderson_simulation_equals_obspy(velocities: list[Trace]) -> None:
    for tr in velocities:
        fs = tr.stats.sampling_rate
        for x in (tr.data, tr.data[: int(8 * fs) + 1]):
            want = obspy_simulate(x, fs, paz_remove=None, paz_simulate=WOOD_ANDERSON_PAZ,
                                  remove_sensitivity=False, simulate_sensitivity=True,
                                  zero_mean=True, taper=True, taper_fraction=0.05)
            got = seismometer.simulate_seismometer(x, fs, WOOD_ANDERSON_PAZ)
            assert np.abs(want).max() > 0
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_sosfiltfilt_equals_scipy(velocities: list[Trace]) -> None:
    for tr in velocities:
        x, fs = tr.data, tr.stats.sampling_rate
        for corners, wn, btype in ((4, 1.0 / (fs / 2), "highpass"), (4, (1 / (fs / 2), 20 / (fs / 2)), "band"),
                                   (3, 0.3, "lowpass")):
            sos = iir.butter_sos(corners, wn, btype)
            np.testing.assert_array_equal(iir.sosfilt_zi(sos), scipy_sosfilt_zi(sos))
            for padlen in (None, 0, 300, x.size - 1):
                np.testing.assert_array_equal(iir.sosfiltfilt(sos, x, padlen=padlen),
                                              scipy_sosfiltfilt(sos, x, padlen=padlen))
        with pytest.raises(ValueError, match="padlen"):
            iir.sosfiltfilt(sos, x[:10], padlen=10)


def test_wood_anderson_displacement_equals_the_obspy_scipy_chain(velocities: list[Trace]) -> None:
    """What ML computed before (scipy's sosfiltfilt, then ObsPy's simulation)."""
    for tr in velocities:
        fs = tr.stats.sampling_rate
        x = tr.data - tr.data.mean()
        sos = iir.butter_sos(4, 1.0 / (fs / 2), "highpass")
        hp = scipy_sosfiltfilt(sos, x, padlen=min(x.size - 1, int(3 * fs)))
        want = obspy_simulate(hp, fs, paz_remove=None, paz_simulate=WOOD_ANDERSON_PAZ,
                              remove_sensitivity=False, simulate_sensitivity=True,
                              zero_mean=True, taper=True, taper_fraction=0.05)
        got = wood_anderson_displacement(tr)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())


def test_instrument_fft_lengths_and_values_equal_scipy_fft(velocities: list[Trace]) -> None:
    """edge.signal.instrument uses numpy's FFT with scipy's fast lengths."""
    for n in range(1, 5000):
        assert instrument.next_fast_len(n) == scipy.fft.next_fast_len(n), n
    for tr in velocities:
        nfft = instrument.next_fast_len(2 * tr.data.size)
        nfft += nfft % 2
        spec = np.fft.rfft(tr.data, n=nfft)
        np.testing.assert_allclose(spec, scipy.fft.rfft(tr.data, n=nfft), rtol=1e-12, atol=1e-12 * np.abs(spec).max())
        np.testing.assert_allclose(np.fft.irfft(spec, n=nfft), scipy.fft.irfft(spec, n=nfft), rtol=1e-12,
                                   atol=1e-12 * np.abs(tr.data).max())


def test_ml_with_a_flat_sensitivity_loads_neither_package_init() -> None:
    """A station's ML (picks, high-pass, Wood-Anderson) in a fresh interpreter: it gives a
    magnitude and leaves obspy.signal, scipy.signal, scipy.linalg, scipy.fft and matplotlib
    unloaded (this test process has imported them all)."""
    code = ("import sys, json\n"
            "from obspy import read\n"
            "from edge.station.event_magnitude import event_ml\n"
            "st = read()\n"
            "p = st[0].stats.starttime + 4.7\n"
            "res = event_ml(st.slice(p - 2, p + 6), sensitivity=1.0e9)\n"
            "heavy = ('obspy.signal', 'scipy.signal', 'scipy.linalg', 'scipy.fft', 'scipy.stats', 'matplotlib')\n"
            "print(json.dumps({'ml': res.ml, 'method': res.method, "
            "'loaded': sorted(m for m in heavy if m in sys.modules)}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ml"] is not None and got["method"] == "S-P", got
    assert got["loaded"] == [], got
