"""``microseis adapt``: a tiny cnn1d run adapted on a site folder made by ``microseis synth``
with another seed -> signed bundle that verifies with the test's own key and runs through
``microseis predict``; provenance in the manifest; the class head grows with --new-classes;
bad input exits 2 with nothing written; float weights tied to their bundle by sha256.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from conftest import microseis_cli  # noqa: E402

from edge.cli import main  # noqa: E402
from edge.model.verify import verify_bundle  # noqa: E402
from trainer.adapt import grow_class_head  # noqa: E402
from trainer.float_weights import (  # noqa: E402
    DEFAULT_WEIGHTS_DIR,
    WeightsError,
    check_float_weights,
    find_float_weights,
    write_float_weights,
)
from trainer.run import load_run  # noqa: E402

QUICK = ("--epochs", "2", "--max-batches", "2", "--mc-passes", "4")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("manifest.json"))


def _relabel(src: Path, dst: Path, change) -> Path:
    """A copy of dataset folder ``src`` with labels.csv rows passed through ``change(row)``
    (a dict; return None to drop the row)."""
    shutil.copytree(src, dst)
    with open(src / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    kept = [r for r in (change(dict(r)) for r in rows) if r is not None]
    with open(dst / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(kept)
    return dst


def _adapt(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["adapt", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("adapt")
    microseis_cli("synth", "--out", str(d / "DS"), "--events", "60", "--seed", "7", "--balance", "equal")
    microseis_cli("synth", "--out", str(d / "SITE"), "--events", "60", "--seed", "11", "--balance", "equal")
    microseis_cli("train", "--data", str(d / "DS"), "--out", str(d / "RUN"), "--model", "cnn1d",
                  "--epochs", "1", "--max-batches", "2", "--quiet", "--force", "--cache-dir", str(d / "cache"))
    microseis_cli("keygen", "--out", str(d / "KEYS"), "--name", "site")
    return {"dir": d, "site": d / "SITE", "run": d / "RUN", "key": d / "KEYS" / "site.key",
            "pub": d / "KEYS" / "site.pub", "cache": str(d / "cache")}


@pytest.fixture(scope="module")
def adapted(base) -> dict:
    """``microseis adapt --from RUN --json`` on the site folder (in-process)."""
    out = base["dir"] / "out" / "site.msb"
    rc = main(["adapt", "--data", str(base["site"]), "--out", str(out), "--key", str(base["key"]),
               "--from", str(base["run"]), "--cache-dir", base["cache"], "--quiet", "--json", *QUICK])
    assert rc == 0
    return {"bundle": out, "weights": out.with_name("site.weights"), "report": out.with_name("site.report")}


def test_adapt_from_run_json_report_and_provenance(base, adapted):
    rep = json.loads((adapted["report"] / "adapt.json").read_text())
    for k in ("before", "after"):
        assert 0.0 <= rep[k]["macro_f1"] <= 1.0 and 0.0 <= rep[k]["accuracy"] <= 1.0
    assert rep["seconds"] > 0 and rep["train"]["epochs_run"] >= 1
    assert "torch" in rep["before"]["model"] and "station" in rep["after"]["model"]
    # held out per class, seeded: 60 equal events -> 15 a class -> round(0.25 * 15) = 4 each
    assert rep["held_out"]["counts"] == {"fracture": 4, "rockfall": 4, "earthquake": 4, "noise": 4}
    assert rep["train"]["events"] == 44
    for png in ("confusion_before.png", "confusion_after.png", "per_class_before.png", "per_class_after.png"):
        assert (adapted["report"] / png).stat().st_size > 1000
    # the bundle verifies with the test's own key, self-test included, and says where it comes from
    vb = verify_bundle(adapted["bundle"], trusted_keys=[base["pub"]])
    assert vb.selftest["status"] == "passed"
    m = _manifest(adapted["bundle"])
    created = json.loads((base["run"] / "run.json").read_text())["created"]
    assert m["adapted_from"] == {"name": "RUN", "version": created, "sha256": _sha(base["run"] / "model.pt")}
    assert m["adapted_on"]["labels_sha256"] == _sha(base["site"] / "labels.csv")
    assert m["adapted_on"]["counts"] == {"fracture": 15, "rockfall": 15, "earthquake": 15, "noise": 15}
    assert m["parity"]["events"] == 16  # parity on the held-out part
    # the float weights beside it belong to exactly this bundle
    assert check_float_weights(adapted["weights"], _sha(adapted["bundle"]))["classes"] == m["classes"]


def test_adapted_bundle_runs_through_predict(base, adapted, tmp_path):
    csv_out = tmp_path / "p.csv"
    microseis_cli("predict", "--model", str(adapted["bundle"]), "--pubkey", str(base["pub"]),
                  "--out", str(csv_out), str(base["site"]))
    with open(csv_out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60
    assert {r["class"] for r in rows} <= {"fracture", "rockfall", "earthquake", "noise"}
    assert all(r["class"] for r in rows)


def test_json_on_stdout(base, adapted, capsys, tmp_path):
    rc, out, _ = _adapt(capsys, "--data", str(base["site"]), "--out", str(tmp_path / "b.msb"), "--key",
                        str(base["key"]), "--from", str(adapted["bundle"]), "--cache-dir", base["cache"],
                        "--quiet", "--json", *QUICK)
    assert rc == 0
    rep = json.loads(out.strip().splitlines()[-1])
    assert {"before", "after", "seconds"} <= set(rep)
    assert isinstance(rep["before"]["macro_f1"], float) and isinstance(rep["after"]["macro_f1"], float)
    # from a bundle: "before" is that bundle's int8 graph run as on the station
    assert "int8" in rep["before"]["model"]
    assert rep["adapted_from"]["sha256"] == _sha(adapted["bundle"])


def test_new_classes_grow_the_head(base, adapted, capsys, tmp_path):
    n = {"k": 0}

    def blast(row):  # 8 of the noise events become "blast"
        if row["label"] == "noise" and n["k"] < 8:
            row["label"], n["k"] = "blast", n["k"] + 1
        return row

    site2 = _relabel(base["site"], tmp_path / "SITE2", blast)
    out = tmp_path / "blast.msb"
    common = ("--data", str(site2), "--out", str(out), "--key", str(base["key"]), "--from",
              str(adapted["bundle"]), "--cache-dir", base["cache"], "--quiet", *QUICK)
    rc, _, err = _adapt(capsys, *common)
    assert rc == 2 and "'blast'" in err and "--new-classes" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "blast.weights").exists() and not (tmp_path / "blast.report").exists()
    rc, _, _ = _adapt(capsys, *common, "--new-classes")
    assert rc == 0
    m = _manifest(out)
    assert m["classes"] == ["fracture", "rockfall", "earthquake", "noise", "blast"]
    assert m["adapted_on"]["counts"]["blast"] == 8
    assert verify_bundle(out, trusted_keys=[base["pub"]]).selftest["status"] == "passed"
    model, info = load_run(tmp_path / "blast.weights")
    assert model.config.n_classes == 5 and info["classes"][-1] == "blast"


def test_fine_tuned_on_real_events_from_a_synthetic_model_still_says_synthetic(base, capsys, tmp_path):
    """A site folder not made by ``microseis synth`` (no synth.json: a real site), adapted from
    a synthetic-trained run: the bundle is still marked synthetic, with the notice that says
    it was pre-trained on synthetic data; the same site folder marked synthetic gets the plain
    synthetic notice."""
    real = _relabel(base["site"], tmp_path / "REAL", lambda r: r)
    (real / "synth.json").unlink()
    out = tmp_path / "real.msb"
    rc, _, err = _adapt(capsys, "--data", str(real), "--out", str(out), "--key", str(base["key"]), "--from",
                        str(base["run"]), "--cache-dir", base["cache"], "--quiet", *QUICK)
    assert rc == 0, err
    td = _manifest(out)["training_data"]
    assert td["synthetic"] is True
    assert td["notice"].startswith("Pre-trained on SYNTHETIC data") and "fine-tuned" in td["notice"]
    assert td["description"].startswith("fine-tuned from a SYNTHETIC-trained model on: REAL")


def test_adapted_on_synthetic_events_has_the_synthetic_notice(adapted):
    td = _manifest(adapted["bundle"])["training_data"]
    assert td["synthetic"] is True and td["notice"].startswith("Trained on SYNTHETIC data only")
    assert td["description"].startswith("SYNTHETIC: SITE")


def test_grow_class_head_keeps_the_old_rows(base):
    import torch

    model, _ = load_run(base["run"])
    grown, report = grow_class_head(model, 6)
    old, new = model.heads.class_out, grown.heads.class_out
    assert new.weight.shape[0] == 6 and report["grown"] == {"from": 4, "to": 6}
    assert torch.equal(new.weight[:4], old.weight) and torch.equal(new.bias[:4], old.bias)
    # everything but the class output layer is copied as it was
    sd_old, sd_new = model.state_dict(), grown.state_dict()
    for k, v in sd_old.items():
        if not k.startswith("heads.class_out."):
            assert torch.equal(sd_new[k], v), k


def _bad(base, tmp_path, name: str) -> list[str]:
    site = base["site"]
    key = str(base["key"])
    if name == "one_class":
        site = _relabel(site, tmp_path / "S", lambda r: r if r["label"] == "noise" else None)
    elif name == "too_few":
        seen = {"k": 0}

        def one_fracture(r):
            if r["label"] != "fracture":
                return r
            seen["k"] += 1
            return r if seen["k"] == 1 else None

        site = _relabel(site, tmp_path / "S", one_fracture)
    elif name == "public_key_as_key":
        key = str(base["pub"])
    elif name == "not_a_key":
        (tmp_path / "junk.key").write_text("not a key\n")
        key = str(tmp_path / "junk.key")
    elif name == "no_data":
        site = tmp_path / "nothing"
    return ["--data", str(site), "--key", key, "--from", str(base["run"]), "--cache-dir", base["cache"]]


@pytest.mark.parametrize("case, words", [
    ("one_class", "at least two classes"),
    ("too_few", "held-out part needs at least 2"),
    ("public_key_as_key", "--key"),
    ("not_a_key", "not an unencrypted PEM private key"),
    ("no_data", "no such folder"),
])
def test_bad_input_exits_2_and_writes_nothing(base, tmp_path, capsys, case, words):
    out = tmp_path / "o" / "x.msb"
    rc, _, err = _adapt(capsys, *_bad(base, tmp_path, case), "--out", str(out), "--quiet", *QUICK)
    assert rc == 2, err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bundle_without_its_float_weights_is_refused(base, adapted, tmp_path, capsys):
    lone = tmp_path / "lone.msb"
    shutil.copy(adapted["bundle"], lone)  # no lone.weights/ beside it
    out = tmp_path / "o" / "x.msb"
    rc, _, err = _adapt(capsys, "--data", str(base["site"]), "--out", str(out), "--key", str(base["key"]),
                        "--from", str(lone), "--quiet")
    assert rc == 2 and "no float weights found" in err and not (tmp_path / "o").exists()
    # weights of another bundle beside it: refused, naming the mismatch
    other = tmp_path / "other.msb"
    other.write_bytes(lone.read_bytes() + b"\0")  # a different file, same weights folder name
    shutil.copytree(adapted["weights"], tmp_path / "other.weights")
    rc, _, err = _adapt(capsys, "--data", str(base["site"]), "--out", str(out), "--key", str(base["key"]),
                        "--from", str(other), "--quiet")
    assert rc == 2 and "not of this bundle" in err and not (tmp_path / "o").exists()


def test_float_weights_written_and_checked(base, adapted, tmp_path):
    dest = write_float_weights(base["run"], adapted["bundle"], tmp_path / "w")
    rec = check_float_weights(dest, _sha(adapted["bundle"]))
    assert rec["architecture"] == "cnn1d" and rec["bundle_name"] == _manifest(adapted["bundle"])["name"]
    with pytest.raises(WeightsError, match="not of this bundle"):
        check_float_weights(dest, "0" * 64)
    (dest / "model.pt").write_bytes((dest / "model.pt").read_bytes() + b"x")
    with pytest.raises(WeightsError, match="model_sha256"):
        check_float_weights(dest, _sha(adapted["bundle"]))


def test_missing_default_weights_say_pass_from_run(tmp_path, capsys, base):
    with pytest.raises(WeightsError, match=r"float weights are not installed.*--from RUN"):
        find_float_weights(None, default_dir=tmp_path / "none")
    if (DEFAULT_WEIGHTS_DIR / "model.pt").is_file():
        return  # the shipped weights are installed: `adapt` without --from starts from them
    out = tmp_path / "o" / "x.msb"
    rc, _, err = _adapt(capsys, "--data", str(base["site"]), "--out", str(out), "--key", str(base["key"]),
                        "--quiet")
    assert rc == 2 and "float weights are not installed" in err and "--from RUN" in err
    assert not (tmp_path / "o").exists()


def test_manifest_checks_the_provenance_fields(adapted):
    from edge.model.format import BundleError
    from edge.model.manifest import Manifest

    m = _manifest(adapted["bundle"])
    parsed = Manifest.from_dict(m)
    assert parsed.adapted_from == m["adapted_from"] and parsed.to_dict()["adapted_on"] == m["adapted_on"]
    plain = {k: v for k, v in m.items() if k not in ("adapted_from", "adapted_on")}
    assert Manifest.from_dict(plain).adapted_from is None  # older bundles still parse
    for field, value, words in (("adapted_from", {**m["adapted_from"], "sha256": "abc"}, "adapted_from.sha256"),
                                ("adapted_on", {**m["adapted_on"], "counts": {"noise": -1}}, "adapted_on.counts")):
        with pytest.raises(BundleError, match=words):
            Manifest.from_dict({**m, field: value})
