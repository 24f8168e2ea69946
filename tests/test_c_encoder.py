"""The reference C encoder (firmware_bridge/c/microseis_frame.[ch]) against the contract.

The C code is built with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang`` from
PATH) together with the harness ``firmware_bridge/c/tests/vector_tool.c``, which turns line
commands on stdin into frames as hex on stdout (its header comment lists the commands).
Both CRC variants are built: the default bitwise one and ``-DMSF_CRC_NIBBLE_TABLES``.

Checked: every frame of ``firmware_bridge/spec/vectors.json`` byte for byte, the CRC check values,
a few hundred random frames byte for byte against the Python encoder and decoded exactly by
the Python decoder, seq increment and wrap, rejection of bad arguments (with seq left
alone and nothing written past the buffer), and that the object file needs nothing from a
C library beyond memcpy/memset/memmove.
"""
from __future__ import annotations

import binascii
import os
import random
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.decoder import decode_bytes
from firmware_bridge.encoder import (
    FrameEncoder,
    encode_frame,
    encode_status_payload,
    max_samples_per_frame,
)
from firmware_bridge.protocol import (
    BYTES_PER_SAMPLE,
    ENC_INT16,
    ENC_INT24,
    ENC_INT32,
    ENC_RANGE,
    LogMessage,
    SampleBlock,
    StatusMessage,
)
from firmware_bridge.spec import load_vectors

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "firmware_bridge" / "c"
SOURCE = C_DIR / "microseis_frame.c"
HEADER = C_DIR / "microseis_frame.h"
HARNESS = C_DIR / "tests" / "vector_tool.c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
#: stricter warnings the library (not the harness) must also be clean under
EXTRA_WARNINGS = ["-Wconversion", "-Wsign-conversion", "-Wshadow", "-Wcast-qual",
                  "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wundef"]
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
ENCODINGS = (ENC_INT24, ENC_INT32, ENC_INT16)


def _find_compiler() -> str | None:
    env = os.environ.get("CC")
    if env and shutil.which(env.split()[0]):
        return env.split()[0]
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


CC = _find_compiler()
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc/clang) on PATH")


def _compile(args: list[str], cwd: Path) -> None:
    proc = subprocess.run([CC, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{CC} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


def _error_codes() -> dict[str, int]:
    codes = dict(re.findall(r"#define\s+MSF_ERR_(\w+)\s+\((-\d+)\)", HEADER.read_text()))
    return {name: int(value) for name, value in codes.items()}


ERR = _error_codes()


class Tool:
    """The compiled harness: ``run(lines)`` returns one answer line per command line."""

    def __init__(self, exe: Path) -> None:
        self.exe = exe

    def run(self, lines: list[str]) -> list[str]:
        proc = subprocess.run([str(self.exe)], input="\n".join(lines) + "\n",
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.splitlines()
        assert len(out) == len(lines), (lines, out)
        bad = [(cmd[:80], ans) for cmd, ans in zip(lines, out)
               if ans.startswith(("BAD", "OVERFLOW"))]
        assert not bad, bad
        return out


@pytest.fixture(scope="module", params=["bitwise", "nibble"])
def tool(request, tmp_path_factory) -> Tool:
    out = tmp_path_factory.mktemp(f"c_{request.param}")
    exe = out / "vector_tool"
    defines = ["-DMSF_CRC_NIBBLE_TABLES"] if request.param == "nibble" else []
    _compile([*CFLAGS, "-O2", *defines, f"-I{C_DIR}", str(HARNESS), str(SOURCE), "-o", str(exe)],
             out)
    return Tool(exe)


# ---- command builders ----------------------------------------------------------------------

def samples_cmd(seq, sample_index, t0_ns, rate_mhz, nch, enc, nsamp, time_flags=0,
                time_quality=0, status_flags=0, values=()) -> str:
    head = (f"S {seq} {sample_index} {t0_ns} {rate_mhz} {nch} {enc} {nsamp} "
            f"{time_flags} {time_quality} {status_flags}")
    vals = " ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
    return f"{head} {vals}".rstrip()


def text_cmd(kind: str, seq, data: bytes) -> str:
    return f"{kind} {seq} {data.hex() or '-'}"


def random_samples(rng: np.random.Generator, nsamp: int, nch: int, enc: int) -> np.ndarray:
    lo, hi = ENC_RANGE[enc]
    values = rng.integers(lo, hi, size=(nsamp, nch), endpoint=True, dtype=np.int64)
    # sprinkle the extremes and the values around zero
    flat = values.reshape(-1)
    k = max(1, flat.size // 8)
    idx = rng.integers(0, flat.size, size=k)
    flat[idx] = rng.choice(np.array([lo, hi, 0, -1, 1, lo + 1, hi - 1]), size=k)
    return values


# ---- tests ---------------------------------------------------------------------------------

def test_vectors_byte_for_byte(tool):
    vectors = load_vectors()
    assert vectors
    lines = []
    for vec in vectors:
        p, seq = vec["payload"], vec["seq"]
        if vec["type"] == 1:
            lines.append(samples_cmd(seq, p["sample_index"], p["t0_ns"], p["rate_mhz"],
                                     p["nch"], p["enc"], p["nsamp"], p["time_flags"],
                                     p["time_quality"], p["status_flags"], p["samples"]))
        elif vec["type"] == 2:
            lines.append(text_cmd("T", seq, encode_status_payload(p)))
        else:
            lines.append(text_cmd("L", seq, p.encode("utf-8")))
    for vec, got in zip(vectors, tool.run(lines)):
        assert got == vec["hex"].lower(), vec["name"]


def test_crc_check_values(tool):
    check = b"123456789"
    datas = [check, b"", b"\x00", b"\xff" * 7, bytes(range(256)), os.urandom(1000)]
    out = tool.run([f"C {d.hex() or '-'}" for d in datas])
    assert out[0] == "29b1 cbf43926"
    assert binascii.crc_hqx(check, 0xFFFF) == 0x29B1 and zlib.crc32(check) == 0xCBF43926
    for data, line in zip(datas, out):
        assert line == f"{binascii.crc_hqx(data, 0xFFFF):04x} {zlib.crc32(data):08x}"


def test_random_frames_round_trip(tool):
    rng = np.random.default_rng(20240611)
    prng = random.Random(20240611)
    seqs = [U32, U32 - 1, 0, 1]
    lines: list[str] = []
    expected: list[bytes] = []
    cases: list[tuple] = []
    for i in range(300):
        seq = prng.choice(seqs) if i % 3 == 0 else prng.randrange(0, U32 + 1)
        kind = "S" if i % 10 < 8 else ("T" if i % 2 else "L")
        if kind == "S":
            nch = prng.randint(1, 8)
            enc = ENCODINGS[i % 3]
            maxn = max_samples_per_frame(nch, enc)
            nsamp = prng.choice([1, maxn, prng.randint(1, maxn), prng.randint(1, min(maxn, 60))])
            values = random_samples(rng, nsamp, nch, enc)
            sample_index = prng.choice([0, U64, 1 << 63, prng.randrange(0, U64 + 1)])
            t0_ns = prng.choice([I64_MIN, I64_MAX, -1, 0, prng.randrange(I64_MIN, I64_MAX + 1),
                                 -prng.randrange(1, 10**18)])
            rate = prng.choice([1, U32, 250000, prng.randint(1, U32)])
            tf, tq, sf = prng.randint(0, 7), prng.randint(0, 100), prng.randint(0, 3)
            lines.append(samples_cmd(seq, sample_index, t0_ns, rate, nch, enc, nsamp,
                                     tf, tq, sf, values))
            expected.append(FrameEncoder(seq).samples(sample_index, t0_ns, rate, values,
                                                      enc, tf, tq, sf))
            cases.append(("S", seq, sample_index, t0_ns, rate, enc, tf, tq, sf, values))
        elif kind == "T":
            fields = {"fw": f"1.{i}.0", "temp_c": prng.uniform(-40, 85), "gain": prng.randint(1, 64),
                      "note": "Überwachung ✓ " * prng.randint(0, 20), f"k{i}": [i, None, True]}
            payload = encode_status_payload(fields)
            lines.append(text_cmd("T", seq, payload))
            expected.append(FrameEncoder(seq).status(fields))
            cases.append(("T", seq, fields))
        else:
            text = "".join(prng.choice("abc xyz 0123 äöü µs ⚠ 地震\t") for _ in range(prng.randint(0, 400)))
            lines.append(text_cmd("L", seq, text.encode("utf-8")))
            expected.append(FrameEncoder(seq).log(text))
            cases.append(("L", seq, text))

    out = tool.run(lines)
    frames = []
    for line, exp in zip(out, expected):
        assert not line.startswith("ERR"), line
        frame = bytes.fromhex(line)
        assert frame == exp
        frames.append(frame)

    messages, stats = decode_bytes(b"".join(frames))
    assert len(messages) == len(cases)
    assert stats.crc_errors == stats.header_errors == stats.malformed_frames == 0
    assert stats.skipped_bytes == 0 and stats.truncated_frames == 0
    for msg, case in zip(messages, cases):
        if case[0] == "S":
            _, seq, sample_index, t0_ns, rate, enc, tf, tq, sf, values = case
            assert isinstance(msg, SampleBlock)
            assert (msg.seq, msg.sample_index, msg.t0_ns, msg.rate_mhz, msg.enc) == \
                (seq, sample_index, t0_ns, rate, enc)
            assert (msg.time_flags, msg.time_quality, msg.status_flags) == (tf, tq, sf)
            assert msg.data.dtype == np.int32
            np.testing.assert_array_equal(msg.data, values.T)
        elif case[0] == "T":
            assert isinstance(msg, StatusMessage)
            assert (msg.seq, msg.fields) == (case[1], case[2])
        else:
            assert isinstance(msg, LogMessage)
            assert (msg.seq, msg.text) == (case[1], case[2])


def test_seq_increments_over_all_types_and_wraps(tool):
    one = samples_cmd(U32 - 1, 10, -5, 250000, 3, ENC_INT24, 1, values=[1, 2, 3])
    out = tool.run([
        one,
        text_cmd("L", "-", b"log"),
        text_cmd("T", "-", b'{"a":1}'),
        samples_cmd("-", 11, 3_999_995, 250000, 3, ENC_INT24, 1, values=[4, 5, 6]),
        text_cmd("F", "-", b"raw").replace("F -", "F 3 -"),
        "Q",
    ])
    assert out[-1] == "3"  # the writer now holds the seq of the next frame
    messages, stats = decode_bytes(b"".join(bytes.fromhex(h) for h in out[:-1]))
    assert [m.seq for m in messages] == [U32 - 1, U32, 0, 1, 2]
    assert stats.lost_frames == 0 and stats.seq_resets == 0
    assert messages[3].segment_reason is None  # sample_index 10 -> 11 continues the segment


def test_in_place_and_generic_frames(tool):
    text = "formatted in place ✓".encode()
    out = tool.run([text_cmd("L", 42, text), text_cmd("I", 42, text),
                    f"F 1 5 {b'raw'.hex()}", f"F 2 6 {b'{}'.hex()}", "F 3 7 -"])
    assert out[0] == out[1] == encode_frame(3, 42, text).hex()
    assert out[2] == encode_frame(1, 5, b"raw").hex()
    assert out[3] == encode_frame(2, 6, b"{}").hex()
    assert out[4] == encode_frame(3, 7, b"").hex()


def test_size_limits_and_buffer_capacity(tool):
    nch, enc = 1, ENC_INT16
    maxn = max_samples_per_frame(nch, enc)  # payload exactly 4096 bytes
    vals = np.arange(maxn) % 30000
    full = samples_cmd(3, 0, 0, 1000, nch, enc, maxn, values=vals)
    frame_len = 12 + 4096 + 4
    small = samples_cmd(3, 0, 0, 1000, 3, ENC_INT24, 25, values=np.zeros(75, int))
    small_len = 44 + 3 * 3 * 25
    out = tool.run([
        full,                                            # 0 exact maximum
        text_cmd("T", 3, b"x" * 4096),                   # 1 maximum status payload
        text_cmd("T", 3, b"x" * 4097), "Q",              # 2, 3 too long
        samples_cmd(3, 0, 0, 1000, nch, enc, maxn + 1), "Q",  # 4, 5 too long
        samples_cmd(3, 0, 0, 1000, 8, ENC_INT32, 65535),  # 6 too long (no 16-bit overflow)
        f"B {small_len - 1}", small, "Q",                # 7, 8, 9 one byte short
        f"B {small_len}", small,                          # 10, 11 exact fit
        "B 0", small, text_cmd("L", 3, b""),              # 12, 13, 14
        "B 15", text_cmd("L", 3, b""), "B 16", text_cmd("L", 3, b""),  # 15..18
        "B 100", text_cmd("L", 3, b"y" * 85), text_cmd("L", 3, b"y" * 84),  # 19..21
    ])
    assert len(bytes.fromhex(out[0])) == frame_len
    assert bytes.fromhex(out[0]) == FrameEncoder(3).samples(0, 0, 1000, vals.reshape(-1, 1), enc)
    assert len(bytes.fromhex(out[1])) == frame_len
    assert out[2] == f"ERR {ERR['TOO_LONG']}" and out[3] == "3"
    assert out[4] == f"ERR {ERR['TOO_LONG']}" and out[5] == "3"
    assert out[6] == f"ERR {ERR['TOO_LONG']}"
    assert out[8] == f"ERR {ERR['BUFFER']}" and out[9] == "3"
    assert len(bytes.fromhex(out[11])) == small_len
    assert out[13] == out[14] == f"ERR {ERR['BUFFER']}"
    assert out[16] == f"ERR {ERR['BUFFER']}" and out[18] == encode_frame(3, 3, b"").hex()
    assert out[20] == f"ERR {ERR['BUFFER']}" and len(bytes.fromhex(out[21])) == 100


@pytest.mark.parametrize("args, code", [
    (dict(nch=0), "NCH"),
    (dict(nch=9), "NCH"),
    (dict(nch=255), "NCH"),
    (dict(enc=0), "ENC"),
    (dict(enc=4), "ENC"),
    (dict(nsamp=0), "NSAMP"),
    (dict(rate_mhz=0), "FIELD"),
    (dict(time_quality=101), "FIELD"),
    (dict(time_flags=8), "FIELD"),
    (dict(time_flags=0x80), "FIELD"),
    (dict(status_flags=4), "FIELD"),
    (dict(enc=ENC_INT24, values=[0, 0, 8388608]), "RANGE"),
    (dict(enc=ENC_INT24, values=[0, 0, -8388609]), "RANGE"),
    (dict(enc=ENC_INT24, values=[2147483647, 0, 0]), "RANGE"),
    (dict(enc=ENC_INT16, values=[0, 0, 32768]), "RANGE"),
    (dict(enc=ENC_INT16, values=[-32769, 0, 0]), "RANGE"),
    (dict(enc=ENC_INT16, values=[0, -2147483648, 0]), "RANGE"),
])
def test_invalid_sample_arguments_rejected(tool, args, code):
    base = dict(seq=77, sample_index=1, t0_ns=2, rate_mhz=250000, nch=1, enc=ENC_INT32,
                nsamp=3, time_flags=0, time_quality=0, status_flags=0, values=[0, 0, 0])
    base.update(args)
    out = tool.run([samples_cmd(**base), "Q"])
    assert out == [f"ERR {ERR[code]}", "77"]


def test_extreme_values_accepted_per_encoding(tool):
    lines, expected = [], []
    for enc in ENCODINGS:
        lo, hi = ENC_RANGE[enc]
        values = np.array([[lo, hi], [0, -1], [hi, lo]])
        lines.append(samples_cmd(9, U64, I64_MIN, U32, 2, enc, 3, 7, 100, 3, values))
        expected.append(FrameEncoder(9).samples(U64, I64_MIN, U32, values, enc, 7, 100, 3).hex())
    assert tool.run(lines) == expected


def test_invalid_frame_type_and_null_pointers(tool):
    out = tool.run(["F 0 5 -", "F 4 5 00", "F 255 5 -", "Q", "N"])
    assert out[:4] == [f"ERR {ERR['TYPE']}"] * 3 + ["5"]
    codes = out[4].split()
    assert codes[:8] == [str(ERR["NULL"])] * 8
    assert codes[8] == "16"  # empty log with a NULL text is a valid 16-byte frame
    assert codes[9:] == [f"{binascii.crc_hqx(b'', 0xFFFF):04x}", f"{zlib.crc32(b''):08x}"]


def test_buffer_sizing_macros(tmp_path):
    """MSF_FRAME_SIZE & co. are constant expressions that agree with the Python encoder."""
    checks = []
    for nch in range(1, 9):
        for enc in ENCODINGS:
            bps = BYTES_PER_SAMPLE[enc]
            maxn = max_samples_per_frame(nch, enc)
            checks.append(f"MSF_BYTES_PER_SAMPLE({enc}) == {bps}u")
            checks.append(f"MSF_MAX_NSAMP({nch}, {bps}) == {maxn}u")
            checks.append(f"MSF_FRAME_SIZE({nch}, {bps}, {maxn}) == {44 + nch * bps * maxn}u")
            checks.append(f"MSF_FRAME_SIZE({nch}, {bps}, {maxn}) <= MSF_MAX_FRAME_SIZE")
    checks += ["MSF_FRAME_SIZE(3, 3, 25) == 269u", "MSF_BYTES_PER_SAMPLE(0) == 0u",
               "MSF_MAX_FRAME_SIZE == MSF_OVERHEAD + MSF_MAX_PAYLOAD",
               "MSF_TEXT_FRAME_SIZE(4096) == MSF_MAX_FRAME_SIZE",
               "MSF_OVERHEAD == MSF_HEADER_SIZE + MSF_CRC_SIZE"]
    src = ['#include "microseis_frame.h"',
           "static uint8_t tx[MSF_FRAME_SIZE(3, 3, 25)];",
           "uint8_t *tx_payload(void);",
           "uint8_t *tx_payload(void) { return MSF_PAYLOAD(tx); }"]
    src += [f"typedef char check_{i}[({c}) ? 1 : -1];" for i, c in enumerate(checks)]
    (tmp_path / "macros.c").write_text("\n".join(src) + "\n")
    _compile([*CFLAGS, "-Wno-unused-local-typedefs", f"-I{C_DIR}", "-c", "macros.c"], tmp_path)


@pytest.mark.parametrize("variant", [[], ["-DMSF_CRC_NIBBLE_TABLES"]], ids=["bitwise", "nibble"])
def test_library_is_freestanding_and_warning_clean(tmp_path, variant):
    """Only <stdint.h>/<string.h>; the object needs no libc symbol but mem* ones."""
    for path in (SOURCE, HEADER):
        includes = re.findall(r"^\s*#\s*include\s*(\S+)", path.read_text(), flags=re.M)
        assert set(includes) <= {"<stdint.h>", "<string.h>", '"microseis_frame.h"'}, includes
    obj = tmp_path / "microseis_frame.o"
    _compile([*CFLAGS, *EXTRA_WARNINGS, "-O2", *variant, "-c", str(SOURCE), "-o", "strict.o"],
             tmp_path)
    _compile([*CFLAGS, "-ffreestanding", "-fno-builtin", "-Os", *variant, "-c", str(SOURCE),
              "-o", str(obj)], tmp_path)
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not on PATH: the undefined-symbol check needs it")
    proc = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    undefined = {line.split()[-1].lstrip("_") for line in proc.stdout.splitlines() if line.strip()}
    assert undefined <= {"memcpy", "memset", "memmove"}, undefined
