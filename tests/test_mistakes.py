"""Realistic mistakes, each with the feedback it must get: a hint only where the diagnosis is verified.

Each row replaces one answer of a solution notebook with a wrong one a student writes, and names the
item that must fail and what its feedback must say: a hint that names the mistake, or no hint at all
(then the feedback only says where the result differs and by how much). ``MUST_SAY`` is matched
against the item's feedback text; ``None`` means no line of that text may start with ``hint:``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from autograder.assignments import load
from autograder.harness import NamespaceSource, grade

from conftest import cases_of, namespace_of, solution_notebook, with_answers


@dataclass(frozen=True)
class Wrong:
    assignment: str
    function: str
    code: str
    item: str
    must_say: str | None  # a piece of the hint, or None: no hint

    def __str__(self) -> str:
        return f"{self.assignment}:{self.item}:{self.code.splitlines()[-1].strip()[:40]}"


def fn(header: str, *body: str) -> str:
    return "\n".join([header, *(f"    {line}" for line in body)]) + "\n"


MLP, CNN, GRU, GPT, MICRO = "mlp_backprop", "cnn_backprop", "gru_backprop", "gpt_backprop", "micrograd"

TABLE: list[Wrong] = [
    # ---- the MLP
    Wrong(MLP, "backward_logprobs", fn("def backward_logprobs(logprobs, Yb):", "n = logprobs.shape[0]",
          "d = torch.zeros_like(logprobs)", "d[torch.arange(n), Yb] = -1.0  # the mean's 1/n forgotten", "return d"),
          "dlogprobs", "off by a factor of n = 32"),
    Wrong(MLP, "backward_logprobs", fn("def backward_logprobs(logprobs, Yb):", "n = logprobs.shape[0]",
          "d = torch.zeros_like(logprobs)", "d[torch.arange(n), Yb] = 1.0 / n", "return d"),
          "dlogprobs", "sign flipped"),
    Wrong(MLP, "backward_probs", fn("def backward_probs(probs, dlogprobs):", "return probs * dlogprobs"),
          "dprobs", None),
    Wrong(MLP, "backward_counts_sum_inv", fn("def backward_counts_sum_inv(counts, dprobs):",
          "return counts * dprobs  # the broadcast column never summed"),
          "dcounts_sum_inv", "summing your result over dim 1 gives the gradient"),
    Wrong(MLP, "backward_counts_sum", fn("def backward_counts_sum(counts_sum, dcounts_sum_inv):",
          "return counts_sum**-2 * dcounts_sum_inv"), "dcounts_sum", "sign flipped"),
    Wrong(MLP, "backward_counts", fn("def backward_counts(counts_sum_inv, dprobs, dcounts_sum):",
          "return counts_sum_inv * dprobs"), "dcounts", "only the path through probs"),
    Wrong(MLP, "backward_logit_maxes", fn("def backward_logit_maxes(dnorm_logits):",
          "return torch.zeros_like(dnorm_logits[:, :1])  # 'it is zero anyway'"), "dlogit_maxes", "all zeros"),
    Wrong(MLP, "backward_logits", fn("def backward_logits(logits, dnorm_logits, dlogit_maxes):",
          "return dnorm_logits.clone()"), "dlogits", "only the path through norm_logits"),
    Wrong(MLP, "backward_logits", fn("def backward_logits(logits, dnorm_logits, dlogit_maxes):",
          "V = logits.shape[1]", "dlogits = dnorm_logits.clone()",
          "dlogits = F.one_hot(logits.max(1).indices, num_classes=V) * dlogit_maxes  # = where += belongs",
          "return dlogits"), "dlogits", None),
    Wrong(MLP, "backward_W2", fn("def backward_W2(h, dlogits):", "return dlogits.T @ h"),
          "dW2", "transpose of the gradient"),
    Wrong(MLP, "backward_b2", fn("def backward_b2(dlogits):", "return dlogits.clone()"),
          "db2", "summing your result over its leading dims (0,) gives the gradient"),
    Wrong(MLP, "backward_hpreact", fn("def backward_hpreact(h, dh):", "return 1.0 - h**2"),
          "dhpreact", "tanh's local derivative alone"),
    Wrong(MLP, "backward_hpreact", fn("def backward_hpreact(h, dh):", "return (1.0 - h) * dh"),
          "dhpreact", None),
    Wrong(MLP, "backward_bngain", fn("def backward_bngain(bnraw, dhpreact):", "return (bnraw * dhpreact).sum(0)"),
          "dbngain", "the values are right but the shape is not"),
    Wrong(MLP, "backward_bnvar", fn("def backward_bnvar(bnvar, dbnvar_inv):",
          "return -0.5 * bnvar**-1.5 * dbnvar_inv  # the 1e-5 dropped"), "dbnvar", "the 1e-5 is missing"),
    Wrong(MLP, "backward_bndiff2", fn("def backward_bndiff2(bndiff2, dbnvar):", "n = bndiff2.shape[0]",
          "return 1.0 / n * torch.ones_like(bndiff2) * dbnvar"), "dbndiff2", "off by a factor (n-1)/n"),
    Wrong(MLP, "backward_bndiff", fn("def backward_bndiff(bndiff, bnvar_inv, dbnraw, dbndiff2):",
          "return bnvar_inv * dbnraw + bndiff * dbndiff2"), "dbndiff", "a factor 2 is missing"),
    Wrong(MLP, "backward_bndiff", fn("def backward_bndiff(bndiff, bnvar_inv, dbnraw, dbndiff2):",
          "return bnvar_inv * dbnraw"), "dbndiff", "only the path through bnraw"),
    Wrong(MLP, "backward_hprebn", fn("def backward_hprebn(dbndiff, dbnmeani):", "return dbndiff.clone()"),
          "dhprebn", "only the direct path"),
    Wrong(MLP, "backward_b1", fn("def backward_b1(dhprebn):", "return torch.zeros(dhprebn.shape[1])"),
          "db1", "all zeros"),
    Wrong(MLP, "backward_C", fn("def backward_C(C, Xb, demb):", "dC = torch.zeros_like(C)",
          "dC[Xb.view(-1)] = demb.view(-1, C.shape[1])", "return dC"),
          "dC", "each row holds the gradient of only one position"),
    Wrong(MLP, "cross_entropy_backward", fn("def cross_entropy_backward(logits, Yb):",
          "return F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1]).to(logits.dtype)"),
          "ex2_dlogits", "off by a factor of n = 32"),
    Wrong(MLP, "cross_entropy_backward", fn("def cross_entropy_backward(logits, Yb):",
          "return F.softmax(logits, 1) / logits.shape[0]  # the one-hot forgotten"),
          "ex2_dlogits", "the softmax part alone"),
    Wrong(MLP, "batchnorm_backward", fn("def batchnorm_backward(dhpreact, bngain, bnvar_inv, bnraw):",
          "n = dhpreact.shape[0]",
          "return bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))"),
          "ex3_dhprebn", "the n/(n-1) of the unbiased variance is missing"),
    # ---- the CNN
    Wrong(CNN, "cross_entropy_backward", fn("def cross_entropy_backward(logits_flat, y):",
          "return F.softmax(logits_flat, 1) - F.one_hot(y, logits_flat.shape[1]).to(logits_flat.dtype)"),
          "dlogits", "off by a factor of B = 12"),
    Wrong(CNN, "linear_backward", fn("def linear_backward(feat, Wh, dlogits):", "H2, V = Wh.shape",
          "return dlogits @ Wh.T, dlogits.reshape(-1, V).T @ feat.reshape(-1, H2)"),
          "dWh", "transpose of the gradient"),
    Wrong(CNN, "avgpool_backward", fn("def avgpool_backward(res, dpooled):", "return dpooled * torch.ones_like(res)"),
          "dres", "off by a factor of T2 = 5"),
    Wrong(CNN, "batchnorm2d_backward", fn("def batchnorm2d_backward(dout, xhat, gamma, var):",
          "B, H, _, T = dout.shape", "N = B * T", "dbeta = dout.sum((0, 2, 3))", "dgamma = (dout * xhat).sum((0, 2, 3))",
          "scale = gamma.view(1, -1, 1, 1) * var ** -0.5  # the 1e-5 dropped",
          "dx = scale / N * (N * dout - dbeta.view(1, -1, 1, 1) - xhat * dgamma.view(1, -1, 1, 1))",
          "return dx, dgamma, dbeta"), "dc2", "the 1e-5 is missing"),
    Wrong(CNN, "relu_backward", fn("def relu_backward(bn1, dr1):", "return (dr1 > 0).to(dr1.dtype) * dr1"),
          "dbn1", "the mask is taken from the gradient"),
    Wrong(CNN, "relu_backward", fn("def relu_backward(bn1, dr1):", "return dr1.clone()"),
          "dbn1", "relu's mask is missing"),
    Wrong(CNN, "conv_backward", fn("def conv_backward(dout, x, W, stride, padding):",
          "C_out, C_in, _, k = W.shape", "B, _, _, T = x.shape",
          "cols = F.unfold(x, (1, k), padding=(0, padding), stride=(1, 1))  # stride 1 wherever",
          "dout_flat = dout.reshape(B, C_out, -1)", "L = dout_flat.shape[-1]",
          "dW = (dout_flat @ cols[..., :L].transpose(1, 2)).sum(0).view(W.shape)",
          "dcols = W.view(C_out, -1).T @ dout_flat",
          "dx = F.fold(dcols, (1, T), (1, k), padding=(0, padding), stride=(1, stride))", "return dx, dW"),
          "dW2", None),
    Wrong(CNN, "embedding_backward", fn("def embedding_backward(wte, x, dxin):",
          "demb = dxin.squeeze(2).permute(0, 2, 1)", "dwte = torch.zeros_like(wte)",
          "dwte[x.reshape(-1)] = demb.reshape(-1, wte.shape[1])", "return dwte"),
          "dwte", "each row holds the gradient of only one position"),
    Wrong(CNN, "unfold_loop", fn("def unfold_loop(x, kernel_w, stride, padding):",
          "return F.unfold(x, (1, kernel_w), padding=(0, padding), stride=(1, stride))"),
          "unfold_s1", "the answer calls `torch.nn.functional.unfold`, which this exercise asks you to write yourself"),
    # ---- the GRU
    Wrong(GRU, "blend_backward", fn("def blend_backward(dh, h_prev, z, n):",
          "return (n - h_prev) * dh, (1 - z) * dh, z * dh"), "step_dz", "sign flipped"),
    Wrong(GRU, "blend_backward", fn("def blend_backward(dh, h_prev, z, n):",
          "return (h_prev - n) * dh, (1 - z) * dh, (1 - z) * dh"), "step_dh_direct", "that is the share of n"),
    Wrong(GRU, "tanh_backward", fn("def tanh_backward(n, dn):", "return dn.clone()"),
          "step_dn_pre", "tanh's local derivative is missing"),
    Wrong(GRU, "tanh_backward", fn("def tanh_backward(n, dn):", "return (1 - n) * dn"), "step_dn_pre", None),
    Wrong(GRU, "reset_backward", fn("def reset_backward(r, nh, dn_pre):", "return nh * dn_pre, dn_pre.clone()"),
          "step_dnh", "nh reaches n_pre only through r * nh"),
    Wrong(GRU, "sigmoid_backward", fn("def sigmoid_backward(s, ds):", "return (1 - s**2) * ds"),
          "step_dz_pre", "that is tanh's derivative"),
    Wrong(GRU, "gates_backward", fn("def gates_backward(dz_pre, dr_pre, dn_pre, dnh):",
          "return torch.cat([dz_pre, dr_pre, dn_pre], 1), torch.cat([dz_pre, dr_pre, dn_pre], 1)"),
          "step_dgh", "the n chunk of gh is nh"),
    Wrong(GRU, "gates_backward", fn("def gates_backward(dz_pre, dr_pre, dn_pre, dnh):",
          "return torch.cat([dr_pre, dz_pre, dn_pre], 1), torch.cat([dr_pre, dz_pre, dnh], 1)"),
          "step_dgx", "the chunks are out of order"),
    Wrong(GRU, "cross_entropy_backward", fn("def cross_entropy_backward(logits_flat, y):",
          "V = logits_flat.shape[1]",
          "return F.softmax(logits_flat, 1) - F.one_hot(y.reshape(-1), V).to(logits_flat.dtype)"),
          "dlogits", "off by a factor of B*T = 42"),
    Wrong(GRU, "dropout_backward", fn("def dropout_backward(mask, dout):", "return (mask != 0).to(dout.dtype) * dout"),
          "dhs", "off by a factor 1 - p = 0.9"),
    Wrong(GRU, "dropout_backward", fn("def dropout_backward(mask, dout):", "return dout.clone()"),
          "dhs", "dropout's mask is missing"),
    Wrong(GRU, "embedding_backward", fn("def embedding_backward(wte, x, demb):", "dwte = torch.zeros_like(wte)",
          "dwte[x.reshape(-1)] = demb.reshape(-1, wte.shape[1])", "return dwte"),
          "dwte", "each row holds the gradient of only one position"),
    # ---- the GPT block
    Wrong(GPT, "cross_entropy_backward", fn("def cross_entropy_backward(logits_flat, y):",
          "d = torch.softmax(logits_flat, 1)", "d[torch.arange(d.shape[0]), y.reshape(-1)] -= 1.0", "return d"),
          "dlogits", "off by a factor of B*T = 40"),
    Wrong(GPT, "softmax_backward", fn("def softmax_backward(att, datt):", "return att * datt"),
          "datt_scaled", "only the diagonal of the softmax's derivative"),
    Wrong(GPT, "scale_backward", fn("def scale_backward(datt_scaled, head_size):", "return datt_scaled.clone()"),
          "dscores", "the scale is missing"),
    Wrong(GPT, "scale_backward", fn("def scale_backward(datt_scaled, head_size):",
          "return datt_scaled * head_size**0.5"), "dscores", "multiplied by sqrt(head_size)"),
    Wrong(GPT, "scores_backward", fn("def scores_backward(qh, kh, dscores):", "return dscores @ kh, dscores @ qh"),
          "dkh", "kh enters scores = qh @ kh^T transposed"),
    Wrong(GPT, "attention_values_backward", fn("def attention_values_backward(att, vh, dyh):",
          "return dyh @ vh.transpose(-2, -1), att @ dyh"), "dvh", "vh's gradient multiplies by att transposed"),
    Wrong(GPT, "layernorm_backward", fn("def layernorm_backward(dout, xhat, gamma, rstd):",
          "std = 1.0 / rstd", "rstd_ = 1.0 / (torch.sqrt(std**2 - 1e-5) + 1e-5)  # eps outside the root",
          "dxhat = dout * gamma",
          "dx = rstd_ * (dxhat - dxhat.mean(-1, keepdim=True) - xhat * (dxhat * xhat).mean(-1, keepdim=True))",
          "return dx, (dout * xhat).sum((0, 1)), dout.sum((0, 1))"), "dx0_ln1", "(x - mean) / (std + eps)"),
    Wrong(GPT, "residual_backward", fn("def residual_backward(dskip, dbranch):", "return dskip.clone()"),
          "dx1", "only the path through the skip connection"),
    Wrong(GPT, "gelu_backward", fn("def gelu_backward(fc, dgelu):", "k = math.sqrt(2.0 / math.pi)",
          "t = torch.tanh(k * (fc + 0.044715 * fc**3))", "return 0.5 * (1 + t) * dgelu  # the product rule's 2nd term"),
          "dfc", None),
    Wrong(GPT, "position_embedding_backward", fn("def position_embedding_backward(dx0):", "return dx0.clone()")
          + fn("def token_embedding_backward(wte, x, dx0):", "dwte = torch.zeros_like(wte)",
               "dwte.index_add_(0, x.reshape(-1), dx0.reshape(-1, dx0.shape[-1]))", "return dwte"),
          "dwpe", "summing your result over its leading dims (0,) gives the gradient"),
    Wrong(GPT, "token_embedding_backward", fn("def position_embedding_backward(dx0):", "return dx0.sum(0)")
          + fn("def token_embedding_backward(wte, x, dx0):", "dwte = torch.zeros_like(wte)",
               "dwte[x.reshape(-1)] = dx0.reshape(-1, dx0.shape[-1])", "return dwte"),
          "dwte", "each row holds the gradient of only one position"),
    # ---- micrograd
    Wrong(MICRO, "__add__", fn("def __add__(self, other):", "other = other if isinstance(other, Value) else Value(other)",
          "out = Value(self.data + other.data, (self, other), '+')", "def _backward():",
          "    self.grad = out.grad", "    other.grad = out.grad", "out._backward = _backward", "return out")
          + "\nValue.__add__ = __add__\n", "accumulate", "`a` got only one of its two shares"),
    Wrong(MICRO, "backward", fn("def backward(self):", "order, visited = [], set()", "def visit(node):",
          "    if node not in visited:", "        visited.add(node)", "        for child in node._prev:",
          "            visit(child)", "        order.append(node)", "visit(self)",
          "for node in order:", "    node.grad = 0.0  # a fresh start each time", "self.grad = 1.0",
          "for node in reversed(order):", "    node._backward()") + "\nValue.backward = backward\n",
          "two_passes", "the second backward() threw away what the first left"),
    Wrong(MICRO, "tanh", fn("def tanh(self):", "t = math.tanh(self.data)", "out = Value(t, (self,), 'tanh')",
          "def _backward():", "    self.grad += (1 - self.data**2) * out.grad", "out._backward = _backward",
          "return out") + "\nValue.tanh = tanh\n", "tanh", None),
]


def test_the_table_is_large_and_covers_every_assignment() -> None:
    assert len(TABLE) >= 40
    assert {w.assignment for w in TABLE} == {MLP, CNN, GRU, GPT, MICRO}
    assert sum(w.must_say is None for w in TABLE) >= 5  # and some mistakes have no diagnosis


@pytest.mark.parametrize("wrong", TABLE, ids=str)
def test_each_mistake_gets_the_feedback_it_must(wrong: Wrong) -> None:
    assignment = load(wrong.assignment)
    namespace = namespace_of(with_answers(solution_notebook(wrong.assignment), {wrong.function: wrong.code}),
                             assignment)
    (report,) = grade(assignment, NamespaceSource(namespace), cases_of(assignment), [assignment.item(wrong.item)])
    assert not report.passed
    text = report.text()
    hints = [line.strip() for line in text.splitlines() if line.strip().startswith("hint:")]
    if wrong.must_say is None:
        assert hints == [], text
        assert "differ from autograd's" in text or "furthest outside the tolerance" in text, text
    else:
        assert wrong.must_say in text, text


def test_a_dict_without_the_key_says_so() -> None:
    """Not "did your function forget to return?": the dict came back, without the entry checked."""
    assignment = load(GRU)
    code = fn("def bptt(f, params, dH, step_backward):", "return {'dx2g_W': params['x2g_W'] * 0}")
    namespace = namespace_of(with_answers(solution_notebook(GRU), {"bptt": code}), assignment)
    (report,) = grade(assignment, NamespaceSource(namespace), cases_of(assignment), [assignment.item("bptt_dembd")])
    assert "the returned dict has no key 'dembd' (its keys: 'dx2g_W')" in report.text()
    assert "forget to `return`" not in report.text()
