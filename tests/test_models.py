"""The model registry contract, for every registered model: shapes, gradients, names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from frugalseg.models import create_model, has_pretrained_weights, list_models, register_model


def _outputs(output: object) -> tuple[torch.Tensor, ...]:
    """Every output tensor: the logits of a segmenter, or logits and error logits of the SQA network."""
    return (output,) if isinstance(output, torch.Tensor) else tuple(output)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_backward_shapes(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=3)
    x = torch.randn(2, in_channels, 40, 36, requires_grad=True)
    outputs = _outputs(model(x))
    assert outputs[0].shape == (2, 3, 40, 36)
    assert all(out.shape[-2:] == (40, 36) for out in outputs)
    sum(out.sum() for out in outputs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_registry_lists_the_documented_models() -> None:
    assert {"unet_test", "unet_small", "unet_base", "unet_effl0", "sqa_test", "sqa_small"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_model_and_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown model 'no_such_net'"):
        create_model("no_such_net")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        create_model("unet_test", in_channels=1, num_classes=1)


def test_duplicate_names_raise() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("unet_test")(lambda **_: nn.Identity())


def test_only_effl0_has_pretrained_weights() -> None:
    assert has_pretrained_weights("unet_effl0") and not has_pretrained_weights("unet_small")


def test_no_download_or_weights_at_construction(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FRUGAL_CACHE", str(tmp_path))
    model = create_model("unet_effl0", in_channels=1, num_classes=2)  # pretrained=False by default
    assert not any(tmp_path.iterdir()) and isinstance(model, nn.Module)
