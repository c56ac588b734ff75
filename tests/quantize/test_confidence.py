"""The paired interval of a val drop, and the budget verdict it gives (pure arithmetic)."""

import numpy as np
import pytest

from edgetl.quantize.confidence import (
    budget_verdict,
    clopper_pearson_upper,
    images_needed,
    mcnemar_exact_p,
    paired_drop,
    smallest_resolvable_budget_pt,
)


def _pairs(n: int, only_fp32: int, only_int8: int, both_wrong: int = 0):
    f = np.ones(n, bool)
    q = np.ones(n, bool)
    q[:only_fp32] = False
    f[only_fp32 : only_fp32 + only_int8] = False
    f[n - both_wrong :] = q[n - both_wrong :] = False
    return f, q


def test_exact_bounds_match_closed_forms():
    # no success in n trials: the two-sided 95% upper bound is 1 - 0.025^(1/n)
    assert clopper_pearson_upper(0, 140) == pytest.approx(1 - 0.025 ** (1 / 140), rel=1e-6)
    assert clopper_pearson_upper(140, 140) == 1.0
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact_p(5, 5) == 1.0


def test_the_issues_case_140_images_cannot_confirm_one_point():
    """INT8 passed --max-drop 1.0 at 0.71 pt on 140 val images (1 image): unresolved, and the
    report can say how many images would resolve it."""
    f, q = _pairs(140, only_fp32=1, only_int8=0)
    d = paired_drop(f, q)
    assert d.drop_pt == pytest.approx(100 / 140) and d.only_fp32_right == 1
    assert d.ci95_pt[1] > 1.0 and "Clopper-Pearson" in d.method
    assert budget_verdict(d, 1.0) == "unresolved"
    assert images_needed(d, 1.0) > 140
    assert smallest_resolvable_budget_pt(140) > 1.0 > smallest_resolvable_budget_pt(2000)


def test_bootstrap_interval_is_paired_deterministic_and_judges_the_upper_bound():
    f, q = _pairs(6000, only_fp32=60, only_int8=30)  # drop 0.5 pt
    a, b = paired_drop(f, q), paired_drop(f, q)
    assert a == b and "bootstrap" in a.method
    lo, hi = a.ci95_pt
    assert a.drop_pt == pytest.approx(0.5) and lo < a.drop_pt < hi
    assert budget_verdict(a, 1.0) == "holds"  # upper bound under 1 pt on 6000 images
    assert budget_verdict(a, 0.6) == "unresolved"  # point under, upper bound over
    assert budget_verdict(a, 0.4) == "missed"
    assert images_needed(a, 0.4) is None
    # the same counts on fewer images: a wider interval
    f2, q2 = _pairs(1500, only_fp32=15, only_int8=8)
    assert paired_drop(f2, q2).ci95_pt[1] - paired_drop(f2, q2).ci95_pt[0] > hi - lo


def test_needed_images_do_resolve_the_budget():
    f, q = _pairs(1000, only_fp32=12, only_int8=6)  # 0.6 pt on 1000 images: unresolved at 1.0
    d = paired_drop(f, q)
    assert budget_verdict(d, 1.0) == "unresolved"
    n = images_needed(d, 1.0)
    scale = -(-n // 1000) + 1  # the same rates on at least n images
    big = paired_drop(np.tile(f, scale), np.tile(q, scale))
    assert budget_verdict(big, 1.0) == "holds"


def test_bad_vectors_are_refused():
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_drop(np.ones(3, bool), np.ones(4, bool))
