"""Digitizer link: the serial frame protocol of ``docs/spec/digitizer-frame.md``.

This package depends on nothing else of microseis-edge. It holds:

* :mod:`firmware_bridge.protocol` – constants, CRCs and the decoded message types;
* :mod:`firmware_bridge.encoder` – the Python encoder (simulator and tests);
* :mod:`firmware_bridge.decoder` – the incremental, never-raising decoder;
* :mod:`firmware_bridge.serial_reader` – pyserial reader that survives unplugging;
* :mod:`firmware_bridge.simulator` – a virtual digitizer on a pseudo-terminal;
* :mod:`firmware_bridge.faults` – fault injection for the simulator;
* :mod:`firmware_bridge.link_monitor` – per-channel link statistics;
* ``c/`` – the reference firmware-side encoder in C.
"""
from firmware_bridge.decoder import DecoderStats, FrameDecoder
from firmware_bridge.encoder import FrameEncoder, encode_frame, encode_samples_payload
from firmware_bridge.protocol import (
    ENC_INT16,
    ENC_INT24,
    ENC_INT32,
    LogMessage,
    SampleBlock,
    StatusMessage,
    StreamConfig,
)

__all__ = [
    "ENC_INT16",
    "ENC_INT24",
    "ENC_INT32",
    "DecoderStats",
    "FrameDecoder",
    "FrameEncoder",
    "LogMessage",
    "SampleBlock",
    "StatusMessage",
    "StreamConfig",
    "encode_frame",
    "encode_samples_payload",
]
