"""Assignment ``cnn_backprop``: a small ResNet-style CNN over note embeddings, backpropagated by hand.

Tokens are the notes of children's songs (``data.song_tokens``). A context of ``T`` notes is embedded,
turned channels-first into a one-row "image" ``(B, C, 1, T)``, and goes through a residual block:
main path conv 1x3 (stride 1, padding 1) -> BatchNorm2d -> ReLU -> conv 1x3 (stride 2) -> BatchNorm2d;
skip path conv 1x1 (stride 2); the two are summed, average-pooled to one position, and a bias-free
linear head predicts the next note. Every convolution is written as ``F.unfold`` and a matrix product.
``forward`` below is the only copy of the forward pass: the notebook shows and calls it, and the
grader runs it to make its references.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import reference
from ..data import NOTE_ITOS, NOTE_STOI, SONG_END, song_tokens
from ..hidden_cases import draw_configs
from ..mistakes import Mistake, embedding_overwritten, passed_through, scaled
from ..reference import Upstream, show_source
from ..spec import Assignment, Case, Item, Sample, with_mistakes, with_standard_samples
from ..upstream import SmallScale, assemble_cases

VOCAB_SIZE = len(NOTE_STOI)  # 9: end of song, comma, a-g
BN_EPS = 1e-5
PARAM_NAMES = ("wte", "W1", "bn1_gamma", "bn1_beta", "W2", "bn2_gamma", "bn2_beta", "Ws", "Wh")


@dataclass(frozen=True)
class Config:
    """Sizes. They all differ from each other (and from V = 9), so a transpose cannot pass."""

    batch_size: int = 12  # B
    context: int = 10     # T notes in, predict the next one
    n_embd: int = 6       # C: embedding size = input channels
    h1: int = 7           # channels after the first convolution
    h2: int = 8           # channels after the second convolution and the skip projection
    conv_gain: float = 1.0  # the two main-path convolutions' weight scale (a hidden case makes it small)


NOTEBOOK_CONFIG = Config()
NOTEBOOK_SEED = 1337

# The hidden cases draw their sizes from these inclusive ranges (see ``hidden_cases``): a case takes
# milliseconds, and every layer is exercised. context >= 5 makes T2 >= 3, so pooling's 1/T2 and the
# stride-2 windows' overlap both show, and each channel's batchnorm averages B*T2 >= 12 values;
# context <= 16 keeps T2 <= 8, below V = 9. batch_size * context > 9 repeats a note, so dwte must
# add its rows. n_embd >= 4 keeps 3C (cols1's rows) off V. The first hidden case has an odd context,
# so the stride-2 layers see an odd width (the notebook's is even).
HIDDEN_SIZE_RANGES: Mapping[str, tuple[int, int]] = {
    "batch_size": (4, 16), "context": (5, 16), "n_embd": (4, 8), "h1": (4, 12), "h2": (4, 14)}
# One more case, for the items whose formula holds batchnorm's eps (SMALL_SCALE_ITEMS), scales both
# main-path convolutions by 1/25: each batchnorm's input variance is then about 2e-3, where the
# 1e-5 inside (var + 1e-5)**-0.5 moves dx by ~0.3%, 30 times the tolerance (at the usual scale a
# dropped eps is off by ~5e-6 relative, inside it).
SMALL_CONV_GAIN = 1 / 25
SMALL_SCALE_ITEMS = frozenset({"dc2", "dc1"})
SMALL_SCALE = SmallScale(SMALL_SCALE_ITEMS, {"conv_gain": SMALL_CONV_GAIN}, "small batchnorm inputs (variance ~2e-3)")


def init_params(cfg: Config, g: torch.Generator) -> dict[str, Tensor]:
    """Random, non-zero parameters (no patterned weights: equal rows would hide mistakes)."""
    C, H1, H2, V = cfg.n_embd, cfg.h1, cfg.h2, VOCAB_SIZE
    params = {
        "wte": torch.randn((V, C), generator=g),                                    # (V, C)
        "W1": torch.randn((H1, C, 1, 3), generator=g) * cfg.conv_gain / (3 * C) ** 0.5,  # (H1, C, 1, 3)
        "bn1_gamma": 1.0 + 0.1 * torch.randn(H1, generator=g),                      # (H1,)
        "bn1_beta": 0.1 * torch.randn(H1, generator=g),                             # (H1,)
        "W2": torch.randn((H2, H1, 1, 3), generator=g) * cfg.conv_gain / (3 * H1) ** 0.5,  # (H2, H1, 1, 3)
        "bn2_gamma": 1.0 + 0.1 * torch.randn(H2, generator=g),                      # (H2,)
        "bn2_beta": 0.1 * torch.randn(H2, generator=g),                             # (H2,)
        "Ws": torch.randn((H2, C, 1, 1), generator=g) / C**0.5,                     # (H2, C, 1, 1)
        "Wh": 0.3 * torch.randn((H2, V), generator=g),                              # (H2, V)
    }
    for p in params.values():
        p.requires_grad_(True)
    return params


def sample_batch(cfg: Config, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random windows of the song corpus: ``x (B, T)`` notes and ``y (B,)`` the note after each."""
    tokens = song_tokens()
    start = torch.randint(0, tokens.shape[0] - cfg.context, (cfg.batch_size,), generator=g)
    offsets = torch.arange(cfg.context)
    return tokens[start[:, None] + offsets], tokens[start + cfg.context]


def setup(cfg: Config = NOTEBOOK_CONFIG, seed: int = NOTEBOOK_SEED) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Parameters and one batch, from one seed: the notebook and the grader's cases both start here."""
    g = torch.Generator().manual_seed(seed)
    params = init_params(cfg, g)
    x, y = sample_batch(cfg, g)
    return params, x, y


@dataclass
class Forward:
    """Every named step. B batch, T context, C channels in, H1/H2 channels, T2 = ceil(T/2), V = 9."""

    x: Tensor           # (B, T) int64
    y: Tensor           # (B,) int64
    emb: Tensor         # (B, T, C)
    xin: Tensor         # (B, C, 1, T)
    cols1: Tensor       # (B, C*3, T)
    c1: Tensor          # (B, H1, 1, T)
    bn1_mean: Tensor    # (1, H1, 1, 1)
    bn1_var: Tensor     # (1, H1, 1, 1)
    bn1_xhat: Tensor    # (B, H1, 1, T)
    bn1: Tensor         # (B, H1, 1, T)
    r1: Tensor          # (B, H1, 1, T)
    cols2: Tensor       # (B, H1*3, T2)
    c2: Tensor          # (B, H2, 1, T2)
    bn2_mean: Tensor    # (1, H2, 1, 1)
    bn2_var: Tensor     # (1, H2, 1, 1)
    bn2_xhat: Tensor    # (B, H2, 1, T2)
    bn2: Tensor         # (B, H2, 1, T2)
    colss: Tensor       # (B, C, T2)
    s: Tensor           # (B, H2, 1, T2)
    res: Tensor         # (B, H2, 1, T2)
    pooled: Tensor      # (B, H2, 1, 1)
    feat: Tensor        # (B, 1, H2)
    logits: Tensor      # (B, 1, V)
    logits_flat: Tensor  # (B, V)
    loss: Tensor        # ()


def batchnorm2d(c: Tensor, gamma: Tensor, beta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Training-mode BatchNorm2d, written out: statistics per channel over batch and positions,
    with the biased variance (as ``nn.BatchNorm2d`` normalises). Returns mean, var, xhat, out."""
    mean = c.mean(dim=(0, 2, 3), keepdim=True)                    # (1, H, 1, 1)
    var = ((c - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)     # (1, H, 1, 1)  divides by N = B*1*T
    xhat = (c - mean) * (var + BN_EPS) ** -0.5                    # (B, H, 1, T)
    out = gamma.view(1, -1, 1, 1) * xhat + beta.view(1, -1, 1, 1)  # (B, H, 1, T)
    return mean, var, xhat, out


def forward(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Forward:
    wte, W1, W2, Ws, Wh = params["wte"], params["W1"], params["W2"], params["Ws"], params["Wh"]
    B, T = x.shape
    H1, H2, V = W1.shape[0], W2.shape[0], Wh.shape[1]

    emb = wte[x]                                                        # (B, T, C)
    xin = emb.permute(0, 2, 1).unsqueeze(2)                             # (B, C, 1, T) channels first, one row
    # main path: conv 1x3, stride 1, padding 1 on the token axis, as unfold + matrix product
    cols1 = F.unfold(xin, kernel_size=(1, 3), padding=(0, 1), stride=(1, 1))   # (B, C*3, T)
    c1 = (W1.view(H1, -1) @ cols1).view(B, H1, 1, T)                    # (B, H1, 1, T)
    bn1_mean, bn1_var, bn1_xhat, bn1 = batchnorm2d(c1, params["bn1_gamma"], params["bn1_beta"])
    r1 = torch.relu(bn1)                                                # (B, H1, 1, T)
    # conv 1x3, stride 2: downsamples the token axis to T2 = ceil(T/2)
    cols2 = F.unfold(r1, kernel_size=(1, 3), padding=(0, 1), stride=(1, 2))    # (B, H1*3, T2)
    T2 = cols2.shape[-1]
    c2 = (W2.view(H2, -1) @ cols2).view(B, H2, 1, T2)                   # (B, H2, 1, T2)
    bn2_mean, bn2_var, bn2_xhat, bn2 = batchnorm2d(c2, params["bn2_gamma"], params["bn2_beta"])
    # skip path: 1x1 conv, stride 2, so its output matches the main path's shape
    colss = F.unfold(xin, kernel_size=(1, 1), stride=(1, 2))            # (B, C, T2)
    s = (Ws.view(H2, -1) @ colss).view(B, H2, 1, T2)                    # (B, H2, 1, T2)
    res = bn2 + s                                                       # (B, H2, 1, T2)
    # pool every position into one, back to (B, 1, channels), and the head
    pooled = F.adaptive_avg_pool2d(res, 1)                              # (B, H2, 1, 1)
    feat = pooled.view(B, 1, H2)                                        # (B, 1, H2)
    logits = feat @ Wh                                                  # (B, 1, V)
    logits_flat = logits.view(B, V)                                     # (B, V)
    loss = F.cross_entropy(logits_flat, y)                              # ()

    return Forward(x, y, emb, xin, cols1, c1, bn1_mean, bn1_var, bn1_xhat, bn1, r1, cols2, c2, bn2_mean,
                   bn2_var, bn2_xhat, bn2, colss, s, res, pooled, feat, logits, logits_flat, loss)


def forward_with_grads(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Forward:
    """Run ``forward`` and ``loss.backward()``, keeping ``.grad`` on every intermediate too."""
    return reference.forward_with_grads(forward, params, x, y)


def autograd_reference(params: dict[str, Tensor], x: Tensor, y: Tensor, upstream: Upstream | None = None
                       ) -> tuple[Forward, dict[str, Tensor]]:
    """The grader's reference: autograd's gradient of every step and parameter, ``d`` + name (of the
    loss, or of ``upstream``'s random linear function: see ``upstream.py``)."""
    return reference.autograd_reference(forward, params, x, y, upstream=upstream)


def torch_modules_forward(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The same model from torch's own layers (nn.Conv2d, nn.BatchNorm2d): the logits ``(B, 1, V)``.
    The notebook compares it with ``forward`` so students can trust the unfold version."""
    xin = params["wte"][x].permute(0, 2, 1).unsqueeze(2)
    h = F.conv2d(xin, params["W1"], padding=(0, 1))
    h = F.batch_norm(h, None, None, params["bn1_gamma"], params["bn1_beta"], training=True, eps=BN_EPS)
    h = F.conv2d(torch.relu(h), params["W2"], stride=(1, 2), padding=(0, 1))
    h = F.batch_norm(h, None, None, params["bn2_gamma"], params["bn2_beta"], training=True, eps=BN_EPS)
    out = h + F.conv2d(xin, params["Ws"], stride=(1, 2))
    return F.adaptive_avg_pool2d(out, 1).view(x.shape[0], 1, -1) @ params["Wh"]


def make_case(label: str, cfg: Config, seed: int, upstream: Upstream | None = None) -> Case:
    params, x, y = setup(cfg, seed)
    f, grads = autograd_reference(params, x, y, upstream)
    values = {**reference.case_values(f, params), "T": cfg.context}
    return Case(label=label, values=values, grads=grads)


def _derived_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    """Axis sizes computed from the drawn ones: T2 (after stride 2), and the unfolded rows of each
    convolution. They must differ from the rest too, or a swapped axis keeps its shape."""
    return {"T2": (sizes["context"] + 1) // 2, "cols1_rows": 3 * sizes["n_embd"], "cols2_rows": 3 * sizes["h1"]}


def hidden_configs(rng: random.Random) -> list[Config]:
    """The hidden cases' sizes: all different from each other and from V, each unlike the same size in
    the notebook's batch and the hidden cases before it; odd contexts first, then even (alternating)."""
    return draw_configs(rng, Config, NOTEBOOK_CONFIG, HIDDEN_SIZE_RANGES, (VOCAB_SIZE,), derived=_derived_sizes,
                        accept=lambda i, sizes: sizes["context"] % 2 == (i % 2 == 0))


def warm_up() -> None:
    """The notebook's data, cached before the sandbox seals itself (see ``assignments.warm_up``)."""
    song_tokens()


def _label(index: int, c: Config) -> str:
    return f"hidden case {index} (B={c.batch_size}, T={c.context}, C={c.n_embd}, H1={c.h1}, H2={c.h2})"


def make_cases(rng: random.Random) -> list[Case]:
    """The notebook's own batch first, then ``HIDDEN_CASES`` with sizes and seeds drawn from ``rng``
    (the first with an odd context, so the stride-2 layers see an odd width), the small-variance case
    of the batchnorm items, and the random-upstream cases (``upstream.py``)."""
    return assemble_cases(rng, ITEMS, make_case, _label, (NOTEBOOK_CONFIG, NOTEBOOK_SEED), hidden_configs,
                          small=SMALL_SCALE)


@torch.no_grad()
def sample_notes(params: dict[str, Tensor], prompt: str, count: int, seed: int = 0) -> str:
    """Continue ``prompt`` (note letters) by ``count`` notes. Batchnorm uses the statistics of the
    window itself, as in training (batch of one)."""
    g = torch.Generator().manual_seed(seed)
    T = NOTEBOOK_CONFIG.context
    ids = [NOTE_STOI[ch] for ch in prompt.lower()]
    for _ in range(count):
        window = torch.tensor([([NOTE_STOI[SONG_END]] * T + ids)[-T:]])
        logits = forward(params, window, torch.zeros(1, dtype=torch.long)).logits_flat
        ids.append(int(torch.multinomial(torch.softmax(logits, dim=1), 1, generator=g)))
    return "".join(NOTE_ITOS[i] for i in ids)


# ---------------------------------------------------------------- graded items


def _dropped_eps(var_name: str) -> Mistake:
    """batchnorm2d_backward with (var)**-0.5 in place of (var + eps)**-0.5: every entry of a
    channel scaled by sqrt((var + eps) / var)."""
    return scaled(lambda c: ((c.resolve(var_name) + BN_EPS) / c.resolve(var_name)) ** 0.5,  # type: ignore[operator]
                  "the 1e-5 is missing: the forward pass normalises with (var + 1e-5)**-0.5, and where a channel's "
                  "variance is small (down to {var:.1e} here) it changes the gradient noticeably.",
                  lambda c: {"var": float(c.resolve(var_name).min())})  # type: ignore[attr-defined]


def _batch(case: Case) -> dict[str, int]:
    return {"B": int(case.resolve("x").shape[0])}  # type: ignore[attr-defined]


def _positions(case: Case) -> dict[str, int]:
    return {"T2": int(case.resolve("res").shape[-1])}  # type: ignore[attr-defined]


def _demb(case: Case) -> Tensor:
    """The embedding's gradient (B, T, C), from xin's (B, C, 1, T)."""
    return case.resolve("dxin").squeeze(2).permute(0, 2, 1)  # type: ignore[attr-defined, no-any-return]


# Known mistakes (``mistakes.py``): each hint is shown only when the mistake reproduces the answer.
_MISTAKES: dict[str, tuple[Mistake, ...]] = {
    "dlogits": (scaled(lambda c: _batch(c)["B"], "off by a factor of B = {B}: the loss is the mean over the "
                       "B = {B} examples of the batch.", _batch),),
    "dres": (scaled(lambda c: _positions(c)["T2"], "off by a factor of T2 = {T2}: average pooling takes 1/T2 of "
                    "each of the T2 = {T2} positions.", _positions),),
    "dc2": (_dropped_eps("bn2_var"),),
    "dc1": (_dropped_eps("bn1_var"),),
    "dbn1": (
        Mistake("the mask is taken from the gradient: relu lets the gradient through where its *input* bn1 was "
                "positive, whatever the sign of dr1.",
                lambda c, e: (c.resolve("dr1") > 0).to(e.dtype) * c.resolve("dr1")),  # type: ignore[operator]
        passed_through("dr1", "relu's mask is missing: the gradient only passes where bn1 was positive."),
    ),
    "dwte": (embedding_overwritten("x", "wte", _demb, token="note"),),
}

def _unfold(name: str, k: int, stride: int, padding: int):  # type: ignore[no-untyped-def]
    return lambda case: F.unfold(case.values[name], (1, k), padding=(0, padding), stride=(1, stride))


def _fold(name: str, k: int, stride: int, padding: int):  # type: ignore[no-untyped-def]
    return lambda case: F.fold(case.grads[name], output_size=(1, case.values["T"]), kernel_size=(1, k),
                               padding=(0, padding), stride=(1, stride))


_BN = "per channel, the sums run over batch and positions (dims 0, 2, 3): N = B*T values per channel."
_CONV = "dW from the unfolded input; dx by folding the unfolded gradient back (F.fold, same stride and padding)."

# What unfold_loop and fold_loop reimplement, in every form that does the job in one call: the
# functions, their operators, and the convolutions that compute an unfolding (an identity kernel)
# or a folding (a transposed one). ``nn.Unfold`` and ``nn.Fold`` call the functions.
UNFOLD_SHORTCUTS = ("torch.nn.functional.unfold", "torch.Tensor.unfold", "torch._C._nn.im2col", "aten::im2col",
                    "aten::unfold", "torch.nn.functional.conv1d", "torch.nn.functional.conv2d",
                    "torch.convolution", "aten::convolution", "aten::_convolution", "aten::conv1d", "aten::conv2d")
FOLD_SHORTCUTS = ("torch.nn.functional.fold", "torch._C._nn.col2im", "aten::col2im",
                  "torch.nn.functional.conv_transpose1d", "torch.nn.functional.conv_transpose2d",
                  "torch.convolution", "aten::convolution", "aten::_convolution", "aten::conv_transpose1d",
                  "aten::conv_transpose2d")

ITEMS: tuple[Item, ...] = with_mistakes((
    # part 1: convolution as unfold + matrix product
    Item("unfold_s1", "unfold_loop", ("xin", 3, 1, 1), 2, 1, expected=_unfold("xin", 3, 1, 1),
         hint="pad both ends of the token axis, then take one window per output position; each column "
              "lists channel 0's window, then channel 1's, ...", shortcuts=UNFOLD_SHORTCUTS),
    Item("unfold_s2", "unfold_loop", ("r1", 3, 2, 1), 1, 1, expected=_unfold("r1", 3, 2, 1),
         hint="with stride 2 the windows start at 0, 2, 4, ... of the padded input.", shortcuts=UNFOLD_SHORTCUTS),
    # part 2: the backward pass, from the loss down; every function gets the true upstream gradient
    Item("dlogits", "cross_entropy_backward", ("logits_flat", "y"), 2, 2,
         expected=lambda case: case.grads["dlogits_flat"]),
    Item("dfeat", "linear_backward", ("feat", "Wh", "dlogits"), 1, 2, output=0),
    Item("dWh", "linear_backward", ("feat", "Wh", "dlogits"), 1, 2, output=1,
         hint="every example contributes to the head's weight: sum over the batch."),
    Item("dres", "avgpool_backward", ("res", "dpooled"), 2, 2,
         hint="each of the T2 positions contributed 1/T2 of the average."),
    Item("dbn2", "residual_backward", ("dres",), 1, 2, output=0),
    Item("ds", "residual_backward", ("dres",), 1, 2, output=1),
    Item("dc2", "batchnorm2d_backward", ("dbn2", "bn2_xhat", "bn2_gamma", "bn2_var"), 3, 2, output=0, hint=_BN),
    Item("dbn2_gamma", "batchnorm2d_backward", ("dbn2", "bn2_xhat", "bn2_gamma", "bn2_var"), 1, 2, output=1,
         hint=_BN),
    Item("dbn2_beta", "batchnorm2d_backward", ("dbn2", "bn2_xhat", "bn2_gamma", "bn2_var"), 1, 2, output=2,
         hint=_BN),
    Item("fold_s1", "fold_loop", ("dcols1", "T", 3, 1, 1), 2, 2, expected=_fold("dcols1", 3, 1, 1),
         hint="add every window's column back where it came from (windows overlap), then drop the padding.",
         shortcuts=FOLD_SHORTCUTS),
    Item("fold_s2", "fold_loop", ("dcols2", "T", 3, 2, 1), 1, 2, expected=_fold("dcols2", 3, 2, 1),
         shortcuts=FOLD_SHORTCUTS),
    Item("dr1", "conv_backward", ("dc2", "r1", "W2", 2, 1), 2, 2, output=0, hint=_CONV),
    Item("dW2", "conv_backward", ("dc2", "r1", "W2", 2, 1), 2, 2, output=1, hint=_CONV),
    Item("dbn1", "relu_backward", ("bn1", "dr1"), 1, 2),
    Item("dc1", "batchnorm2d_backward", ("dbn1", "bn1_xhat", "bn1_gamma", "bn1_var"), 1, 2, output=0, hint=_BN),
    Item("dbn1_gamma", "batchnorm2d_backward", ("dbn1", "bn1_xhat", "bn1_gamma", "bn1_var"), 1, 2, output=1),
    Item("dbn1_beta", "batchnorm2d_backward", ("dbn1", "bn1_xhat", "bn1_gamma", "bn1_var"), 1, 2, output=2),
    Item("dW1", "conv_backward", ("dc1", "xin", "W1", 1, 1), 2, 2, output=1, hint=_CONV),
    Item("dWs", "conv_backward", ("ds", "xin", "Ws", 2, 0), 2, 2, output=1,
         hint="the 1x1 projection is a convolution too: kernel width 1, stride 2, no padding."),
    Item("dxin", "input_backward", ("dc1", "ds", "xin", "W1", "Ws"), 2, 2,
         hint="xin feeds both the first convolution and the skip projection: add both contributions."),
    Item("dwte", "embedding_backward", ("wte", "x", "dxin"), 2, 2,
         hint="undo the permute and the extra axis, then add each position's gradient to its note's row "
              "(a note repeats within a window)."),
    # part 3: the whole backward pass that the training step uses
    Item("backward", "manual_backward", ("f", "params"), 4, 3,
         hint="return a dict with one gradient per parameter name: " + ", ".join(PARAM_NAMES) + ".",
         expected=lambda case: {k: case.grads[f"d{k}"] for k in PARAM_NAMES}),
), _MISTAKES)


# ---------------------------------------------------------------- bundled sample submissions

_PARTLY_RIGHT = {
    "avgpool_backward": (
        "def avgpool_backward(res, dpooled):\n"
        "    return dpooled * torch.ones_like(res)  # forgets the 1/T2 of the mean\n"),
    "batchnorm2d_backward": (
        "def batchnorm2d_backward(dout, xhat, gamma, var):\n"
        "    N = dout.shape[0] * dout.shape[2] * dout.shape[3]\n"
        "    dbeta = dout.sum((0, 2, 3))\n"
        "    dgamma = (dout * xhat).sum((0, 2, 3))\n"
        "    g = gamma.view(1, -1, 1, 1) * (var + 1e-5) ** -0.5\n"
        "    # Bessel's factor, but the forward pass uses the biased variance\n"
        "    dx = g / N * (N * dout - dbeta.view(1, -1, 1, 1) - N / (N - 1) * xhat * dgamma.view(1, -1, 1, 1))\n"
        "    return dx, dgamma, dbeta\n"),
    "embedding_backward": (
        "def embedding_backward(wte, x, dxin):\n"
        "    demb = dxin.squeeze(2).permute(0, 2, 1)\n"
        "    dwte = torch.zeros_like(wte)\n"
        "    dwte[x.reshape(-1)] = demb.reshape(-1, wte.shape[1])  # overwrites repeated notes\n"
        "    return dwte\n"),
}

_GRAD_COPY = {
    "cross_entropy_backward": "def cross_entropy_backward(logits_flat, y):\n    return f.logits_flat.grad\n",
    "linear_backward": "def linear_backward(feat, Wh, dlogits):\n    return f.feat.grad, params['Wh'].grad\n",
    "avgpool_backward": "def avgpool_backward(res, dpooled):\n    return f.res.grad\n",
    "residual_backward": "def residual_backward(dres):\n    return f.bn2.grad, f.s.grad\n",
    "batchnorm2d_backward": ("def batchnorm2d_backward(dout, xhat, gamma, var):\n"
                             "    return f.c2.grad, params['bn2_gamma'].grad, params['bn2_beta'].grad\n"),
    "conv_backward": "def conv_backward(dout, x, W, stride, padding):\n    return x.grad, W.grad\n",
    "relu_backward": "def relu_backward(bn1, dr1):\n    return f.bn1.grad\n",
    "input_backward": "def input_backward(dc1, ds, xin, W1, Ws):\n    return f.xin.grad\n",
    "embedding_backward": "def embedding_backward(wte, x, dxin):\n    return params['wte'].grad\n",
    "unfold_loop": "def unfold_loop(x, kernel_w, stride, padding):\n    return f.cols1.detach()\n",
    "fold_loop": "def fold_loop(cols, width, kernel_w, stride, padding):\n    return f.xin.grad\n",
    "manual_backward": "def manual_backward(f, params):\n    return {k: p.grad for k, p in params.items()}\n",
}

_AUTOGRAD = {
    "conv_backward": (
        "def conv_backward(dout, x, W, stride, padding):\n"
        "    x_, W_ = x.clone().requires_grad_(True), W.clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        out = F.conv2d(x_, W_, stride=(1, stride), padding=(0, padding))\n"
        "        return torch.autograd.grad(out, (x_, W_), dout)\n"),
    "relu_backward": (
        "def relu_backward(bn1, dr1):\n"
        "    a = bn1.clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        torch.relu(a).backward(dr1)\n"
        "    return a.grad\n"),
}

SAMPLES: tuple[Sample, ...] = with_standard_samples(
    ITEMS,
    # manual_backward calls the student's layer functions, so each wrong one costs part 3 too.
    Sample("sample-partly-right", "three wrong layers (pooling's 1/T2, Bessel in batchnorm, overwritten rows)",
           replace=_PARTLY_RIGHT, expected_zero=("dres", "dc2", "dc1", "dwte", "backward")),
    Sample("sample-grad-copy", "copies autograd's .grad from the notebook's tensors instead of deriving it",
           replace=_GRAD_COPY, expected_zero=tuple(i.name for i in ITEMS)),
    Sample("sample-autograd", "calls torch.autograd.grad or backward() inside answers", replace=_AUTOGRAD,
           expected_zero=("dr1", "dW2", "dbn1", "dW1", "dWs", "dxin", "backward")),
)

ASSIGNMENT = Assignment(
    id="cnn_backprop",
    title="Backpropagation by hand: a ResNet-style CNN, convolution through unfold",
    items=ITEMS,
    make_cases=make_cases,
    samples=SAMPLES,
    hidden_size_ranges=HIDDEN_SIZE_RANGES,
)

__all__ = ["ASSIGNMENT", "BN_EPS", "Config", "Forward", "NOTEBOOK_CONFIG", "NOTEBOOK_SEED", "PARAM_NAMES",
           "autograd_reference", "forward", "forward_with_grads", "init_params", "sample_batch", "sample_notes",
           "setup", "show_source", "torch_modules_forward"]
