"""Shared fixtures: tiny datasets built in code, a promptable-segmenter stub, and the location of the real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from frugalseg.data.case import Case, Dataset
from frugalseg.engine.config import TrainConfig
from frugalseg.foundation import Embedding, MaskPrediction, Prompts

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY = TrainConfig(
    model="unet_test",
    size=32,
    epochs=2,
    batch_size=4,
    min_steps_per_epoch=2,
    lr=1e-2,
    val_fraction=0.25,
    pretrained=False,
)
"""A training configuration that runs in a second on the tiny datasets here."""


def real_data_root() -> Path:
    """``FRUGAL_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FRUGAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def disc_case(index: int, *, size: int = 48, seed: int = 0) -> Case:
    """A noisy grey image holding a bright disc (class 1) and a dim ring around it (class 2)."""
    rng = np.random.default_rng(seed + index)
    rows, cols = np.mgrid[:size, :size]
    centre = size / 2 + rng.uniform(-4, 4, size=2)
    radius = np.hypot(rows - centre[0], cols - centre[1])
    inner, outer = rng.uniform(6, 9), rng.uniform(12, 15)
    label = np.where(radius < inner, 1, np.where(radius < outer, 2, 0)).astype(np.uint8)
    image = np.choose(label, [40, 200, 120]).astype(np.float32) + rng.normal(0, 12, (size, size))
    return Case(
        case_id=f"disc{index:03d}",
        subject_id=f"s{index // 2:03d}",
        image=np.clip(image, 0, 255).astype(np.uint8),
        label=label,
        spacing=(0.5, 0.5),
    )


@pytest.fixture
def disc_dataset() -> Dataset:
    """Sixteen disc cases of eight subjects, three classes."""
    return Dataset(
        cases=[disc_case(i) for i in range(16)],
        class_names=["background", "inner", "ring"],
        source_format="test",
        root="discs",
    )


class StubSegmenter:
    """A promptable segmenter whose masks are known: the prompt's box (``follow_box``) or a fixed disc.

    Scores are ``score``; logits are +1 inside the mask and -1 outside.
    """

    model_id = "stub"
    weights_sha256 = "0" * 64

    def __init__(self, *, follow_box: bool, score: float = 0.9) -> None:
        self.follow_box = follow_box
        self.score = score
        self.encoded = 0
        self.tight_boxes: list[bool] = []  # Prompts.tight_boxes of every predict call

    def encode(self, image: np.ndarray) -> Embedding:
        self.encoded += 1
        size = (int(image.shape[0]), int(image.shape[1]))
        return Embedding(features=torch.zeros(1, 1, 1, 1), original_size=size, resized_size=size, model_id="stub")

    def predict(self, embedding: Embedding, prompts: Prompts) -> MaskPrediction:
        self.tight_boxes.append(prompts.tight_boxes)
        height, width = embedding.original_size
        rows, cols = np.mgrid[:height, :width]
        masks = []
        for index in range(prompts.num_objects):
            if self.follow_box and prompts.boxes is not None:
                x0, y0, x1, y1 = np.round(prompts.boxes[index]).astype(int)
                masks.append((cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1))
            else:
                masks.append(np.hypot(rows - height / 2, cols - width / 2) < min(height, width) / 4)
        mask = torch.from_numpy(np.stack(masks))
        logits = torch.where(mask, 1.0, -1.0)
        return MaskPrediction(masks=mask, scores=torch.full((len(masks),), self.score), logits=logits)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread (and leave the second core to other work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
