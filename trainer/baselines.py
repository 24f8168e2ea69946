"""Classic (non-deep) baselines on Bossea's eight hand-made features.

What a deep model has to beat. Every method sees the same inputs, built by
:class:`FeatureTransform` from :attr:`trainer.data.EventArrays.features` (the eight
:data:`edge.signal.features.BOSSEA_FEATURES`, computed by the station's own code):

1. **log transform** of the strictly positive, heavy-tailed features (values spanning orders of
   magnitude): ``log10`` of ``bracketed_duration_s``, ``uniform_duration_s``,
   ``max_mean_ratio``, ``max_over_uniform_duration`` and of ``kurtosis + 3`` (the plain,
   non-excess kurtosis ``m4 / m2**2``, which is >= 1 for any signal). Values are floored at
   1e-12 before the log. The three frequency features (``peak_frequency_hz``,
   ``dominant_band_hz``, ``bandwidth_80_hz``) are bounded (0 .. Nyquist), can be exactly 0
   and stay linear.
2. **standardisation** with the mean and standard deviation of the *training* events only
   (a constant training column gets scale 1), then applied unchanged to the test events.

Methods (:data:`CLASSIFIERS`):

* ``pca_kmeans`` — the Bossea cave study's method (87 % accuracy there): PCA keeping the
  fewest components that explain :data:`PCA_VARIANCE` (95 %) of the training variance, then
  k-means with ``k = n_classes`` in that space. k-means is unsupervised: it only gives
  cluster numbers. The *only* way it becomes a classifier (and so the only way an accuracy
  can be quoted for it) is to name each cluster after the **majority true class of the
  training events in it** (ties -> the lower class index). A test event is put into the
  nearest centroid's cluster and gets that cluster's class. Several clusters may get the
  same class and a class may get no cluster at all (a rare class that never holds a majority
  is then never predicted) — that is the method, not a bug.
* ``pca_kmeans_3k`` — the same with ``k = 3 * n_classes`` clusters: more, smaller clusters
  let a rare class own a cluster of its own (still mapped by training majority).
* ``random_forest`` — ``RandomForestClassifier`` (300 trees, ``class_weight="balanced"``).
* ``gradient_boosting`` — ``HistGradientBoostingClassifier`` (100 iterations, learning
  rate 0.1, ``class_weight="balanced"``, no early stopping so the result does not depend on
  a random validation split).
* ``random_forest_attributes`` — not Bossea's: the random forest on the eight transformed
  features plus the 12 station attributes (:data:`edge.signal.features.ATTRIBUTES`, which include
  ``log10_peak``), standardised the same way: the strongest classic reference.

Everything is seeded (``seed``); the same data and seed give the same numbers. Fits run
with ``n_threads`` (default 1) OpenMP/BLAS threads: on a small, shared machine the
multi-threaded histogram boosting was 4x *slower* than one thread (1000 events: 42 s vs 10 s
on 2 busy cores).

Magnitude (:func:`magnitude_baseline`): regression of ML on ``[log_peak, transformed
features, attributes]``, trained on the training earthquakes with a known magnitude and
scored on the test events whose *true* class is earthquake (as
:func:`trainer.metrics.evaluation_metrics` scores the magnitude head): ``linear`` (ridge,
alpha 1, on standardised inputs) and ``gradient_boosting``
(``HistGradientBoostingRegressor``). Predictions are clipped to the magnitude head's range
``[MAG_MIN, MAG_MAX]`` (0-3), which the head cannot leave either. Note ``log_peak`` is in
m/s only when the dataset has ``stations.xml``; in counts the magnitude depends on the gain.

All scores come from :func:`trainer.metrics.evaluation_metrics` /
:func:`trainer.metrics.magnitude_metrics`, like the deep models'.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.signal.features import BOSSEA_FEATURES
from edge.signal.labels import MAG_MAX, MAG_MIN
from trainer.data import EventArrays
from trainer.metrics import evaluation_metrics, magnitude_metrics

log = logging.getLogger(__name__)

__all__ = [
    "CLASSIFIERS",
    "LOG_FEATURES",
    "PCA_VARIANCE",
    "FeatureTransform",
    "PCAKMeansClassifier",
    "fit_classifier",
    "magnitude_baseline",
    "pca_projection",
    "run_baselines",
]

#: Features that are log10-transformed (``kurtosis`` as ``kurtosis + 3``).
LOG_FEATURES: tuple[str, ...] = (
    "bracketed_duration_s",
    "uniform_duration_s",
    "max_mean_ratio",
    "max_over_uniform_duration",
    "kurtosis",
)
#: Fraction of the training variance the PCA of ``pca_kmeans`` keeps.
PCA_VARIANCE = 0.95
#: Classifiers of :func:`run_baselines`, in report order.
CLASSIFIERS: tuple[str, ...] = (
    "pca_kmeans",
    "pca_kmeans_3k",
    "random_forest",
    "gradient_boosting",
    "random_forest_attributes",
)

_FLOOR = 1e-12


def _log_features(features: np.ndarray) -> np.ndarray:
    """The eight features with :data:`LOG_FEATURES` in log10 (see the module docstring)."""
    f = np.array(features, dtype=np.float64, copy=True)
    if f.ndim != 2 or f.shape[1] != len(BOSSEA_FEATURES):
        raise ValueError(f"expected (N, {len(BOSSEA_FEATURES)}) Bossea features, got {f.shape}")
    for name in LOG_FEATURES:
        j = BOSSEA_FEATURES.index(name)
        col = f[:, j] + 3.0 if name == "kurtosis" else f[:, j]
        f[:, j] = np.log10(np.maximum(col, _FLOOR))
    return f


@dataclass
class FeatureTransform:
    """log10 of the heavy-tailed features, then standardisation with training statistics.

    ``extra`` columns (e.g. attributes) are appended after the log step and standardised too.
    """

    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    @staticmethod
    def _raw(features: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        x = _log_features(features)
        if extra is not None:
            x = np.hstack([x, np.asarray(extra, np.float64).reshape(len(x), -1)])
        x[~np.isfinite(x)] = 0.0  # the station's features are finite; defensive only
        return x

    def fit(self, features: np.ndarray, extra: np.ndarray | None = None) -> FeatureTransform:
        x = self._raw(features, extra)
        if len(x) == 0:
            raise ValueError("no training events")
        self.mean_ = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def transform(self, features: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("FeatureTransform is not fitted")
        return (self._raw(features, extra) - self.mean_) / self.scale_

    def fit_transform(self, features: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        return self.fit(features, extra).transform(features, extra)


@dataclass
class PCAKMeansClassifier:
    """PCA + k-means whose clusters are named by the majority training class (see module doc).

    Args:
        n_clusters: k; ``None`` means the number of classes (set in :meth:`fit`).
        variance: fraction of variance the PCA keeps (or an int: that many components).
        seed: k-means and PCA seed.
    """

    n_clusters: int | None = None
    variance: float | int = PCA_VARIANCE
    seed: int = 0
    pca_: Any = None
    kmeans_: Any = None
    cluster_to_class_: np.ndarray | None = None
    cluster_sizes_: np.ndarray | None = None
    cluster_purity_: np.ndarray | None = None
    classes_seen_: np.ndarray | None = field(default=None, repr=False)

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> PCAKMeansClassifier:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.int64)
        k = int(self.n_clusters or n_classes)
        if len(x) < k:
            raise ValueError(f"{len(x)} training events cannot make {k} clusters")
        self.pca_ = PCA(n_components=self.variance, svd_solver="full", random_state=self.seed).fit(x)
        z = self.pca_.transform(x)
        self.kmeans_ = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit(z)
        members = self.kmeans_.labels_
        counts = np.zeros((k, n_classes), np.int64)
        np.add.at(counts, (members, y), 1)
        # majority vote of the training labels; argmax breaks ties towards the lower index.
        # An empty cluster (k-means keeps none, but be safe) takes the overall majority class.
        overall = int(np.argmax(np.bincount(y, minlength=n_classes)))
        self.cluster_to_class_ = np.where(counts.sum(1) > 0, counts.argmax(1), overall)
        self.cluster_sizes_ = counts.sum(1)
        self.cluster_purity_ = counts.max(1) / np.maximum(counts.sum(1), 1)
        self.classes_seen_ = np.unique(y)
        return self

    @property
    def n_components_(self) -> int:
        return int(self.pca_.n_components_)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class of the nearest centroid's cluster (in the training PCA space)."""
        clusters = self.kmeans_.predict(self.pca_.transform(np.asarray(x, np.float64)))
        return self.cluster_to_class_[clusters]

    def describe(self, classes: Sequence[str]) -> dict:
        return {
            "pca_components": self.n_components_,
            "pca_explained_variance": float(np.sum(self.pca_.explained_variance_ratio_)),
            "n_clusters": int(len(self.cluster_to_class_)),
            "clusters": [
                {"class": classes[c], "train_events": int(n), "purity": round(float(p), 4)}
                for c, n, p in zip(self.cluster_to_class_, self.cluster_sizes_, self.cluster_purity_)
            ],
        }


def _labelled(a: EventArrays) -> EventArrays:
    return a.subset(a.y >= 0)


def _inputs(name: str, tf: FeatureTransform, a: EventArrays, fit: bool) -> np.ndarray:
    extra = a.attributes if name == "random_forest_attributes" else None
    return tf.fit_transform(a.features, extra) if fit else tf.transform(a.features, extra)


def fit_classifier(name: str, train: EventArrays, seed: int = 0):
    """Fit classifier ``name`` (one of :data:`CLASSIFIERS`) on the labelled training events.

    Returns ``(predict, info)``: ``predict(EventArrays) -> class indices`` and a JSON-able dict
    describing the fitted model.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown baseline {name!r} (known: {', '.join(CLASSIFIERS)})")
    train = _labelled(train)
    n_classes = len(train.classes)
    tf = FeatureTransform()
    x = _inputs(name, tf, train, fit=True)
    y = train.y
    info: dict[str, Any] = {"inputs": "features+attributes" if name == "random_forest_attributes"
                            else "features", "n_inputs": int(x.shape[1])}
    if name.startswith("pca_kmeans"):
        k = 3 * n_classes if name == "pca_kmeans_3k" else n_classes
        model = PCAKMeansClassifier(n_clusters=k, seed=seed).fit(x, y, n_classes)
        info.update(model.describe(train.classes))
    elif name.startswith("random_forest"):
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=300, class_weight="balanced",
                                       random_state=seed, n_jobs=1).fit(x, y)
        info.update(n_estimators=300, class_weight="balanced")
    else:  # gradient_boosting
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1,
                                               class_weight="balanced", early_stopping=False,
                                               random_state=seed).fit(x, y)
        info.update(max_iter=100, learning_rate=0.1, class_weight="balanced")

    def predict(a: EventArrays) -> np.ndarray:
        if len(a) == 0:
            return np.zeros(0, np.int64)
        return np.asarray(model.predict(_inputs(name, tf, a, fit=False)), np.int64)

    return predict, info


def _mag_inputs(a: EventArrays) -> tuple[np.ndarray, np.ndarray]:
    return a.features, np.hstack([a.log_peak.reshape(-1, 1).astype(np.float64), a.attributes])


def magnitude_baseline(train: EventArrays, test: EventArrays, seed: int = 0) -> dict:
    """Ridge and gradient-boosting regression of ML (see the module docstring).

    Returns ``{"n_train": int, "inputs": str, "linear": metrics|None,
    "gradient_boosting": metrics|None}``; metrics are :func:`magnitude_metrics` of the test
    events whose true class is ``earthquake`` (``None`` when there are none). With fewer than
    5 training earthquakes with a magnitude, both are ``None`` and ``"skipped"`` says why.
    """
    classes = list(train.classes)
    out: dict[str, Any] = {"inputs": "log_peak + 8 features (log/standardised) + 12 attributes",
                           "clip": [MAG_MIN, MAG_MAX], "linear": None, "gradient_boosting": None}
    if "earthquake" not in classes:
        out.update(n_train=0, skipped="no 'earthquake' class")
        return out
    eq = classes.index("earthquake")
    tr = train.subset((train.y == eq) & np.isfinite(train.magnitude))
    te = test.subset((test.y == eq) & np.isfinite(test.magnitude))
    out["n_train"] = len(tr)
    out["n_test"] = len(te)
    if len(tr) < 5:
        out["skipped"] = f"only {len(tr)} training earthquakes with a magnitude (need 5)"
        return out
    if len(te) == 0:
        out["skipped"] = "no test earthquakes with a magnitude"
        return out
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    tf = FeatureTransform()
    x_tr = tf.fit_transform(*_mag_inputs(tr))
    x_te = tf.transform(*_mag_inputs(te))
    m_tr = tr.magnitude.astype(np.float64)
    models = {
        "linear": Ridge(alpha=1.0),
        "gradient_boosting": HistGradientBoostingRegressor(
            max_iter=200, learning_rate=0.05, early_stopping=False, random_state=seed),
    }
    for name, model in models.items():
        pred = np.clip(model.fit(x_tr, m_tr).predict(x_te), MAG_MIN, MAG_MAX)
        out[name] = magnitude_metrics(te.magnitude, pred)
    return out


def run_baselines(train: EventArrays, test: EventArrays, seed: int = 0,
                  methods: Sequence[str] | None = None, magnitude: bool = True,
                  n_threads: int | None = 1) -> dict[str, dict]:
    """Fit every baseline on ``train`` and score it on ``test``.

    Only labelled events (``y >= 0``) are used on either side. Returns ``{method: metrics}``
    where metrics is :func:`trainer.metrics.evaluation_metrics` (accuracy, macro-F1,
    per-class precision/recall/F1/support, confusion) plus ``"model"`` (what was fitted) and
    ``"fit_s"``; and, unless ``magnitude=False``, ``"magnitude"`` ->
    :func:`magnitude_baseline`. ``n_threads`` caps OpenMP/BLAS threads (``None``: library
    default).

    Raises:
        ValueError: different class lists, an unknown method, or no labelled training events.
    """
    if tuple(train.classes) != tuple(test.classes):
        raise ValueError(f"train classes {train.classes} differ from test classes {test.classes}")
    if train.units != test.units:
        log.warning("train log_peak is in %s but test in %s: magnitude and amplitude features "
                    "are not comparable", train.units, test.units)
    train, test = _labelled(train), _labelled(test)
    if len(train) == 0:
        raise ValueError("no labelled training events")
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(limits=n_threads):
        return _run(train, test, seed, methods, magnitude)


def _run(train: EventArrays, test: EventArrays, seed: int, methods: Sequence[str] | None,
         magnitude: bool) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for name in methods or CLASSIFIERS:
        t0 = time.perf_counter()
        predict, info = fit_classifier(name, train, seed)
        fit_s = time.perf_counter() - t0
        metrics = evaluation_metrics(test.y, predict(test), test.classes)
        metrics["model"] = info
        metrics["fit_s"] = round(fit_s, 3)
        results[name] = metrics
    if magnitude:
        results["magnitude"] = magnitude_baseline(train, test, seed)
    return results


def pca_projection(train: EventArrays, test: EventArrays | None = None,
                   n_components: int = 2) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """First ``n_components`` principal components of the transformed features.

    PCA and transform are fitted on ``train``; ``test`` (if any) is projected with them.
    Returns ``(train_scores, test_scores or None, explained_variance_ratio)``.
    """
    from sklearn.decomposition import PCA

    tf = FeatureTransform()
    x = tf.fit_transform(train.features)
    pca = PCA(n_components=min(n_components, x.shape[1], len(x)), svd_solver="full").fit(x)
    z_test = pca.transform(tf.transform(test.features)) if test is not None and len(test) else None
    return pca.transform(x), z_test, pca.explained_variance_ratio_
