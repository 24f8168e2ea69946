#!/usr/bin/env python3
"""The continuous benchmark: the station (shipped bundle, default configuration) replayed over
hours of continuous records of several sites, scored against their catalogue.

Data: ``--data DIR``, or generated into ``--work`` with ``microseis synth-continuous --out DIR
--hours H --sites N --split SPLIT --seed S``. Layout read (both the generator's and a
hand-made one)::

    DIR/<site>/*.mseed          the site's continuous records (any ObsPy-readable files)
    DIR/<site>/*.xml            its StationXML (else DIR/stations.xml)
    DIR/<site>/catalog.csv      its catalogue (else DIR/catalog.csv with a site column)

Each site is replayed by the project's own command (``microseis replay FILES --catalog CSV
--inventory XML --out ALERTS.jsonl --json``; ``--jobs`` sites at a time); then all alerts are
scored together (:func:`edge.station.scorecard.score`, hours of record per station from the
replays), so the per-site rows and the overall row come from one matching. A site whose
replay fails (e.g. a sampling rate the model refuses) is listed with its reason.

Writes the table into ``docs/results.md`` between ``<!-- continuous-benchmark -->`` and
``<!-- /continuous-benchmark -->`` (appended when the markers are missing), a bar chart of
per-class recall per site (``docs/results/continuous_recall.png``), and prints the table and,
as the last line, one JSON object with every figure.

    python bench/continuous.py --hours 24 --sites 8 --split other      # the benchmark run
    python bench/continuous.py --data DIR --no-docs                     # score a folder only
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.signal.labels import CLASSES  # noqa: E402
from edge.station.scorecard import (  # noqa: E402
    NOISE,
    ScorecardError,
    alerts_from_dicts,
    read_catalog,
    score,
    site_matches,
)

BEGIN, END = "<!-- continuous-benchmark -->", "<!-- /continuous-benchmark -->"
WAVEFORM_SUFFIXES = (".mseed", ".miniseed", ".msd", ".sac")
TARGETS = [c for c in CLASSES if c != NOISE]


def microseis(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *argv], capture_output=True, text=True, cwd=REPO, check=False)


def generate(out: Path, hours: float, sites: int, split: str, seed: int) -> None:
    argv = ["synth-continuous", "--out", str(out), "--hours", f"{hours:g}", "--sites", str(sites),
            "--split", split, "--seed", str(seed), "--force"]
    res = microseis(*argv)
    if res.returncode != 0:
        raise SystemExit(f"microseis {' '.join(argv)} failed:\n{res.stderr.strip()[-2000:]}")


@dataclasses.dataclass
class Site:
    name: str
    files: list[Path]
    catalog: Path | None
    inventory: Path | None


def find_sites(root: Path) -> list[Site]:
    """The site folders of ``root`` (those holding waveform files), sorted by name."""
    sites = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in WAVEFORM_SUFFIXES)
        if not files:
            continue
        xml = sorted(d.glob("*.xml"))
        inv = xml[0] if xml else (root / "stations.xml" if (root / "stations.xml").is_file() else None)
        cat = d / "catalog.csv" if (d / "catalog.csv").is_file() else (
            root / "catalog.csv" if (root / "catalog.csv").is_file() else None)
        sites.append(Site(d.name, files, cat, inv))
    if not sites:
        raise SystemExit(f"{root}: no site folders with waveform files ({', '.join(WAVEFORM_SUFFIXES)})")
    return sites


def replay_site(site: Site, work: Path, extra: list[str]) -> dict[str, Any]:
    """``microseis replay`` over one site; its JSON summary plus the alerts file, or the error."""
    alerts = work / f"{site.name}.jsonl"
    argv = ["replay", *map(str, site.files), "--out", str(alerts), "--json", "--quiet", *extra]
    if site.catalog is not None:
        argv += ["--catalog", str(site.catalog)]
    if site.inventory is not None:
        argv += ["--inventory", str(site.inventory)]
    res = microseis(*argv)
    if res.returncode != 0:
        lines = res.stderr.strip().splitlines()
        why = lines[-1].removeprefix("microseis replay: error: ") if lines else f"exit {res.returncode}"
        return {"site": site.name, "error": why}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["site"] = site.name
    out["alerts_file"] = str(alerts)
    return out


def pooled_score(sites: list[Site], runs: list[dict[str, Any]]):
    """One scorecard over every replayed site: each site's catalogue rows (their site set to
    the station), its alerts and its hours of record."""
    events, alerts, hours = [], [], {}
    for site, run in zip(sites, runs):
        if "error" in run or site.catalog is None:
            continue
        stations = run["stations"]
        hours.update({sid: st["hours"] for sid, st in stations.items()})
        for e in read_catalog(site.catalog):
            if e.site is None:  # a catalogue of this site alone
                sid = next(iter(stations)) if len(stations) == 1 else None
            else:
                sid = next((s for s in stations if site_matches(e.site, s) or e.site == site.name), None)
            if sid is not None:
                events.append(dataclasses.replace(e, site=sid))
        alerts += alerts_from_dicts(json.loads(x) for x in Path(run["alerts_file"]).read_text().splitlines())
    if not hours:
        return None
    return score(events, alerts, hours)


def _f(v: Any, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def table(runs: list[dict[str, Any]], card, meta: dict[str, Any]) -> str:
    head = ("| site | rate (Hz) | hours | events | " + " | ".join(f"recall {c}" for c in TARGETS)
            + " | false alerts / h | split | macro F1 | ML within 0.3 | × real time |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    by_station = card.to_dict().get("sites", {}) if card is not None else {}
    for run in runs:
        if "error" in run:
            rows.append(f"| {run['site']} | | | | " + " | ".join("" for _ in TARGETS)
                        + f" | | | | | not replayed: {run['error'].replace('|', '/')} |")
            continue
        station, st = next(iter(run["stations"].items()))
        m = next((v for k, v in by_station.items() if site_matches(k, station) or k == station), None)
        if m is None:
            continue
        rows.append(f"| {run['site']} | {st['sampling_rate']:g} | {st['hours']:.2f} | "
                    f"{sum(v for k, v in m['events'].items() if k != NOISE)} | "
                    + " | ".join(_f(m["recall"][c]) for c in TARGETS)
                    + f" | {_f(m['false_alerts_per_hour'])} | {m['split_events']} | {_f(m['macro_f1'])} | "
                    f"{_f(m['ml_hit_0_3'])} | {_f(run['realtime_factor'], '.0f')} |")
    if card is not None:
        m = card.to_dict()
        rtf = meta.get("realtime_factor")
        rows.append(f"| **all** | | {m['record_hours']:.2f} | "
                    f"{sum(v for k, v in m['events'].items() if k != NOISE)} | "
                    + " | ".join(_f(m["recall"][c]) for c in TARGETS)
                    + f" | {_f(m['false_alerts_per_hour'])} | {m['split_events']} | {_f(m['macro_f1'])} | "
                    f"{_f(m['ml_hit_0_3'])} | {_f(rtf, '.0f')} |")
    return "\n".join(rows)


def plot(card, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sites = card.to_dict().get("sites", {})
    names = list(sites) + ["all"]
    recalls = [sites[n]["recall"] for n in sites] + [card.to_dict()["recall"]]
    x = np.arange(len(names))
    w = 0.8 / len(TARGETS)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 3.6))
    for k, c in enumerate(TARGETS):
        vals = [np.nan if r[c] is None else r[c] for r in recalls]
        ax.bar(x + (k - (len(TARGETS) - 1) / 2) * w, vals, w, label=c)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("detection recall")
    ax.set_title("Continuous benchmark: per-class recall per site")
    ax.legend(ncol=len(TARGETS), fontsize=8, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_docs(md: Path, block: str) -> None:
    text = md.read_text(encoding="utf-8") if md.is_file() else ""
    section = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip() + "\n\n## The station on continuous records (`bench/continuous.py`)\n\n" + section + "\n"
    md.write_text(text, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="benchmark folder (default: generate one into --work)")
    ap.add_argument("--work", type=Path, help="folder for generated data and alerts (default: a temporary one)")
    ap.add_argument("--hours", type=float, default=24.0, help="hours per site when generating (24)")
    ap.add_argument("--sites", type=int, default=8, help="sites when generating (8)")
    ap.add_argument("--split", default="other", choices=["train", "other"], help="site split when generating (other)")
    ap.add_argument("--seed", type=int, default=11, help="seed when generating (11)")
    ap.add_argument("--config", type=Path, help="station configuration (default: the built-in defaults)")
    ap.add_argument("--model", type=Path, help="model bundle (default: the shipped one)")
    ap.add_argument("--jobs", type=int, default=1, help="sites replayed at a time (1)")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results.md", help="Markdown file to update")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "results" / "continuous_recall.png")
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()

    tmp = None
    work = args.work
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="microseis-continuous-")
        work = Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    generated = data is None
    if generated:
        data = work / "data"
        generate(data, args.hours, args.sites, args.split, args.seed)
    sites = find_sites(data)
    extra = []
    if args.config:
        extra += ["--config", str(args.config)]
    if args.model:
        extra += ["--model", str(args.model)]
    alerts_dir = work / "alerts"
    alerts_dir.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        runs = list(pool.map(lambda s: replay_site(s, alerts_dir, extra), sites))
    try:
        card = pooled_score(sites, runs)
    except ScorecardError as exc:
        raise SystemExit(f"scorecard: {exc}") from None
    ok = [r for r in runs if "error" not in r]
    data_h = sum(r["data_hours"] for r in ok)
    wall = sum(r["wall_s"] for r in ok)
    meta = {"data_hours": data_h, "wall_s": wall, "realtime_factor": data_h * 3600 / wall if wall > 0 else None}
    md = table(runs, card, meta)
    how = (f"python bench/continuous.py --hours {args.hours:g} --sites {args.sites} --split {args.split} "
           f"--seed {args.seed}" if generated else f"python bench/continuous.py --data {shlex.quote(str(args.data))}")
    block = (f"Produced by `{how}` (model: {args.model or 'the shipped bundle'}; configuration: "
             f"{args.config or 'the defaults'}). Recall: catalogue events with at least one alert; "
             f"false alerts per hour of record outside labelled noise transients; split: events "
             f"with several alerts; macro F1 of the class on matched events; ML within 0.3 of the "
             f"catalogue magnitude (matched earthquakes); × real time: hours of data per hour of "
             f"replay, per replay process (docs/replay.md); events: catalogue events other than "
             f"labelled noise transients.\n\n{md}\n\n"
             f"![per-class recall per site](results/{args.plot.name})")
    print(md)
    if card is not None and not args.no_docs:
        write_docs(args.results, block)
        plot(card, args.plot)
    keep = ("site", "error", "alerts", "by_class", "data_hours", "wall_s", "read_s", "realtime_factor", "stations")
    runs_out = [{k: r[k] for k in keep if k in r} for r in runs]
    print(json.dumps({"sites": runs_out, "overall": card.to_dict() if card is not None else None, **meta},
                     default=str, allow_nan=False))
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
