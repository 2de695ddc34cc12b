"""Pseudo-labels for a dataset: a pseudo-mask and per-object confidences for every annotated case, in a folder.

Each case's annotation becomes prompts (:mod:`frugalseg.foundation.prompting`; IVUS boxes by the IVUS rule) and
its pseudo-mask and confidences come from :func:`~frugalseg.foundation.pseudomask.pseudolabel_case` (the
confidence, drop / down-weight policy and overlap rules are stated there). An empty box list means "no object in
this image": its mask is all background (weight 1). A case's ``weight`` is the smallest weight of its objects.

Output folder (resumable: a case whose mask and JSON both exist is skipped; every file is written atomically,
the JSON last)::

    out_dir/masks/<case_id>.png          palette PNG, class indices and 255 = IGNORE
    out_dir/confidence/<case_id>.json    {"objects": [{class, box, predicted_iou, stability, confidence,
                                           kept, weight, area}, ...], "weight": ..., settings}
    out_dir/pseudolabels.json            settings and a summary of all cases in the folder
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugalseg.annotations.kinds import Annotation, Boxes
from frugalseg.atomic import atomic_write_json
from frugalseg.data.case import Case
from frugalseg.data.images import read_mask, write_mask_png
from frugalseg.errors import InputError
from frugalseg.foundation.prompting import ivus_prompts, prompts_from_annotation
from frugalseg.foundation.protocol import PromptableSegmenter
from frugalseg.foundation.pseudomask import pseudolabel_case

__all__ = ["FORMAT", "PseudolabelReport", "load_pseudolabels", "pseudolabel_dataset"]

FORMAT = "frugalseg-pseudolabels"
SCHEMA_VERSION = 1
PREFERRED_KINDS = ("boxes", "scribbles", "points")
"""Kind used when a case carries several annotations and ``kind`` is not given."""


@dataclass(frozen=True)
class PseudolabelReport:
    """What :func:`pseudolabel_dataset` did.

    Attributes:
        out_dir: the output folder.
        written: case ids processed in this call.
        skipped: case ids whose outputs already existed.
        missing: case ids with no usable annotation (no output).
        objects_kept, objects_dropped: object counts over the cases written in this call.
    """

    out_dir: Path
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    missing: tuple[str, ...]
    objects_kept: int
    objects_dropped: int


def _choose(annotation: Annotation | Mapping[str, Annotation], kind: str | None) -> Annotation | None:
    """The annotation to prompt with: ``annotation`` itself, or from a ``{kind: annotation}`` mapping."""
    if not isinstance(annotation, Mapping):
        return annotation if kind is None or annotation.kind == kind else None
    if kind is not None:
        return annotation.get(kind)
    return next((annotation[k] for k in PREFERRED_KINDS if k in annotation), None)


def _case_seed(seed: int, case_id: str) -> np.random.Generator:
    """A generator for one case that does not depend on which other cases run (resumable, order-free)."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


def _paths(out_dir: Path, case_id: str) -> tuple[Path, Path]:
    if not case_id or case_id.startswith(("/", "\\")) or ".." in Path(case_id).parts:
        raise InputError(f"case id {case_id!r} cannot name an output file")
    return out_dir / "masks" / f"{case_id}.png", out_dir / "confidence" / f"{case_id}.json"


def pseudolabel_dataset(
    segmenter: PromptableSegmenter,
    cases: Sequence[Case],
    annotations: Mapping[str, Annotation | Mapping[str, Annotation]],
    *,
    out_dir: str | Path,
    kind: str | None = None,
    jitter_trials: int = 4,
    jitter_fraction: float = 0.1,
    min_confidence: float = 0.5,
    policy: str = "drop",
    ivus: bool = False,
    seed: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> PseudolabelReport:
    """Write a pseudo-mask PNG and a confidence JSON per annotated case into ``out_dir`` (resumable).

    Args:
        segmenter: any promptable segmenter (wrap it in a :class:`~frugalseg.foundation.CachedSegmenter` to
            reuse embeddings across runs).
        cases: the images.
        annotations: per case id, one annotation or ``{kind: annotation}`` (e.g. from
            :func:`~frugalseg.annotations.read_annotations_json`).
        out_dir: output folder (see the module docstring for its layout).
        kind: the annotation kind to use from a mapping (default: the first of boxes, scribbles, points).
        jitter_trials: jittered prompts per object for the stability (0 disables it).
        jitter_fraction: jitter amplitude as a fraction of the box size.
        min_confidence: objects below are dropped (``policy="drop"``) or down-weighted (``"weight"``).
        policy: ``"drop"`` or ``"weight"``.
        ivus: IVUS boxes (lumen and vessel, wall = vessel minus lumen).
        seed: seeds the jitter and the points sampled on scribbles (per case, independent of order).
        progress: called after each case with ``{"case_id", "index", "total", "status", "kept", "dropped"}``.

    Raises:
        InputError: no case has a usable annotation, or an annotation gives no prompt.
    """
    out_dir = Path(out_dir)
    settings = {
        "model_id": segmenter.model_id,
        "weights_sha256": segmenter.weights_sha256,
        "kind": kind,
        "jitter_trials": jitter_trials,
        "jitter_fraction": jitter_fraction,
        "min_confidence": min_confidence,
        "policy": policy,
        "ivus": ivus,
        "seed": seed,
    }
    chosen = [(case, _choose(annotations[case.case_id], kind)) for case in cases if case.case_id in annotations]
    todo = [(case, annotation) for case, annotation in chosen if annotation is not None]
    missing = tuple(case.case_id for case in cases if case.case_id not in {c.case_id for c, _ in todo})
    if not todo:
        raise InputError(f"none of the {len(cases)} cases has a usable annotation (kind={kind or 'any'})")
    written, skipped, kept_total, dropped_total = [], [], 0, 0
    for index, (case, annotation) in enumerate(todo):
        mask_path, json_path = _paths(out_dir, case.case_id)
        status, kept, dropped = "skipped", 0, 0
        if mask_path.is_file() and json_path.is_file():
            skipped.append(case.case_id)
        else:
            if isinstance(annotation, Boxes) and not len(annotation):
                # "no object here": all background
                label, records = np.zeros(case.shape, dtype=np.uint8), list[dict[str, Any]]()
            else:
                if ivus and isinstance(annotation, Boxes):
                    objects = ivus_prompts(annotation, case.shape)
                else:
                    objects = prompts_from_annotation(annotation, case.shape, seed=_case_seed(seed, case.case_id))
                label, records = pseudolabel_case(
                    segmenter,
                    case.image,
                    objects,
                    jitter_trials=jitter_trials,
                    jitter_fraction=jitter_fraction,
                    min_confidence=min_confidence,
                    policy=policy,
                    ivus=ivus,
                    rng=_case_seed(seed, case.case_id),
                )
            kept = sum(r["kept"] for r in records)
            dropped = len(records) - kept
            write_mask_png(mask_path, label)
            weights = [r["weight"] for r in records]
            entry = {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "case_id": case.case_id,
                "annotation": annotation.kind,
                **settings,
                "weight": float(min(weights)) if weights else 1.0,
                "objects": records,
            }
            atomic_write_json(json_path, entry)
            written.append(case.case_id)
            kept_total, dropped_total, status = kept_total + kept, dropped_total + dropped, "written"
        if progress is not None:
            progress(
                {
                    "case_id": case.case_id,
                    "index": index + 1,
                    "total": len(todo),
                    "status": status,
                    "kept": kept,
                    "dropped": dropped,
                }
            )
    _write_summary(out_dir, settings, [case.case_id for case, _ in todo], missing)
    return PseudolabelReport(out_dir, tuple(written), tuple(skipped), missing, kept_total, dropped_total)


def _write_summary(out_dir: Path, settings: dict[str, Any], case_ids: Sequence[str], missing: Sequence[str]) -> None:
    """``pseudolabels.json``: the settings and, per case, its weight and kept/dropped object counts."""
    summary: dict[str, Any] = {}
    for case_id in case_ids:
        entry = json.loads(_paths(out_dir, case_id)[1].read_text())
        objects = entry["objects"]
        summary[case_id] = {
            "weight": entry["weight"],
            "kept": sum(o["kept"] for o in objects),
            "dropped": sum(not o["kept"] for o in objects),
            "mean_confidence": float(np.mean([o["confidence"] for o in objects])) if objects else None,
        }
    atomic_write_json(
        out_dir / "pseudolabels.json",
        {"format": FORMAT, "schema_version": SCHEMA_VERSION, **settings, "missing": list(missing), "cases": summary},
    )


def load_pseudolabels(cases: Sequence[Case], out_dir: str | Path) -> list[Case]:
    """Copies of ``cases`` whose ``label`` is their pseudo-mask from ``out_dir`` (cases without one are left out).

    This is what ``frugalseg train --labels pseudo:DIR`` trains on; ``IGNORE`` pixels do not count in the loss.

    Raises:
        InputError: ``out_dir`` holds no pseudo-mask of any of the cases, or a mask does not fit its image.
    """
    out_dir = Path(out_dir)
    labelled = []
    for case in cases:
        mask_path, json_path = _paths(out_dir, case.case_id)
        if mask_path.is_file() and json_path.is_file():
            label = read_mask(mask_path, expected_shape=case.shape)
            labelled.append(dataclasses.replace(case, label=label))
    if not labelled:
        raise InputError(f"{out_dir}: no pseudo-mask for any of the {len(cases)} cases (run frugalseg pseudolabel)")
    return labelled
