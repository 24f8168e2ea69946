"""Reading a bundle's ZIP container: size limit, structural checks, entry bytes.

Nothing here trusts the archive: the entry count comes from the end-of-central-directory
record before :mod:`zipfile` builds an object per entry, every name must be a plain file name,
entries must be stored (not compressed, not encrypted), and each entry's bytes are taken at
the offset its local file header gives (parsed here with :mod:`struct` per the ZIP
specification, PKWARE APPNOTE.TXT 4.3.7), after checking that header against the central
directory.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

from edge.model.format import MAX_ENTRIES, SAFE_NAME, BundleError

__all__ = ["read_source", "read_entries"]

#: Local file header (APPNOTE 4.3.7), little-endian: signature, version needed, general
#: purpose flags, compression method, mod time, mod date, crc-32, compressed size,
#: uncompressed size, file name length, extra field length; 30 bytes, then the name and extra.
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_LH_FLAGS, _LH_NAME_LENGTH, _LH_EXTRA_LENGTH = 2, 9, 10
#: general purpose flag bit 11: the name is UTF-8 (APPNOTE 4.4.4)
_FLAG_UTF8 = 0x800


def read_source(source: str | os.PathLike | bytes | bytearray | memoryview,
                max_bytes: int) -> tuple[bytes, str | None]:
    """The bundle's bytes and the path it came from (``None`` for bytes), refusing a
    missing file or one over ``max_bytes``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        path = None
    else:
        p = Path(source)
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            raise BundleError(f"no such bundle file: {p}", "not_found") from None
        except OSError as exc:
            raise BundleError(f"cannot read {p}: {exc.strerror or exc}", "not_found") from None
        if not p.is_file():
            raise BundleError(f"{p} is not a file", "not_found")
        if size > max_bytes:
            raise BundleError(f"bundle is {size} bytes, more than the {max_bytes}-byte limit", "too_large")
        data = p.read_bytes()
        path = str(p)
    if len(data) > max_bytes:
        raise BundleError(f"bundle is {len(data)} bytes, more than the {max_bytes}-byte limit", "too_large")
    return data, path


def read_entries(data: bytes, max_entries: int = MAX_ENTRIES) -> dict[str, bytes]:
    """Every entry of a bundle's ZIP as ``{name: bytes}``, after the structural checks
    (not a ZIP / truncated, entry count, unsafe or duplicate names, compressed or encrypted
    entries). The stored bytes are read as they are: integrity is the manifest's sha256s'
    job (the ZIP CRCs are not relied upon)."""
    if len(data) < 22 or not (data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06")):
        raise BundleError("not a bundle: not a ZIP archive", "not_zip")
    # Count the entries from the end-of-central-directory record before zipfile builds an
    # object per entry: a crafted archive must not make the station allocate millions.
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if eocd < 0 or len(data) - eocd < 22:
        raise BundleError("not a valid bundle: truncated or corrupt ZIP archive (no end of central "
                          "directory)", "not_zip")
    n_total = struct.unpack_from("<H", data, eocd + 10)[0]
    if n_total > max_entries:
        raise BundleError(f"bundle has {n_total} entries, more than the limit of {max_entries}",
                          "too_large")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise BundleError(f"not a valid bundle: truncated or corrupt ZIP archive ({exc})", "not_zip") from None
    if len(infos) > max_entries:
        raise BundleError(f"bundle has {len(infos)} entries, more than the limit of {max_entries}",
                          "too_large")
    entries: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        if not SAFE_NAME.match(name) or name in (".", ".."):
            raise BundleError(f"unsafe entry name {name!r} in bundle (entries must be plain file "
                              "names: no directories, '..' or absolute paths)", "unsafe_name")
        if name in entries:
            raise BundleError(f"duplicate entry {name!r} in bundle", "unsafe_name")
        if info.flag_bits & 0x1:
            raise BundleError(f"entry {name!r} is encrypted", "not_zip")
        if info.compress_type != zipfile.ZIP_STORED:
            raise BundleError(f"entry {name!r} is compressed (method {info.compress_type}); bundle "
                              "entries are stored uncompressed", "not_zip")
        if info.compress_size != info.file_size:
            raise BundleError(f"entry {name!r}: corrupt ZIP header (sizes differ)", "not_zip")
        entries[name] = _stored_bytes(data, info)
    return entries


def _stored_bytes(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """The stored bytes of ``info``, located through its local file header, which must name
    the same entry as the central directory."""
    off = info.header_offset
    hdr = data[off: off + _LOCAL_HEADER.size]
    if len(hdr) != _LOCAL_HEADER.size:
        raise BundleError(f"not a valid bundle: truncated ZIP archive (entry {info.filename!r})", "not_zip")
    fh = _LOCAL_HEADER.unpack(hdr)
    if fh[0] != _LOCAL_HEADER_SIGNATURE:
        raise BundleError(f"not a valid bundle: corrupt ZIP archive (entry {info.filename!r})", "not_zip")
    n, m = fh[_LH_NAME_LENGTH], fh[_LH_EXTRA_LENGTH]
    name_at = off + _LOCAL_HEADER.size
    raw_name = data[name_at: name_at + n]
    enc = "utf-8" if fh[_LH_FLAGS] & _FLAG_UTF8 else "cp437"
    if raw_name.decode(enc, "replace") != info.filename:
        raise BundleError(f"entry {info.filename!r}: local header names {raw_name!r} (ambiguous ZIP)",
                          "unsafe_name")
    start = name_at + n + m
    body = data[start: start + info.compress_size]
    if len(body) != info.compress_size:
        raise BundleError(f"not a valid bundle: truncated ZIP archive (entry {info.filename!r})", "not_zip")
    return body
