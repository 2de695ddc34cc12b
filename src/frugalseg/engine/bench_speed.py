"""``frugalseg bench speed``: training and inference throughput of our U-Nets against MONAI's UNet.

Every model runs in the same process with the same thread count, batch and input, so the numbers compare.
"""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from frugalseg.atomic import atomic_write_json
from frugalseg.losses import dice_ce_loss
from frugalseg.models import create_model

__all__ = ["bench_speed", "measure_throughput"]

OUR_MODELS = ("unet_small", "unet_base", "unet_effl0")


def monai_unet(in_channels: int, num_classes: int) -> nn.Module:
    """MONAI's residual UNet with the channel plan of ``unet_small``."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=(16, 32, 64, 128, 256),
        strides=(2, 2, 2, 2),
        num_res_units=2,
    )


def measure_throughput(model: nn.Module, *, size: int, batch: int, repeats: int, num_classes: int) -> dict[str, float]:
    """Images per second for a training step (forward, Dice+CE, backward, AdamW) and for inference."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, size, size, generator=generator)
    target = torch.randint(0, num_classes, (batch, size, size), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        dice_ce_loss(model(images), target).backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode():
            model(images)

    model.train()
    train_rate = batch / _median_seconds(train_step, repeats)
    model.eval()
    infer_rate = batch / _median_seconds(infer_step, repeats)
    return {"train_images_per_s": train_rate, "infer_images_per_s": infer_rate}


def _median_seconds(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def bench_speed(
    json_path: str | Path,
    *,
    quick: bool = False,
    sizes: tuple[int, ...] = (128, 256),
    batch: int = 8,
    num_classes: int = 3,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Measure every model at every size and write the results to ``json_path``."""
    builders: dict[str, Callable[[], nn.Module]] = {
        name: functools.partial(create_model, name, in_channels=1, num_classes=num_classes) for name in OUR_MODELS
    }
    builders["monai_unet"] = functools.partial(monai_unet, 1, num_classes)
    repeats = 2 if quick else 5
    results = []
    for name, build in builders.items():
        for size in sizes:
            torch.manual_seed(0)
            model = build()
            rates = measure_throughput(model, size=size, batch=batch, repeats=repeats, num_classes=num_classes)
            params = sum(p.numel() for p in model.parameters())
            results.append({"model": name, "size": size, "batch": batch, "params": params, **rates})
            log(
                f"{name:12s} {size:4d}px  train {rates['train_images_per_s']:6.1f}"
                f"  infer {rates['infer_images_per_s']:6.1f} img/s"
            )
    report = {
        "benchmark": "speed",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "results": results,
    }
    atomic_write_json(json_path, report)
    return report
