"""Grad-CAM (Selvaraju et al. 2017) for the 1-D waveform models: which part of the window
drove the class decision.

For a model with a ``last_conv`` module whose output is the final feature map ``A`` (B, K, T')
(:mod:`trainer.models.resnet_cbam`, :mod:`trainer.models.cnn1d`):

1. forward in ``eval()`` mode with MC-dropout off (deterministic), keeping ``A``;
2. ``g = ∂ y_c / ∂ A`` for the target class logit ``y_c`` (default: the predicted class);
3. channel weights ``w_k = mean_t g_k(t)``;
4. ``cam(t') = ReLU(Σ_k w_k A_k(t'))``;
5. linear interpolation from T' to the input length n (``align_corners=False``: every
   feature-map step stands for the centre of its stretch of samples);
6. min-max normalisation of each event's map to [0, 1] (an all-zero map stays 0).

The spectrogram CNN is not supported (its map is time x frequency on another grid):
:func:`gradcam` raises :class:`GradCamUnsupported` for it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["GradCamUnsupported", "gradcam", "gradcam_supported", "plot_gradcam"]


class GradCamUnsupported(ValueError):
    """The model has no 1-D ``last_conv`` feature map to explain."""


def gradcam_supported(model) -> str | None:
    """None when :func:`gradcam` works for ``model``, else the reason it does not."""
    name = getattr(getattr(model, "config", None), "name", type(model).__name__)
    if name == "spectrogram_cnn":
        return "Grad-CAM is not computed for spectrogram_cnn (2-D time-frequency input)"
    if getattr(model, "last_conv", None) is None:
        return f"model {name!r} has no last_conv feature map"
    return None


def gradcam(model, x: np.ndarray, log_peak: np.ndarray, target: int | Sequence[int] | np.ndarray | None = None,
            batch_size: int = 32) -> np.ndarray:
    """Grad-CAM maps (B, n) in [0, 1] for windows ``x`` (B, 3, n) and ``log_peak`` (B,).

    ``target``: class index for all events, one per event, or None (each event's predicted
    class). The model is left in ``eval()`` mode with MC-dropout off; parameter gradients are
    not touched.
    """
    import torch
    import torch.nn.functional as F

    from trainer.models.layers import set_mc_dropout

    reason = gradcam_supported(model)
    if reason:
        raise GradCamUnsupported(reason)
    x = np.asarray(x, np.float32)
    log_peak = np.asarray(log_peak, np.float32).reshape(-1)
    if x.ndim != 3 or log_peak.shape[0] != x.shape[0]:
        raise ValueError(f"x must be (B, channels, n) with one log_peak per event, got {x.shape}")
    b, _, n = x.shape
    if target is None:
        targets = None
    else:
        targets = np.broadcast_to(np.asarray(target, np.int64), (b,))
    model.eval()
    set_mc_dropout(model, False)
    out = np.zeros((b, n), np.float32)
    store: dict[str, torch.Tensor] = {}

    def hook(_module, _inp, output):
        store["a"] = output

    handle = model.last_conv.register_forward_hook(hook)
    try:
        for s in range(0, b, batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).requires_grad_(True)
            lb = torch.from_numpy(log_peak[s:s + batch_size].reshape(-1, 1))
            with torch.enable_grad():
                logits = model(xb, lb)
                logits = logits[0] if isinstance(logits, tuple) else logits
                tb = (logits.argmax(-1) if targets is None
                      else torch.from_numpy(np.ascontiguousarray(targets[s:s + batch_size])))
                score = logits.gather(1, tb.view(-1, 1)).sum()
                a = store["a"]
                (g,) = torch.autograd.grad(score, a)
            with torch.no_grad():
                w = g.mean(-1, keepdim=True)                      # (B, K, 1)
                cam = F.relu((w * a).sum(1, keepdim=True))        # (B, 1, T')
                cam = F.interpolate(cam, size=n, mode="linear", align_corners=False)[:, 0]
                lo = cam.amin(-1, keepdim=True)
                hi = cam.amax(-1, keepdim=True)
                span = hi - lo
                cam = torch.where(span > 1e-12, (cam - lo) / span.clamp_min(1e-12), torch.zeros_like(cam))
            out[s:s + batch_size] = cam.numpy()
    finally:
        handle.remove()
    return out


def plot_gradcam(path, events: Sequence[dict], sampling_rate: float, pre_s: float,
                 components: Sequence[str] = ("Z", "N", "E"), suptitle: str | None = None) -> None:
    """One figure of events, each shown as its components with the Grad-CAM as a colour band.

    ``events``: dicts with ``x`` (3, n), ``cam`` (n,), ``title`` (str). Time axis: seconds from
    the trigger (the window starts ``pre_s`` before it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_ev = len(events)
    if n_ev == 0:
        return
    n_comp = events[0]["x"].shape[0]
    fig, axes = plt.subplots(n_ev * n_comp, 1, figsize=(10, 1.15 * n_ev * n_comp + 0.9),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    cmap = plt.get_cmap("Reds")
    im = None
    for i, ev in enumerate(events):
        x = np.asarray(ev["x"], float)
        cam = np.asarray(ev["cam"], float)
        t = np.arange(x.shape[1]) / sampling_rate - pre_s
        extent = (t[0], t[-1] + 1.0 / sampling_rate, -1.1, 1.1)
        for j in range(n_comp):
            ax = axes[i * n_comp + j]
            im = ax.imshow(cam[None, :], aspect="auto", cmap=cmap, extent=extent, vmin=0.0, vmax=1.0,
                           alpha=0.7, interpolation="nearest", origin="lower")
            ax.plot(t, x[j], color="#1f3b73", lw=0.5)
            ax.axvline(0.0, color="0.3", lw=0.6, ls="--")
            ax.set_ylim(-1.1, 1.1)
            ax.set_yticks([])
            label = components[j] if j < len(components) else str(j)
            ax.set_ylabel(label, rotation=0, labelpad=10, va="center")
            if j == 0:
                ax.set_title(ev.get("title", ""), fontsize=9, loc="left")
    axes[-1].set_xlabel("time from trigger (s)")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.9, 0.97 if suptitle else 1.0))
    if im is not None:
        cax = fig.add_axes((0.915, 0.1, 0.012, 0.8))
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("Grad-CAM")
    fig.savefig(path, dpi=90)
    plt.close(fig)
