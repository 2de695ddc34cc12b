"""Splits by subject: no subject on both sides, deterministic by seed, contiguous blocks for one subject."""

from __future__ import annotations

import numpy as np
import pytest

from frugalseg.data import Case, Dataset, split_by_subject, train_test


def _cases(subjects: list[str], *, split: list[str | None] | None = None) -> list[Case]:
    return [
        Case(
            case_id=f"c{index:03d}",
            subject_id=subject,
            image=np.zeros((2, 2), np.uint8),
            split=None if split is None else split[index],
        )
        for index, subject in enumerate(subjects)
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_subjects_never_on_both_sides(seed: int, fraction: float) -> None:
    rng = np.random.default_rng(100 + seed)
    subjects = [f"s{int(v)}" for v in rng.integers(0, 7, size=40)]
    cases = _cases(subjects)
    kept, held = split_by_subject(cases, holdout_fraction=fraction, seed=seed)
    assert kept and held
    assert {c.subject_id for c in kept}.isdisjoint({c.subject_id for c in held})
    assert sorted(c.case_id for c in kept + held) == [c.case_id for c in cases]
    # both parts keep the input order
    assert [c.case_id for c in kept] == sorted(c.case_id for c in kept)
    assert [c.case_id for c in held] == sorted(c.case_id for c in held)


def test_held_out_size_near_target_when_subjects_are_small() -> None:
    cases = _cases([f"s{i // 2}" for i in range(100)])  # 50 subjects of 2 cases
    for seed in range(5):
        _, held = split_by_subject(cases, holdout_fraction=0.3, seed=seed)
        assert len(held) == 30


def test_deterministic_by_seed_and_seed_matters() -> None:
    cases = _cases([f"s{i}" for i in range(30)])
    first = split_by_subject(cases, holdout_fraction=0.2, seed=7)
    again = split_by_subject(cases, holdout_fraction=0.2, seed=7)
    assert [c.case_id for c in first[1]] == [c.case_id for c in again[1]]
    helds = {tuple(c.case_id for c in split_by_subject(cases, holdout_fraction=0.2, seed=s)[1]) for s in range(5)}
    assert len(helds) > 1


def test_single_subject_holds_out_a_contiguous_block() -> None:
    cases = _cases(["pullback"] * 20)
    starts = set()
    for seed in range(10):
        kept, held = split_by_subject(cases, holdout_fraction=0.25, seed=seed)
        indices = [int(c.case_id[1:]) for c in held]
        assert len(held) == 5 and len(kept) == 15
        assert indices == list(range(indices[0], indices[0] + 5))
        starts.add(indices[0])
    assert len(starts) > 1


@pytest.mark.parametrize("subjects", [["a", "b"], ["a", "a"]])
def test_two_cases_one_each_side(subjects: list[str]) -> None:
    kept, held = split_by_subject(_cases(subjects), holdout_fraction=0.01, seed=0)
    assert len(kept) == 1 and len(held) == 1


def test_one_large_subject() -> None:
    cases = _cases(["big"] * 9 + ["small"])
    kept, held = split_by_subject(cases, holdout_fraction=0.5, seed=0)
    assert [c.subject_id for c in held] == ["small"]
    assert len(kept) == 9


def test_degenerate_inputs() -> None:
    assert split_by_subject([], holdout_fraction=0.2, seed=0) == ([], [])
    single = _cases(["a"])
    assert split_by_subject(single, holdout_fraction=0.2, seed=0) == (single, [])
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="holdout_fraction"):
            split_by_subject(single, holdout_fraction=bad, seed=0)


def test_train_test_uses_source_split() -> None:
    splits: list[str | None] = ["train", "test", "val", None, "test"]
    dataset = Dataset(
        cases=_cases(["a", "a", "b", "c", "d"], split=splits), class_names=["bg", "fg"], source_format="t"
    )
    train, test = train_test(dataset)
    assert [c.case_id for c in test] == ["c001", "c004"]
    assert [c.case_id for c in train] == ["c000", "c002", "c003"]


def test_train_test_falls_back_to_subject_split() -> None:
    dataset = Dataset(cases=_cases([f"s{i % 5}" for i in range(20)]), class_names=["bg", "fg"], source_format="t")
    train, test = train_test(dataset, holdout_fraction=0.2, seed=3)
    assert len(test) == 4 and len(train) == 16
    assert {c.subject_id for c in train}.isdisjoint({c.subject_id for c in test})
