"""Reading a bundle's ZIP container: size limit, the canonical layout, entry bytes.

A bundle's identity is its signed content, so the container around it must not vary: the
reader accepts only the exact layout ``export.bundle_writer`` makes (docs/bundle.md,
"Canonical container") -- no bytes before, between or after the entries, no archive comment,
no extra fields, the central directory equal to the local headers, fixed metadata. Otherwise
appended bytes, a prefix or a comment would verify, change the file's sha256 and install the
same model under a new name. Everything is parsed here with :mod:`struct` per the ZIP
specification (PKWARE APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16); nothing trusts the archive: the
entry count is bounded before any entry is read, every name must be a plain file name, entries
must be stored (not compressed, not encrypted).
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from edge.model.format import MAX_ENTRIES, SAFE_NAME, BundleError

__all__ = ["read_source", "read_entries", "read_container", "check_crcs"]

#: ZIP records (PKWARE APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16), little-endian.
#: Local file header: signature, version needed, flags, method, mod time, mod date, crc-32,
#: compressed size, uncompressed size, name length, extra length (30 bytes; name follows).
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
#: Central directory header: signature, version made by, version needed, flags, method, time,
#: date, crc-32, compressed size, uncompressed size, name length, extra length, comment length,
#: disk number start, internal attributes, external attributes, local header offset (46 bytes).
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
#: End of central directory: signature, this disk, central directory's disk, entries on this
#: disk, entries in all, central directory size, its offset, comment length (22 bytes).
_EOCD = struct.Struct("<4sHHHHIIH")
_LOCAL_SIG, _CENTRAL_SIG, _EOCD_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"

#: What export.bundle_writer writes (Python's zipfile with fixed metadata) for every entry:
#: made by Unix (3) version 2.0, needs 2.0, no flags (ASCII names, no data descriptor, not
#: encrypted), stored, 1980-01-01 00:00:00, no extra field or comment, mode 0644.
_MADE_BY = (3 << 8) | 20
_NEEDED = 20
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1
_EXTERNAL = 0o644 << 16


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


def _not_canonical(msg: str) -> BundleError:
    return BundleError(f"not a canonical bundle: {msg} (a bundle is exactly the container "
                       "export.bundle_writer makes)", "not_canonical")


def read_entries(data: bytes, max_entries: int = MAX_ENTRIES) -> dict[str, bytes]:
    """Every entry of a bundle's ZIP as ``{name: bytes}``: :func:`read_container` and
    :func:`check_crcs`."""
    entries, crcs = read_container(data, max_entries)
    check_crcs(entries, crcs)
    return entries


def check_crcs(entries: dict[str, bytes], crcs: dict[str, int]) -> None:
    """Each entry's CRC-32 must match its bytes (the writer's are right; a wrong one would be
    another file around the same content). :func:`edge.model.verify.verify_bundle` checks this
    after the manifest's sha256s, so a damaged file is reported by name and hash first."""
    for name, body in entries.items():
        if zlib.crc32(body) != crcs[name]:
            raise _not_canonical(f"entry {name!r}: CRC-32 does not match its bytes")


def read_container(data: bytes, max_entries: int = MAX_ENTRIES) -> tuple[dict[str, bytes], dict[str, int]]:
    """``({name: bytes}, {name: CRC-32 from its header})`` of a bundle's ZIP, after checking
    that the container is exactly the one the writer makes (docs/bundle.md, "Canonical
    container"): entries one after the other from byte 0, sorted by name, stored, each local
    header equal to its central directory entry, fixed metadata, the central directory right
    after the last entry and the end record right after it, ending the file -- no bytes
    before, between or after, no comment, no extra fields. So a bundle's bytes follow from its
    entries: two bundles with the same signed entries are the same file. The CRC-32s are
    returned unchecked (:func:`check_crcs`)."""
    if len(data) < _EOCD.size or not (data.startswith(_LOCAL_SIG) or data.startswith(_EOCD_SIG)):
        raise BundleError("not a bundle: not a ZIP archive", "not_zip")
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_off, comment = _EOCD.unpack_from(data, len(data) - _EOCD.size)
    if sig != _EOCD_SIG:
        at = data.rfind(_EOCD_SIG, max(0, len(data) - 65557))
        if at < 0 or len(data) - at < _EOCD.size:
            raise BundleError("not a valid bundle: truncated or corrupt ZIP archive (no end of central "
                              "directory)", "not_zip")
        raise _not_canonical(f"{len(data) - at - _EOCD.size} byte(s) after the end of the ZIP archive "
                             "(appended data or an archive comment)")
    if comment:
        raise _not_canonical("the ZIP archive has a comment")
    if disk or cd_disk or n_disk != n_total:
        raise _not_canonical("multi-disk ZIP archive")
    if n_total > max_entries:
        raise BundleError(f"bundle has {n_total} entries, more than the limit of {max_entries}", "too_large")
    end = len(data) - _EOCD.size
    if cd_off + cd_size != end:
        raise _not_canonical(f"the central directory ({cd_off}+{cd_size}) does not end where the end "
                             f"record begins ({end})")
    # first the central directory as a whole: names, duplicates, encryption, compression
    central = []
    names: set[str] = set()
    cpos = cd_off
    for i in range(n_total):
        if cpos + _CENTRAL.size > end:
            raise BundleError("not a valid bundle: truncated ZIP central directory", "not_zip")
        fields = _CENTRAL.unpack_from(data, cpos)
        (csig, _made_by, _needed, flags, method, _t, _d, _crc, csize, usize, nlen, xlen, clen,
         _disk, _iattr, _eattr, _offset) = fields
        if csig != _CENTRAL_SIG:
            raise BundleError(f"not a valid bundle: corrupt ZIP central directory (entry {i})", "not_zip")
        raw = data[cpos + _CENTRAL.size: cpos + _CENTRAL.size + nlen]
        name = raw.decode("ascii", "replace")
        if not SAFE_NAME.match(name) or len(raw) != nlen or raw != name.encode("ascii"):
            raise BundleError(f"unsafe entry name {raw!r} in bundle (entries must be plain file "
                              "names: no directories, '..' or absolute paths)", "unsafe_name")
        if name in names:
            raise BundleError(f"duplicate entry {name!r} in bundle", "unsafe_name")
        names.add(name)
        if flags & 0x1:
            raise BundleError(f"entry {name!r} is encrypted", "not_zip")
        if method != 0:
            raise BundleError(f"entry {name!r} is compressed (method {method}); bundle entries are "
                              "stored uncompressed", "not_zip")
        if csize != usize:
            raise BundleError(f"entry {name!r}: corrupt ZIP header (sizes differ)", "not_zip")
        central.append((name, raw, fields))
        cpos += _CENTRAL.size + nlen + xlen + clen
    if cpos != end:
        raise _not_canonical(f"{end - cpos} byte(s) in the central directory beyond its {n_total} entries")
    # then the layout, entry by entry from byte 0
    entries: dict[str, bytes] = {}
    crcs: dict[str, int] = {}
    pos, last = 0, ""
    for i, (name, raw, fields) in enumerate(central):
        (_sig, made_by, needed, flags, method, mtime, mdate, crc, csize, usize, nlen, xlen, clen,
         dstart, iattr, eattr, offset) = fields
        if name <= last:
            raise _not_canonical(f"entry {name!r} is out of order (entries are sorted by name)")
        if xlen or clen:
            raise _not_canonical(f"entry {name!r} has an extra field or a comment")
        if (made_by, needed, flags, mtime, mdate, dstart, iattr, eattr) != (
                _MADE_BY, _NEEDED, 0, _DOS_TIME, _DOS_DATE, 0, 0, _EXTERNAL):
            raise _not_canonical(f"entry {name!r} has other ZIP metadata (version, flags, time or "
                                 "attributes) than the writer's")
        if offset != pos:
            where = "before the first entry" if i == 0 else f"between the entries before {name!r}"
            raise _not_canonical(f"{abs(offset - pos)} byte(s) {where} (local header at {offset}, "
                                 f"expected {pos})")
        if pos + _LOCAL.size > cd_off:
            raise BundleError(f"not a valid bundle: truncated ZIP archive (entry {name!r})", "not_zip")
        local = _LOCAL.unpack_from(data, pos)
        if local != (_LOCAL_SIG, needed, flags, method, mtime, mdate, crc, csize, usize, nlen, 0):
            raise _not_canonical(f"the local header of {name!r} differs from its central directory entry")
        start = pos + _LOCAL.size
        if data[start: start + nlen] != raw:
            raise BundleError(f"entry {name!r}: local header names {data[start:start + nlen]!r} "
                              "(ambiguous ZIP)", "unsafe_name")
        body = data[start + nlen: start + nlen + csize]
        if len(body) != csize or start + nlen + csize > cd_off:
            raise BundleError(f"not a valid bundle: truncated ZIP archive (entry {name!r})", "not_zip")
        entries[name] = body
        crcs[name] = crc
        pos, last = start + nlen + csize, name
    if pos != cd_off:
        raise _not_canonical(f"{cd_off - pos} byte(s) between the last entry and the central directory")
    return entries, crcs
