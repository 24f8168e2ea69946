"""The canonical bundle container (edge.model.container): only the exact ZIP layout the writer
makes verifies. Bytes outside the signed content -- appended, a prefix that looks like a ZIP
entry, an archive comment, a gap between entries, a header that differs -- would otherwise
verify, change the file's sha256 and install the same model under new names.

The variants are made from the shipped bundle with the ZIP offsets fixed up, so each one is a
ZIP archive any unzip tool reads; only the canonical-layout rule refuses them."""
from __future__ import annotations

import io
import json
import struct
import zipfile

import pytest

from edge.model.container import read_entries
from edge.model.format import DEFAULT_BUNDLE, BundleError
from edge.model.keys import default_trusted_keys
from edge.model.verify import verify_bundle
from export.bundle_writer import zip_entries

SHIPPED = DEFAULT_BUNDLE.read_bytes()
EOCD = struct.Struct("<4sHHHHIIH")
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")


def central_offsets(data: bytes) -> tuple[int, int, list[int]]:
    """(central directory offset, its size, the position of each central entry)."""
    _, _, _, _, n, size, off, _ = EOCD.unpack_from(data, len(data) - EOCD.size)
    pos, at = [], off
    for _ in range(n):
        f = CENTRAL.unpack_from(data, at)
        pos.append(at)
        at += CENTRAL.size + f[10] + f[11] + f[12]
    return off, size, pos


def insert(data: bytes, at: int, junk: bytes) -> bytes:
    """``junk`` inserted at byte ``at`` with every ZIP offset after it moved along: still a
    valid ZIP archive, but not the writer's."""
    off, size, entries = central_offsets(data)
    out = bytearray(data[:at] + junk + data[at:])
    k = len(junk)
    shift = k if off >= at else 0
    for p in entries:
        p2 = p + shift
        local = struct.unpack_from("<I", out, p2 + 42)[0]
        if local >= at:
            struct.pack_into("<I", out, p2 + 42, local + k)
    struct.pack_into("<I", out, len(out) - EOCD.size + 16, off + shift)
    return bytes(out)


def refused(data: bytes, match: str, code: str = "not_canonical") -> BundleError:
    with pytest.raises(BundleError) as ei:
        verify_bundle(data, default_trusted_keys(), run_selftest=False)
    assert ei.value.code == code and match in str(ei.value), ei.value
    return ei.value


def test_the_shipped_bundle_is_canonical_and_verifies():
    vb = verify_bundle(DEFAULT_BUNDLE, default_trusted_keys(), run_selftest=True)
    assert vb.selftest["status"] == "passed"
    # the writer, given the same entries, makes the very same bytes
    assert zip_entries(read_entries(SHIPPED)) == SHIPPED
    assert vb.identity != vb.sha256 and len(vb.identity) == 64


def test_appended_bytes_refused():
    refused(SHIPPED + b"\x00", "1 byte(s) after the end")
    # a second (empty) end record appended: the last one no longer describes the archive
    refused(SHIPPED + b"PK\x05\x06" + b"\x00" * 18, "central directory (0+0) does not end")


def test_prefix_starting_like_a_zip_entry_refused():
    fake = b"PK\x03\x04" + b"\x00" * 60
    shifted = insert(SHIPPED, 0, fake)
    with zipfile.ZipFile(io.BytesIO(shifted)) as zf:  # an ordinary ZIP reader is happy with it
        assert zf.read("manifest.json") == read_entries(SHIPPED)["manifest.json"]
    refused(shifted, "64 byte(s) before the first entry")
    refused(fake + SHIPPED, "central directory")  # offsets not moved: refused too


def test_comment_or_changed_trailer_refused():
    with_comment = SHIPPED[:-2] + struct.pack("<H", 5) + b"hello"
    refused(with_comment, "after the end")
    eocd = bytearray(SHIPPED)
    struct.pack_into("<H", eocd, len(eocd) - 2, 7)  # a comment length with no comment
    refused(bytes(eocd), "comment")


def test_gap_between_entries_refused():
    off, _, entries = central_offsets(SHIPPED)
    second = struct.unpack_from("<I", SHIPPED, entries[1] + 42)[0]
    refused(insert(SHIPPED, second, b"\x00" * 16), "16 byte(s) between the entries before 'model.int8.onnx'")
    refused(insert(SHIPPED, off, b"\x00" * 3), "3 byte(s) between the last entry and the central directory")


def test_headers_that_differ_from_the_writers_refused():
    data = bytearray(SHIPPED)
    struct.pack_into("<H", data, 10, 0x1234)  # first local header's time only
    refused(bytes(data), "local header of 'manifest.json' differs")
    off, _, entries = central_offsets(SHIPPED)
    data = bytearray(SHIPPED)
    struct.pack_into("<H", data, entries[0] + 12, 0x1234)  # time in the central entry only
    refused(bytes(data), "other ZIP metadata")
    data = bytearray(SHIPPED)
    for p in (14, entries[0] + 16):  # CRC-32 in both headers: content intact, container not
        struct.pack_into("<I", data, p, struct.unpack_from("<I", data, p)[0] ^ 1)
    refused(bytes(data), "CRC-32 does not match")


def test_reformatted_signature_file_refused():
    e = read_entries(SHIPPED)
    e["signature.json"] = json.dumps(json.loads(e["signature.json"])).encode()  # same fields, one line
    refused(zip_entries(e), "signature.json is not in canonical form")
