"""Station response: a 4.5 Hz geophone and a 24-bit digitizer, as StationXML and as a filter.

Each synthetic station ``XX.S<k>`` has three channels (``DPZ``, ``DPN``, ``DPE`` at 250 Hz: SEED
band code ``D`` = 250-1000 Hz short period, instrument code ``P`` = geophone) with the chain

1. **geophone** (SM-6-like): natural frequency 4.5 Hz, damping 0.7 (shunted), generator
   constant 28.8 V/(m/s) above resonance; poles ``-h w0 +- i w0 sqrt(1-h^2)``, two zeros at
   the origin (velocity in, volts out). The stage gain is given at 10 Hz (28.34 V/(m/s)), A0
   normalises the poles and zeros to 1 there.
2. **pre-amplifier** of the digitizer, gain-only stage (V/V): 32, 16 or 64 by station.
3. **24-bit ADC**: ``2**23`` counts over 10 V, i.e. 838 860.8 counts/V.

Overall sensitivity at 10 Hz: 7.607e8 counts/(m/s) for gain 32. Waveforms are synthesised as
ground velocity and passed through the *same* ObsPy ``Response`` object that is written to
``stations.xml`` (frequency-domain multiplication), so ``remove_response`` with that file is
the exact inverse in the passband.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "ADC_COUNTS_PER_VOLT",
    "ADC_FULL_SCALE_COUNTS",
    "GEOPHONE_DAMPING",
    "GEOPHONE_FREQ_HZ",
    "GEOPHONE_GENERATOR_V_PER_M_S",
    "SENSITIVITY_FREQ_HZ",
    "StationSpec",
    "apply_response",
    "band_code",
    "build_inventory",
    "build_response",
    "channel_codes",
    "station_specs",
]

GEOPHONE_FREQ_HZ = 4.5
GEOPHONE_DAMPING = 0.7
GEOPHONE_GENERATOR_V_PER_M_S = 28.8
SENSITIVITY_FREQ_HZ = 10.0
ADC_BITS = 24
ADC_FULL_SCALE_V = 10.0
ADC_FULL_SCALE_COUNTS = 2 ** (ADC_BITS - 1)  # 8 388 608
ADC_COUNTS_PER_VOLT = ADC_FULL_SCALE_COUNTS / ADC_FULL_SCALE_V  # 838 860.8
PREAMP_GAINS = (32.0, 16.0, 64.0)
# Bossea cave area (Frabosa Soprana, NW Italy), elevation ~ 850 m; offsets per station.
_BASE_LAT, _BASE_LON, _BASE_ELEV = 44.2405, 7.8395, 850.0


@dataclass(frozen=True)
class StationSpec:
    network: str
    station: str
    preamp_gain: float
    latitude: float
    longitude: float
    elevation: float
    location: str = "00"

    @property
    def nslc_prefix(self) -> str:
        return f"{self.network}.{self.station}.{self.location}"

    @property
    def net_sta(self) -> str:
        return f"{self.network}.{self.station}"


def station_specs(n_stations: int, network: str = "XX") -> list[StationSpec]:
    """Stations ``S1..Sn``: pre-amplifier gains cycle through 32, 16, 64."""
    out = []
    for k in range(n_stations):
        out.append(StationSpec(
            network=network,
            station=f"S{k + 1}",
            preamp_gain=PREAMP_GAINS[k % len(PREAMP_GAINS)],
            latitude=round(_BASE_LAT + 0.0009 * math.cos(2.1 * k) * (k > 0), 6),
            longitude=round(_BASE_LON + 0.0012 * math.sin(2.1 * k) * (k > 0), 6),
            elevation=_BASE_ELEV + 15.0 * k,
        ))
    return out


def band_code(sampling_rate: float) -> str:
    """SEED band code of a short-period (corner < 10 s) sensor at ``sampling_rate``."""
    if sampling_rate >= 1000:
        return "G"
    if sampling_rate >= 250:
        return "D"
    if sampling_rate >= 80:
        return "E"
    return "S"


def channel_codes(sampling_rate: float) -> tuple[str, str, str]:
    """Channel codes for Z, N, E of a geophone (instrument code ``P``)."""
    b = band_code(sampling_rate)
    return (f"{b}PZ", f"{b}PN", f"{b}PE")


def _geophone_poles() -> list[complex]:
    w0 = 2.0 * math.pi * GEOPHONE_FREQ_HZ
    h = GEOPHONE_DAMPING
    return [complex(-h * w0, w0 * math.sqrt(1 - h * h)), complex(-h * w0, -w0 * math.sqrt(1 - h * h))]


def build_response(preamp_gain: float, sampling_rate: float):
    """ObsPy ``Response`` (M/S -> COUNTS) of geophone + pre-amplifier + ADC."""
    from obspy.core.inventory.response import (
        CoefficientsTypeResponseStage,
        InstrumentSensitivity,
        PolesZerosResponseStage,
        Response,
        ResponseStage,
    )

    poles = _geophone_poles()
    zeros = [0j, 0j]
    fn = SENSITIVITY_FREQ_HZ
    s = 2j * math.pi * fn
    h_raw = abs(s * s / ((s - poles[0]) * (s - poles[1])))  # -> 1 above resonance
    a0 = 1.0 / h_raw
    g1 = GEOPHONE_GENERATOR_V_PER_M_S * h_raw
    st1 = PolesZerosResponseStage(
        1, g1, fn, "M/S", "V",
        pz_transfer_function_type="LAPLACE (RADIANS/SECOND)",
        normalization_frequency=fn, zeros=zeros, poles=poles, normalization_factor=a0,
        input_units_description="Velocity in meters per second",
        output_units_description="Volts",
        name="geophone 4.5 Hz",
    )
    st2 = ResponseStage(
        2, float(preamp_gain), fn, "V", "V",
        input_units_description="Volts", output_units_description="Volts",
        name="preamplifier",
    )
    st3 = CoefficientsTypeResponseStage(
        3, ADC_COUNTS_PER_VOLT, fn, "V", "COUNTS",
        cf_transfer_function_type="DIGITAL", numerator=[], denominator=[],
        decimation_input_sample_rate=float(sampling_rate), decimation_factor=1,
        decimation_offset=0, decimation_delay=0.0, decimation_correction=0.0,
        input_units_description="Volts", output_units_description="Digital counts",
        name="24-bit ADC",
    )
    sens = InstrumentSensitivity(
        g1 * float(preamp_gain) * ADC_COUNTS_PER_VOLT, fn, "M/S", "COUNTS",
        input_units_description="Velocity in meters per second",
        output_units_description="Digital counts",
    )
    return Response(instrument_sensitivity=sens, response_stages=[st1, st2, st3])


def build_inventory(stations: list[StationSpec], sampling_rate: float, start_time: str):
    """ObsPy ``Inventory`` of the synthetic network (write with ``format="STATIONXML"``)."""
    from obspy import UTCDateTime
    from obspy.core.inventory import Channel, Equipment, Inventory, Network, Site, Station

    t0 = UTCDateTime(start_time) - 365 * 86400
    codes = channel_codes(sampling_rate)
    orient = {"Z": (0.0, -90.0), "N": (0.0, 0.0), "E": (90.0, 0.0)}
    nets: dict[str, Network] = {}
    for spec in stations:
        chans = []
        for code in codes:
            az, dip = orient[code[-1]]
            chans.append(Channel(
                code=code, location_code=spec.location,
                latitude=spec.latitude, longitude=spec.longitude,
                elevation=spec.elevation, depth=0.0, azimuth=az, dip=dip,
                sample_rate=float(sampling_rate), start_date=t0,
                sensor=Equipment(type="Geophone", description="4.5 Hz geophone, 28.8 V/(m/s), damping 0.7 (synthetic)"),
                data_logger=Equipment(type="Digitizer",
                                      description=f"24-bit digitizer, preamp gain {spec.preamp_gain:g} (synthetic)"),
                response=build_response(spec.preamp_gain, sampling_rate),
            ))
        sta = Station(
            code=spec.station, latitude=spec.latitude, longitude=spec.longitude,
            elevation=spec.elevation, start_date=t0, channels=chans,
            site=Site(name=f"Synthetic station {spec.station}"),
            creation_date=t0,
        )
        nets.setdefault(spec.network, Network(
            code=spec.network, stations=[], start_date=t0,
            description="microseis-edge synthetic benchmark network",
        )).stations.append(sta)
    # A fixed creation time keeps stations.xml byte-identical between runs.
    return Inventory(networks=list(nets.values()), source="microseis-edge synth",
                     created=UTCDateTime(start_time))


@lru_cache(maxsize=64)
def _response_spectrum(preamp_gain: float, sampling_rate: float, nfft: int) -> np.ndarray:
    resp = build_response(preamp_gain, sampling_rate)
    spec, _freqs = resp.get_evalresp_response(t_samp=1.0 / sampling_rate, nfft=nfft, output="VEL")
    spec = np.asarray(spec, dtype=np.complex128)
    spec.setflags(write=False)
    return spec


def apply_response(velocity: np.ndarray, preamp_gain: float, sampling_rate: float) -> np.ndarray:
    """Counts (float) recorded for ground velocity ``velocity`` (m/s), shape ``(..., n)``.

    Frequency-domain product with the instrument response over a circular FFT of length
    ``n``: give the input a few seconds of lead-in that the caller discards (the geophone's
    impulse response decays in ~0.1 s), so nothing wraps into the kept part.
    """
    from scipy.fft import irfft, rfft

    n = velocity.shape[-1]
    nfft = 1 << max(10, int(math.ceil(math.log2(n))))  # few distinct sizes: cached responses
    x = np.zeros(velocity.shape[:-1] + (nfft,))
    # Put the data at the END of the FFT buffer so that wrap-around lands in the lead-in
    # (start), never in the kept data.
    x[..., nfft - n:] = velocity
    spec = rfft(x, axis=-1) * _response_spectrum(float(preamp_gain), float(sampling_rate), nfft)
    return irfft(spec, n=nfft, axis=-1)[..., nfft - n:]
