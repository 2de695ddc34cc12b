"""A trained model bundled with everything needed to predict at an image's original resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from frugalseg.atomic import load_torch_file
from frugalseg.engine.postprocess import apply_postprocess
from frugalseg.engine.preprocess import image_to_tensor, resize_probabilities
from frugalseg.errors import InputError
from frugalseg.models import create_model

__all__ = ["MODEL_FILE", "SegmentationModel"]

MODEL_FILE = "model.pt"


@dataclass
class SegmentationModel:
    """A network plus its input size, classes and post-processing; maps images to label maps."""

    network: nn.Module
    model_name: str
    size: int
    in_channels: int
    class_names: list[str]
    flip_tta: bool = True
    postprocess: dict[int, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def bundle(self) -> dict[str, Any]:
        """The dictionary saved as ``model.pt``."""
        return {
            "state_dict": self.network.state_dict(),
            "model_name": self.model_name,
            "size": self.size,
            "in_channels": self.in_channels,
            "class_names": self.class_names,
            "flip_tta": self.flip_tta,
            "postprocess": self.postprocess,
        }

    @classmethod
    def load(cls, run_dir: str | Path) -> SegmentationModel:
        """Load ``model.pt`` from a run directory (or the file itself)."""
        path = Path(run_dir)
        path = path / MODEL_FILE if path.is_dir() else path
        if not path.is_file():
            raise InputError(f"{path}: no trained model here (expected a run directory holding {MODEL_FILE})")
        bundle = load_torch_file(path, what="a frugalseg model file")
        try:
            network = create_model(
                bundle["model_name"],
                in_channels=bundle["in_channels"],
                num_classes=len(bundle["class_names"]),
            )
            network.load_state_dict(bundle["state_dict"])
        except (RuntimeError, KeyError, EOFError, ValueError) as error:
            raise InputError(f"{path}: not a valid frugalseg model file ({error})") from error
        network.eval()
        return cls(
            network=network,
            model_name=bundle["model_name"],
            size=bundle["size"],
            in_channels=bundle["in_channels"],
            class_names=list(bundle["class_names"]),
            flip_tta=bundle.get("flip_tta", True),
            postprocess={int(k): v for k, v in bundle.get("postprocess", {}).items()},
        )

    @torch.inference_mode()
    def network_probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities at the network's input size, flip-averaged when ``flip_tta``.

        Shape:
            ``(B, in_channels, size, size) -> (B, num_classes, size, size)``
        """
        self.network.eval()
        batch = batch.to(self.device)
        probabilities = torch.softmax(self.network(batch), dim=1)
        if self.flip_tta:
            flipped = torch.softmax(self.network(batch.flip(-1)), dim=1).flip(-1)
            probabilities = (probabilities + flipped) / 2
        return probabilities.cpu()

    def to(self, device: str | torch.device) -> SegmentationModel:
        """Move the network to ``device`` (inputs follow; outputs come back on the CPU)."""
        self.network.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def predict_probabilities(self, images: Sequence[np.ndarray], *, batch_size: int = 16) -> list[np.ndarray]:
        """Class probabilities at each image's original size, ``(num_classes, H, W)`` float32 each."""
        results: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = torch.stack([image_to_tensor(im, size=self.size, in_channels=self.in_channels) for im in chunk])
            probabilities = self.network_probabilities(batch)
            for image, probs in zip(chunk, probabilities, strict=True):
                shape = (int(image.shape[0]), int(image.shape[1]))
                results.append(resize_probabilities(probs[None], shape)[0].numpy())
        return results

    def labels_from_probabilities(self, probabilities: np.ndarray, *, clean: bool = True) -> np.ndarray:
        """Argmax label map ``(H, W)`` uint8, with the post-processing chosen on validation when ``clean``."""
        label = probabilities.argmax(axis=0).astype(np.uint8)
        return apply_postprocess(label, self.postprocess) if clean else label

    def predict(self, images: Sequence[np.ndarray], *, batch_size: int = 16) -> list[np.ndarray]:
        """Label maps ``(H, W)`` uint8 at each image's original size."""
        return [self.labels_from_probabilities(p) for p in self.predict_probabilities(images, batch_size=batch_size)]
