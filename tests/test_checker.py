"""cmp: validation before comparison, the lecture's three verdicts, and the hints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder import Tolerance, cmp
from autograder.checker import compare, reference_of


def g(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_exact_match_prints_one_aligned_row(capsys: pytest.CaptureFixture[str]) -> None:
    t = g(4, 3)
    result = cmp("dlogprobs", t.clone(), t)
    assert result.passed and result.exact and result.approximate and result.maxdiff == 0.0
    row = capsys.readouterr().out.strip()
    assert row.startswith("dlogprobs") and "| exact: True  | approximate: True  | maxdiff: 0.0" in row


def test_approximate_but_not_exact() -> None:
    t = g(5, 7)
    result = compare("dx", t + 2e-6, t)  # well above float32 resolution, well inside the tolerance
    assert result.passed and result.approximate and not result.exact
    assert 1e-6 < result.maxdiff < 1e-5


def test_value_mismatch_fails_with_position_and_values() -> None:
    t = g(3, 4)
    wrong = t.clone()
    wrong[2, 1] += 0.5
    result = compare("dx", wrong, t)
    assert not result.passed and not result.approximate
    assert result.where == (2, 1)
    assert "index [2, 1]" in result.details() and f"{t[2, 1].item():.6g}" in result.details()


def test_reference_can_be_a_tensor_with_grad() -> None:
    x = g(3, 2).requires_grad_(True)
    (x * 3).sum().backward()
    assert cmp("dx", torch.full((3, 2), 3.0), x, quiet=True).exact
    assert torch.equal(reference_of(x), x.grad)


def test_reference_without_grad_yet_is_a_clear_error() -> None:
    x = g(2).requires_grad_(True)
    with pytest.raises(ValueError, match="backward"):
        cmp("dx", torch.zeros(2), x, quiet=True)


def test_broadcastable_shape_never_passes() -> None:
    # The lecture's checker said `exact: True` here because == and allclose broadcast.
    expected = g(1, 64)
    result = compare("dbnmeani", expected.view(64), expected)
    assert not result.passed and not result.exact and not result.approximate
    assert result.problem == "shape mismatch: expected (1, 64), received (64,)"
    assert "values are right but the shape is not" in result.hint and "keepdim" in result.hint


def test_missing_sum_over_broadcast_dim_is_named_when_the_sum_is_the_gradient() -> None:
    per_row = g(32, 64)
    expected = per_row.sum(0, keepdim=True)
    result = compare("dbngain", per_row, expected)
    assert "shape mismatch: expected (1, 64), received (32, 64)" == result.problem
    assert "summing your result over dim 0 gives the gradient" in result.hint
    assert "sum(0, keepdim=True)" in result.hint
    # the same shapes, but summing does not give the gradient: no diagnosis
    assert compare("dbngain", g(32, 64, seed=1), expected).hint is None


def test_transposed_matrix_is_named_only_when_it_is_the_transpose() -> None:
    expected = g(30, 64)
    result = compare("dW1", expected.T.contiguous(), expected)
    assert result.problem == "shape mismatch: expected (30, 64), received (64, 30)"
    assert "transpose of the gradient" in result.hint
    square = g(5, 5)
    assert "transpose" in compare("dW", square.T.contiguous(), square).hint
    # the transposed shape with other values: the shapes are stated, nothing is diagnosed
    assert compare("dW1", g(64, 30, seed=1), expected).hint is None


def test_dtype_mismatch_fails() -> None:
    t = g(3)
    result = compare("dx", t.double(), t)
    assert not result.passed and "dtype mismatch: expected torch.float32, received torch.float64" == result.problem
    assert "zeros_like" in result.hint


@pytest.mark.parametrize("bad, kind", [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "inf")])
def test_non_finite_never_passes(bad: float, kind: str) -> None:
    t = g(2, 3)
    received = t.clone()
    received[1, 2] = bad
    result = compare("dx", received, t)
    assert not result.passed and result.problem == f"contains {kind} (first at index [1, 2])"


def test_nan_in_both_still_fails() -> None:
    t = torch.tensor([float("nan"), 1.0])
    assert not compare("dx", t.clone(), torch.tensor([0.0, 1.0])).passed


def test_empty_tensor_fails() -> None:
    result = compare("dx", torch.empty(0), g(3))
    assert not result.passed and "empty tensor" in result.problem


@pytest.mark.parametrize("received, word", [(None, "None"), ([1.0, 2.0], "list"), (np.ones(3, dtype=np.float32), "ndarray"),
                                            (1.5, "float")])
def test_non_tensor_fails(received: object, word: str) -> None:
    result = compare("dx", received, g(3))
    assert not result.passed and word in result.problem
    assert "(3,)" in result.problem or word == "None"


def test_no_factor_is_named_without_a_declared_mistake() -> None:
    # a factor that happens to equal a size ("Bessel" for a dropout's 0.9, "times a constant 1") is
    # not diagnosed: factors are the items' own declared mistakes (tests/test_mistakes.py)
    expected = g(20, 10)
    for factor in (0.9, 19 / 20, 20.0, 1.0 + 3e-4):
        result = compare("dx", expected * factor, expected)
        assert not result.passed and result.hint is None


def test_hint_flipped_sign() -> None:
    expected = g(4, 6)
    assert "sign flipped" in compare("dcounts_sum", -expected, expected).hint


def test_rounding_noise_near_zero_is_never_diagnosed() -> None:
    # a gradient that is zero up to rounding, and a received one a little outside the tolerance:
    # -received is close to it too, but that is no sign error
    expected = torch.tensor([[5e-7, -3e-7], [2e-7, 0.0]])
    received = torch.tensor([[-8.6e-7, 3e-7], [-2e-7, 0.0]])
    result = compare("db1", received, expected)
    assert not result.passed and result.hint is None


def test_hint_all_zeros() -> None:
    assert "all zeros" in compare("dC", torch.zeros(6, 3), g(6, 3)).hint


def test_partly_right_rows_are_located_not_diagnosed() -> None:
    expected = g(27, 10)
    received = expected.clone()
    received[[0, 5]] *= 0.5
    result = compare("dC", received, expected)
    assert result.hint is None  # nothing says these rows were overwritten (test_mistakes.py: dC's own mistake)
    assert "20 of 270 entries differ from autograd's, in 2 of 27 rows along dim 0 (0, 5)" in result.details()


def test_the_reported_place_is_the_one_furthest_outside_the_tolerance() -> None:
    expected = torch.tensor([[100.0, 0.0]])
    received = torch.tensor([[100.005, 0.001]])  # 0.005 is within 1e-4 * 100; 0.001 is far outside 1e-6
    result = compare("dx", received, expected)
    assert result.where == (0, 1)


def test_a_wrong_matrix_can_be_drawn_and_a_wrong_vector_is_not() -> None:
    from autograder.picture import difference_png

    expected = g(12, 9)
    received = expected.clone()
    received[3] += 1.0
    result = compare("dlogits", received, expected)
    assert result.tensors is not None
    png = difference_png(result.name, *result.tensors, result.tolerance)
    assert png.startswith(b"\x89PNG") and 2_000 < len(png) < 60_000
    assert compare("db", g(9) + 1.0, g(9)).tensors is None  # a vector: the rows say it all


def test_item_tolerance_overrides_default() -> None:
    t = g(3)
    off = t + 1e-3
    assert not compare("dx", off, t).passed
    assert compare("dx", off, t, Tolerance(rtol=0, atol=1e-2)).passed


def test_gradient_with_grad_fn_is_accepted() -> None:
    t = g(3)
    w = torch.ones(3, requires_grad=True)
    assert compare("dx", t * w, t).passed  # a result that still tracks autograd is just a tensor
