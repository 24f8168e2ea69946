"""ed25519 signing keys for model bundles (workstation side).

``microseis keygen --out DIR [--name NAME]`` writes

* ``DIR/NAME.key`` -- the private key, PKCS#8 PEM, unencrypted, mode 0600. Keep it off the
  stations and out of git; whoever holds it can make models every station accepts.
* ``DIR/NAME.pub`` -- the public key, SubjectPublicKeyInfo PEM. Stations trust the ``.pub``
  files in ``edge/keys/`` (the project key) and any given with ``--pubkey``.

A key id is the first 16 hex digits of the sha256 of the raw 32-byte public key
(:func:`edge.model.keys.key_id`); the manifest's ``signer`` and ``signature.json`` carry it.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.model.format import SIGNATURE_FORMAT
from edge.model.keys import key_id, load_private_key  # one loader for model and operator keys

__all__ = ["generate_keypair", "load_private_key", "sign_manifest", "signature_file", "key_id"]


def generate_keypair(out_dir: str | os.PathLike, name: str = "microseis") -> tuple[Path, Path]:
    """Make a new ed25519 key pair ``(out_dir/name.key, out_dir/name.pub)``.

    Refuses (``FileExistsError``) when either file exists: overwriting a signing key would
    orphan every bundle signed with it. The private key is created with mode 0600.
    """
    if not name or "/" in name or name.startswith(".") or "\\" in name:
        raise ValueError(f"invalid key name {name!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (priv_path, pub_path):
        if p.exists():
            raise FileExistsError(f"{p} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    os.chmod(priv_path, 0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        with open(pub_path, "xb") as fh:
            fh.write(pub)
    except BaseException:
        priv_path.unlink(missing_ok=True)
        raise
    return priv_path, pub_path


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The 64-byte ed25519 signature of the exact ``manifest.json`` bytes."""
    return private_key.sign(bytes(manifest_bytes))


def signature_file(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The ``signature.json`` entry for ``manifest_bytes``."""
    sig = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "key_id": key_id(private_key.public_key()),
        "signature": base64.b64encode(sign_manifest(manifest_bytes, private_key)).decode("ascii"),
    }
    return (json.dumps(sig, indent=2, sort_keys=True) + "\n").encode("utf-8")
