"""Assignment ``gru_backprop``: a GRU language model over names, backpropagated through time by hand.

The names (``data.load_names``) joined by ``.`` form one character stream; a batch is ``B`` windows of
``T`` characters, with a target (the next character) at every position. Embedding -> dropout ->
a GRU unrolled over time -> dropout -> a bias-free head -> cross-entropy over all B*T targets.
Dropout masks are inputs of the forward pass, so the grader can fix them. ``forward`` below is the
only copy of the forward pass: the notebook shows and calls it, and the grader runs it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

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
PARAM_NAMES = ("wte", "x2g_W", "x2g_b", "h2g_W", "h2g_b", "head_W")
# What one step's backward pass returns to the loop through time (the notebook's gru_step_backward).
STEP_KEYS = ("dh_prev", "dx_t", "dx2g_W", "dx2g_b", "dh2g_W", "dh2g_b")
CHECKED_STEP = 2  # the time step whose step backward is checked (every case has T > 3)
# Whose gradient an argument is, where its name does not say: ``bptt`` gets the stacked hidden states'.
UPSTREAM_ALIASES = {"dH": "hs"}


@dataclass(frozen=True)
class Config:
    """Sizes; they all differ from each other, from V = 27 and from 3H."""

    batch_size: int = 6   # B
    context: int = 7      # T
    n_embd: int = 10      # E
    hidden: int = 12      # H
    p_drop: float = 0.1


NOTEBOOK_CONFIG = Config()
NOTEBOOK_SEED = 31337

# The hidden cases draw their sizes from these inclusive ranges (see ``hidden_cases``): a case takes
# milliseconds even unrolled over T steps, and every layer is exercised. context >= 4 keeps T > 3, so
# the checked step (CHECKED_STEP = 2) exists and has a later step sending gradient back into it.
# hidden >= 8 puts 3H (the gates' width) at 24 or more, above B, T and E, and H = 9 is refused since
# 3H would equal V = 27. batch_size >= 4 makes dropout's masks hold zeros in all but a rare draw.
HIDDEN_SIZE_RANGES: Mapping[str, tuple[int, int]] = {
    "batch_size": (4, 10), "context": (4, 12), "n_embd": (4, 16), "hidden": (8, 16)}


def init_params(cfg: Config, g: torch.Generator) -> dict[str, Tensor]:
    """Random, non-zero parameters (the explainer's constant weights would make every unit equal)."""
    E, H, V = cfg.n_embd, cfg.hidden, VOCAB_SIZE
    params = {
        "wte": torch.randn((V, E), generator=g),                          # (V, E)
        "x2g_W": torch.randn((E, 3 * H), generator=g) / E**0.5,           # (E, 3H)  input to gates
        "x2g_b": 0.1 * torch.randn(3 * H, generator=g),                   # (3H,)
        "h2g_W": torch.randn((H, 3 * H), generator=g) / H**0.5,           # (H, 3H)  hidden to gates
        "h2g_b": 0.1 * torch.randn(3 * H, generator=g),                   # (3H,)
        "head_W": torch.randn((H, V), generator=g) / H**0.5,              # (H, V)
    }
    for p in params.values():
        p.requires_grad_(True)
    return params


def dropout_mask(shape: tuple[int, ...], p: float, g: torch.Generator) -> Tensor:
    """Inverted dropout: 0 with probability p, else 1/(1-p), so the expected value is unchanged."""
    return (torch.rand(shape, generator=g) >= p).float() / (1.0 - p)


def sample_batch(cfg: Config, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Windows of the name stream, targets shifted by one, and the two dropout masks:
    ``x, y (B, T)``, ``mask_emb (B, T, E)``, ``mask_h (B, T, H)``."""
    x, y = name_windows(cfg.batch_size, cfg.context, g)
    mask_emb = dropout_mask((cfg.batch_size, cfg.context, cfg.n_embd), cfg.p_drop, g)
    mask_h = dropout_mask((cfg.batch_size, cfg.context, cfg.hidden), cfg.p_drop, g)
    return x, y, mask_emb, mask_h


def setup(cfg: Config = NOTEBOOK_CONFIG, seed: int = NOTEBOOK_SEED):  # type: ignore[no-untyped-def]
    """Parameters, one batch and its dropout masks, from one seed (notebook and grader alike)."""
    g = torch.Generator().manual_seed(seed)
    params = init_params(cfg, g)
    return (params, *sample_batch(cfg, g))


@dataclass
class Forward:
    """Every named step; the per-time-step ones are lists over t. B, T, E, H as above; V = 27."""

    x: Tensor            # (B, T) int64
    y: Tensor            # (B, T) int64
    mask_emb: Tensor     # (B, T, E)
    mask_h: Tensor       # (B, T, H)
    emb: Tensor          # (B, T, E)
    embd: Tensor         # (B, T, E)  after dropout
    xt: list[Tensor] = field(default_factory=list)      # per t: (B, E)   input of step t
    gx: list[Tensor] = field(default_factory=list)      # per t: (B, 3H)  x2g(x_t)
    gh: list[Tensor] = field(default_factory=list)      # per t: (B, 3H)  h2g(h_{t-1})
    nh: list[Tensor] = field(default_factory=list)      # per t: (B, H)   candidate's hidden part
    z_pre: list[Tensor] = field(default_factory=list)   # per t: (B, H)
    r_pre: list[Tensor] = field(default_factory=list)   # per t: (B, H)
    z: list[Tensor] = field(default_factory=list)       # per t: (B, H)   update gate
    r: list[Tensor] = field(default_factory=list)       # per t: (B, H)   reset gate
    n_pre: list[Tensor] = field(default_factory=list)   # per t: (B, H)
    n: list[Tensor] = field(default_factory=list)       # per t: (B, H)   candidate
    h: list[Tensor] = field(default_factory=list)       # per t: (B, H)   h_t; h_{-1} = 0
    hs: Tensor | None = None          # (B, T, H)  the hidden states, stacked
    hd: Tensor | None = None          # (B, T, H)  after dropout
    logits: Tensor | None = None      # (B, T, V)
    logits_flat: Tensor | None = None  # (B*T, V)
    loss: Tensor | None = None        # ()


def forward(params: dict[str, Tensor], x: Tensor, y: Tensor, mask_emb: Tensor, mask_h: Tensor) -> Forward:
    B, T = x.shape
    H = params["h2g_W"].shape[0]
    f = Forward(x=x, y=y, mask_emb=mask_emb, mask_h=mask_h, emb=params["wte"][x], embd=None)  # type: ignore[arg-type]
    f.embd = f.emb * mask_emb                                         # (B, T, E)  dropout, mask fixed
    h_prev = torch.zeros(B, H, dtype=f.emb.dtype)                     # (B, H)     h_{-1} = 0
    for t in range(T):
        xt = f.embd[:, t]                                             # (B, E)
        gx = xt @ params["x2g_W"] + params["x2g_b"]                   # (B, 3H)
        gh = h_prev @ params["h2g_W"] + params["h2g_b"]               # (B, 3H)
        zx, rx, nx = gx.chunk(3, dim=1)                               # (B, H) each
        zh, rh, nh = gh.chunk(3, dim=1)                               # (B, H) each
        z_pre, r_pre = zx + zh, rx + rh                               # (B, H)
        z, r = torch.sigmoid(z_pre), torch.sigmoid(r_pre)             # (B, H)  update and reset gates
        n_pre = nx + r * nh                                           # (B, H)  reset scales the hidden part
        n = torch.tanh(n_pre)                                         # (B, H)  candidate
        h = (1 - z) * n + z * h_prev                                  # (B, H)  z keeps the old state
        for name, value in (("xt", xt), ("gx", gx), ("gh", gh), ("nh", nh), ("z_pre", z_pre),
                            ("r_pre", r_pre), ("z", z), ("r", r), ("n_pre", n_pre), ("n", n), ("h", h)):
            getattr(f, name).append(value)
        h_prev = h
    f.hs = torch.stack(f.h, dim=1)                                    # (B, T, H)
    f.hd = f.hs * mask_h                                              # (B, T, H)  dropout
    f.logits = f.hd @ params["head_W"]                                # (B, T, V)
    f.logits_flat = f.logits.view(B * T, -1)                          # (B*T, V)
    f.loss = F.cross_entropy(f.logits_flat, y.reshape(B * T))         # ()  mean over all B*T targets
    return f


def forward_with_grads(params: dict[str, Tensor], *data: Tensor) -> Forward:
    """Run ``forward`` and ``loss.backward()``, keeping ``.grad`` on every intermediate too."""
    return reference.forward_with_grads(forward, params, *data)


def _step_contributions(f: Forward, leaves: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per time step, with autograd: what flows into h_{t-1} through step t alone (in all, directly
    through z, and through the gates' h2g part), and step t's share of each gate weight's gradient
    (vector-Jacobian products with the true upstream gradient). A step that the differentiated
    function does not reach (a random-upstream case: ``upstream.py``) gets no entries."""
    # Read the true gradients first: retain_grad() hooks fire during every autograd.grad call below
    # and would add to the .grad of the tensors they pass through.
    def grads_of(steps: list[Tensor]) -> list[Tensor | None]:
        return [None if t.grad is None else t.grad.clone() for t in steps]

    dh, dgx, dgh = grads_of(f.h), grads_of(f.gx), grads_of(f.gh)
    out: dict[str, Tensor] = {}
    for t in range(len(f.h)):
        h_prev = f.h[t - 1] if t > 0 else None
        if dh[t] is not None:
            out[f"dh_prev@{t}"] = (torch.autograd.grad(f.h[t], h_prev, dh[t], retain_graph=True)[0]
                                   if h_prev is not None else torch.zeros_like(f.h[0]))
        if dgh[t] is not None:
            out[f"dh_gates@{t}"] = (torch.autograd.grad(f.gh[t], h_prev, dgh[t], retain_graph=True)[0]
                                    if h_prev is not None else torch.zeros_like(f.h[0]))
            # h_{t-1} itself depends on h2g_W (earlier steps): hold it fixed to get step t's own share.
            fixed = h_prev.detach() if h_prev is not None else torch.zeros_like(f.h[0])
            gh_local = fixed @ leaves["h2g_W"] + leaves["h2g_b"]
            out[f"dh2g_W@{t}"], out[f"dh2g_b@{t}"] = torch.autograd.grad(
                gh_local, (leaves["h2g_W"], leaves["h2g_b"]), dgh[t])
        if f"dh_prev@{t}" in out and f"dh_gates@{t}" in out:
            out[f"dh_direct@{t}"] = out[f"dh_prev@{t}"] - out[f"dh_gates@{t}"]  # through z * h_prev alone
        if dgx[t] is not None:
            out[f"dx2g_W@{t}"], out[f"dx2g_b@{t}"] = torch.autograd.grad(
                f.gx[t], (leaves["x2g_W"], leaves["x2g_b"]), dgx[t], retain_graph=True)
    return out


def autograd_reference(params: dict[str, Tensor], *data: Tensor, upstream: Upstream | None = None
                       ) -> tuple[Forward, dict[str, Tensor]]:
    """The grader's reference: autograd's gradient of every step and parameter, ``d`` + name (``@t``
    for one time step), plus each step's own contributions; of the loss, or of ``upstream``'s random
    linear function (``upstream.py``)."""
    return reference.autograd_reference(forward, params, *data, extra=_step_contributions, upstream=upstream)


def step_grad_name(key: str, t: int) -> str:
    """Where the reference keeps the step backward's entry ``key`` for time step t."""
    return f"dxt@{t}" if key == "dx_t" else f"{key}@{t}"


class StepOracle:
    """Stands in for the student's step function when their BPTT loop is graded.

    It knows the true gradients of every step (from autograd) and gives them back only for the true
    inputs: a loop that passes step t the wrong ``dh`` gets an error that says so. So a mistake in
    the step's pieces costs only their items, and a mistake in the loop only the loop items.
    """

    def __init__(self, f: Forward, grads: dict[str, Tensor]) -> None:
        T = len(f.z)
        self.z = [f.z[t] for t in range(T)]
        # every step has an answer only when the loss (or a random function of all hidden states) is
        # differentiated; a case for a single step's items leaves the oracle unused
        self.dh = [grads.get(f"dh@{t}") for t in range(T)]
        self.answers = [{key: grads.get(step_grad_name(key, t)) for key in STEP_KEYS} for t in range(T)]

    def __call__(self, dh: Tensor, x_t: Tensor, h_prev: Tensor, z: Tensor, r: Tensor, n: Tensor, nh: Tensor,
                 x2g_W: Tensor, h2g_W: Tensor) -> dict[str, Tensor]:
        t = next((t for t, zt in enumerate(self.z) if zt.shape == z.shape and torch.equal(zt, z)), None)
        if t is None:
            raise ValueError("step_backward was called with a z that is not any step's update gate: pass the "
                             "cache of step t (f.z[t], f.r[t], ...) with that step's dh")
        true_dh = self.dh[t]
        if true_dh is None or any(v is None for v in self.answers[t].values()):
            raise ValueError(f"step {t} has no reference gradient in this case")
        if dh.shape != true_dh.shape or not torch.allclose(dh, true_dh, rtol=1e-4, atol=1e-6):
            raise ValueError(f"step {t} received a dh that is not the gradient of h_{t}: it should be the "
                             f"head's gradient dH[:, {t}] plus dh_prev from step {t + 1}")
        return {k: v.clone() for k, v in self.answers[t].items()}  # type: ignore[union-attr]


def make_case(label: str, cfg: Config, seed: int, upstream: Upstream | None = None) -> Case:
    params, x, y, mask_emb, mask_h = setup(cfg, seed)
    f, grads = autograd_reference(params, x, y, mask_emb, mask_h, upstream=upstream)
    values = {**reference.case_values(f, params), "oracle": StepOracle(f, grads), "p_drop": cfg.p_drop}
    grads = dict(grads)
    if "dhs" in grads:
        grads["dH"] = grads["dhs"]  # what the head sends to the hidden states, as bptt receives it
    return Case(label=label, values=values, grads=grads)


def _derived_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    """The gates' width 3H (x2g_W, h2g_W): it must differ from the other sizes and V too."""
    return {"gates": 3 * sizes["hidden"]}


def hidden_configs(rng: random.Random) -> list[Config]:
    """The hidden cases' sizes: all different from each other, from V and from 3H, and each unlike the
    same size in the notebook's batch and the hidden cases before it (a hard-coded ``T`` fails all)."""
    return draw_configs(rng, Config, NOTEBOOK_CONFIG, HIDDEN_SIZE_RANGES, (VOCAB_SIZE,), derived=_derived_sizes)


def warm_up() -> None:
    """The notebook's data, cached before the sandbox seals itself (see ``assignments.warm_up``)."""
    name_stream()


def _label(index: int, c: Config) -> str:
    return f"hidden case {index} (B={c.batch_size}, T={c.context}, E={c.n_embd}, H={c.hidden})"


def make_cases(rng: random.Random) -> list[Case]:
    """The notebook's own batch, then ``HIDDEN_CASES`` with sizes, sequence lengths and seeds drawn
    from ``rng``, then the random-upstream cases (``upstream.py``)."""
    return assemble_cases(rng, ITEMS, make_case, _label, (NOTEBOOK_CONFIG, NOTEBOOK_SEED), hidden_configs,
                          aliases=UPSTREAM_ALIASES)


@torch.no_grad()
def sample_names(params: dict[str, Tensor], count: int, seed: int = 0) -> list[str]:
    """Names drawn from the model, one character at a time (no dropout at sampling time)."""
    g = torch.Generator().manual_seed(seed)
    H = params["h2g_W"].shape[0]
    names = []
    for _ in range(count):
        h, ix, out = torch.zeros(1, H), STOI["."], []
        while len(out) < 20:
            gx = params["wte"][ix][None] @ params["x2g_W"] + params["x2g_b"]
            gh = h @ params["h2g_W"] + params["h2g_b"]
            zx, rx, nx = gx.chunk(3, 1)
            zh, rh, nh = gh.chunk(3, 1)
            z, r = torch.sigmoid(zx + zh), torch.sigmoid(rx + rh)
            h = (1 - z) * torch.tanh(nx + r * nh) + z * h
            ix = int(torch.multinomial(torch.softmax(h @ params["head_W"], 1), 1, generator=g))
            if ix == STOI["."]:
                break
            out.append(ITOS[ix])
        names.append("".join(out))
    return names


def torch_gru_hidden_states(params: dict[str, Tensor], embd: Tensor) -> Tensor:
    """The same recurrence with ``torch.nn.GRU``, given the same weights: ``(B, T, H)``.
    torch orders the gates (reset, update, new); ours are chunked (update, reset, new)."""
    H = params["h2g_W"].shape[0]
    gru = torch.nn.GRU(embd.shape[-1], H, batch_first=True)

    def torch_order(w: Tensor) -> Tensor:  # our (in, 3H) with [z | r | n] -> torch's (3H, in) with [r | z | n]
        z, r, n = w.chunk(3, dim=-1)
        return torch.cat([r, z, n], dim=-1).T.contiguous() if w.ndim == 2 else torch.cat([r, z, n])

    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch_order(params["x2g_W"]))
        gru.weight_hh_l0.copy_(torch_order(params["h2g_W"]))
        gru.bias_ih_l0.copy_(torch_order(params["x2g_b"]))
        gru.bias_hh_l0.copy_(torch_order(params["h2g_b"]))
        return gru(embd)[0]


# ---------------------------------------------------------------- graded items

_S = CHECKED_STEP
_T = f"@{_S}"      # the checked step's tensors: z@2, n@2, ...
_P = f"@{_S - 1}"  # the step before it: h@1 is the checked step's h_prev


def _step(name: str, function: str, args: tuple[str, ...], points: float, output: int | None = None,
          hint: str | None = None, expected: str | None = None) -> Item:
    """An item of part 1: one piece of the step backward at time step CHECKED_STEP, given that step's
    true upstream gradient (so a slip in one piece costs only that piece's items)."""
    key = expected or f"d{name}{_T}"
    return Item(f"step_d{name}", function, args, points, 1, output=output, hint=hint,
                expected=lambda case: case.grads[key])


def _bptt_item(key: str, points: float, expected_name: str) -> Item:
    return Item(f"bptt_{key}", "bptt", ("f", "params", "dH", "oracle"), points, 2, output=key,
                expected=lambda case: case.grads[expected_name],
                hint="walk t from T-1 down to 0; the gradient reaching h_t is the head's dH[:, t] plus what "
                     "step t+1 sent back to it; add every step's weight gradients.")


_BLEND = (f"dh{_T}", f"h{_P}", f"z{_T}", f"n{_T}")
_GATES = (f"dz_pre{_T}", f"dr_pre{_T}", f"dn_pre{_T}", f"dnh{_T}")
_X2G = (f"xt{_T}", "x2g_W", f"dgx{_T}")
_H2G = (f"h{_P}", "h2g_W", f"dgh{_T}")
_BLEND_HINT = "h_t = (1 - z) * n + z * h_prev: three products, each input's share is the other factor times dh."
_LINEAR_HINT = "out = x @ W + b over the batch: dx = dout @ W^T, dW = x^T @ dout, db = dout summed over the batch."

def _grad(case: Case, name: str) -> Tensor:
    return case.grads[name]


def _tanh_slope_for_sigmoid(gate: str) -> Mistake:
    """sigmoid_backward written with tanh's derivative 1 - s**2: off by (1 + s) / s, entry by entry."""
    return scaled(lambda c: (1 + c.resolve(gate)) / c.resolve(gate),  # type: ignore[operator]
                  "that is tanh's derivative, 1 - s**2: the sigmoid's is s * (1 - s).")


def _dropout_facts(case: Case) -> dict[str, float]:
    return {"p": float(case.resolve("p_drop"))}  # type: ignore[arg-type]


def _dropout_mistakes(upstream: str) -> tuple[Mistake, ...]:
    return (passed_through(upstream, "dropout's mask is missing: the forward pass multiplied by the mask, so "
                                     "the backward pass multiplies by it too."),
            scaled(lambda c: 1 - float(c.resolve("p_drop")),  # type: ignore[arg-type]
                   "off by a factor 1 - p = {factor}: the mask already holds the 1/(1 - p) scale of inverted "
                   "dropout (p = {p}); multiply by the mask itself, not by where it is non-zero.", _dropout_facts))


# Known mistakes (``mistakes.py``): each hint is shown only when the mistake reproduces the answer.
_MISTAKES: dict[str, tuple[Mistake, ...]] = {
    "step_dh_direct": (passed_through(f"dn{_T}", "that is the share of n: in h_t = (1 - z) * n + z * h_prev, "
                                                 "h_prev is weighted by z."),),
    "step_dn_pre": (passed_through(f"dn{_T}", "tanh's local derivative is missing: n = tanh(n_pre), and tanh's "
                                              "derivative can be written with n itself."),),
    "step_dnh": (passed_through(f"dn_pre{_T}", "nh reaches n_pre only through r * nh: r scales its gradient."),),
    "step_dz_pre": (_tanh_slope_for_sigmoid(f"z{_T}"),
                    passed_through(f"dz{_T}", "the sigmoid's local derivative is missing: z = sigmoid(z_pre).")),
    "step_dr_pre": (_tanh_slope_for_sigmoid(f"r{_T}"),
                    passed_through(f"dr{_T}", "the sigmoid's local derivative is missing: r = sigmoid(r_pre).")),
    "step_dgx": (Mistake("the chunks are out of order: gx.chunk(3) gave (zx, rx, nx), so the gradient stacks "
                         "(dz_pre, dr_pre, dn_pre).",
                         lambda c, e: torch.cat([_grad(c, f"dr_pre{_T}"), _grad(c, f"dz_pre{_T}"),
                                                 _grad(c, f"dn_pre{_T}")], dim=1)),),
    "step_dgh": (Mistake("the n chunk of gh is nh, which reaches n_pre only through r: its gradient is dnh, "
                         "not dn_pre.",
                         lambda c, e: torch.cat([_grad(c, f"dz_pre{_T}"), _grad(c, f"dr_pre{_T}"),
                                                 _grad(c, f"dn_pre{_T}")], dim=1)),),
    "dlogits": (scaled(lambda c: float(c.resolve("logits_flat").shape[0]),  # type: ignore[attr-defined]
                       "off by a factor of B*T = {factor}: the loss is the mean over all B*T targets."),),
    "dhs": _dropout_mistakes("dhd"),
    "demb": _dropout_mistakes("dembd"),
    "dwte": (embedding_overwritten("x", "wte", "demb"),),
}


ITEMS: tuple[Item, ...] = with_mistakes((
    # part 1: one step backward, piece by piece, each from its true upstream gradient
    _step("z", "blend_backward", _BLEND, 1, output=0, hint=_BLEND_HINT),
    _step("n", "blend_backward", _BLEND, 1, output=1, hint=_BLEND_HINT),
    _step("h_direct", "blend_backward", _BLEND, 1, output=2, expected=f"dh_direct{_T}", hint=_BLEND_HINT),
    _step("n_pre", "tanh_backward", (f"n{_T}", f"dn{_T}"), 1, hint="n = tanh(n_pre)"),
    _step("r", "reset_backward", (f"r{_T}", f"nh{_T}", f"dn_pre{_T}"), 1, output=0, hint="n_pre = nx + r * nh"),
    _step("nh", "reset_backward", (f"r{_T}", f"nh{_T}", f"dn_pre{_T}"), 1, output=1, hint="n_pre = nx + r * nh"),
    _step("z_pre", "sigmoid_backward", (f"z{_T}", f"dz{_T}"), 1, hint="z = sigmoid(z_pre)"),
    _step("r_pre", "sigmoid_backward", (f"r{_T}", f"dr{_T}"), 1, hint="r = sigmoid(r_pre)"),
    _step("gx", "gates_backward", _GATES, 1, output=0,
          hint="gx was chunked into (zx, rx, nx), in that order, and each chunk went to one gate."),
    _step("gh", "gates_backward", _GATES, 1, output=1,
          hint="gh was chunked into (zh, rh, nh), in that order: the reset gate scales only nh."),
    _step("x_t", "linear_backward", _X2G, 1, output=0, expected=f"dxt{_T}", hint=_LINEAR_HINT),
    _step("x2g_W", "linear_backward", _X2G, 1, output=1, hint=_LINEAR_HINT),
    _step("x2g_b", "linear_backward", _X2G, 1, output=2, hint=_LINEAR_HINT),
    _step("h_gates", "linear_backward", _H2G, 1, output=0, expected=f"dh_gates{_T}", hint=_LINEAR_HINT),
    _step("h2g_W", "linear_backward", _H2G, 1, output=1, hint=_LINEAR_HINT),
    _step("h2g_b", "linear_backward", _H2G, 1, output=2, hint=_LINEAR_HINT),
    # part 2: the loss, the head, dropout, backpropagation through time, the embedding
    Item("dlogits", "cross_entropy_backward", ("logits_flat", "y"), 2, 2,
         expected=lambda case: case.grads["dlogits_flat"], hint="the mean runs over all B*T targets."),
    Item("dhd", "head_backward", ("hd", "head_W", "dlogits"), 1, 2, output=0),
    Item("dhead_W", "head_backward", ("hd", "head_W", "dlogits"), 1, 2, output=1),
    Item("dhs", "dropout_backward", ("mask_h", "dhd"), 1, 2),
    _bptt_item("dembd", 2, "dembd"),
    _bptt_item("dx2g_W", 2, "dx2g_W"),
    _bptt_item("dx2g_b", 1, "dx2g_b"),
    _bptt_item("dh2g_W", 2, "dh2g_W"),
    _bptt_item("dh2g_b", 1, "dh2g_b"),
    Item("demb", "dropout_backward", ("mask_emb", "dembd"), 1, 2),
    Item("dwte", "embedding_backward", ("wte", "x", "demb"), 2, 2,
         hint="a character that appears several times collects the gradient of every position."),
    # part 3: the whole backward pass, for training
    Item("backward", "manual_backward", ("f", "params"), 4, 3,
         hint="return a dict with one gradient per parameter: " + ", ".join(PARAM_NAMES) + ".",
         expected=lambda case: {k: case.grads[f"d{k}"] for k in PARAM_NAMES}),
), _MISTAKES)


# ---------------------------------------------------------------- bundled sample submissions

_PARTLY_RIGHT = {
    "dropout_backward": ("def dropout_backward(mask, dout):\n"
                         "    return dout.clone()  # forgets the mask\n"),
    "tanh_backward": ("def tanh_backward(n, dn):\n"
                      "    return dn.clone()  # forgets tanh's local derivative\n"),
}

_STEP_GRAD_COPY = {
    "blend_backward": ("def blend_backward(dh, h_prev, z, n):\n"
                       "    return f.z[2].grad, f.n[2].grad, f.h[1].grad\n"),
    "tanh_backward": "def tanh_backward(n, dn):\n    return f.n_pre[2].grad\n",
    "reset_backward": "def reset_backward(r, nh, dn_pre):\n    return f.r[2].grad, f.nh[2].grad\n",
    "sigmoid_backward": "def sigmoid_backward(s, ds):\n    return f.z_pre[2].grad\n",
    "gates_backward": "def gates_backward(dz_pre, dr_pre, dn_pre, dnh):\n    return f.gx[2].grad, f.gh[2].grad\n",
    "linear_backward": ("def linear_backward(x, W, dout):\n"
                        "    return f.xt[2].grad, params['x2g_W'].grad, params['x2g_b'].grad\n"),
}

SAMPLES: tuple[Sample, ...] = with_standard_samples(
    ITEMS,
    # one slip in the step (tanh's derivative) costs its own item, and the composed backward pass
    Sample("sample-partly-right", "dropout's mask and tanh's local derivative forgotten in backward",
           replace=_PARTLY_RIGHT,
           expected_zero=("step_dn_pre", "dhs", "demb", "backward")),
    Sample("sample-grad-copy", "copies autograd's .grad from the notebook's tensors instead of deriving it",
           replace={
               **_STEP_GRAD_COPY,
               "cross_entropy_backward": "def cross_entropy_backward(logits_flat, y):\n    return f.logits_flat.grad\n",
               "head_backward": "def head_backward(hd, head_W, dlogits):\n    return f.hd.grad, params['head_W'].grad\n",
               "dropout_backward": "def dropout_backward(mask, dout):\n    return f.hs.grad\n",
               "bptt": ("def bptt(f, params, dH, step_backward):\n"
                        "    return {'dembd': f.embd.grad, 'dx2g_W': params['x2g_W'].grad,\n"
                        "            'dx2g_b': params['x2g_b'].grad, 'dh2g_W': params['h2g_W'].grad,\n"
                        "            'dh2g_b': params['h2g_b'].grad}\n"),
               "embedding_backward": "def embedding_backward(wte, x, demb):\n    return params['wte'].grad\n",
               "manual_backward": "def manual_backward(f, params):\n    return {k: p.grad for k, p in params.items()}\n",
           },
           expected_zero=tuple(i.name for i in ITEMS)),
    Sample("sample-autograd", "calls torch.autograd.grad inside the sigmoid's backward", replace={
        "sigmoid_backward": (
            "def sigmoid_backward(s, ds):\n"
            "    a = torch.log(s / (1 - s)).clone().requires_grad_(True)\n"
            "    with torch.enable_grad():\n"
            "        (g,) = torch.autograd.grad(torch.sigmoid(a), a, ds)\n"
            "    return g\n")},
        expected_zero=("step_dz_pre", "step_dr_pre", "backward")),
)

ASSIGNMENT = Assignment(
    id="gru_backprop",
    title="Backpropagation through time by hand: a GRU language model",
    items=ITEMS,
    make_cases=make_cases,
    samples=SAMPLES,
    hidden_size_ranges=HIDDEN_SIZE_RANGES,
)

__all__ = ["ASSIGNMENT", "CHECKED_STEP", "Config", "Forward", "NOTEBOOK_CONFIG", "NOTEBOOK_SEED", "PARAM_NAMES",
           "STEP_KEYS", "autograd_reference", "forward", "forward_with_grads", "init_params", "sample_batch",
           "sample_names", "setup", "show_source", "torch_gru_hidden_states"]
