#!/usr/bin/env python3
"""Physical ML against the learned magnitude on the earthquakes of a dataset folder.

    python bench/physical_ml.py --data data/other-test --predictions runs/bench/default-eval-other-test/predictions.csv

For every labelled earthquake: the station's ML (:func:`edge.station.event_magnitude.event_ml`:
AIC P/S picks -> S-P distance -> Wood-Anderson through the StationXML) on the record from
2 s before the trigger to 60 s after it, the same ML at the catalogue distance
(``truth.csv``), and -- from ``microseis evaluate``'s ``predictions.csv`` -- the model's learned
magnitude. Prints one table and, as the last line, a JSON object (hit rates within 0.3 and
0.2, median and mean absolute error, bias, n; ``null`` values are counted as misses).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import obspy  # noqa: E402

from edge.signal.dataset import read_stations  # noqa: E402
from edge.signal.magnitude import station_magnitude  # noqa: E402
from edge.station.event_magnitude import event_ml  # noqa: E402


def scores(true: list[float], est: list[float | None]) -> dict:
    t = np.asarray(true, float)
    e = np.asarray([np.nan if v is None else v for v in est], float)
    ok = np.isfinite(e)
    err = e[ok] - t[ok]
    n = len(t)
    return {"n": n, "n_with_value": int(ok.sum()),
            "hit_0_3": float(np.sum(np.abs(err) <= 0.3 + 1e-9) / n) if n else None,
            "hit_0_2": float(np.sum(np.abs(err) <= 0.2 + 1e-9) / n) if n else None,
            "median_abs": float(np.median(np.abs(err))) if ok.any() else None,
            "mae": float(np.mean(np.abs(err))) if ok.any() else None,
            "bias": float(np.mean(err)) if ok.any() else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--predictions", help="predictions.csv of microseis evaluate on the same folder")
    args = p.parse_args()
    root = Path(args.data)
    inv = read_stations(root)
    truth = {r["path"]: r for r in csv.DictReader(open(root / "truth.csv", newline=""))}
    learned: dict[str, float | None] = {}
    if args.predictions:
        for r in csv.DictReader(open(args.predictions, newline="")):
            learned[r["path"]] = float(r["predicted_magnitude"]) if r.get("predicted_magnitude") else None
    true, ml_station, ml_catalog, ml_model = [], [], [], []
    for r in csv.DictReader(open(root / "labels.csv", newline="")):
        if r["label"] != "earthquake" or not r["magnitude"]:
            continue
        st = obspy.read(str(root / r["path"]))
        t = obspy.UTCDateTime(r["trigger_time"])
        snippet = st.slice(t - 2.0, t + 60.0)
        true.append(float(r["magnitude"]))
        ml_station.append(event_ml(snippet, inventory=inv).ml)
        ml_catalog.append(station_magnitude(st, inv, float(truth[r["path"]]["distance_km"])))
        ml_model.append(learned.get(r["path"]))
    out = {"data": str(root), "station_ml_sp_distance": scores(true, ml_station),
           "ml_catalogue_distance": scores(true, ml_catalog)}
    if args.predictions:
        out["learned"] = scores(true, ml_model)
    print(f"{'estimate':<26}{'n':>5}{'value':>7}{'±0.3':>7}{'±0.2':>7}{'median':>8}{'MAE':>7}{'bias':>7}")
    for k, v in out.items():
        if isinstance(v, dict):
            f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
            print(f"{k:<26}{v['n']:>5}{v['n_with_value']:>7}{f(v['hit_0_3']):>7}{f(v['hit_0_2']):>7}"
                  f"{f(v['median_abs']):>8}{f(v['mae']):>7}{f(v['bias']):>7}")
    print(json.dumps({"benchmark": "physical_ml", **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
