"""The ranking maths: Wilson lower bound, decay, the new-skill floor, installs."""

from __future__ import annotations

import math

import pytest

from skills_hub.ranking import quality as q


@pytest.mark.parametrize(("successes", "total", "expected"), [
    # Worked by hand from (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.645.
    (0, 0, 0.0),
    (10, 10, 0.7870),
    (5, 10, 0.2692),
    (90, 100, 0.8396),
    (1, 1, 0.2698),
    (0, 10, 0.0),
])
def test_wilson_lower_bound_matches_reference_values(successes: float, total: float,
                                                     expected: float) -> None:
    assert q.wilson_lower_bound(successes, total) == pytest.approx(expected, abs=5e-4)


def test_wilson_prefers_more_evidence_at_the_same_rate() -> None:
    assert q.wilson_lower_bound(9, 10) < q.wilson_lower_bound(90, 100) < q.wilson_lower_bound(
        900, 1000) < 0.9


def test_wilson_accepts_decayed_fractional_counts_and_clamps() -> None:
    assert 0 < q.wilson_lower_bound(2.5, 3.2) < 1
    assert q.wilson_lower_bound(5, 3) == q.wilson_lower_bound(3, 3)  # clamped to the total
    assert q.wilson_lower_bound(-1, 3) == 0.0


def test_decay_halves_every_half_life() -> None:
    day = 86_400.0
    assert q.decay_factor(0) == 1.0
    assert q.decay_factor(-5) == 1.0  # a clock step back never inflates counts
    assert q.decay_factor(q.HALF_LIFE_DAYS * day) == pytest.approx(0.5)
    assert q.decay_factor(2 * q.HALF_LIFE_DAYS * day) == pytest.approx(0.25)


def test_the_new_skill_floor_fades_as_evidence_arrives() -> None:
    new = q.quality(0, 0, 0)
    assert new.floored and new.quality == pytest.approx(q.EVIDENCE_WEIGHT * q.NEW_SKILL_FLOOR)
    # A few failures pull a skill below a new one; many successes lift it above.
    assert q.quality(0, 5, 0).quality < new.quality
    assert q.quality(50, 0, 0).quality > new.quality
    proven = q.quality(200, 10, 0)
    assert not proven.floored and proven.wilson > q.NEW_SKILL_FLOOR
    # Past MIN_EVIDENCE the floor is gone: a mediocre record is judged on its own.
    assert q.quality(q.MIN_EVIDENCE / 2, q.MIN_EVIDENCE / 2, 0).floored is False


def test_installs_count_logarithmically_and_saturate() -> None:
    assert q.installs_factor(0) == 0.0
    assert q.installs_factor(9) == pytest.approx(math.log(10) / math.log(10_001))
    assert q.installs_factor(q.INSTALLS_SATURATE) == pytest.approx(1.0)
    assert q.installs_factor(10 ** 9) == 1.0
    assert q.quality(0, 0, 1000).quality > q.quality(0, 0, 10).quality


def test_quality_parts_name_every_term() -> None:
    parts = q.quality(3, 1, 42).parts()
    assert set(parts) == {"successes", "failures", "wilson", "new_skill_floor", "installs",
                          "quality", "task"}
    assert 0 <= parts["quality"] <= 1  # type: ignore[operator]
    assert parts["task"] is None  # no query near any reported task
