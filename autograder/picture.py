"""A picture of where a wrong gradient differs from autograd's, the way the lecture looks at ``dlogits``.

For a wrong result of the right shape with two or more dims, three small heatmaps side by side:
autograd's gradient, the student's, and the difference, with every entry inside the tolerance left
blank, so a wrong row, a wrong column or a single stray entry is visible at a glance. Drawn with
matplotlib's object API onto an Agg canvas (no pyplot, so the caller's figures and backend are left
alone); returned as PNG bytes for a notebook (``IPython.display.Image``) or for nbgrader's feedback
(a ``display_data`` output, which the feedback page embeds).
"""

from __future__ import annotations

import io

import torch
from torch import Tensor

from .tolerances import Tolerance

MAX_ROWS = 64  # taller gradients are shown by their first rows (the caption says so)


def as_matrix(t: Tensor) -> Tensor:
    """A 2-D view for drawing: leading dims flattened into rows, the last dim as columns."""
    return t.detach().to(torch.float64).reshape(-1, t.shape[-1]).cpu()


def difference_png(name: str, received: Tensor, expected: Tensor, tol: Tolerance) -> bytes:
    """The three heatmaps for ``name``, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    r, e = as_matrix(received), as_matrix(expected)
    rows = r.shape[0]
    shown = slice(0, min(rows, MAX_ROWS))
    r, e = r[shown], e[shown]
    diff = r - e
    outside = diff.abs() > tol.atol + tol.rtol * e.abs()
    scale = float(torch.cat([r.abs().flatten(), e.abs().flatten()]).max()) or 1.0
    worst = float(diff.abs().max()) or 1.0

    figure = Figure(figsize=(9.0, 2.4), dpi=72, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3, sharey=True)
    panels = ((e, "autograd's", scale), (r, "yours", scale),
              (torch.where(outside, diff, torch.full_like(diff, float("nan"))), "yours - autograd's (outside "
               "the tolerance)", worst))
    for ax, (values, title, limit) in zip(axes, panels):
        image = ax.imshow(values.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                          interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"dim {received.ndim - 1}", fontsize=8)
        ax.tick_params(labelsize=7)
        figure.colorbar(image, ax=ax, shrink=0.85).ax.tick_params(labelsize=7)
    flattened = f"dims 0-{received.ndim - 2} flattened" if received.ndim > 2 else "dim 0"
    axes[0].set_ylabel(flattened if rows <= MAX_ROWS else f"{flattened}, first {MAX_ROWS} of {rows}", fontsize=8)
    figure.suptitle(f"{name} {tuple(received.shape)}: {int(outside.sum())} of {outside.numel()} entries shown "
                    "differ", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
