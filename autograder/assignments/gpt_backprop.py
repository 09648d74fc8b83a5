"""Assignment ``gpt_backprop``: one GPT block over names, backpropagated by hand.

A character-level decoder-only transformer: token and positional embeddings, one pre-norm block
(LayerNorm, causal multi-head self-attention with a fused ``qkv`` projection, an output projection
and a residual; LayerNorm, an MLP with GELU (tanh approximation, as GPT-2) and a residual), a final
LayerNorm, a bias-free head and cross-entropy over all ``B*T`` positions. ``forward`` below is the
only copy of the forward pass: the notebook shows and calls it, and the grader runs it.

LayerNorm puts eps inside the square root, ``(x - mean) / sqrt(var + eps)``, as ``torch.nn.LayerNorm``
does (and not ``(x - mean) / (std + eps)``): the backward pass then goes through ``rstd = (var +
eps) ** -0.5`` alone, and its formula matches PyTorch's to rounding.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import reference
from ..data import ITOS, STOI, name_stream, name_windows
from ..hidden_cases import draw_configs
from ..mistakes import Mistake, embedding_overwritten, passed_through, scaled
from ..reference import Upstream, show_source
from ..spec import Assignment, Case, Item, Sample, with_mistakes, with_standard_samples
from ..upstream import assemble_cases

VOCAB_SIZE = len(STOI)  # 27
LN_EPS = 1e-5
# float64 throughout: the first LayerNorm sees the small embeddings (rstd ~ 30), where float32's
# rounding, amplified by the backward pass's cancellations, would use a quarter of the tolerance on
# the composed backward pass; in float64 a right answer uses none of it, and a mistake still shows.
DTYPE = torch.float64
PARAM_NAMES = ("wte", "wpe", "ln1_g", "ln1_b", "W_qkv", "b_qkv", "W_proj", "b_proj", "ln2_g", "ln2_b",
               "W_fc", "b_fc", "W_fc2", "b_fc2", "lnf_g", "lnf_b", "W_head")


@dataclass(frozen=True)
class Config:
    """Sizes. B, T, n_head, head_size, C = n_head * head_size, 3C, 4C and V = 27 all differ."""

    batch_size: int = 5   # B
    context: int = 8      # T
    n_head: int = 3
    head_size: int = 4    # C = 12

    @property
    def n_embd(self) -> int:
        return self.n_head * self.head_size


NOTEBOOK_CONFIG = Config()
NOTEBOOK_SEED = 20_260_501

# Hidden sizes (``hidden_cases.draw_distinct``): all differ within a case (with C, 3C, 4C and V), and
# each differs from the notebook's and the earlier hidden case's, so a hard-coded T, head count or
# head size, or a mask built for the notebook's T, fails. T from 5 to 16 puts sequences both shorter
# and longer than the notebook's 8; at most 9 x 16 positions of width C <= 35 (4C <= 140): a case
# takes milliseconds. Enough combinations that two students rarely share sizes.
HIDDEN_SIZE_RANGES: Mapping[str, tuple[int, int]] = {
    "batch_size": (2, 9), "context": (5, 16), "n_head": (2, 5), "head_size": (3, 7)}


def _derived_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    C = sizes["n_head"] * sizes["head_size"]
    return {"C": C, "3C": 3 * C, "4C": 4 * C}


def hidden_configs(rng: random.Random) -> list[Config]:
    return draw_configs(rng, Config, NOTEBOOK_CONFIG, HIDDEN_SIZE_RANGES, (VOCAB_SIZE,), derived=_derived_sizes)


def init_params(cfg: Config, g: torch.Generator) -> dict[str, Tensor]:
    """Small, non-zero random parameters: no unit gains or zero biases for a mistake to hide behind."""
    C, T, V = cfg.n_embd, cfg.context, VOCAB_SIZE

    def gain() -> Tensor:
        return 1.0 + 0.1 * torch.randn(C, generator=g, dtype=DTYPE)

    def bias(n: int) -> Tensor:
        return 0.1 * torch.randn(n, generator=g, dtype=DTYPE)

    params = {
        # GPT-2's scale for the embeddings: the residual stream starts small, where LayerNorm's eps
        # is not negligible (it is what tells eps inside the root from eps outside it)
        "wte": torch.randn((V, C), generator=g, dtype=DTYPE) * 0.02,           # (V, C)   token embedding
        "wpe": torch.randn((T, C), generator=g, dtype=DTYPE) * 0.02,           # (T, C)   position embedding
        "ln1_g": gain(), "ln1_b": bias(C),                        # (C,)
        "W_qkv": torch.randn((C, 3 * C), generator=g, dtype=DTYPE) / C**0.5,   # (C, 3C)  q, k, v side by side
        "b_qkv": bias(3 * C),                                     # (3C,)
        # the attention output sets the scale of x1 (the MLP's LayerNorm input): O(1), like a trained
        # network's residual stream, where eps is negligible (only the embeddings are small)
        "W_proj": torch.randn((C, C), generator=g, dtype=DTYPE) * 2 / C**0.5,  # (C, C)
        "b_proj": torch.randn(C, generator=g, dtype=DTYPE),                    # (C,)
        "ln2_g": gain(), "ln2_b": bias(C),                        # (C,)
        "W_fc": torch.randn((C, 4 * C), generator=g, dtype=DTYPE) / C**0.5,    # (C, 4C)
        "b_fc": bias(4 * C),                                      # (4C,)
        "W_fc2": torch.randn((4 * C, C), generator=g, dtype=DTYPE) / (4 * C) ** 0.5,  # (4C, C)
        "b_fc2": bias(C),                                         # (C,)
        "lnf_g": gain(), "lnf_b": bias(C),                        # (C,)
        "W_head": torch.randn((C, V), generator=g, dtype=DTYPE) / C**0.5,      # (C, V)
    }
    for p in params.values():
        p.requires_grad_(True)
    return params


def sample_batch(cfg: Config, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``B`` windows of ``T`` characters of the name stream, and their targets (the next character)."""
    return name_windows(cfg.batch_size, cfg.context, g)


def setup(cfg: Config = NOTEBOOK_CONFIG, seed: int = NOTEBOOK_SEED) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = init_params(cfg, g)
    x, y = sample_batch(cfg, g)
    return params, x, y


@dataclass
class Forward:
    """Every named step. B, T, C as in ``Config``; nh = n_head, hs = head_size; V = 27."""

    x: Tensor              # (B, T) int64
    y: Tensor              # (B, T) int64
    tok_emb: Tensor        # (B, T, C)
    pos_emb: Tensor        # (T, C)
    x0: Tensor             # (B, T, C)   the residual stream entering the block
    ln1_xhat: Tensor       # (B, T, C)   normalised, before gain and bias
    ln1_rstd: Tensor       # (B, T, 1)   1 / sqrt(var + eps)
    ln1: Tensor            # (B, T, C)
    qkv: Tensor            # (B, T, 3C)
    qh: Tensor             # (B, nh, T, hs)
    kh: Tensor             # (B, nh, T, hs)
    vh: Tensor             # (B, nh, T, hs)
    scores: Tensor         # (B, nh, T, T)  q.k
    att_scaled: Tensor     # (B, nh, T, T)  q.k / sqrt(hs)
    att: Tensor            # (B, nh, T, T)  softmax over the last dim, causal
    yh: Tensor             # (B, nh, T, hs)
    y_merged: Tensor       # (B, T, C)
    attn_out: Tensor       # (B, T, C)
    x1: Tensor             # (B, T, C)   after the attention residual
    ln2_xhat: Tensor       # (B, T, C)
    ln2_rstd: Tensor       # (B, T, 1)
    ln2: Tensor            # (B, T, C)
    fc: Tensor             # (B, T, 4C)
    gelu: Tensor           # (B, T, 4C)
    mlp_out: Tensor        # (B, T, C)
    x2: Tensor             # (B, T, C)   after the MLP residual
    lnf_xhat: Tensor       # (B, T, C)
    lnf_rstd: Tensor       # (B, T, 1)
    lnf: Tensor            # (B, T, C)
    logits: Tensor         # (B, T, V)
    logits_flat: Tensor    # (B*T, V)
    loss: Tensor           # ()


def layernorm(x: Tensor, g: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """LayerNorm over the last dim, eps inside the root (as torch.nn.LayerNorm): (out, xhat, rstd)."""
    mean = x.mean(-1, keepdim=True)                           # (..., 1)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)            # (..., 1)  biased, as torch's
    rstd = (var + LN_EPS) ** -0.5                             # (..., 1)
    xhat = (x - mean) * rstd                                  # (..., C)
    return xhat * g + b, xhat, rstd


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU, GPT-2's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def causal_mask(T: int) -> Tensor:
    """(T, T) bool: True where position t may look (itself and earlier positions)."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def forward(params: dict[str, Tensor], x: Tensor, y: Tensor, n_head: int) -> Forward:
    B, T = x.shape
    C = params["wte"].shape[1]
    hs = C // n_head                                              # head size

    # embeddings: what each token is, and where it is
    tok_emb = params["wte"][x]                                    # (B, T, C)
    pos_emb = params["wpe"][:T]                                   # (T, C)
    x0 = tok_emb + pos_emb                                        # (B, T, C)  broadcast over B

    # attention, pre-norm: LayerNorm, then q, k, v from one fused projection
    ln1, ln1_xhat, ln1_rstd = layernorm(x0, params["ln1_g"], params["ln1_b"])   # (B, T, C)
    qkv = ln1 @ params["W_qkv"] + params["b_qkv"]                 # (B, T, 3C)
    q, k, v = qkv.split(C, dim=2)                                 # (B, T, C) each
    qh = q.view(B, T, n_head, hs).transpose(1, 2)                 # (B, nh, T, hs)
    kh = k.view(B, T, n_head, hs).transpose(1, 2)                 # (B, nh, T, hs)
    vh = v.view(B, T, n_head, hs).transpose(1, 2)                 # (B, nh, T, hs)
    scores = qh @ kh.transpose(-2, -1)                            # (B, nh, T, T)
    att_scaled = scores * hs**-0.5                                # (B, nh, T, T)  keeps the softmax from saturating
    att_masked = att_scaled.masked_fill(~causal_mask(T), float("-inf"))  # (B, nh, T, T)  no peeking ahead
    att = torch.softmax(att_masked, dim=-1)                       # (B, nh, T, T)  each row sums to 1
    yh = att @ vh                                                 # (B, nh, T, hs)
    y_merged = yh.transpose(1, 2).reshape(B, T, C)                # (B, T, C)  heads side by side
    attn_out = y_merged @ params["W_proj"] + params["b_proj"]     # (B, T, C)
    x1 = x0 + attn_out                                            # (B, T, C)  residual

    # MLP, pre-norm
    ln2, ln2_xhat, ln2_rstd = layernorm(x1, params["ln2_g"], params["ln2_b"])   # (B, T, C)
    fc = ln2 @ params["W_fc"] + params["b_fc"]                    # (B, T, 4C)
    gelu = gelu_tanh(fc)                                          # (B, T, 4C)
    mlp_out = gelu @ params["W_fc2"] + params["b_fc2"]            # (B, T, C)
    x2 = x1 + mlp_out                                             # (B, T, C)  residual

    # final LayerNorm, head, cross-entropy over every position
    lnf, lnf_xhat, lnf_rstd = layernorm(x2, params["lnf_g"], params["lnf_b"])   # (B, T, C)
    logits = lnf @ params["W_head"]                               # (B, T, V)
    logits_flat = logits.view(B * T, -1)                          # (B*T, V)
    loss = F.cross_entropy(logits_flat, y.reshape(B * T))         # ()

    return Forward(x, y, tok_emb, pos_emb, x0, ln1_xhat, ln1_rstd, ln1, qkv, qh, kh, vh, scores, att_scaled, att, yh,
                   y_merged, attn_out, x1, ln2_xhat, ln2_rstd, ln2, fc, gelu, mlp_out, x2, lnf_xhat, lnf_rstd, lnf,
                   logits, logits_flat, loss)


def _through_layernorm(f: Forward, leaves: dict[str, Tensor]) -> dict[str, Tensor]:
    """What reaches x0 through ln1 only, and x1 through ln2 only (the residual brings the rest); none
    where the differentiated function does not reach that LayerNorm (``upstream.py``)."""
    shares: dict[str, Tensor] = {}
    for name, out, inp in (("dx0_ln1", f.ln1, f.x0), ("dx1_ln2", f.ln2, f.x1)):
        if out.grad is not None:
            (shares[name],) = torch.autograd.grad(out, inp, out.grad, retain_graph=True)
    return shares


# Whose gradient an argument is, where its name does not say: the share of x0 (x1) that comes
# through ln1 (ln2) is the gradient of ln1 (ln2), taken through that LayerNorm.
UPSTREAM_ALIASES = {"dx0_ln1": "ln1", "dx1_ln2": "ln2"}


def forward_with_grads(params: dict[str, Tensor], x: Tensor, y: Tensor, n_head: int) -> Forward:
    """Run ``forward`` and ``loss.backward()``, keeping ``.grad`` on every intermediate too."""
    return reference.forward_with_grads(forward, params, x, y, n_head)


def autograd_reference(params: dict[str, Tensor], x: Tensor, y: Tensor, n_head: int,
                       upstream: Upstream | None = None) -> tuple[Forward, dict[str, Tensor]]:
    """The grader's reference: autograd's gradient of every step and parameter, ``d`` + name (of the
    loss, or of ``upstream``'s random linear function: see ``upstream.py``)."""
    return reference.autograd_reference(forward, params, x, y, n_head, extra=_through_layernorm, upstream=upstream)


def make_case(label: str, cfg: Config, seed: int, upstream: Upstream | None = None) -> Case:
    params, x, y = setup(cfg, seed)
    f, grads = autograd_reference(params, x, y, cfg.n_head, upstream)
    values = {**reference.case_values(f, params), "n_head": cfg.n_head, "head_size": cfg.head_size}
    return Case(label=label, values=values, grads=grads)


def warm_up() -> None:
    """The notebook's data, cached before the sandbox seals itself (see ``assignments.warm_up``)."""
    name_stream()


def _label(index: int, c: Config) -> str:
    return f"hidden case {index} (B={c.batch_size}, T={c.context}, heads={c.n_head}, head size={c.head_size})"


def make_cases(rng: random.Random) -> list[Case]:
    """The notebook's own batch, then ``HIDDEN_CASES`` with sizes and seeds drawn from ``rng``, then
    the random-upstream cases (``upstream.py``)."""
    return assemble_cases(rng, ITEMS, make_case, _label, (NOTEBOOK_CONFIG, NOTEBOOK_SEED), hidden_configs,
                          aliases=UPSTREAM_ALIASES)


@torch.no_grad()
def sample_names(params: dict[str, Tensor], n_head: int, count: int, seed: int = 0) -> list[str]:
    """Names drawn from the model one character at a time, the context cut to the last T characters."""
    g = torch.Generator().manual_seed(seed)
    T = params["wpe"].shape[0]
    names = []
    for _ in range(count):
        context: list[int] = [STOI["."]]
        out: list[str] = []
        while len(out) < 20:
            window = torch.tensor([context[-T:]])
            logits = forward(params, window, window, n_head).logits   # (1, t, V)
            ix = int(torch.multinomial(torch.softmax(logits[0, -1], dim=-1), 1, generator=g))
            if ix == STOI["."]:
                break
            out.append(ITOS[ix])
            context.append(ix)
        names.append("".join(out))
    return names


# ---------------------------------------------------------------- graded items

_TWO = "{x} feeds two paths (the residual and {y}): the gradients of both add up."
_LINEAR = ("out = x @ W + b at every position: the matrix rules of a linear layer, with dW and db summed over "
           "all B*T positions (flatten B and T).")
_LN_HINT = ("three routes lead from x to xhat (directly, through the mean, through rstd); the notebook "
            "derives each: add them up, with dxhat = dout * gamma.")


def _positions(case: Case) -> dict[str, int]:
    return {"N": int(case.resolve("logits_flat").shape[0])}  # type: ignore[attr-defined]


def _eps_outside(case: Case) -> Tensor:
    """LayerNorm's backward pass written for (x - mean) / (std + eps): per row, its rstd over ours."""
    rstd = case.resolve("ln1_rstd")
    std = (1.0 / rstd**2 - LN_EPS).sqrt()  # type: ignore[operator]
    return (1.0 / (std + LN_EPS)) / rstd  # type: ignore[operator]


def _only_path(arg: str, path: str, other: str) -> Mistake:
    return passed_through(arg, f"that is only the path through {path}: add the gradient that comes through {other}.")


# Known mistakes (``mistakes.py``): each hint is shown only when the mistake reproduces the answer.
_MISTAKES: dict[str, tuple[Mistake, ...]] = {
    "dlogits": (scaled(lambda c: _positions(c)["N"], "off by a factor of B*T = {N}: the loss is the mean over "
                       "all B*T = {N} positions.", _positions),),
    "datt_scaled": (Mistake("that is only the diagonal of the softmax's derivative: each probability of a row also "
                            "depends on every other score of the row, through the normalising sum.",
                            lambda c, e: c.resolve("att") * c.resolve("datt")),),  # type: ignore[operator]
    "dscores": (passed_through("datt_scaled", "the scale is missing: att_scaled = scores * head_size**-0.5, and a "
                               "constant factor of the forward pass is the same factor in the backward pass."),
                scaled(lambda c: float(c.resolve("head_size")),  # type: ignore[arg-type]
                       "multiplied by sqrt(head_size) where the forward pass divides by it.")),
    "dkh": (Mistake("kh enters scores = qh @ kh^T transposed: its gradient uses dscores transposed (the last two "
                    "dims), then qh.",
                    lambda c, e: c.resolve("dscores") @ c.resolve("qh")),),  # type: ignore[operator]
    "dvh": (Mistake("in yh = att @ vh, vh's gradient multiplies by att transposed (the last two dims).",
                    lambda c, e: c.resolve("att") @ c.resolve("dyh")),),  # type: ignore[operator]
    "dx0_ln1": (scaled(_eps_outside, "this is LayerNorm's backward pass for (x - mean) / (std + eps): the forward "
                       "pass puts eps inside the root, (x - mean) / sqrt(var + eps). Use the rstd you are given; at "
                       "ln1 the inputs are small, where the two differ."),),
    "dx1": (_only_path("dx2", "the skip connection", "the MLP (dx1_ln2)"),
            _only_path("dx1_ln2", "the MLP", "the skip connection (dx2)")),
    "dx0": (_only_path("dx1", "the skip connection", "attention (dx0_ln1)"),
            _only_path("dx0_ln1", "attention", "the skip connection (dx1)")),
    "dwte": (embedding_overwritten("x", "wte", "dx0"),),
}

# The default tolerance (rtol 1e-4, set for float32) is loose for float64 answers on purpose: a right
# answer uses none of it, and eps outside LayerNorm's root (off by ~eps / (2 var)) shows at ln1 only,
# where the spread is ~0.03, and not at ln2 and lnf, where the stream is O(1). A tighter rtol would
# make that one mistake cost all three LayerNorm items.
ITEMS: tuple[Item, ...] = with_mistakes((
    # part 1: the loss, the head, the final LayerNorm
    Item("dlogits", "cross_entropy_backward", ("logits_flat", "y"), 2, 1,
         hint="the loss is a mean over all B*T positions.",
         expected=lambda case: case.grads["dlogits_flat"]),
    Item("dlnf", "head_backward", ("lnf", "W_head", "dlogits"), 1, 1, output=0),
    Item("dW_head", "head_backward", ("lnf", "W_head", "dlogits"), 1, 1, output=1,
         hint="the weight gradient sums over every position: flatten (B, T) before the matmul."),
    Item("dx2", "layernorm_backward", ("dlnf", "lnf_xhat", "lnf_g", "lnf_rstd"), 3, 1, output=0, hint=_LN_HINT),
    Item("dlnf_g", "layernorm_backward", ("dlnf", "lnf_xhat", "lnf_g", "lnf_rstd"), 1, 1, output=1,
         hint="gamma multiplies xhat at every position: sum dout * xhat over B and T."),
    Item("dlnf_b", "layernorm_backward", ("dlnf", "lnf_xhat", "lnf_g", "lnf_rstd"), 1, 1, output=2),
    # part 2: the MLP
    Item("dgelu", "linear_backward", ("gelu", "W_fc2", "dmlp_out"), 1, 2, output=0, hint=_LINEAR),
    Item("dW_fc2", "linear_backward", ("gelu", "W_fc2", "dmlp_out"), 1, 2, output=1, hint=_LINEAR),
    Item("db_fc2", "linear_backward", ("gelu", "W_fc2", "dmlp_out"), 1, 2, output=2, hint=_LINEAR),
    Item("dfc", "gelu_backward", ("fc", "dgelu"), 2, 2,
         hint="differentiate 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3): product rule, then chain rule."),
    Item("dln2", "linear_backward", ("ln2", "W_fc", "dfc"), 1, 2, output=0, hint=_LINEAR),
    Item("dW_fc", "linear_backward", ("ln2", "W_fc", "dfc"), 1, 2, output=1, hint=_LINEAR),
    Item("db_fc", "linear_backward", ("ln2", "W_fc", "dfc"), 1, 2, output=2, hint=_LINEAR),
    Item("dx1_ln2", "layernorm_backward", ("dln2", "ln2_xhat", "ln2_g", "ln2_rstd"), 1, 2, output=0, hint=_LN_HINT,
         expected=lambda case: case.grads["dx1_ln2"]),
    Item("dx1", "residual_backward", ("dx2", "dx1_ln2"), 1, 2, hint=_TWO.format(x="x1", y="the MLP")),
    # part 3: attention
    Item("dy_merged", "linear_backward", ("y_merged", "W_proj", "dattn_out"), 1, 3, output=0, hint=_LINEAR),
    Item("dW_proj", "linear_backward", ("y_merged", "W_proj", "dattn_out"), 1, 3, output=1, hint=_LINEAR),
    Item("db_proj", "linear_backward", ("y_merged", "W_proj", "dattn_out"), 1, 3, output=2, hint=_LINEAR),
    Item("dyh", "merge_heads_backward", ("dy_merged", "n_head"), 1, 3,
         hint="undo the merge: view as (B, T, nh, hs), then swap T and nh back."),
    Item("datt", "attention_values_backward", ("att", "vh", "dyh"), 1, 3, output=0),
    Item("dvh", "attention_values_backward", ("att", "vh", "dyh"), 1, 3, output=1,
         hint="yh = att @ vh, per batch and head: the matrix rules, transposing the last two dims only."),
    Item("datt_scaled", "softmax_backward", ("att", "datt"), 3, 3,
         hint="every output of a row's softmax depends on every input of that row."),
    Item("dscores", "scale_backward", ("datt_scaled", "head_size"), 1, 3,
         hint="att_scaled = scores * head_size ** -0.5: the constant multiplies the gradient too."),
    Item("dqh", "scores_backward", ("qh", "kh", "dscores"), 1, 3, output=0,
         hint="scores = qh @ kh^T, per batch and head: the matrix rules, on the last two dims."),
    Item("dkh", "scores_backward", ("qh", "kh", "dscores"), 2, 3, output=1,
         hint="scores = qh @ kh^T, per batch and head: kh appears transposed."),
    Item("dqkv", "split_heads_backward", ("dqh", "dkh", "dvh"), 1, 3,
         hint="each of q, k, v was viewed as (B, T, nh, hs) and transposed: undo both, then put them side by side."),
    Item("dln1", "linear_backward", ("ln1", "W_qkv", "dqkv"), 1, 3, output=0, hint=_LINEAR),
    Item("dW_qkv", "linear_backward", ("ln1", "W_qkv", "dqkv"), 1, 3, output=1, hint=_LINEAR),
    Item("db_qkv", "linear_backward", ("ln1", "W_qkv", "dqkv"), 1, 3, output=2, hint=_LINEAR),
    Item("dx0_ln1", "layernorm_backward", ("dln1", "ln1_xhat", "ln1_g", "ln1_rstd"), 1, 3, output=0,
         hint=("ln1's inputs are the small embeddings (spread ~0.03), where LayerNorm's eps is not negligible: "
               "use the rstd you are given (eps inside the root)."),
         expected=lambda case: case.grads["dx0_ln1"]),
    Item("dx0", "residual_backward", ("dx1", "dx0_ln1"), 1, 3, hint=_TWO.format(x="x0", y="attention")),
    # part 4: the embeddings
    Item("dwpe", "position_embedding_backward", ("dx0",), 1, 4,
         hint="pos_emb (T, C) was broadcast over the batch: sum the batch away."),
    Item("dwte", "token_embedding_backward", ("wte", "x", "dx0"), 2, 4,
         hint="a character that appears several times collects the gradient of every position it appears at."),
    # part 5: the whole backward pass, composed from the pieces
    Item("backward", "manual_backward", ("f", "params"), 4, 5,
         hint="return a dict with one gradient per parameter name: " + ", ".join(PARAM_NAMES) + ".",
         expected=lambda case: {k: case.grads[f"d{k}"] for k in PARAM_NAMES}),
), _MISTAKES)


# ---------------------------------------------------------------- bundled sample submissions

_PARTLY_RIGHT = {
    "softmax_backward": (
        "def softmax_backward(att, datt):\n"
        "    return att * datt  # the row sum is missing\n"),
    "layernorm_backward": (
        "def layernorm_backward(dout, xhat, gamma, rstd):\n"
        "    # as if the forward pass divided by (std + eps): the eps moves out of the root\n"
        "    std = 1.0 / rstd\n"
        "    rstd_ = 1.0 / (torch.sqrt(std**2 - 1e-5) + 1e-5)\n"
        "    dxhat = dout * gamma\n"
        "    dx = rstd_ * (dxhat - dxhat.mean(-1, keepdim=True) - xhat * (dxhat * xhat).mean(-1, keepdim=True))\n"
        "    return dx, (dout * xhat).sum((0, 1)), dout.sum((0, 1))\n"),
    "scores_backward": (
        "def scores_backward(qh, kh, dscores):\n"
        "    dqh = dscores @ kh\n"
        "    dkh = dscores @ qh  # dscores should be transposed here\n"
        "    return dqh, dkh\n"),
}

_AUTOGRAD = {
    "softmax_backward": (
        "def softmax_backward(att, datt):\n"
        "    s = torch.log(att.clamp_min(1e-30)).clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        (g,) = torch.autograd.grad(torch.softmax(s, dim=-1), s, datt)\n"
        "    return g\n"),
    "gelu_backward": (
        "def gelu_backward(fc, dgelu):\n"
        "    x = fc.clone().requires_grad_(True)\n"
        "    with torch.enable_grad():\n"
        "        y = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))\n"
        "        y.backward(dgelu)\n"
        "    return x.grad\n"),
}

SAMPLES: tuple[Sample, ...] = with_standard_samples(
    ITEMS,
    # manual_backward calls the student's pieces: the three mistakes cost part 5 too, and its
    # feedback names them as the items to fix first. eps outside the root shows only where the input's
    # spread is comparable to sqrt(eps): at ln1, on the small embeddings; ln2 and lnf see an O(1) stream.
    Sample("sample-partly-right", "softmax backward without the row sum, LayerNorm with eps outside the root, "
           "a dK that misses a transpose",
           replace=_PARTLY_RIGHT,
           expected_zero=("datt_scaled", "dkh", "dx0_ln1", "backward")),
    Sample("sample-autograd", "calls torch.autograd.grad or .backward() inside softmax and GELU backward",
           replace=_AUTOGRAD, expected_zero=("dfc", "datt_scaled", "backward")),
)

ASSIGNMENT = Assignment(
    id="gpt_backprop",
    title="Backpropagation by hand: a GPT block",
    items=ITEMS,
    make_cases=make_cases,
    samples=SAMPLES,
    hidden_size_ranges=HIDDEN_SIZE_RANGES,
)

__all__ = ["ASSIGNMENT", "Config", "Forward", "LN_EPS", "NOTEBOOK_CONFIG", "NOTEBOOK_SEED", "PARAM_NAMES",
           "autograd_reference", "causal_mask", "forward", "forward_with_grads", "gelu_tanh", "init_params",
           "layernorm", "sample_batch", "sample_names", "setup", "show_source"]
