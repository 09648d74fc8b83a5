"""Assignment ``mlp_backprop``: a character-level MLP language model, backpropagated by hand.

The model is the one of the makemore lectures: an embedding table, a linear layer, batch
normalisation, tanh, a second linear layer and cross-entropy, with the loss written out step by
step so that every intermediate has a name and a gradient. ``forward`` below is the only copy of
the forward pass: the notebook shows and calls it, and the grader runs it to make its references.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import ITOS, STOI, splits
from .. import reference
from ..hidden_cases import draw_configs
from ..mistakes import Mistake, embedding_overwritten, passed_through, scaled
from ..reference import Upstream, show_source
from ..spec import Assignment, Case, Item, Sample, with_mistakes, with_standard_samples
from ..upstream import SmallScale, assemble_cases

VOCAB_SIZE = len(STOI)  # 27: '.' and a-z
PARAM_NAMES = ("C", "W1", "b1", "bngain", "bnbias", "W2", "b2")
BN_EPS = 1e-5


@dataclass(frozen=True)
class Config:
    """Model and batch sizes. They all differ from each other, so a transposed matrix cannot pass."""

    block_size: int = 3   # characters of context
    n_embd: int = 10      # embedding dimension
    n_hidden: int = 64    # hidden units
    batch_size: int = 32
    w1_gain: float = 5 / 3  # W1's scale times sqrt(fan_in): tanh's usual gain (a hidden case makes it small)


NOTEBOOK_CONFIG = Config()
NOTEBOOK_SEED = 2147483647

# The hidden cases draw their sizes from these inclusive ranges (see ``hidden_cases``): a case takes
# milliseconds, and every layer is exercised. batch_size >= 14 with block_size >= 2 gives at least 28
# context characters, more than the 27 of the vocabulary, so one repeats and dC must add its rows.
# batch_size <= 24 because dbndiff2 shrinks like 1/n**2 down to the tolerance's atol: there, a biased
# variance (off by 1/n) still lands about 5x or more outside the tolerance; at n = 64 it would pass. The
# four block sizes (2 to 5, the notebook's 3 among them) all fit ``splits``' cache of built datasets.
HIDDEN_SIZE_RANGES: Mapping[str, tuple[int, int]] = {
    "block_size": (2, 5), "n_embd": (4, 16), "n_hidden": (24, 80), "batch_size": (14, 24)}
# One more case, for the items whose formula holds batchnorm's eps (SMALL_SCALE_ITEMS), starts W1 at
# 1/50 of its usual scale: the pre-activations' variance is then about 1e-3, where the 1e-5 inside
# (bnvar + 1e-5)**-0.5 changes dbnvar by ~1.5% (at the usual scale a dropped eps is off by 1e-5
# relative, inside the tolerance). Only for those items: at that scale float32's rounding in the
# gradients that are zero by construction (db1) grows past the tolerance's atol.
SMALL_W1_GAIN = 5 / 3 / 50
SMALL_SCALE_ITEMS = frozenset({"dbnvar"})
SMALL_SCALE = SmallScale(SMALL_SCALE_ITEMS, {"w1_gain": SMALL_W1_GAIN}, "small pre-activations (variance ~1e-3)")


def init_params(cfg: Config, g: torch.Generator) -> dict[str, Tensor]:
    """Small, non-zero random parameters (no zero biases, no unit gains) so no mistake hides behind them."""
    fan_in = cfg.n_embd * cfg.block_size
    params = {
        "C": torch.randn((VOCAB_SIZE, cfg.n_embd), generator=g),                            # (27, n_embd)
        "W1": torch.randn((fan_in, cfg.n_hidden), generator=g) * cfg.w1_gain / fan_in**0.5,  # (fan_in, n_hidden)
        "b1": torch.randn(cfg.n_hidden, generator=g) * 0.1,                                 # (n_hidden,)
        "bngain": torch.randn((1, cfg.n_hidden), generator=g) * 0.1 + 1.0,                  # (1, n_hidden)
        "bnbias": torch.randn((1, cfg.n_hidden), generator=g) * 0.1,                        # (1, n_hidden)
        "W2": torch.randn((cfg.n_hidden, VOCAB_SIZE), generator=g) * 0.1,                   # (n_hidden, 27)
        "b2": torch.randn(VOCAB_SIZE, generator=g) * 0.1,                                   # (27,)
    }
    for p in params.values():
        p.requires_grad_(True)
    return params


def sample_batch(cfg: Config, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random minibatch of training examples: ``Xb (batch, block_size)``, ``Yb (batch,)``."""
    X, Y = splits(cfg.block_size)["train"]
    ix = torch.randint(0, X.shape[0], (cfg.batch_size,), generator=g)
    return X[ix], Y[ix]


def setup(cfg: Config = NOTEBOOK_CONFIG, seed: int = NOTEBOOK_SEED) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Parameters and one batch, from one seed: the notebook and the grader's cases both start here."""
    g = torch.Generator().manual_seed(seed)
    params = init_params(cfg, g)
    Xb, Yb = sample_batch(cfg, g)
    return params, Xb, Yb


@dataclass
class Forward:
    """Every named step of the forward pass. Shapes: n = batch size, H = n_hidden, V = 27."""

    Xb: Tensor           # (n, block_size) int64
    Yb: Tensor           # (n,) int64
    emb: Tensor          # (n, block_size, n_embd)
    embcat: Tensor       # (n, block_size * n_embd)
    hprebn: Tensor       # (n, H)
    bnmeani: Tensor      # (1, H)
    bndiff: Tensor       # (n, H)
    bndiff2: Tensor      # (n, H)
    bnvar: Tensor        # (1, H)
    bnvar_inv: Tensor    # (1, H)
    bnraw: Tensor        # (n, H)
    hpreact: Tensor      # (n, H)
    h: Tensor            # (n, H)
    logits: Tensor       # (n, V)
    logit_maxes: Tensor  # (n, 1)
    norm_logits: Tensor  # (n, V)
    counts: Tensor       # (n, V)
    counts_sum: Tensor   # (n, 1)
    counts_sum_inv: Tensor  # (n, 1)
    probs: Tensor        # (n, V)
    logprobs: Tensor     # (n, V)
    loss: Tensor         # ()


def forward(params: dict[str, Tensor], Xb: Tensor, Yb: Tensor) -> Forward:
    C, W1, b1 = params["C"], params["W1"], params["b1"]
    bngain, bnbias = params["bngain"], params["bnbias"]
    W2, b2 = params["W2"], params["b2"]
    n = Xb.shape[0]  # batch size

    # embed the characters and concatenate the context
    emb = C[Xb]                                          # (n, block_size, n_embd)
    embcat = emb.view(n, -1)                             # (n, block_size * n_embd)
    # linear layer 1
    hprebn = embcat @ W1 + b1                            # (n, H)
    # batch normalisation, one step at a time
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)        # (1, H)  batch mean
    bndiff = hprebn - bnmeani                            # (n, H)
    bndiff2 = bndiff**2                                  # (n, H)
    bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdim=True)   # (1, H)  unbiased: divides by n-1 (Bessel)
    bnvar_inv = (bnvar + BN_EPS) ** -0.5                 # (1, H)
    bnraw = bndiff * bnvar_inv                           # (n, H)  normalised
    hpreact = bngain * bnraw + bnbias                    # (n, H)  scaled and shifted
    # non-linearity
    h = torch.tanh(hpreact)                              # (n, H)
    # linear layer 2
    logits = h @ W2 + b2                                 # (n, V)
    # cross-entropy loss, written out (the same as F.cross_entropy(logits, Yb))
    logit_maxes = logits.max(1, keepdim=True).values     # (n, 1)  subtracted for numerical safety
    norm_logits = logits - logit_maxes                   # (n, V)
    counts = norm_logits.exp()                           # (n, V)
    counts_sum = counts.sum(1, keepdim=True)             # (n, 1)
    counts_sum_inv = counts_sum**-1                      # (n, 1)
    probs = counts * counts_sum_inv                      # (n, V)  softmax
    logprobs = probs.log()                               # (n, V)
    loss = -logprobs[torch.arange(n), Yb].mean()         # ()      mean negative log-likelihood

    return Forward(Xb, Yb, emb, embcat, hprebn, bnmeani, bndiff, bndiff2, bnvar, bnvar_inv, bnraw,
                   hpreact, h, logits, logit_maxes, norm_logits, counts, counts_sum, counts_sum_inv,
                   probs, logprobs, loss)


def forward_with_grads(params: dict[str, Tensor], Xb: Tensor, Yb: Tensor) -> Forward:
    """Run ``forward`` and ``loss.backward()``, keeping ``.grad`` on every intermediate too."""
    return reference.forward_with_grads(forward, params, Xb, Yb)


def autograd_reference(params: dict[str, Tensor], Xb: Tensor, Yb: Tensor, upstream: Upstream | None = None
                       ) -> tuple[Forward, dict[str, Tensor]]:
    """The grader's reference: autograd's gradient of every intermediate and parameter, ``d`` + name
    (of the loss, or of ``upstream``'s random linear function: see ``upstream.py``)."""
    return reference.autograd_reference(forward, params, Xb, Yb, upstream=upstream)


def make_case(label: str, cfg: Config, seed: int, upstream: Upstream | None = None) -> Case:
    params, Xb, Yb = setup(cfg, seed)
    f, grads = autograd_reference(params, Xb, Yb, upstream)
    return Case(label=label, values=reference.case_values(f, params), grads=grads)


def _derived_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    """embcat's width, W1's first dim: it must differ from H too, or W1 is square."""
    return {"fan_in": sizes["block_size"] * sizes["n_embd"]}


def hidden_configs(rng: random.Random) -> list[Config]:
    """The hidden cases' sizes: all different from each other and from V, and each unlike the same
    size in the notebook's batch and the hidden cases before it (a hard-coded ``n`` fails all)."""
    return draw_configs(rng, Config, NOTEBOOK_CONFIG, HIDDEN_SIZE_RANGES, (VOCAB_SIZE,), derived=_derived_sizes)


def _label(index: int, c: Config) -> str:
    return f"hidden case {index} (n={c.batch_size}, H={c.n_hidden}, E={c.n_embd}, block {c.block_size})"


def warm_up() -> None:
    """The notebook's data, cached before the sandbox seals itself (see ``assignments.warm_up``)."""
    splits(NOTEBOOK_CONFIG.block_size)


def make_cases(rng: random.Random) -> list[Case]:
    """The notebook's own batch first (its rows match what students see), then ``HIDDEN_CASES``
    with sizes and seeds drawn from ``rng``, then the random-upstream cases (``upstream.py``) on the
    first hidden case's forward pass."""
    return assemble_cases(rng, ITEMS, make_case, _label, (NOTEBOOK_CONFIG, NOTEBOOK_SEED), hidden_configs,
                          small=SMALL_SCALE)


# ---------------------------------------------------------------- after training: evaluation and sampling


@torch.no_grad()
def batchnorm_statistics(params: dict[str, Tensor], X: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) variance of the pre-activations over a whole split, for inference."""
    emb = params["C"][X]                                      # (N, block_size, n_embd)
    hprebn = emb.view(X.shape[0], -1) @ params["W1"] + params["b1"]  # (N, H)
    return hprebn.mean(0, keepdim=True), hprebn.var(0, keepdim=True, unbiased=True)


@torch.no_grad()
def inference_logits(params: dict[str, Tensor], bn_stats: tuple[Tensor, Tensor], X: Tensor) -> Tensor:
    """Logits ``(N, 27)`` with batchnorm using fixed statistics, so a single example works."""
    mean, var = bn_stats
    emb = params["C"][X]                                      # (N, block_size, n_embd)
    hprebn = emb.view(X.shape[0], -1) @ params["W1"] + params["b1"]  # (N, H)
    hpreact = params["bngain"] * (hprebn - mean) * (var + BN_EPS) ** -0.5 + params["bnbias"]
    return torch.tanh(hpreact) @ params["W2"] + params["b2"]  # (N, 27)


@torch.no_grad()
def split_loss(params: dict[str, Tensor], bn_stats: tuple[Tensor, Tensor], split: str, block_size: int) -> float:
    X, Y = splits(block_size)[split]
    return float(torch.nn.functional.cross_entropy(inference_logits(params, bn_stats, X), Y))


@torch.no_grad()
def sample_names(params: dict[str, Tensor], bn_stats: tuple[Tensor, Tensor], block_size: int,
                 count: int, seed: int = 0) -> list[str]:
    """Draw ``count`` names from the model, one character at a time."""
    g = torch.Generator().manual_seed(seed)
    names: list[str] = []
    for _ in range(count):
        context = [STOI["."]] * block_size
        out: list[str] = []
        while len(out) < 30:
            probs = torch.softmax(inference_logits(params, bn_stats, torch.tensor([context])), dim=1)
            ix = int(torch.multinomial(probs, 1, generator=g))
            if ix == STOI["."]:
                break
            out.append(ITOS[ix])
            context = context[1:] + [ix]
        names.append("".join(out))
    return names


# ---------------------------------------------------------------- graded items

_TWO_PATHS = "{x} is used in two places, so its gradient is the sum of the contributions from both."


def _n(case: Case) -> dict[str, int]:
    n = int(case.values["Xb"].shape[0])  # type: ignore[attr-defined]
    return {"n": n, "n_1": n - 1}


def _values(case: Case, *names: str) -> list[Tensor]:
    return [case.resolve(name) for name in names]  # type: ignore[misc]


# Known mistakes (``mistakes.py``): each hint is shown only when the mistake reproduces the answer.
_MISSING_MEAN = scaled(lambda c: _n(c)["n"], "off by a factor of n = {n}: the loss is the mean over the n = {n} "
                       "rows of the batch, so each row's share carries a 1/n.", _n)
_MISTAKES: dict[str, tuple[Mistake, ...]] = {
    "dlogprobs": (_MISSING_MEAN,),
    "dcounts": (
        Mistake("that is only the path through probs: counts also reaches the loss through counts_sum (its row "
                "sums), whose gradient dcounts_sum you are given too.",
                lambda c, e: c.resolve("counts_sum_inv") * c.resolve("dprobs")),  # type: ignore[operator]
        Mistake("that is only the path through counts_sum: counts also reaches the loss directly through probs.",
                lambda c, e: torch.ones_like(e) * c.resolve("dcounts_sum")),  # type: ignore[operator]
    ),
    "dlogits": (passed_through("dnorm_logits", "that is only the path through norm_logits: logits also reaches the "
                               "loss through logit_maxes (each row's maximum)."),),
    "dhpreact": (
        passed_through("dh", "the local derivative of tanh is missing: h = tanh(hpreact), and tanh's derivative "
                             "can be written with h itself."),
        Mistake("that is tanh's local derivative alone: multiply it by dh, the gradient arriving from above "
                "(the chain rule).", lambda c, e: 1.0 - c.resolve("h") ** 2),  # type: ignore[operator]
    ),
    "dbnvar": (scaled(lambda c: ((c.resolve("bnvar") + BN_EPS) / c.resolve("bnvar")) ** 1.5,  # type: ignore[operator]
                      "the 1e-5 is missing: bnvar_inv = (bnvar + 1e-5)**-0.5, and where the variance is small "
                      "(down to {var:.1e} here) it changes the gradient noticeably.",
                      lambda c: {"var": float(c.resolve("bnvar").min())}),),  # type: ignore[attr-defined]
    "dbndiff2": (scaled(lambda c: (_n(c)["n"] - 1) / _n(c)["n"],
                        "off by a factor (n-1)/n = {factor}: bnvar divides the sum by n - 1 = {n_1} (Bessel's "
                        "correction, the unbiased variance), not by n = {n}.", _n),),
    "dbndiff": (
        Mistake("a factor 2 is missing on the path through bndiff2: the derivative of bndiff**2 is 2 * bndiff.",
                lambda c, e: e - c.resolve("bndiff") * c.resolve("dbndiff2")),  # type: ignore[operator]
        Mistake("that is only the path through bnraw: bndiff is also squared into bndiff2, whose gradient "
                "dbndiff2 you are given too.",
                lambda c, e: c.resolve("bnvar_inv") * c.resolve("dbnraw")),  # type: ignore[operator]
    ),
    "dhprebn": (passed_through("dbndiff", "that is only the direct path: hprebn also reaches bndiff through "
                               "the mean bnmeani, which takes 1/n of every row."),),
    "dC": (embedding_overwritten("Xb", "C", "demb"),),
    "ex2_dlogits": (
        _MISSING_MEAN,
        Mistake("that is the softmax part alone: at each row's correct class, the -log of its probability "
                "contributes a -1 too (all divided by n).",
                lambda c, e: F.softmax(c.resolve("logits"), dim=1) / _n(c)["n"]),  # type: ignore[arg-type]
    ),
    "ex3_dhprebn": (
        Mistake("the n/(n-1) of the unbiased variance is missing: the forward pass divides the squared "
                "deviations by n - 1 = {n_1}, not by n = {n}.",
                lambda c, e: e + _bessel_term(c), _n),
    ),
}


def _bessel_term(case: Case) -> Tensor:
    """What a batchnorm backward pass written for the biased variance adds to the right one."""
    dhpreact, bngain, bnvar_inv, bnraw = _values(case, "dhpreact", "bngain", "bnvar_inv", "bnraw")
    n = dhpreact.shape[0]
    return bngain * bnvar_inv / n * bnraw * (dhpreact * bnraw).sum(0) / (n - 1)

ITEMS: tuple[Item, ...] = with_mistakes((
    # exercise 1: every intermediate, in backward order. Each function gets the true gradient of
    # every consumer, so a mistake costs one item only.
    Item("dlogprobs", "backward_logprobs", ("logprobs", "Yb"), 1, 1,
         hint="only the n entries picked out by Yb reach the loss, each through a mean over n."),
    Item("dprobs", "backward_probs", ("probs", "dlogprobs"), 1, 1),
    Item("dcounts_sum_inv", "backward_counts_sum_inv", ("counts", "dprobs"), 1, 1,
         hint="counts_sum_inv (n, 1) was broadcast across the columns of counts."),
    Item("dcounts_sum", "backward_counts_sum", ("counts_sum", "dcounts_sum_inv"), 1, 1),
    Item("dcounts", "backward_counts", ("counts_sum_inv", "dprobs", "dcounts_sum"), 2, 1,
         hint=_TWO_PATHS.format(x="counts") + " (probs and counts_sum)"),
    Item("dnorm_logits", "backward_norm_logits", ("counts", "dcounts"), 1, 1),
    Item("dlogit_maxes", "backward_logit_maxes", ("dnorm_logits",), 1, 1),
    Item("dlogits", "backward_logits", ("logits", "dnorm_logits", "dlogit_maxes"), 2, 1,
         hint=_TWO_PATHS.format(x="logits") + " (norm_logits, and logit_maxes at each row's maximum)"),
    Item("dh", "backward_h", ("W2", "dlogits"), 1, 1),
    Item("dW2", "backward_W2", ("h", "dlogits"), 1, 1),
    Item("db2", "backward_b2", ("dlogits",), 1, 1),
    Item("dhpreact", "backward_hpreact", ("h", "dh"), 1, 1),
    Item("dbngain", "backward_bngain", ("bnraw", "dhpreact"), 1, 1),
    Item("dbnbias", "backward_bnbias", ("dhpreact",), 1, 1),
    Item("dbnraw", "backward_bnraw", ("bngain", "dhpreact"), 1, 1),
    Item("dbnvar_inv", "backward_bnvar_inv", ("bndiff", "dbnraw"), 1, 1),
    Item("dbnvar", "backward_bnvar", ("bnvar", "dbnvar_inv"), 1, 1),
    Item("dbndiff2", "backward_bndiff2", ("bndiff2", "dbnvar"), 1, 1,
         hint="bnvar divides the sum by n-1, not n."),
    Item("dbndiff", "backward_bndiff", ("bndiff", "bnvar_inv", "dbnraw", "dbndiff2"), 2, 1,
         hint=_TWO_PATHS.format(x="bndiff") + " (bnraw and bndiff2)"),
    Item("dbnmeani", "backward_bnmeani", ("dbndiff",), 1, 1,
         hint="bnmeani has shape (1, H): keep that dim (keepdim=True)."),
    Item("dhprebn", "backward_hprebn", ("dbndiff", "dbnmeani"), 2, 1,
         hint=_TWO_PATHS.format(x="hprebn") + " (bndiff directly, and through the mean bnmeani)"),
    Item("dembcat", "backward_embcat", ("W1", "dhprebn"), 1, 1),
    Item("dW1", "backward_W1", ("embcat", "dhprebn"), 1, 1),
    Item("db1", "backward_b1", ("dhprebn",), 1, 1),
    Item("demb", "backward_emb", ("emb", "dembcat"), 1, 1),
    Item("dC", "backward_C", ("C", "Xb", "demb"), 2, 1,
         hint="a character that appears several times in Xb collects the gradient of every position it appears at."),
    # exercise 2 and 3: the same gradients, in one formula each
    Item("ex2_dlogits", "cross_entropy_backward", ("logits", "Yb"), 3, 2,
         expected=lambda case: case.grads["dlogits"]),
    Item("ex3_dhprebn", "batchnorm_backward", ("dhpreact", "bngain", "bnvar_inv", "bnraw"), 4, 3,
         hint="the forward pass uses the unbiased variance (1/(n-1)).",
         expected=lambda case: case.grads["dhprebn"]),
    # exercise 4: the whole backward pass that the training loop uses
    Item("ex4_backward", "manual_backward", ("f", "params"), 4, 4,
         hint="return a dict with one gradient per parameter name: C, W1, b1, bngain, bnbias, W2, b2.",
         expected=lambda case: {k: case.grads[f"d{k}"] for k in PARAM_NAMES}),
), _MISTAKES)


# ---------------------------------------------------------------- bundled sample submissions

_PARTLY_RIGHT = {
    "backward_counts_sum": (
        "def backward_counts_sum(counts_sum, dcounts_sum_inv):\n"
        "    # sign slip: d(x**-1)/dx is -x**-2\n"
        "    return counts_sum**-2 * dcounts_sum_inv\n"),
    "backward_W1": (
        "def backward_W1(embcat, dhprebn):\n"
        "    return (dhprebn.T @ embcat)  # transposed\n"),
    "backward_bndiff2": (
        "def backward_bndiff2(bndiff2, dbnvar):\n"
        "    n = bndiff2.shape[0]\n"
        "    return 1.0 / n * torch.ones_like(bndiff2) * dbnvar  # biased variance\n"),
    "backward_C": (
        "def backward_C(C, Xb, demb):\n"
        "    dC = torch.zeros_like(C)\n"
        "    dC[Xb.view(-1)] = demb.view(-1, C.shape[1])  # overwrites repeated tokens\n"
        "    return dC\n"),
}


def _grad_copy_cell(item: Item) -> str:
    """A cheat: read the gradient autograd left on the notebook's own tensors."""
    args = ", ".join(item.args)
    target = item.name[1:]
    source = f"params[{target!r}].grad" if target in PARAM_NAMES else f"f.{target}.grad"
    return f"def {item.function}({args}):\n    return {source}\n"


_GRAD_COPY = {item.function: _grad_copy_cell(item) for item in ITEMS if item.exercise == 1}
_GRAD_COPY["cross_entropy_backward"] = "def cross_entropy_backward(logits, Yb):\n    return f.logits.grad\n"
_GRAD_COPY["batchnorm_backward"] = (
    "def batchnorm_backward(dhpreact, bngain, bnvar_inv, bnraw):\n    return f.hprebn.grad\n")
_GRAD_COPY["manual_backward"] = (
    "def manual_backward(f, params):\n"
    "    return {k: p.grad for k, p in params.items()}\n")

_AUTOGRAD = {
    "backward_probs": (
        "def backward_probs(probs, dlogprobs):\n"
        "    p = probs.clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        p.log().backward(dlogprobs)\n"
        "    return p.grad\n"),
    "backward_h": (
        "def backward_h(W2, dlogits):\n"
        "    h_ = f.h.detach().clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        (dh,) = torch.autograd.grad(h_ @ W2, h_, dlogits)\n"
        "    return dh\n"),
    "cross_entropy_backward": (
        "def cross_entropy_backward(logits, Yb):\n"
        "    x = logits.clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        loss = F.cross_entropy(x, Yb)\n"
        "        (g,) = torch.autograd.grad(loss, x)\n"
        "    return g\n"),
    "batchnorm_backward": (
        "def batchnorm_backward(dhpreact, bngain, bnvar_inv, bnraw):\n"
        "    from torch.func import vjp\n"
        "    x = bnraw / bnvar_inv\n"
        "    def bn(t):\n"
        "        m = t.mean(0, keepdim=True)\n"
        "        return bngain * (t - m) * (((t - m)**2).sum(0, keepdim=True) / (t.shape[0] - 1) + 1e-5)**-0.5\n"
        "    _, pull = vjp(bn, x)\n"
        "    return pull(dhpreact)[0]\n"),
}

SAMPLES: tuple[Sample, ...] = with_standard_samples(
    ITEMS,
    # manual_backward (exercise 4) calls the student's backward_C, so the wrong dC costs exercise 4
    # too; its feedback names dC as the mistake to fix.
    Sample("sample-partly-right", "four wrong gradients (a sign, a transpose, Bessel, overwritten rows)",
           replace=_PARTLY_RIGHT, expected_zero=("dcounts_sum", "dW1", "dbndiff2", "dC", "ex4_backward")),
    Sample("sample-grad-copy", "copies autograd's .grad from the notebook's tensors instead of deriving it",
           replace=_GRAD_COPY, expected_zero=tuple(i.name for i in ITEMS)),
    Sample("sample-autograd", "calls backward(), torch.autograd.grad or torch.func.vjp inside answers",
           replace=_AUTOGRAD, expected_zero=("dprobs", "dh", "ex2_dlogits", "ex3_dhprebn", "ex4_backward")),
)

ASSIGNMENT = Assignment(
    id="mlp_backprop",
    title="Backpropagation by hand: an MLP language model",
    items=ITEMS,
    make_cases=make_cases,
    samples=SAMPLES,
    hidden_size_ranges=HIDDEN_SIZE_RANGES,
)

__all__ = ["ASSIGNMENT", "Config", "Forward", "NOTEBOOK_CONFIG", "NOTEBOOK_SEED", "PARAM_NAMES",
           "autograd_reference", "batchnorm_statistics", "forward", "forward_with_grads", "init_params",
           "sample_batch", "sample_names", "setup", "show_source", "split_loss"]
