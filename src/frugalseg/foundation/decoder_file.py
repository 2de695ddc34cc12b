"""The file of a fine-tuned LiteMedSAM decoder: ``run_dir/decoder.pt``, written by
:func:`~frugalseg.foundation.finetune.finetune_decoder`.

``{"format", "schema_version", "base_model_id", "base_weights_sha256", "box_margin", "zoom", "fit_boxes",
"mask_decoder": state_dict, "prompt_encoder", "image_encoder": state_dicts (only when trained)}``.
:func:`load_finetuned` puts it on top of the base weights, after checking they are the weights it was trained
from. Without an ``image_encoder`` entry the encoder is the base's, so cached embeddings stay valid; with one, the
segmenter identifies itself by the trained encoder's fingerprint, so they are not reused.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from frugalseg.atomic import atomic_torch_save, load_torch_file
from frugalseg.errors import InputError
from frugalseg.foundation.litemedsam import MODEL_ID, LiteMedSAMSegmenter

__all__ = ["DECODER_FILE", "load_finetuned", "save_decoder"]

SCHEMA_VERSION = 1
FORMAT = "frugalseg-litemedsam-decoder"
DECODER_FILE = "decoder.pt"


def save_decoder(
    segmenter: LiteMedSAMSegmenter, run_dir: Path, *, with_prompt_encoder: bool, with_image_encoder: bool
) -> None:
    """Write ``run_dir/decoder.pt``: the decoder (and prompt or image encoder) weights, the base's identity (the
    segmenter's ``weights_sha256``), the box margin, zoom and box fitting."""
    model = segmenter.model
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "base_model_id": segmenter.model_id,
        "base_weights_sha256": segmenter.weights_sha256,
        "box_margin": float(segmenter.box_margin),
        "zoom": float(segmenter.zoom),
        "fit_boxes": bool(segmenter.fit_boxes),
        "mask_decoder": {k: v.detach().cpu().clone() for k, v in model.mask_decoder.state_dict().items()},
    }
    for name, included in (("prompt_encoder", with_prompt_encoder), ("image_encoder", with_image_encoder)):
        if included:
            bundle[name] = {k: v.detach().cpu().clone() for k, v in getattr(model, name).state_dict().items()}
    atomic_torch_save(run_dir / DECODER_FILE, bundle)


def load_finetuned(
    run_dir: str | Path,
    *,
    base: LiteMedSAMSegmenter | None = None,
    cache: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> LiteMedSAMSegmenter:
    """A LiteMedSAM segmenter with the fine-tuned decoder of ``run_dir`` on top of the base weights.

    The segmenter widens boxes by the margin the run calibrated (the base's margin for a run saved without one)
    and carries the zoom context it was trained at (``segmenter.zoom``, 0 for whole images); it fits boxes
    (:mod:`~frugalseg.foundation.box_fit`) only when the file says so (never, for files from ``finetune_decoder``).

    Args:
        run_dir: a folder written by :func:`finetune_decoder`.
        base: the base segmenter (copied, never modified); default: the verified cached LiteMedSAM weights.
        cache: weights cache folder for the default base.
        device: where the returned model runs.

    Raises:
        InputError: a missing or unreadable ``decoder.pt``, a file of another format, decoder weights made
            for other base weights, or weights that do not match the architecture.
    """
    run_dir = Path(run_dir)
    bundle = load_torch_file(run_dir / DECODER_FILE, what="a fine-tuned LiteMedSAM decoder (decoder.pt)")
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT or "mask_decoder" not in bundle:
        raise InputError(f"{run_dir / DECODER_FILE}: not a frugalseg fine-tuned decoder (format {FORMAT!r})")
    if base is None:
        base = LiteMedSAMSegmenter.from_cache(cache, device=device)
    if bundle.get("base_model_id") != MODEL_ID or bundle.get("base_weights_sha256") != base.weights_sha256:
        raise InputError(
            f"{run_dir / DECODER_FILE} was fine-tuned from weights {bundle.get('base_weights_sha256')!r}, "
            f"not the base weights {base.weights_sha256!r}"
        )
    model = copy.deepcopy(base.model).cpu()
    parts: list[tuple[str, torch.nn.Module]] = [("mask_decoder", model.mask_decoder)]
    parts += [(name, getattr(model, name)) for name in ("prompt_encoder", "image_encoder") if name in bundle]
    for name, module in parts:
        try:
            module.load_state_dict(bundle[name], strict=True)
        except (RuntimeError, TypeError, AttributeError) as error:
            detail = str(error).strip().splitlines()
            raise InputError(
                f"{run_dir / DECODER_FILE}: {name} does not match LiteMedSAM ({detail[0] if detail else error})"
            ) from error
    segmenter = LiteMedSAMSegmenter(
        model,
        weights_sha256=base.weights_sha256,
        device=device,
        max_objects_per_batch=base.max_objects_per_batch,
        box_margin=float(bundle.get("box_margin", base.box_margin)),
        zoom=float(bundle.get("zoom", 0.0)),
        fit_boxes=bool(bundle.get("fit_boxes", False)),
    )
    if "image_encoder" in bundle:
        segmenter.identify_by_encoder()
    return segmenter
