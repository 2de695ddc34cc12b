"""``frugalseg al``: one active-learning run of the SQA network with a simulated expert.

A run (:func:`run_al`) writes into its folder ``settings.json``, ``state.json`` (the loop's state, see
:mod:`frugalseg.active.loop`) and the weights of the last two rounds (``round_XX.pt``, for the warm start
of a resumed run); run again on the same folder it resumes. With ``final_steps`` the acquired labels are
trained once more from scratch after the last round (``final.pt``, its test metrics ``final.json``): warm-started
rounds of a few epochs each end below one training of that length on the same labels.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from frugalseg.active.expert import BoxAssistant, ModelPrediction, SimulatedExpert
from frugalseg.active.loop import LOOP_STRATEGIES, ActiveLearningConfig, ALResult, PoolScores, run_active_learning
from frugalseg.annotations import Boxes
from frugalseg.atomic import atomic_torch_save, atomic_write_json, load_torch_file
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.bench import held_out_split
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.evaluate import IVUS_CLASSES
from frugalseg.engine.sqa_train import evaluate_sqa, fine_tune_sqa, predict_with_quality
from frugalseg.errors import InputError
from frugalseg.models import create_model
from frugalseg.models.sqa import SQANet

if TYPE_CHECKING:
    from frugalseg.foundation import PromptableSegmenter

__all__ = ["labelled_cases", "load_sqa_network", "round_seed", "run_al", "trained_from_scratch"]

_CHUNK = 16
_MC_STRATEGIES = ("bald", "predictive_entropy")


def labelled_cases(cases: Sequence[Case]) -> list[Case]:
    """The cases that have a label map."""
    return [case for case in cases if case.label is not None]


def round_seed(seed: int, round_index: int) -> int:
    """The training seed of one round of a run (``-1``: the fully supervised reference)."""
    return int(np.random.SeedSequence([seed, round_index + 1]).generate_state(1)[0])


def _pool_scores(network: SQANet, cases: list[Case], *, size: int, strategy: str, mc_samples: int) -> PoolScores:
    mc = mc_samples if strategy in _MC_STRATEGIES else 0
    preds = []
    step = _CHUNK if mc else 4 * _CHUNK  # MC samples hold T probability maps per image
    for start in range(0, len(cases), step):
        chunk = cases[start : start + step]
        preds += predict_with_quality(
            network,
            chunk,
            size=size,
            mc_samples=mc,
            keep_maps=False,
            features=strategy == "coreset",
            flips=strategy == "sqa_flips",
            shape="ellipse" if strategy == "sqa_shape" else "none",
            seed=start,
        )
    key = LOOP_STRATEGIES[strategy]  # every score key is a QualityPrediction attribute
    scores = {} if key is None else {key: np.array([getattr(p, key) for p in preds], dtype=np.float64)}
    features = np.stack([p.features for p in preds if p.features is not None]) if strategy == "coreset" else None
    return PoolScores(scores=scores, features=features)


def _expert_view(network: SQANet, cases: list[Case], *, size: int) -> list[ModelPrediction]:
    out = []
    for p in predict_with_quality(network, cases, size=size):
        if p.label is None:
            raise ValueError("predict_with_quality returned no label map although keep_maps is on")
        out.append(ModelPrediction(label=p.label, error_prob=p.error_prob))
    return out


def _with_box_masks(
    cases: list[Case], segmenter: PromptableSegmenter, *, seed: int, ivus: bool, made: dict[str, np.ndarray]
) -> list[Case]:
    """Cases labelled with boxes carry the foundation model's pseudo-mask of their boxes as their label map.

    Each case's mask is made once (kept in ``made`` by case id) by
    :func:`~frugalseg.engine.weak_foundation.box_pseudo_mask`; other cases pass through unchanged.
    """
    from frugalseg.engine.weak_foundation import box_pseudo_mask  # the foundation model only for box labels

    out = []
    for case in cases:
        if case.label is None and case.boxes:
            if case.case_id not in made:
                made[case.case_id] = box_pseudo_mask(case, Boxes(tuple(case.boxes)), segmenter, seed=seed, ivus=ivus)
            case = dataclasses.replace(case, label=made[case.case_id])
        out.append(case)
    return out


def _box_assistant(segmenter: PromptableSegmenter, *, ivus: bool) -> BoxAssistant:
    """The foundation model's outline of an expert's boxes: every object kept, whatever its confidence."""
    from frugalseg.foundation.prompting import prompts_from_boxes
    from frugalseg.foundation.pseudomask import pseudolabel_case

    def outline(case: Case, boxes: Boxes) -> np.ndarray:
        objects = prompts_from_boxes(boxes, case.shape)
        label, _ = pseudolabel_case(
            segmenter, case.image, objects, jitter_trials=0, policy="weight", ivus=ivus, rng=np.random.default_rng(0)
        )
        return label

    return outline


def load_sqa_network(
    path: Path, model: str, *, in_channels: int, num_classes: int, dropout: float, hint: str = ""
) -> SQANet:
    """An SQA network of ``model`` with the weights saved at ``path``.

    Raises:
        InputError: ``model`` is no SQA network, or the file is missing, unreadable or of another network
            (``hint`` ends that message).
    """
    network = create_model(model, in_channels=in_channels, num_classes=num_classes, dropout=dropout)
    if not isinstance(network, SQANet):
        raise InputError(f"model {model!r} is not a segmentation-quality network; use sqa_small or sqa_test")
    try:
        network.load_state_dict(load_torch_file(path, what="SQA network weights"))
    except (RuntimeError, KeyError) as error:
        raise InputError(f"{path}: weights do not fit {model!r} ({str(error)[:200]}){hint}") from error
    return network


def _check_settings(path: Path, settings: dict[str, Any]) -> None:
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != json.loads(json.dumps(settings)):
            raise InputError(f"{path}: this folder holds a run with other settings; use another --out")
    else:
        atomic_write_json(path, settings)


def run_al(
    dataset: Dataset,
    *,
    strategy: str,
    initial: int | float,
    batch: int | float,
    rounds: int,
    out_dir: str | Path,
    seed: int = 0,
    size: int = 128,
    epochs_per_round: int = 10,
    test_cases: Sequence[Case] | None = None,
    model: str = "sqa_small",
    cold_start: Literal["random", "diverse"] = "random",
    acquire: Literal["full", "boxes", "scribbles"] = "full",
    assist: bool = False,
    mc_samples: int = 8,
    min_steps: int = 0,
    batch_size: int = 16,
    lr: float = 3e-3,
    dropout: float = 0.1,
    final_steps: int = 0,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
    segmenter: PromptableSegmenter | None = None,
    box_fit: bool = False,
) -> ALResult:
    """One active-learning run of the SQA network with a simulated expert; resumes an interrupted run.

    The pool is the labelled cases of ``dataset`` (their labels play the expert's knowledge); the test set
    is ``test_cases`` or, when ``None``, a held-out split by subject of the dataset
    (:func:`~frugalseg.engine.bench.held_out_split`). Each round fine-tunes the previous round's network
    (:func:`~frugalseg.engine.sqa_train.fine_tune_sqa`, ``epochs_per_round`` epochs on the labelled cases),
    evaluates it on the test set (:func:`evaluate_sqa`), scores the pool and lets the expert correct the
    selected batch, shown the network's prediction and error map.

    Args:
        initial, batch: fractions of the pool in ``(0, 1)`` or counts (``"2%"`` on the command line is 0.02).
        acquire: the expert's label: ``"full"`` (the selected images corrected), ``"scribbles"``, or
            ``"boxes"`` (a box per object, turned into a pseudo-mask by ``segmenter`` before training).
        assist: with full labels, the expert may also draw a box per object and correct ``segmenter``'s outline
            of it instead of the network's prediction, whichever is quicker (box-assisted correction, see
            :mod:`frugalseg.active.expert`), the cold start included.
        mc_samples: MC-dropout passes for ``bald`` and ``predictive_entropy``.
        min_steps: lower bound on optimisation steps per round.
        final_steps: > 0: once the run is complete, a network trained from scratch on the acquired (full)
            labels, one schedule of ``epochs_per_round`` passes and at least ``final_steps`` steps, seeded as the
            fully supervised reference of the benchmark; its test metrics are ``ALResult.final``.
        segmenter: ``acquire="boxes"`` or ``assist``: the promptable model (default: LiteMedSAM with the cached
            weights).
        box_fit: the default segmenter fits the expert's tight boxes (:mod:`frugalseg.foundation.box_fit`).

    Raises:
        InputError: bad settings, too few labelled cases, or a folder holding a run with other settings.
    """
    if acquire not in ("full", "boxes", "scribbles"):
        raise InputError(f"acquire={acquire!r}: expected 'full', 'boxes' or 'scribbles'")
    if final_steps and acquire != "full":
        raise InputError(f"final_steps: the final training is for full labels, not acquire={acquire!r}")
    if assist and acquire != "full":
        raise InputError(f"assist: box-assisted correction is for full labels, not acquire={acquire!r}")
    if (acquire == "boxes" or assist) and segmenter is None:
        from frugalseg.engine.weak_foundation import default_segmenter  # loads the foundation model only here

        segmenter = default_segmenter(fit_boxes=box_fit)
    config = ActiveLearningConfig(
        strategy=strategy, initial=initial, batch=batch, rounds=rounds, seed=seed, cold_start=cold_start
    )
    if test_cases is None:
        pool, test = held_out_split(dataset, seed=seed)
    else:
        pool, test = labelled_cases(dataset.cases), labelled_cases(test_cases)
    if len(pool) < 2 or not test:
        raise InputError(
            f"active learning needs >= 2 labelled pool cases and a test case, got {len(pool)}, {len(test)}"
        )
    train_config = TrainConfig(model=model, size=size, epochs=epochs_per_round, batch_size=batch_size, lr=lr, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "loop": config.to_dict(),
        "train": train_config.to_dict(),
        "acquire": acquire,
        **({"assist": "box"} if assist else {}),  # absent when off, so earlier run folders still resume
        **({"box_fit": True} if box_fit else {}),
        "mc_samples": mc_samples,
        "min_steps": min_steps,
        **({"final_steps": final_steps} if final_steps else {}),
        "dropout": dropout,
        "num_pool": len(pool),
        "test_ids": [case.case_id for case in test],
    }
    _check_settings(out / "settings.json", settings)
    num_classes, in_channels = dataset.num_classes, max(case.channels for case in pool)
    held: dict[str, SQANet] = {}
    box_masks: dict[str, np.ndarray] = {}
    ivus = list(dataset.class_names) == IVUS_CLASSES

    def fine_tune(labelled: list[Case], round_index: int) -> SQANet:
        if segmenter is not None:
            labelled = _with_box_masks(labelled, segmenter, seed=seed, ivus=ivus, made=box_masks)
        network = held.get("network")
        previous = out / f"round_{round_index - 1:02d}.pt"
        if network is None and previous.exists():  # a resumed run: warm-start from the saved round
            network = load_sqa_network(
                previous,
                model,
                in_channels=in_channels,
                num_classes=num_classes,
                dropout=dropout,
                hint="; delete the run folder to restart",
            )
        generator = torch.Generator().manual_seed(round_seed(seed, round_index))
        network = fine_tune_sqa(
            network,
            labelled,
            config=train_config,
            epochs=epochs_per_round,
            generator=generator,
            num_classes=num_classes,
            dropout=dropout,
            min_steps=min_steps,
            device=device,
        )
        atomic_torch_save(out / f"round_{round_index:02d}.pt", network.state_dict())
        (out / f"round_{round_index - 2:02d}.pt").unlink(missing_ok=True)
        held["network"] = network
        return network

    result = run_active_learning(
        pool,
        config=config,
        fine_tune=fine_tune,
        score=lambda net, cases: _pool_scores(net, cases, size=size, strategy=strategy, mc_samples=mc_samples),
        evaluate=lambda net: evaluate_sqa(net, test, size=size, class_names=dataset.class_names),
        expert=SimulatedExpert(
            acquire=acquire,
            seed=seed,
            assistant=_box_assistant(segmenter, ivus=ivus) if assist and segmenter is not None else None,
        ),
        state_dir=out,
        predict=lambda net, cases: _expert_view(net, cases, size=size),
        progress=progress,
    )
    if not (final_steps and result.complete):
        return result
    final_path = out / "final.json"  # written last: the final training is done
    if final_path.exists():
        return dataclasses.replace(result, final=json.loads(final_path.read_text()))
    by_id = {case.case_id: case for case in pool}
    labelled = [by_id[case_id] for case_id in result.labelled_ids]
    network, report = trained_from_scratch(
        labelled,
        test,
        config=train_config,
        steps=final_steps,
        num_classes=num_classes,
        dropout=dropout,
        class_names=dataset.class_names,
        device=device,
    )
    atomic_torch_save(out / "final.pt", network.state_dict())
    final = {"steps": final_steps, "num_labelled": len(labelled), **report}
    atomic_write_json(final_path, final)
    return dataclasses.replace(result, final=final)


def trained_from_scratch(
    cases: Sequence[Case],
    test: Sequence[Case],
    *,
    config: TrainConfig,
    steps: int,
    num_classes: int,
    dropout: float,
    class_names: Sequence[str],
    device: str = "cpu",
) -> tuple[SQANet, dict[str, Any]]:
    """An SQA network trained once from scratch on ``cases`` and evaluated on ``test`` (error map included).

    One one-cycle schedule of ``config.epochs`` passes and at least ``steps`` steps, seeded by
    ``round_seed(config.seed, -1)``: the fully supervised reference, the benchmark's passive route and a run's
    final training are this one training on different cases.

    Returns:
        ``(network, {"train_seconds", **evaluate_sqa report})``.
    """
    started = time.perf_counter()
    network = fine_tune_sqa(
        None,
        cases,
        config=config,
        epochs=config.epochs,
        generator=torch.Generator().manual_seed(round_seed(config.seed, -1)),
        num_classes=num_classes,
        dropout=dropout,
        min_steps=steps,
        device=device,
    )
    train_seconds = time.perf_counter() - started
    report = evaluate_sqa(network, test, size=config.size, class_names=class_names, error_map=True)
    return network, {"train_seconds": train_seconds, **report}
