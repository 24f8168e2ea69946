"""``microseis keygen``: make an ed25519 key pair for signing model bundles.

Writes ``DIR/NAME.key`` (private, PEM, mode 0600: keep it secret, off the stations and out of
git) and ``DIR/NAME.pub`` (public, PEM: stations trust it when it is in ``edge/keys/`` or
given with ``microseis bundle verify --pubkey``). Never overwrites an existing key.
"""
from __future__ import annotations

import argparse
import json

from edge.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="make an ed25519 signing key pair for model bundles",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for NAME.key and NAME.pub")
    p.add_argument("--name", default="microseis", help="file name stem (microseis)")
    p.add_argument("--json", action="store_true", help="last line of stdout: the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.model.keys import key_id, load_public_key
    from export.signing import generate_keypair

    try:
        priv, pub = generate_keypair(args.out, args.name)
    except FileExistsError as exc:
        raise CommandError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    kid = key_id(load_public_key(pub))
    if args.json:
        print(json.dumps({"private_key": str(priv), "public_key": str(pub), "key_id": kid}))
    else:
        print(f"private key: {priv} (mode 0600; keep it secret)")
        print(f"public key:  {pub}")
        print(f"key id:      {kid}")
    return 0
