"""Class activation maps (CAM) from a small classifier trained on image tags, and pseudo-masks from them.

Zhou et al. ("Learning deep features for discriminative localization", CVPR 2016): a convolutional network
ending in global average pooling and a linear layer is trained to say which classes an image holds; the
linear layer applied at every position before pooling (here a 1x1 convolution, which commutes with the
pooling) is the class activation map. :class:`TagClassifier` is such a network, tiny enough for a CPU.

**Images where a class is always present.** A tag that every training image carries (a fetal head in every
HC18 image) teaches a classifier nothing. With ``synthetic_negatives`` the classifier also sees, for every
image, a copy whose tiles are shuffled (``tile_shuffle``) labelled "no class": texture is kept but objects
are broken up, so the coherent object is what separates positives from negatives. This is a heuristic of
this package, not a published method.

Pseudo-masks (:func:`threshold_cams`): CAMs of untagged classes are zeroed; a pixel whose best tagged CAM
reaches ``foreground_threshold`` takes that class, one below ``background_threshold`` is background, and the
band in between is left ``IGNORE`` (the usual two-threshold scheme of CAM-based weak supervision).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from frugalseg.data.case import IGNORE
from frugalseg.models.unet import ConvBlock
from frugalseg.optim import optimiser_step

__all__ = [
    "TagClassifier",
    "cam_pseudo_masks",
    "class_activation_maps",
    "threshold_cams",
    "tile_shuffle",
    "train_tag_classifier",
]


class TagClassifier(nn.Module):
    """Residual conv stages (the first at full resolution, then stride 2), a 1x1 CAM head, global average pool.

    Args:
        in_channels: image channels.
        num_classes: classes including background; the network scores the ``num_classes - 1`` foreground ones.
        channels: feature channels per stage.

    Shape:
        ``forward``: ``(B, in_channels, H, W) -> (B, num_classes - 1)`` tag logits;
        ``cams``: ``(B, in_channels, H, W) -> (B, num_classes - 1, H / 2**(len(channels) - 1), ...)``.
    """

    def __init__(self, *, in_channels: int, num_classes: int, channels: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        if num_classes < 2 or in_channels < 1 or not channels:
            raise ValueError(f"in_channels={in_channels}, num_classes={num_classes}: expected >= 1 and >= 2")
        stages = [ConvBlock(in_channels, channels[0])]
        stages += [ConvBlock(a, b, stride=2) for a, b in itertools.pairwise(channels)]
        self.features = nn.Sequential(*stages)
        self.head = nn.Conv2d(channels[-1], num_classes - 1, 1)

    def cams(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.cams(images).mean(dim=(2, 3))


def tile_shuffle(images: torch.Tensor, *, tiles: int = 4, generator: torch.Generator) -> torch.Tensor:
    """Cut each image into ``tiles x tiles`` tiles and put them back in a random order (per image).

    Sides that do not divide by ``tiles`` keep their last rows / columns in place.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """
    batch, channels, height, width = images.shape
    th, tw = height // tiles, width // tiles
    if th == 0 or tw == 0:
        raise ValueError(f"tiles={tiles}: images of {height}x{width} are too small")
    out = images.clone()
    core = images[:, :, : th * tiles, : tw * tiles]
    blocks = core.reshape(batch, channels, tiles, th, tiles, tw).permute(0, 2, 4, 1, 3, 5)
    blocks = blocks.reshape(batch, tiles * tiles, channels, th, tw)
    for index in range(batch):
        blocks[index] = blocks[index, torch.randperm(tiles * tiles, generator=generator)]
    shuffled = blocks.reshape(batch, tiles, tiles, channels, th, tw).permute(0, 3, 1, 4, 2, 5)
    out[:, :, : th * tiles, : tw * tiles] = shuffled.reshape(batch, channels, th * tiles, tw * tiles)
    return out


def train_tag_classifier(
    images: torch.Tensor,
    tags: torch.Tensor,
    *,
    epochs: int = 20,
    batch_size: int = 16,
    lr: float = 3e-3,
    synthetic_negatives: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> TagClassifier:
    """Train a :class:`TagClassifier` with binary cross-entropy on the foreground tags.

    Args:
        images: z-scored images (e.g. :func:`frugalseg.engine.preprocess.image_to_tensor`).
        tags: presence of each class per image; column 0 (background) is ignored.
        epochs: passes over the images.
        batch_size: images per step.
        lr: AdamW learning rate (cosine decay).
        synthetic_negatives: add tile-shuffled copies tagged "no class" (see the module docstring); they are
            used only when some class is tagged in every image (it would otherwise have no negative example).
        seed: initialisation, order, flips and shuffles.
        device: where to train; the classifier is returned on the CPU in eval mode.

    Shape:
        ``images (N, C, H, W)`` float, ``tags (N, num_classes)`` bool.
    """
    if images.ndim != 4 or tags.ndim != 2 or tags.shape[0] != images.shape[0] or tags.dtype != torch.bool:
        raise ValueError(
            f"images {tuple(images.shape)}, tags {tuple(tags.shape)} {tags.dtype}: "
            "expected (N, C, H, W) and (N, K) bool"
        )
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs={epochs}, batch_size={batch_size}, lr={lr}: expected positive values")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    classifier = TagClassifier(in_channels=int(images.shape[1]), num_classes=int(tags.shape[1])).to(device)
    targets = tags[:, 1:].float()
    always = bool(targets.all(dim=0).any())
    steps = max(1, math.ceil(len(images) / batch_size))
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps)
    classifier.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            batch, target = images[index], targets[index]
            flip = torch.rand(len(index), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
            if synthetic_negatives and always:
                batch = torch.cat([batch, tile_shuffle(batch, generator=generator)])
                target = torch.cat([target, torch.zeros_like(target)])
            loss = F.binary_cross_entropy_with_logits(classifier(batch.to(device)), target.to(device))
            optimiser_step(loss, optimizer, scheduler, what="tag-classifier training", step=epoch * steps + step)
    return classifier.cpu().eval()


@torch.no_grad()
def class_activation_maps(classifier: TagClassifier, images: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Class activation maps: flip-averaged, ReLU, upsampled to the images, min-max scaled to ``[0, 1]`` per map.

    Returns:
        ``float32`` maps in ``[0, 1]``; channel ``c - 1`` is class ``c``. A constant map is all zeros.

    Shape:
        ``(N, C, H, W) -> (N, num_classes - 1, H, W)``.
    """
    classifier.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        cams = (classifier.cams(batch) + classifier.cams(batch.flip(-1)).flip(-1)) / 2
        cams = F.interpolate(torch.relu(cams), size=batch.shape[-2:], mode="bilinear", align_corners=False)
        low = cams.amin(dim=(2, 3), keepdim=True)
        spread = cams.amax(dim=(2, 3), keepdim=True) - low
        out.append(torch.where(spread > 0, (cams - low) / spread.clamp_min(1e-12), torch.zeros_like(cams)))
    return torch.cat(out).float()


def threshold_cams(
    cams: torch.Tensor,
    tags: torch.Tensor,
    *,
    foreground_threshold: float = 0.3,
    background_threshold: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-masks from CAMs with two thresholds (see the module docstring).

    Args:
        cams: maps in ``[0, 1]``, channel ``c - 1`` for class ``c``.
        tags: presence of each class per image (column 0 ignored); untagged classes are never assigned.
        foreground_threshold: CAM value from which a pixel takes its best tagged class.
        background_threshold: CAM value below which a pixel is background.

    Returns:
        ``(label, confidence)``: ``int64`` map (``IGNORE`` in the uncertain band) and ``float32`` confidence:
        the CAM value for foreground, ``1 - CAM`` for background, 0 in the band.

    Shape:
        ``cams (N, K, H, W)``, ``tags (N, K + 1)`` bool -> ``(N, H, W)``, ``(N, H, W)``.
    """
    if cams.ndim != 4 or tags.shape != (cams.shape[0], cams.shape[1] + 1) or tags.dtype != torch.bool:
        raise ValueError(f"cams {tuple(cams.shape)}, tags {tuple(tags.shape)}: expected (N, K, H, W), (N, K + 1) bool")
    if not 0.0 <= background_threshold <= foreground_threshold <= 1.0:
        raise ValueError(
            f"background_threshold={background_threshold}, foreground_threshold={foreground_threshold}: "
            "expected 0 <= background <= foreground <= 1"
        )
    masked = cams * tags[:, 1:, None, None].to(cams.dtype)
    best, index = masked.max(dim=1)
    label = torch.full(best.shape, IGNORE, dtype=torch.long)
    confidence = torch.zeros(best.shape, dtype=torch.float32)
    foreground = best >= foreground_threshold
    background = best < background_threshold
    label[foreground] = index[foreground] + 1
    confidence[foreground] = best[foreground].float()
    label[background] = 0
    confidence[background] = 1.0 - best[background].float()
    return label, confidence


def cam_pseudo_masks(
    images: torch.Tensor,
    tags: torch.Tensor,
    *,
    epochs: int = 20,
    batch_size: int = 16,
    lr: float = 3e-3,
    synthetic_negatives: bool = True,
    foreground_threshold: float = 0.3,
    background_threshold: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tags to pseudo-masks: :func:`train_tag_classifier`, :func:`class_activation_maps`, :func:`threshold_cams`.

    Shape:
        ``images (N, C, H, W)``, ``tags (N, num_classes)`` bool -> ``(N, H, W)`` int64, ``(N, H, W)`` float32.
    """
    classifier = train_tag_classifier(
        images,
        tags,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        synthetic_negatives=synthetic_negatives,
        seed=seed,
        device=device,
    )
    cams = class_activation_maps(classifier, images)
    return threshold_cams(
        cams, tags, foreground_threshold=foreground_threshold, background_threshold=background_threshold
    )
