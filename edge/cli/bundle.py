"""``microseis bundle``: check and describe signed model bundles (``docs/bundle.md``).

``verify`` checks the bundle the way a station does before installing it -- signature by a
trusted key, every file's size and sha256, optionally the station's channels and rate, and
the self-test of the default model -- and exits 0 only if all pass, otherwise 1 with the
reason. Trusted keys: the project key(s) shipped in ``edge/keys/*.pub``, or those given with
``--pubkey``. ``inspect`` prints what the manifest says, without any key and without
verifying anything.
"""
from __future__ import annotations

import argparse
import json
import sys

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="verify or inspect a signed model bundle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="bundle_command", metavar="ACTION")
    v = bsub.add_parser("verify", help="check signature, hashes and self-test (exit 0 only if all pass)")
    v.add_argument("bundle", nargs="?", metavar="BUNDLE", help="bundle file (default: the shipped one)")
    v.add_argument("--pubkey", action="append", metavar="KEY", default=None,
                   help="trusted public key file or directory of *.pub (repeatable; "
                        "default: edge/keys/*.pub)")
    v.add_argument("--channels", metavar="ZNE",
                   help="the station's components, e.g. ZNE, Z or HHZ,HHN,HHE (default: not checked)")
    v.add_argument("--rate", type=float, metavar="HZ",
                   help="the station's sampling rate in Hz (default: not checked)")
    v.add_argument("--no-selftest", action="store_true", help="skip the self-test (then exit 0 means "
                   "signature and hashes only)")
    v.add_argument("--json", action="store_true", help="last line of stdout: the result as JSON")
    v.set_defaults(func=run_verify)
    i = bsub.add_parser("inspect", help="print the manifest (no key needed, nothing verified)")
    i.add_argument("bundle", nargs="?", metavar="BUNDLE", help="bundle file (default: the shipped one)")
    i.add_argument("--json", action="store_true", help="last line of stdout: the manifest summary as JSON")
    i.set_defaults(func=run_inspect)


def parse_channels(text: str) -> tuple[str, ...]:
    """``ZNE`` / ``Z,N,E`` / ``HHZ,HHN,HHE`` / ``Z12`` -> canonical components."""
    aliases = {"Z": "Z", "N": "N", "E": "E", "1": "N", "2": "E"}
    parts = [s.strip() for s in text.split(",")] if "," in text else list(text.strip())
    out = []
    for s in parts:
        c = aliases.get(s[-1:].upper()) if s else None
        if c is None:
            raise CommandError(f"--channels: cannot read component of {s!r} (use e.g. ZNE or HHZ,HHN,HHE)")
        out.append(c)
    return tuple(out)


def _bundle_path(arg: str | None):
    from edge.model.format import DEFAULT_BUNDLE

    if arg:
        return arg, None
    if not DEFAULT_BUNDLE.is_file():
        return None, f"no shipped default bundle at {DEFAULT_BUNDLE} (give a BUNDLE file)"
    return str(DEFAULT_BUNDLE), None


def _fail(args: argparse.Namespace, path, reason: str, code: str) -> int:
    if args.json:
        print(json.dumps({"ok": False, "path": path, "error": reason, "code": code}))
    print(f"microseis bundle {args.bundle_command}: REJECTED: {reason}", file=sys.stderr)
    return 1


def run_verify(args: argparse.Namespace) -> int:
    from edge.model.format import BundleError
    from edge.model.keys import KEYS_DIR, default_trusted_keys, load_trusted_keys
    from edge.model.manifest import StationCompat

    station = None
    if args.channels is not None or args.rate is not None:
        if args.rate is not None and not args.rate > 0:
            raise CommandError(f"--rate must be > 0 Hz, got {args.rate}")
        station = StationCompat(channels=parse_channels(args.channels) if args.channels else None,
                                sampling_rate=args.rate)
    try:
        keys = load_trusted_keys(args.pubkey) if args.pubkey else default_trusted_keys()
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    path, missing = _bundle_path(args.bundle)
    if missing:
        return _fail(args, None, missing, "not_found")
    if not keys:
        return _fail(args, path, f"no trusted public keys: {KEYS_DIR} holds no *.pub and no --pubkey "
                     "was given", "untrusted_key")
    from edge.model.verify import verify_bundle

    try:
        vb = verify_bundle(path, keys, station=station, run_selftest=not args.no_selftest)
    except BundleError as exc:
        return _fail(args, path, str(exc), exc.code)
    s = vb.summary()
    if args.json:
        print(json.dumps(s))
    else:
        m = vb.manifest
        print(f"OK {path}: {m.name} {m.version} (sha256 {vb.sha256[:16]}…, {vb.size} bytes)")
        print(f"  signature: valid, key {vb.key_id}")
        print(f"  files:     {len(m.files)} listed, sizes and sha256 match")
        print(f"  station:   {'compatible' if station else 'not checked'}")
        st = vb.selftest
        if st["status"] == "passed":
            diffs = ", ".join(f"{k} {v['max_abs_diff']:.2g} <= {v['atol']:g}" for k, v in st["outputs"].items())
            print(f"  self-test: passed on {st['model']} ({st['rows']} rows; max diff {diffs})")
        else:
            print(f"  self-test: {st['status']}")
        for note in vb.notes:
            print(f"  note: {note}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from edge.model.format import BundleError
    from edge.model.verify import inspect_bundle

    path, missing = _bundle_path(args.bundle)
    if missing:
        raise CommandError(missing)
    try:
        info = inspect_bundle(path)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(info))
        return 0
    rows = [
        ("path", info["path"]), ("name", info["name"]), ("version", info["version"]),
        ("sha256", info["sha256"]), ("size", f"{info['size']} bytes"), ("created", info["created"]),
        ("description", info["description"]), ("classes", ", ".join(info["classes"])),
        ("input", f"{''.join(info['input']['channels'])} at {info['input']['sampling_rate']:g} Hz, "
                  f"{info['input']['n_samples']} samples"),
        ("mc_dropout", f"{info['mc_dropout'].get('how')} ({info['mc_dropout'].get('passes')} passes)"),
        ("training data", ("SYNTHETIC - " if info["synthetic"] else "")
         + info["training_data"].get("description", "")),
    ]
    if info["training_data"].get("notice"):
        rows.append(("notice", info["training_data"]["notice"]))
    rows.append(("signer", info["signer"]))
    for mf in info["models"]:
        rows.append(("model", f"{mf['file']} {mf['format']} {mf['precision']} {mf['size']} bytes"
                              + (" (default)" if mf["default"] else "")))
    for k, v in info["parity"].items():
        rows.append((f"parity.{k}", v))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("(not verified: use `microseis bundle verify`)")
    return 0
