"""Sensor catalogue of the site generator: poles/zeros, sensitivities and self-noise of the
instruments a real station on a slope or in a cave is built from, as ObsPy ``Response``s.

=================  ===========================================================================
``geophone-4.5``   4.5 Hz geophone (SM-6-like, the sensor of :mod:`.response`): f0 4.5 Hz,
                   damping 0.7 (shunted), 28.8 V/(m/s); poles ``-h w0 +- i w0 sqrt(1-h^2)``, two
                   zeros at 0; a 24-bit digitizer (2^23 counts / 10 V) with a pre-amplifier
                   gain of 8-128. Sensitivity quoted at 10 Hz. SEED instrument code ``P``.
``geophone-10``    10 Hz geophone (SM-24-like, 1339 ohm shunt): f0 10 Hz, damping 0.69,
                   20.9 V/(m/s); same digitizer. Sensitivity quoted at 20 Hz. Code ``P``.
``broadband``      120 s broadband velocity sensor (Trillium Compact 120 s, the published
                   7-pole / 3-zero response: zeros 0, 0, -434.1; poles -0.03691 +- 0.03712i,
                   -371.2, -373.9 +- 475.5i, -588.4 +- 1508i rad/s), 749.1 V/(m/s), normalised
                   at 1 Hz; digitizer gain 1. Code ``H``, broadband band codes (H/C/F).
``mems``           MEMS accelerometer like a Raspberry Shake's EN channels (ADXL355-class:
                   +-2 g over 20 bits, 256 000 LSB/g = 26 104 counts/(m/s^2), self-noise
                   25 ug/sqrt(Hz) white in acceleration): flat in acceleration up to a
                   2-pole Butterworth low-pass at 0.4 x the sampling rate (the sensor's
                   output filter, given as an analog stage). Digital: the sensor writes
                   counts, there is no pre-amplifier. Code ``N``, input units ``M/S**2``.
=================  ===========================================================================

The ``Response`` built here goes into the site's StationXML *and* turns ground velocity into
counts in :mod:`.continuous` (``get_evalresp_response(output="VEL")``, which also converts an
acceleration sensor to velocity input), so ``remove_response`` with the written file is the
exact inverse in the passband, for every instrument.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from .response import (
    ADC_COUNTS_PER_VOLT,
    GEOPHONE_DAMPING,
    GEOPHONE_FREQ_HZ,
    GEOPHONE_GENERATOR_V_PER_M_S,
    band_code,
)

__all__ = ["INSTRUMENTS", "Instrument", "build_instrument_response", "channel_codes_for"]

G = 9.80665  # m/s^2


@dataclass(frozen=True)
class Instrument:
    """One sensor model (+ its recorder). Units: V/(m/s) for an analog velocity sensor,
    counts/(m/s^2) for a digital accelerometer; rad/s for poles and zeros."""

    name: str
    description: str
    kind: str  # "geophone" | "broadband" | "accelerometer"
    input_units: str  # "M/S" or "M/S**2"
    zeros: tuple[complex, ...]
    poles: tuple[complex, ...]
    #: frequency (Hz) at which A0 normalises the poles/zeros to 1 and the sensitivity is quoted
    norm_freq_hz: float
    #: V/(m/s) (analog) or counts/(m/s^2) (digital) at ``norm_freq_hz``
    sensor_gain: float
    digital: bool
    #: pre-amplifier gains (V/V) a site may use; the site picks one for its noise level
    preamp_gains: tuple[float, ...]
    #: full scale of the recorder, counts (clipping level)
    full_scale_counts: int
    instrument_code: str  # SEED: P geophone, H high-gain seismometer, N accelerometer
    long_period: bool  # corner period >= 10 s: broadband band codes
    #: white self-noise in acceleration, (m/s^2)/sqrt(Hz); 0 = below any site's ground noise
    self_noise_acc: float = 0.0
    #: white digitizer noise, counts rms (0.6 counts ~ 0.7 uV for a 24-bit, 10 V digitizer)
    digitizer_noise_counts: float = 0.6
    #: low-pass corner of a digital sensor as a fraction of the sampling rate (None: none)
    lowpass_fraction: float | None = None

    def poles_at(self, sampling_rate: float) -> list[complex]:
        """Poles (rad/s) including a rate-dependent output low-pass, if any."""
        poles = list(self.poles)
        if self.lowpass_fraction:
            wc = 2.0 * math.pi * self.lowpass_fraction * float(sampling_rate)
            poles += [wc * complex(-math.sqrt(0.5), math.sqrt(0.5)),
                      wc * complex(-math.sqrt(0.5), -math.sqrt(0.5))]
        return poles


def _geophone_poles(f0: float, h: float) -> tuple[complex, ...]:
    w0 = 2.0 * math.pi * f0
    return (complex(-h * w0, w0 * math.sqrt(1 - h * h)), complex(-h * w0, -w0 * math.sqrt(1 - h * h)))


_ADC24 = 2 ** 23
_GEOPHONE_GAINS = (8.0, 16.0, 32.0, 64.0, 128.0)

INSTRUMENTS: dict[str, Instrument] = {
    "geophone-4.5": Instrument(
        name="geophone-4.5", description="4.5 Hz geophone (SM-6-like), damping 0.7, 28.8 V/(m/s)",
        kind="geophone", input_units="M/S", zeros=(0j, 0j),
        poles=_geophone_poles(GEOPHONE_FREQ_HZ, GEOPHONE_DAMPING), norm_freq_hz=10.0,
        sensor_gain=GEOPHONE_GENERATOR_V_PER_M_S, digital=False, preamp_gains=_GEOPHONE_GAINS,
        full_scale_counts=_ADC24, instrument_code="P", long_period=False),
    "geophone-10": Instrument(
        name="geophone-10", description="10 Hz geophone (SM-24-like, shunted), damping 0.69, 20.9 V/(m/s)",
        kind="geophone", input_units="M/S", zeros=(0j, 0j), poles=_geophone_poles(10.0, 0.69),
        norm_freq_hz=20.0, sensor_gain=20.9, digital=False, preamp_gains=_GEOPHONE_GAINS,
        full_scale_counts=_ADC24, instrument_code="P", long_period=False),
    "broadband": Instrument(
        name="broadband", description="120 s broadband velocity sensor (Trillium Compact 120 s), 749.1 V/(m/s)",
        kind="broadband", input_units="M/S", zeros=(0j, 0j, complex(-434.1, 0.0)),
        poles=(complex(-0.03691, 0.03712), complex(-0.03691, -0.03712), complex(-371.2, 0.0),
               complex(-373.9, 475.5), complex(-373.9, -475.5), complex(-588.4, 1508.0),
               complex(-588.4, -1508.0)),
        norm_freq_hz=1.0, sensor_gain=749.1, digital=False, preamp_gains=(1.0,),
        full_scale_counts=_ADC24, instrument_code="H", long_period=True),
    "mems": Instrument(
        name="mems", description="MEMS accelerometer (Raspberry Shake EN-like, ADXL355-class), "
                                 "26104 counts/(m/s^2), 25 ug/sqrt(Hz)",
        kind="accelerometer", input_units="M/S**2", zeros=(), poles=(), norm_freq_hz=1.0,
        sensor_gain=256000.0 / G, digital=True, preamp_gains=(1.0,), full_scale_counts=2 ** 19,
        instrument_code="N", long_period=False, self_noise_acc=25e-6 * G,
        digitizer_noise_counts=0.0, lowpass_fraction=0.4),
}


def _band_code(inst: Instrument, sampling_rate: float) -> str:
    if not inst.long_period:
        return band_code(sampling_rate)
    if sampling_rate >= 1000:
        return "F"
    if sampling_rate >= 250:
        return "C"
    return "H"


def channel_codes_for(inst: Instrument, sampling_rate: float) -> tuple[str, str, str]:
    """SEED channel codes for Z, N, E (e.g. ``DPZ``, ``HHZ``, ``ENZ``)."""
    b = _band_code(inst, sampling_rate) + inst.instrument_code
    return (f"{b}Z", f"{b}N", f"{b}E")


def _a0(zeros: list[complex], poles: list[complex], f: float) -> float:
    s = 2j * math.pi * f
    num = complex(1.0)
    for z in zeros:
        num *= s - z
    den = complex(1.0)
    for p in poles:
        den *= s - p
    return 1.0 / abs(num / den)


@lru_cache(maxsize=64)
def build_instrument_response(name: str, preamp_gain: float, sampling_rate: float):
    """ObsPy ``Response`` (ground motion -> COUNTS) of instrument ``name`` at ``sampling_rate``.

    Analog sensors: PZ stage (input units -> V, stage gain = the generator constant at
    ``norm_freq_hz``), pre-amplifier (V -> V), 24-bit ADC (V -> COUNTS, 838 860.8 counts/V).
    Digital accelerometer: PZ stage (M/S**2 -> COUNTS) and a unity digital stage carrying the
    sampling rate. Cached; treat the returned object as read-only.
    """
    from obspy.core.inventory.response import (
        CoefficientsTypeResponseStage,
        InstrumentSensitivity,
        PolesZerosResponseStage,
        Response,
        ResponseStage,
    )

    inst = INSTRUMENTS[name]
    fn = inst.norm_freq_hz
    zeros = list(inst.zeros)
    poles = inst.poles_at(sampling_rate)
    a0 = _a0(zeros, poles, fn)
    unit_desc = {"M/S": "Velocity in meters per second",
                 "M/S**2": "Acceleration in meters per second squared"}[inst.input_units]
    if inst.digital:
        st1 = PolesZerosResponseStage(
            1, inst.sensor_gain, fn, inst.input_units, "COUNTS",
            pz_transfer_function_type="LAPLACE (RADIANS/SECOND)", normalization_frequency=fn,
            zeros=zeros, poles=poles, normalization_factor=a0,
            input_units_description=unit_desc, output_units_description="Digital counts",
            name=inst.name)
        st2 = CoefficientsTypeResponseStage(
            2, 1.0, fn, "COUNTS", "COUNTS", cf_transfer_function_type="DIGITAL",
            numerator=[], denominator=[], decimation_input_sample_rate=float(sampling_rate),
            decimation_factor=1, decimation_offset=0, decimation_delay=0.0,
            decimation_correction=0.0, name="output")
        stages = [st1, st2]
        total = inst.sensor_gain
    else:
        st1 = PolesZerosResponseStage(
            1, inst.sensor_gain, fn, inst.input_units, "V",
            pz_transfer_function_type="LAPLACE (RADIANS/SECOND)", normalization_frequency=fn,
            zeros=zeros, poles=poles, normalization_factor=a0,
            input_units_description=unit_desc, output_units_description="Volts", name=inst.name)
        st2 = ResponseStage(2, float(preamp_gain), fn, "V", "V", name="preamplifier")
        st3 = CoefficientsTypeResponseStage(
            3, ADC_COUNTS_PER_VOLT, fn, "V", "COUNTS", cf_transfer_function_type="DIGITAL",
            numerator=[], denominator=[], decimation_input_sample_rate=float(sampling_rate),
            decimation_factor=1, decimation_offset=0, decimation_delay=0.0,
            decimation_correction=0.0, name="24-bit ADC")
        stages = [st1, st2, st3]
        total = inst.sensor_gain * float(preamp_gain) * ADC_COUNTS_PER_VOLT
    sens = InstrumentSensitivity(total, fn, inst.input_units, "COUNTS",
                                 input_units_description=unit_desc,
                                 output_units_description="Digital counts")
    return Response(instrument_sensitivity=sens, response_stages=stages)
