"""Train the segmentation-quality (SQA) network and score images with it: predictions, error maps, quality.

Training reuses the supervised engine's pieces (``stack_cases``, ``augment_batch``, the one-cycle learning-rate
schedule, :class:`~frugalseg.engine.config.TrainConfig`) with the joint loss
:func:`frugalseg.quality.sqa_loss` (segmentation loss + class-balanced BCE on the error map, the error
target recomputed from the current prediction at every step). There is no validation split or early
stopping here: the active-learning loop fine-tunes on what the expert labelled and evaluates elsewhere.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from frugalseg.active.strategies import bald_scores, entropy_scores, predictive_entropy_scores
from frugalseg.data.case import IGNORE, Case
from frugalseg.engine.al_report import mean_defined
from frugalseg.engine.augment import augment_batch
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.preprocess import image_to_tensor, resize_probabilities, stack_cases
from frugalseg.errors import InputError
from frugalseg.foundation.shape_prior import check_shape
from frugalseg.metrics import dice_score
from frugalseg.models import create_model
from frugalseg.models.sqa import SQANet, enable_mc_dropout, prior_logit_shift
from frugalseg.optim import one_cycle, optimiser_step
from frugalseg.quality import (
    calibration_report,
    error_map_auroc_ap,
    predicted_dice,
    predicted_error_fraction,
    sqa_loss,
)
from frugalseg.quality.flips import flip_error_map, flipped_views
from frugalseg.quality.shape import shape_agreement

__all__ = ["QualityPrediction", "evaluate_sqa", "fine_tune_sqa", "predict_with_quality", "quality_estimates"]


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator))


@contextlib.contextmanager
def _seeded_torch(generator: torch.Generator, device: str) -> Iterator[None]:
    """Fork the torch random state (CPU, and the CUDA device in use) and seed it from ``generator``."""
    target = torch.device(device)
    with torch.random.fork_rng(devices=[target.index or 0] if target.type == "cuda" else []):
        torch.manual_seed(_seed_from(generator))
        yield


def _in_channels(network: nn.Module) -> int:
    first = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
    return int(first.in_channels)


def fine_tune_sqa(
    network: SQANet | None,
    cases: Sequence[Case],
    *,
    config: TrainConfig,
    epochs: int,
    generator: torch.Generator,
    num_classes: int,
    dropout: float = 0.1,
    min_steps: int = 0,
    error_weight: float = 1.0,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> SQANet:
    """Train an SQA network on labelled ``cases``, from scratch or warm-started from ``network``.

    ``epochs * ceil(len(cases) / batch)`` optimisation steps (at least ``min_steps``), each on a batch of
    ``min(config.batch_size, len(cases))`` cases drawn without replacement within each pass, with AdamW
    and a one-cycle schedule over the call (warm-up then cosine decay), augmentation when ``config.augment``.

    Args:
        network: the network to continue training (modified in place), or ``None`` to build
            ``config.model`` (an ``sqa_*`` model) with ``dropout``, initialised from ``generator``.
        cases: labelled cases (``IGNORE`` marks unlabelled pixels of partial labels, e.g. scribbles).
        config: ``model``, ``size``, ``batch_size``, ``lr``, ``weight_decay``, ``augment`` are used.
        epochs: passes over ``cases``.
        generator: all randomness (initialisation, batch order, augmentation).
        num_classes: segmentation classes, background included.
        dropout: dropout of a newly built network (> 0 enables MC-dropout scoring).
        min_steps: lower bound on the number of optimisation steps (small labelled sets).
        error_weight: weight of the error-map term of the loss.
        device: where to train (the network stays there).
        progress: called after each step with ``{"step", "steps", "loss", "segmentation", "error"}``.

    Returns:
        The trained network, in eval mode.

    Raises:
        InputError: no labelled case, a model that is not an SQA network, or a diverging loss.
    """
    if not cases:
        raise InputError("fine-tuning the SQA network needs at least one labelled case")
    if epochs < 1 or min_steps < 0:
        raise ValueError(f"expected epochs >= 1 and min_steps >= 0, got {epochs} and {min_steps}")
    if network is None:
        in_channels = max(case.channels for case in cases)
        with _seeded_torch(generator, "cpu"):
            built = create_model(config.model, in_channels=in_channels, num_classes=num_classes, dropout=dropout)
        if not isinstance(built, SQANet):
            raise InputError(f"model {config.model!r} is not a segmentation-quality network; use sqa_small or sqa_test")
        network = built
    if network.num_classes != num_classes:
        raise ValueError(f"the network predicts {network.num_classes} classes, expected {num_classes}")
    images, labels = stack_cases(cases, size=config.size, in_channels=_in_channels(network), num_classes=num_classes)
    network.to(device)
    batch = min(config.batch_size, len(cases))
    steps = max(epochs * math.ceil(len(cases) / batch), min_steps)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(steps))
    network.train()
    with _seeded_torch(generator, device):  # dropout masks replay; the global random state is left alone
        queue = torch.empty(0, dtype=torch.long)
        for step in range(steps):
            if queue.numel() < batch:
                queue = torch.cat([queue, torch.randperm(len(cases), generator=generator)])
            index, queue = queue[:batch], queue[batch:]
            x, target = images[index], labels[index]
            if config.augment:
                x, target = augment_batch(x, target, generator=generator)
            terms = sqa_loss(
                network(x.to(device)), target.to(device), num_classes=num_classes, error_weight=error_weight
            )
            total = optimiser_step(terms.total, optimizer, scheduler, what="SQA training", step=step)
            network.record_error_prevalence(float(terms.error_fraction))
            if progress is not None:
                progress(
                    {
                        "step": step + 1,
                        "steps": steps,
                        "loss": total,
                        "segmentation": float(terms.segmentation.detach()),
                        "error": float(terms.error.detach()),
                    }
                )
    return network.eval()


@dataclass(frozen=True)
class QualityPrediction:
    """The SQA network's view of one image.

    Attributes:
        label: predicted label map at the image's size (``None`` unless ``keep_maps``).
        probabilities: class probabilities at the image's size (``None`` unless ``keep_maps``).
        error_prob: probability that each pixel of ``label`` is wrong, at the image's size (idem).
        predicted_dice: predicted Dice of each foreground class (at the network's input size).
        quality: mean of ``predicted_dice`` (1 = perfect), the SQA strategy's input.
        error_fraction: mean predicted error probability (at the network's input size).
        entropy: mean per-pixel softmax entropy (nats).
        bald: mean MC-dropout mutual information, ``None`` without MC samples.
        predictive_entropy: mean entropy of the MC-dropout mean prediction, ``None`` without MC samples.
        features: global average of the deepest encoder features (core-set), ``None`` unless asked.
        flip_dice: predicted Dice of each foreground class with flip agreement (:mod:`frugalseg.quality.flips`),
            ``None`` unless asked.
        shape_agreement: each foreground class's agreement with the ellipse fitted to its outline, from the label
            map at the image's size (:mod:`frugalseg.quality.shape`), ``None`` unless asked.

    Shape:
        ``label (H, W)`` uint8, ``probabilities (C, H, W)``, ``error_prob (H, W)`` float32,
        ``predicted_dice``, ``flip_dice``, ``shape_agreement (C - 1,)``, ``features (D,)``.
    """

    label: np.ndarray | None
    probabilities: np.ndarray | None
    error_prob: np.ndarray | None
    predicted_dice: np.ndarray
    quality: float
    error_fraction: float
    entropy: float
    bald: float | None = None
    predictive_entropy: float | None = None
    features: np.ndarray | None = None
    flip_dice: np.ndarray | None = None
    shape_agreement: np.ndarray | None = None

    @property
    def flip_quality(self) -> float | None:
        """The quality estimate with flip agreement: mean of ``flip_dice``."""
        return None if self.flip_dice is None else float(self.flip_dice.mean())

    @property
    def shape_quality(self) -> float | None:
        """The quality estimate with shape agreement: mean of ``predicted_dice * shape_agreement``."""
        return None if self.shape_agreement is None else float((self.predicted_dice * self.shape_agreement).mean())


@torch.inference_mode()
def predict_with_quality(
    network: SQANet,
    cases: Sequence[Case],
    *,
    size: int,
    mc_samples: int = 0,
    keep_maps: bool = True,
    features: bool = False,
    flips: bool = False,
    shape: str = "none",
    error_prevalence: float | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> list[QualityPrediction]:
    """Predict, and predict the quality of the prediction, for every case (labels are not read).

    Args:
        network: a trained SQA network (left in eval mode).
        cases: the images.
        size: the network's input side (as trained).
        mc_samples: MC-dropout passes for ``bald`` and ``predictive_entropy`` (0: not computed; the network
            needs dropout > 0).
        keep_maps: return the label, probability and error maps at each image's size (memory: keep off
            when scoring a large pool).
        features: return encoder features for core-set selection.
        flips: also estimate quality with flip agreement (three more passes per image).
        shape: ``"ellipse"`` also measures each class's shape agreement (objects that are ellipses by
            definition, :mod:`frugalseg.quality.shape`); ``"none"`` does not.
        error_prevalence: fraction ``pi`` of wrong pixels the error head was trained on: its logits are
            shifted by ``log(pi / (1 - pi))`` to undo the class balancing's 50/50 prior. ``None`` uses the
            prevalence the network recorded in training (:meth:`~frugalseg.models.sqa.SQANet.error_prior_shift`;
            no shift if it has none); 0.5 reads the error head as it is.
        batch_size: images per forward pass.
        seed: seeds the MC-dropout masks (the global random state is left as it was).

    Raises:
        ValueError: ``mc_samples > 0`` on a network without dropout, a bad ``error_prevalence`` or ``shape``.
    """
    if mc_samples < 0 or batch_size < 1:
        raise ValueError(f"expected mc_samples >= 0 and batch_size >= 1, got {mc_samples} and {batch_size}")
    check_shape(shape)
    shift = network.error_prior_shift() if error_prevalence is None else prior_logit_shift(error_prevalence)
    network.eval()
    device = next(network.parameters()).device
    in_channels = _in_channels(network)
    captured: list[torch.Tensor] = []
    hook = network.segmenter.encoder[-1].register_forward_hook(lambda _m, _i, out: captured.append(out))
    results: list[QualityPrediction] = []
    try:
        for start in range(0, len(cases), batch_size):
            chunk = cases[start : start + batch_size]
            x = torch.stack([image_to_tensor(c.image, size=size, in_channels=in_channels) for c in chunk]).to(device)
            captured.clear()
            probs, error = _view(network, x, shift)
            pooled = captured[0].float().mean(dim=(2, 3)).cpu().numpy() if features else None
            labels = probs.argmax(dim=1)
            dice = predicted_dice(labels, error, num_classes=network.num_classes, probabilities=probs)
            fraction = predicted_error_fraction(error)
            flip_dice = None
            if flips:
                view_probs, view_errors = flipped_views(lambda inputs: _view(network, inputs, shift), x)
                flip_error, mean_probs = flip_error_map(
                    labels, torch.cat([probs[None], view_probs]), torch.cat([error[None], view_errors])
                )
                flip_dice = predicted_dice(
                    labels, flip_error, num_classes=network.num_classes, probabilities=mean_probs
                )
            entropy = entropy_scores(probs.double().numpy())
            bald = predictive = None
            if mc_samples:
                bald, predictive = _mc_scores(network, x, mc_samples, seed=seed + start)
            for i, case in enumerate(chunk):
                maps = _maps(probs[i], error[i], case.shape) if keep_maps or shape != "none" else (None,) * 3
                agreement = None
                if maps[0] is not None and shape != "none":
                    agreement = shape_agreement(maps[0], num_classes=network.num_classes)
                maps = maps if keep_maps else (None, None, None)
                results.append(
                    QualityPrediction(
                        label=maps[0],
                        probabilities=maps[1],
                        error_prob=maps[2],
                        predicted_dice=dice[i].numpy().astype(np.float64),
                        quality=float(dice[i].mean()),
                        error_fraction=float(fraction[i]),
                        entropy=float(entropy[i]),
                        bald=None if bald is None else float(bald[i]),
                        predictive_entropy=None if predictive is None else float(predictive[i]),
                        features=None if pooled is None else pooled[i],
                        flip_dice=None if flip_dice is None else flip_dice[i].numpy().astype(np.float64),
                        shape_agreement=agreement,
                    )
                )
    finally:
        hook.remove()
        network.eval()
    return results


def _view(network: SQANet, x: torch.Tensor, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``(B, C, H, W)`` and error probabilities ``(B, H, W)`` of one pass, on the CPU."""
    output = network(x)
    probs = torch.softmax(output.logits.float(), dim=1).cpu()
    return probs, torch.sigmoid(output.error_logits.float()[:, 0] + shift).cpu()


def _maps(
    probs: torch.Tensor, error: torch.Tensor, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label, probabilities and error map at the image's size from the network-size maps."""
    full = resize_probabilities(probs[None], shape)[0]
    error_full = resize_probabilities(error[None, None], shape)[0, 0].clamp(0.0, 1.0)
    return full.argmax(dim=0).numpy().astype(np.uint8), full.numpy(), error_full.numpy()


def _mc_scores(network: SQANet, x: torch.Tensor, samples: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """BALD and predictive entropy per image from ``samples`` MC-dropout passes of the segmentation branch."""
    if enable_mc_dropout(network) == 0:
        network.eval()
        raise ValueError("mc_samples > 0 needs a network with dropout (build it with dropout > 0)")
    with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
        torch.manual_seed(seed)
        mc = torch.stack([torch.softmax(network.segment(x).float(), dim=1).cpu() for _ in range(samples)])
    network.eval()
    array = mc.double().numpy()
    return bald_scores(array), predictive_entropy_scores(array)


_CHUNK = 16


def evaluate_sqa(
    network: SQANet,
    cases: Sequence[Case],
    *,
    size: int,
    class_names: Sequence[str],
    error_map: bool = False,
    shape: str = "none",
) -> dict[str, Any]:
    """Dice of the SQA network on labelled ``cases`` and how well it predicts its own quality.

    Per case: the mean foreground Dice at the image's size (empty rule of
    :func:`~frugalseg.metrics.dice_score`) and the predicted quality, from the error branch alone
    (``quality``) and with flip agreement (``quality_flips``); with ``shape="ellipse"``, each also times the
    shape agreement (``quality_shape``, ``quality_flips_shape``; :mod:`frugalseg.quality.shape`). Calibration:
    Pearson and Spearman correlation and mean absolute error between each and the true Dice (NaN correlations
    when either is constant). With ``error_map``, the mean over cases of the pixel AUROC and AP of the error map.
    """
    num_classes = len(class_names)
    true, per_class, aurocs, aps = [], [], [], []
    estimates: dict[str, list[float]] = {name: [] for name in quality_estimates(shape)}
    for start in range(0, len(cases), _CHUNK):
        chunk = list(cases[start : start + _CHUNK])
        rated = predict_with_quality(network, chunk, size=size, flips=True, shape=shape)
        for case, p in zip(chunk, rated, strict=True):
            if case.label is None or p.label is None or p.error_prob is None or p.flip_dice is None:
                raise InputError(f"case {case.case_id}: evaluation needs its label map")
            valid = case.label != IGNORE
            scores = [dice_score(p.label == c, case.label == c, valid_mask=valid) for c in range(1, num_classes)]
            per_class.append(scores)
            true.append(float(np.mean(scores)))
            for name, dice in (("quality", p.predicted_dice), ("quality_flips", p.flip_dice)):
                estimates[name].append(float(dice.mean()))
                if p.shape_agreement is not None:
                    estimates[f"{name}_shape"].append(float((dice * p.shape_agreement).mean()))
            if error_map:
                result = error_map_auroc_ap(p.error_prob, (p.label != case.label) & valid, valid)
                aurocs.append(result["auroc"])
                aps.append(result["ap"])
    report: dict[str, Any] = {
        "dice_mean": float(np.mean(true)),
        "dice_per_class": dict(zip(class_names[1:], np.mean(per_class, axis=0).tolist(), strict=True)),
        "predicted_quality_mean": float(np.mean(estimates["quality"])),
        **{name: calibration_report(values, true) if len(true) >= 2 else {} for name, values in estimates.items()},
    }
    if error_map:
        report["error_map"] = {"auroc": mean_defined(aurocs), "ap": mean_defined(aps)}
    return report


def quality_estimates(shape: str = "none") -> tuple[str, ...]:
    """Names of :func:`evaluate_sqa`'s quality estimates: error branch, with flips, and with ``shape`` each.

    Raises:
        ValueError: an unknown ``shape``.
    """
    check_shape(shape)
    plain = ("quality", "quality_flips")
    return plain if shape == "none" else (*plain, *(f"{name}_shape" for name in plain))
