"""The LiteMedSAM network (Ma et al., MedSAM-on-laptop baseline): TinyViT image encoder + SAM prompt encoder and
mask decoder, in its 256x256 input frame, with parameter names of the released checkpoint.

:class:`~frugalseg.foundation.litemedsam.LiteMedSAMSegmenter` maps original images and prompts to that frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from frugalseg.errors import InputError
from frugalseg.foundation.sam_decoder_fast import DecoderImage, decode_fast, prepare_image
from frugalseg.foundation.sam_mask_decoder import MaskDecoder
from frugalseg.foundation.sam_prompt_encoder import PromptEncoder
from frugalseg.foundation.tiny_vit import TinyViT
from frugalseg.foundation.tiny_vit_fast import encode_fast

__all__ = ["IMAGE_SIZE", "MODEL_ID", "LiteMedSAM"]

MODEL_ID = "litemedsam"
IMAGE_SIZE = 256
"""Side of the square model input frame."""


class LiteMedSAM(nn.Module):
    """The LiteMedSAM network (``image_encoder``, ``prompt_encoder``, ``mask_decoder``), randomly initialised.

    Args:
        seed: seeds the prompt encoder's random Fourier matrix (other parameters use torch's default init).
    """

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__()
        self.image_encoder = TinyViT()
        self.prompt_encoder = PromptEncoder(
            embed_dim=256,
            image_embedding_size=(64, 64),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
            seed=seed,
        )
        self.mask_decoder = MaskDecoder(transformer_dim=256, num_multimask_outputs=3)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, source: str = "state_dict") -> LiteMedSAM:
        """Build the network and load ``state_dict`` strictly; the result is in eval mode.

        Raises:
            InputError: keys or shapes differ from the LiteMedSAM architecture (``source`` names the origin).
        """
        model = cls()
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "mismatch")
            raise InputError(f"{source} does not match the LiteMedSAM architecture: {detail[:300]}") from error
        return model.eval()

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Image embedding. Shape: ``(B, 3, 256, 256)`` in [0, 1] -> ``(B, 256, 64, 64)``.

        In eval mode without autograd this runs :func:`~frugalseg.foundation.tiny_vit_fast.encode_fast`
        (the same computation, fused and tiled: about 2x faster on a CPU, equal to float rounding).
        """
        if not self.image_encoder.training and not torch.is_grad_enabled():
            return encode_fast(self.image_encoder, x)
        return self.image_encoder(x)

    def decode(
        self,
        features: torch.Tensor,
        *,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits for ``N`` objects of one image, prompts in the 256x256 input frame (differentiable).

        Shape:
            features: ``(1, 256, 64, 64)``; boxes: ``(N, 4)`` xyxy (max inclusive); points: ``(N, K, 2)`` xy;
            point_labels: ``(N, K)``. Returns logits ``(N, M, 256, 256)`` and predicted IoU ``(N, M)``.
        """
        point_pair = None
        if points is not None:
            if point_labels is None:
                raise ValueError("decode: points need point_labels")
            point_pair = (points, point_labels)
        sparse, dense = self.prompt_encoder(points=point_pair, boxes=boxes, masks=None)
        return self.mask_decoder(
            features, self.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=multimask_output
        )

    def prepare(self, features: torch.Tensor) -> DecoderImage:
        """The decoder's per-image work for :meth:`decode_prepared` (no autograd). Shape: ``(1, 256, 64, 64)``."""
        with torch.no_grad():
            _, no_mask = self.prompt_encoder()
            return prepare_image(self.mask_decoder, features, self.prompt_encoder.get_dense_pe(), no_mask)

    def decode_prepared(
        self,
        image: DecoderImage,
        *,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        valid: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`decode` without autograd on a prepared image (:mod:`.sam_decoder_fast`, equal to float rounding);
        ``valid``: the ``(h, w)`` of the input frame holding the image, the only pixels decoded."""
        point_pair = None if points is None or point_labels is None else (points, point_labels)
        with torch.no_grad():
            sparse, _ = self.prompt_encoder(points=point_pair, boxes=boxes, masks=None)
            return decode_fast(self.mask_decoder, image, sparse, valid=valid)

    def forward(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """One box per image: ``(B, 3, 256, 256)``, ``(B, 4)`` -> low-resolution logits ``(B, 1, 256, 256)``."""
        features = self.encode_image(x)
        sparse, dense = self.prompt_encoder(boxes=boxes)
        logits, _ = self.mask_decoder(features, self.prompt_encoder.get_dense_pe(), sparse, dense)
        return logits

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the prompt encoder and mask decoder (what is fine-tuned with a frozen encoder)."""
        yield from self.prompt_encoder.parameters()
        yield from self.mask_decoder.parameters()
