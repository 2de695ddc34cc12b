"""Train / held-out splits that never separate the cases of one subject."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalseg.data.case import Case, Dataset

__all__ = ["split_by_subject", "train_test"]


def split_by_subject(cases: Sequence[Case], *, holdout_fraction: float, seed: int) -> tuple[list[Case], list[Case]]:
    """Split cases into a kept and a held-out part, by subject.

    With two or more subjects, subjects are drawn in an order shuffled with ``seed`` and each is held out
    (whole) if the held-out part then stays at or below ``round(holdout_fraction * len(cases))`` cases; if no
    subject fits, the one whose size is closest to that target is held out. No subject lies on both sides.

    With a single subject (e.g. the frames of one IVUS pullback) there is nothing to split by, so the
    held-out part is one *contiguous block* of cases, in the order given (acquisition order for the
    readers), whose start is drawn with ``seed``; neighbouring frames then only meet across the block's edges.

    Both parts keep the input order. With at least two cases each part holds at least one case.

    Args:
        cases: the cases to split.
        holdout_fraction: target fraction of cases held out, in ``(0, 1)``.
        seed: seed of the draw; the same seed gives the same split.

    Returns:
        ``(kept, held_out)`` lists of cases.

    Raises:
        ValueError: ``holdout_fraction`` outside ``(0, 1)``.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must lie in (0, 1), got {holdout_fraction}")
    cases = list(cases)
    total = len(cases)
    if total < 2:
        return cases, []
    target = min(max(round(holdout_fraction * total), 1), total - 1)
    rng = np.random.default_rng(seed)
    subjects = list(dict.fromkeys(case.subject_id for case in cases))
    if len(subjects) == 1:
        start = int(rng.integers(0, total - target + 1))
        held = set(range(start, start + target))
        return (
            [case for i, case in enumerate(cases) if i not in held],
            [case for i, case in enumerate(cases) if i in held],
        )
    sizes = {subject: 0 for subject in subjects}
    for case in cases:
        sizes[case.subject_id] += 1
    order = [subjects[int(index)] for index in rng.permutation(len(subjects))]
    held_subjects: set[str] = set()
    held_count = 0
    for subject in order:
        if held_count + sizes[subject] <= target:
            held_subjects.add(subject)
            held_count += sizes[subject]
    if not held_subjects:  # every subject is larger than the target: hold out the one closest to it
        held_subjects.add(min(order, key=lambda subject: abs(sizes[subject] - target)))
    return (
        [case for case in cases if case.subject_id not in held_subjects],
        [case for case in cases if case.subject_id in held_subjects],
    )


def train_test(dataset: Dataset, *, holdout_fraction: float = 0.2, seed: int = 0) -> tuple[list[Case], list[Case]]:
    """The dataset's train and test cases.

    When any case has ``split == "test"`` (the source's own held-out split), those cases are the test part and
    all others (``train``, ``val`` or unset) the train part. Otherwise the split is
    :func:`split_by_subject` with ``holdout_fraction`` and ``seed``.

    Args:
        dataset: the dataset to split.
        holdout_fraction: held-out fraction when the source fixes no split.
        seed: seed of that split.

    Returns:
        ``(train, test)`` lists of cases.
    """
    if any(case.split == "test" for case in dataset.cases):
        return (
            [case for case in dataset.cases if case.split != "test"],
            [case for case in dataset.cases if case.split == "test"],
        )
    return split_by_subject(dataset.cases, holdout_fraction=holdout_fraction, seed=seed)
