"""ObsPy's compiled signal library (``obspy/lib/libsignal``) without ``import obspy.signal``.

``obspy.signal``'s package init imports ``spectral_estimation``, which imports matplotlib
and all of scipy.signal (+37 MB resident on the station, docs/performance.md). The trigger
needs one C function of that library, the classic STA/LTA (``stalta``). This module loads the
library with ObsPy's own loader and declares that function's argument types exactly as
``obspy/signal/headers.py`` does.

``obspy.core.util.libnames._load_cdll`` is private ObsPy API (the helper ObsPy's headers use
themselves); tests/test_iir.py fails loudly when it moves or the functions change, and
compare the results with ``obspy.signal.trigger`` bit for bit on real recordings.
"""
from __future__ import annotations

import ctypes as C

import numpy as np
from obspy.core.util.libnames import _load_cdll

__all__ = ["clibsignal", "head_stalta_t"]

#: ObsPy's libsignal (a ctypes CDLL), the same library ``obspy.signal.headers`` loads
clibsignal = _load_cdll("signal")

#: header of ``stalta``: sample count and window lengths (samples), as in obspy.signal.headers
head_stalta_t = np.dtype([("N", np.uint32), ("nsta", np.uint32), ("nlta", np.uint32)], align=True)

_f64 = np.ctypeslib.ndpointer(dtype=np.float64, ndim=1, flags="C_CONTIGUOUS")

# int stalta(headS *head, double *data, double *charfct)
clibsignal.stalta.argtypes = [np.ctypeslib.ndpointer(dtype=head_stalta_t, ndim=1, flags="C_CONTIGUOUS"),
                              _f64, _f64]
clibsignal.stalta.restype = C.c_int


