"""LiteMedSAM (Ma et al., MedSAM-on-laptop baseline): TinyViT image encoder + SAM prompt encoder and decoder.

:class:`~.litemedsam_network.LiteMedSAM` is the network, working in its 256x256 input frame (re-exported here);
:class:`LiteMedSAMSegmenter` is the :class:`~frugalseg.foundation.protocol.PromptableSegmenter` around it,
mapping original images and prompts to that frame and masks back (see :mod:`frugalseg.foundation.preprocess`
for the exact steps).

Weights come only from the local cache (``frugalseg weights fetch litemedsam``), verified by sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from frugalseg.errors import InputError
from frugalseg.foundation.box_fit import box_sizes, fit_boxes, widen_boxes
from frugalseg.foundation.litemedsam_network import IMAGE_SIZE, MODEL_ID, LiteMedSAM
from frugalseg.foundation.preprocess import (
    BOX_MARGIN,
    boxes_to_model_frame,
    image_to_model_input,
    last_pixel,
    logits_to_original,
    points_to_model_frame,
)
from frugalseg.foundation.prompts import Embedding, MaskPrediction, Prompts
from frugalseg.foundation.sam_decoder_fast import DecoderImage
from frugalseg.foundation.shape_prior import AGREEMENT_MARGIN, check_shape, ellipse_logits

__all__ = ["IMAGE_SIZE", "MODEL_ID", "LiteMedSAM", "LiteMedSAMSegmenter"]


class LiteMedSAMSegmenter:
    """Promptable segmenter over :class:`LiteMedSAM`: ``encode`` once per image, ``predict`` per prompt set.

    The model is put in eval mode; ``encode`` and ``predict`` run without gradients. To fine-tune, train
    ``segmenter.model.decoder_parameters()`` through :meth:`LiteMedSAM.decode` on cached embeddings.

    Args:
        model: the network.
        weights_sha256: sha256 of the checkpoint it was loaded from; ``None`` fingerprints the image encoder's
            parameters instead (what the embeddings depend on).
        device: where the model runs.
        max_objects_per_batch: objects decoded together (bounds memory for many prompts).
        box_margin: model-frame pixels each box side is widened by (see :data:`.preprocess.BOX_MARGIN`).
        zoom: the box-centred crop context its decoder was fine-tuned at (:mod:`.zoom`); 0, the default, for
            whole images. ``predict`` does not crop: callers route a zoom decoder through ``segment_zoomed``.
        fit_boxes: widen the sides of a tight box-only prompt that the mask does not reach (:mod:`.box_fit`;
            off by default: it helps where LiteMedSAM stops short of the annotated outline, HC18 and usgra, and
            costs on PH2 and IVUS); a fine-tuned decoder, which learned how far its masks reach, predicts without.
        shape: ``"ellipse"`` replaces each mask by the ellipse fitted to its outline (:mod:`.shape_prior`), for
            objects that are ellipses by definition; ``"none"`` (default) keeps the model's masks.
        box_slack: with a shape prior, also decode each tight box-only prompt widened on every side by these
            fractions of its size and keep the most shape-like mask (:mod:`.shape_prior`; ``()``: the box as
            given, the default).
        box_snap: with a shape prior, ``(inside, outside)``: move each side of the fitted ellipse that stops
            inside its tight box by at most ``inside``, or runs past it by at most ``outside``, of the box's size
            onto the box side (:func:`~.shape_prior.snapped_extent`; ``(0, 0)``, the default: as fitted). No
            decoder pass: the sides of a box annotation are where the object ends, and LiteMedSAM often stops a
            few pixels short of them (HC18's outer skull edge).
        box_widen: decode each tight box-only prompt from its box widened on every side by this fraction of its
            size (on top of ``box_margin``; 0, the default), so that a box drawn a little inside its object does
            not cut it; with ``box_snap``, the shape is snapped back to the given box. ``fit_boxes`` sets its own
            widening and takes precedence.
    """

    def __init__(
        self,
        model: LiteMedSAM,
        *,
        weights_sha256: str | None = None,
        device: str | torch.device = "cpu",
        max_objects_per_batch: int = 16,
        box_margin: float = BOX_MARGIN,
        zoom: float = 0.0,
        fit_boxes: bool = False,
        shape: str = "none",
        box_slack: tuple[float, ...] = (),
        box_snap: tuple[float, float] = (0.0, 0.0),
        box_widen: float = 0.0,
    ) -> None:
        if max_objects_per_batch < 1:
            raise ValueError(f"max_objects_per_batch must be >= 1, got {max_objects_per_batch}")
        check_shape(shape, box_slack, box_snap)
        if not 0 <= box_widen < 1:
            raise ValueError(f"box_widen {box_widen}: must be a fraction of the box's size in [0, 1)")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.max_objects_per_batch = max_objects_per_batch
        self.box_margin = box_margin
        self.zoom = zoom
        self.fit_boxes = fit_boxes
        self.shape = shape
        self.box_slack = box_slack
        self.box_snap = box_snap
        self.box_widen = box_widen
        self._weights_sha256 = weights_sha256 or _fingerprint(self.model.image_encoder)

    @classmethod
    def from_cache(cls, cache: str | Path | None = None, device: str | torch.device = "cpu") -> LiteMedSAMSegmenter:
        """Load the verified LiteMedSAM weights from the local weights cache.

        Raises:
            InputError: the weights are not cached (``run: frugalseg weights fetch litemedsam``), or the cached
                file fails its sha256 check or does not match the architecture.
        """
        from frugalseg.weights import weights_path, weights_spec

        path = weights_path(MODEL_ID, cache=cache)
        return cls.from_checkpoint(path, sha256=weights_spec(MODEL_ID).sha256, device=device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, sha256: str, device: str | torch.device = "cpu"
    ) -> LiteMedSAMSegmenter:
        """Load a LiteMedSAM checkpoint file after verifying its ``sha256`` (e.g. a fine-tuned copy).

        Raises:
            InputError: missing file, wrong sha256, unreadable file, or a state_dict of another architecture.
        """
        from frugalseg.weights import load_state_dict

        state = load_state_dict(path, sha256=sha256)
        model = LiteMedSAM.from_state_dict(state, source=f"weights file {path}")
        return cls(model, weights_sha256=sha256.lower(), device=device)

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def weights_sha256(self) -> str:
        return self._weights_sha256

    def identify_by_encoder(self) -> None:
        """Take the fingerprint of the image encoder's parameters as ``weights_sha256`` (after they were trained,
        so that embedding caches tell this encoder's embeddings from the checkpoint's)."""
        self._weights_sha256 = _fingerprint(self.model.image_encoder)

    def encode(self, image: np.ndarray) -> Embedding:
        """Embed one image (``(H, W)`` grey or ``(H, W, 3/4)`` colour, any numeric dtype).

        Raises:
            InputError: the image has an unsupported shape or dtype, or non-finite values.
        """
        return self._embed(image, self.model.encode_image)

    def encode_to_stage(self, image: np.ndarray, stage: int) -> Embedding:
        """The image encoder's activations entering stage ``stage`` (as an embedding's ``features``), for
        fine-tuning the later stages (:meth:`~frugalseg.foundation.tiny_vit.TinyViT.early_features`).

        Raises:
            InputError: as :meth:`encode`.
        """
        return self._embed(image, lambda x: self.model.image_encoder.early_features(x, stage))

    def _embed(self, image: np.ndarray, run: Callable[[torch.Tensor], torch.Tensor]) -> Embedding:
        x, resized = image_to_model_input(image, image_size=IMAGE_SIZE)
        with torch.no_grad():
            features = run(x.to(self.device))
        original = (int(np.shape(image)[0]), int(np.shape(image)[1]))
        return Embedding(features=features, original_size=original, resized_size=resized, model_id=MODEL_ID)

    def predict(self, embedding: Embedding, prompts: Prompts) -> MaskPrediction:
        """One mask per object (``multimask_output=False``), at the original image size, on the CPU. Tight
        box-only prompts are fitted (:func:`~frugalseg.foundation.box_fit.fit_boxes`) when ``fit_boxes`` is set;
        with ``shape="ellipse"`` the logits are moved so that the masks are the fitted ellipses, and ``box_slack``
        tries wider boxes (:meth:`_most_shaped`).

        Raises:
            InputError: the embedding comes from another model, or a prompt leaves the image.
        """
        if embedding.model_id != MODEL_ID:
            raise InputError(f"embedding of model {embedding.model_id!r} given to {MODEL_ID}; encode the image again")
        prompts.check_inside(embedding.original_size)
        original = embedding.original_size
        image = self.model.prepare(embedding.features.to(self.device, torch.float32))
        points = labels = None
        if prompts.points is not None and prompts.point_labels is not None:
            points = points_to_model_frame(prompts.points, original, image_size=IMAGE_SIZE)
            labels = torch.tensor(prompts.point_labels, dtype=torch.int64)
        boxes = None
        tight = None  # box-only tight prompts in the model frame, before any margin
        if prompts.boxes is not None and points is None and prompts.tight_boxes:
            tight = boxes_to_model_frame(prompts.boxes, original, image_size=IMAGE_SIZE)
        if tight is not None and self.fit_boxes:
            low_res, iou, boxes = fit_boxes(
                lambda boxes: self._decode(image, embedding.resized_size, boxes=boxes),
                tight,
                margin=self.box_margin,
                last=last_pixel(original, image_size=IMAGE_SIZE),
                resized=embedding.resized_size,
                image_size=IMAGE_SIZE,
            )
        elif tight is not None and self.box_widen:
            boxes = self._widened(tight, self.box_widen, original)
            low_res, iou = self._decode(image, embedding.resized_size, boxes=boxes)
        else:
            if prompts.boxes is not None:
                boxes = boxes_to_model_frame(prompts.boxes, original, image_size=IMAGE_SIZE, margin=self.box_margin)
            low_res, iou = self._decode(image, embedding.resized_size, boxes=boxes, points=points, point_labels=labels)
        logits = logits_to_original(low_res, embedding.resized_size, original, image_size=IMAGE_SIZE)
        if self.shape == "ellipse":
            snap_to = prompts.boxes if tight is not None and any(self.box_snap) else None
            logits, agreement = self._ellipse(logits, boxes, original, snap_to)
            if tight is not None and self.box_slack:
                logits, iou = self._most_shaped(embedding, image, tight, logits, iou, agreement, snap_to)
        return MaskPrediction(masks=logits > 0, scores=iou, logits=logits)

    def _most_shaped(
        self,
        embedding: Embedding,
        image: DecoderImage,
        given: torch.Tensor,
        logits: torch.Tensor,
        iou: torch.Tensor,
        agreement: torch.Tensor,
        snap_to: np.ndarray | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode the ``(N, 4)`` given boxes (model frame, no margin) widened by each ``box_slack`` fraction of
        their size; an object takes the widened box whose ellipse agreement beats the given box's ``agreement``
        by :data:`~.shape_prior.AGREEMENT_MARGIN` and every other widened box's (its ellipse snapped to the
        given box, ``snap_to`` in original pixels, as :meth:`_ellipse`). Returns ``logits`` and ``iou`` with
        those objects replaced."""
        original = embedding.original_size
        to_beat = agreement + AGREEMENT_MARGIN
        for slack in self.box_slack:
            wider = self._widened(given, slack, original)
            wider_low_res, wider_iou = self._decode(image, embedding.resized_size, boxes=wider)
            wider_logits, wider_agreement = self._ellipse(
                logits_to_original(wider_low_res, embedding.resized_size, original, image_size=IMAGE_SIZE),
                wider,
                original,
                snap_to,
            )
            better = wider_agreement > to_beat
            logits[better], iou[better] = wider_logits[better], wider_iou[better]
            to_beat[better] = wider_agreement[better]
        return logits, iou

    def _widened(self, boxes: torch.Tensor, fraction: float, original: tuple[int, int]) -> torch.Tensor:
        """``(N, 4)`` model-frame boxes (no margin) widened on every side by ``box_margin`` and ``fraction`` of
        their size, clipped to the image."""
        return widen_boxes(
            boxes, self.box_margin + fraction * box_sizes(boxes), last_pixel(original, image_size=IMAGE_SIZE)
        )

    def _ellipse(
        self,
        logits: torch.Tensor,
        boxes: torch.Tensor | None,
        original: tuple[int, int],
        snap_to: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~.shape_prior.ellipse_logits` for logits at the original size and boxes in the model frame; the
        ellipses snapped by ``box_snap`` to the tight ``snap_to`` boxes (original pixels) when given."""
        to_original = max(original) / IMAGE_SIZE  # original pixels per model pixel
        boxes_original = None if boxes is None else boxes.numpy().astype(np.float64) * to_original
        return ellipse_logits(logits, boxes_original, tolerance=to_original, snap_to=snap_to, snap=self.box_snap)

    def _decode(
        self,
        image: DecoderImage,
        valid: tuple[int, int],
        *,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits ``(N, 256, 256)`` and predicted IoU ``(N,)`` on the CPU, decoded
        ``max_objects_per_batch`` objects at a time (prompts in the model frame, as :meth:`LiteMedSAM.decode`;
        only the ``valid`` ``(h, w)`` holding the image, :meth:`LiteMedSAM.decode_prepared`)."""
        count = len(boxes) if boxes is not None else len(points) if points is not None else 0
        all_logits, all_scores = [], []
        for start in range(0, count, self.max_objects_per_batch):
            part = slice(start, start + self.max_objects_per_batch)
            low_res, iou = self.model.decode_prepared(
                image,
                boxes=None if boxes is None else boxes[part].to(self.device),
                points=None if points is None else points[part].to(self.device),
                point_labels=None if point_labels is None else point_labels[part].to(self.device),
                valid=valid,
            )
            all_logits.append(low_res[:, 0].float().cpu())
            all_scores.append(iou[:, 0].float().cpu())
        return torch.cat(all_logits), torch.cat(all_scores)


def _fingerprint(module: nn.Module) -> str:
    """sha256 over the names, shapes and values of a module's state_dict (a weights identity)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.numpy().tobytes() if value.dtype != torch.bfloat16 else value.float().numpy().tobytes())
    return digest.hexdigest()
