#!/usr/bin/env python3
"""Regenerate the shipped default bundle ``edge/models/default.msb`` by the project's own
commands -- the one command behind it:

    python bench/default_bundle.py --key ~/.config/microseis/microseis-project.key

1. the synthetic benchmark (``microseis synth``: bench-train, bench-mag, bench-test) if missing;
2. the default 1D ResNet18-CBAM run (``microseis train``, as ``bench/trainer_results.py
   --only default``) if missing (about 10 minutes on 2 cores);
3. ``microseis export --int8`` with the parity report on the held-out test split, signed with
   the project key; the bundle is verified (signature, hashes, self-test) before it is written;
4. checks that the result is at most 1 MB and verifies with the public keys in ``edge/keys/``;
5. writes the run's float weights, tied to the new bundle by its sha256, into
   ``trainer/models/default/`` (package data: where ``microseis adapt`` starts from without
   ``--from``; with another ``--out``, into ``<out stem>.weights/`` beside it;
   :func:`trainer.float_weights.write_float_weights`).

The public half of the project key is ``edge/keys/microseis-project.pub``. Signing with any
other key works (``--key``), but then a station must be given the matching public key
(``--pubkey`` / ``[model] trusted_keys``). Prints the parity table and, as the last line, a JSON
object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 1_000_000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--key", default=os.path.expanduser("~/.config/microseis/microseis-project.key"),
                   help="private signing key (default ~/.config/microseis/microseis-project.key)")
    p.add_argument("--data", default="data", help="benchmark data folder (data)")
    p.add_argument("--runs", default="runs/bench", help="benchmark runs folder (runs/bench)")
    p.add_argument("--out", default=str(ROOT / "edge" / "models" / "default.msb"))
    p.add_argument("--version", default="0.1.0", help="bundle version (0.1.0)")
    args = p.parse_args()
    if not Path(args.key).is_file():
        print(f"default_bundle: no signing key at {args.key} (make one with `microseis keygen` and put "
              "its .pub in edge/keys/)", file=sys.stderr)
        return 2
    py = sys.executable
    subprocess.run([py, str(ROOT / "bench" / "trainer_results.py"), "--only", "default",
                    "--data", args.data, "--out", args.runs], check=True, stdout=sys.stderr)
    run = Path(args.runs) / "default"
    cmd = [py, "-m", "edge", "export", "--run", str(run), "--out", args.out, "--key", args.key,
           "--int8", "--parity-data", str(Path(args.data) / "bench-test"), "--name",
           "microseis-resnet18-cbam-synthetic", "--version", args.version, "--description",
           "Default 1D ResNet18-CBAM (int8 ONNX, MC-dropout heads) trained on the SYNTHETIC "
           "benchmark: re-train or fine-tune on your site's labeled events", "--json"]
    print("$ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        return out.returncode
    res = json.loads(out.stdout.strip().splitlines()[-1])
    size = Path(args.out).stat().st_size
    verify = subprocess.run([py, "-m", "edge", "bundle", "verify", args.out, "--json"],
                            stdout=subprocess.PIPE, text=True)
    ok = verify.returncode == 0
    sys.path.insert(0, str(ROOT))
    from export.parity import format_table

    print(format_table(res["parity"]))
    print(f"{args.out}: {size} bytes (limit {MAX_BYTES}); verifies with edge/keys: {ok}")
    weights = None
    if ok:  # the shipped bundle's weights are package data; any other bundle's go beside it
        from trainer.float_weights import DEFAULT_WEIGHTS_DIR, weights_dir_for, write_float_weights

        shipped = Path(args.out).resolve() == (ROOT / "edge" / "models" / "default.msb").resolve()
        weights = str(write_float_weights(run, args.out,
                                          DEFAULT_WEIGHTS_DIR if shipped else weights_dir_for(args.out)))
        print(f"float weights for microseis adapt: {weights}")
    print(json.dumps({"benchmark": "default_bundle", "path": args.out, "size": size,
                      "size_ok": size <= MAX_BYTES, "verifies": ok, "float_weights": weights,
                      "parity": res["parity"]}))
    return 0 if ok and size <= MAX_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
