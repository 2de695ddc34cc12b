"""Probability attention and the two-branch segmentation-quality network."""

from __future__ import annotations

import math

import pytest
import torch

from frugalseg.data.case import IGNORE
from frugalseg.models import create_model, list_models
from frugalseg.models.attention import ProbabilityAttention, channel_attention, position_attention
from frugalseg.models.sqa import SQANet, SQAOutput, enable_mc_dropout
from frugalseg.quality.error_targets import class_balanced_bce, error_target
from frugalseg.quality.sqa_loss import sqa_loss


def _inputs(batch: int, classes: int, feats: int, height: int, width: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(batch, classes, height, width, generator=gen), dim=1)
    return probs, torch.randn(batch, feats, height, width, generator=gen)


@pytest.mark.parametrize("size", [(5, 7), (8, 8), (17, 23), (64, 48)])
def test_probability_attention_keeps_shape(size: tuple[int, int]) -> None:
    module = ProbabilityAttention(3, 6, reduced_size=8)
    probs, feats = _inputs(2, 3, 6, *size)
    assert module(probs, feats).shape == (2, 6, *size)


def _attention_shape(module: ProbabilityAttention, size: tuple[int, int]) -> tuple[int, ...]:
    captured: list[tuple[int, ...]] = []
    handle = module.position.register_forward_hook(lambda _m, _i, out: captured.append(tuple(out[1].shape)))
    try:
        module(*_inputs(1, 2, 4, *size))
    finally:
        handle.remove()
    assert len(captured) == 1
    return captured[0]


def test_spatial_attention_size_depends_only_on_reduced_size() -> None:
    module = ProbabilityAttention(2, 4, reduced_size=6)
    # large inputs: always (B, 36, 36) however many pixels there are
    assert _attention_shape(module, (24, 24)) == (1, 36, 36)
    assert _attention_shape(module, (96, 72)) == (1, 36, 36)
    # smaller than the grid: not upsampled, so never larger than reduced_size ** 2
    assert _attention_shape(module, (4, 5)) == (1, 20, 20)


def test_position_attention_with_constant_keys_averages_values() -> None:
    gen = torch.Generator().manual_seed(1)
    value = torch.randn(2, 3, 4, 5, generator=gen)
    zeros = torch.zeros(2, 2, 4, 5)
    attended, attention = position_attention(zeros, zeros, value)
    # equal energies -> uniform rows 1/N -> every position receives the mean of the values
    torch.testing.assert_close(attention, torch.full((2, 20, 20), 1 / 20))
    torch.testing.assert_close(attended, value.mean(dim=(2, 3), keepdim=True).expand_as(value))


def test_channel_attention_is_c_by_c_convex_mixture() -> None:
    probs, _ = _inputs(3, 4, 1, 6, 7)
    attended, attention = channel_attention(probs)
    assert attention.shape == (3, 4, 4)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 4))
    # identical channels: any convex mixture of them is the channel itself
    same = probs[:, :1].expand(3, 4, 6, 7)
    torch.testing.assert_close(channel_attention(same)[0], same)
    # each attended channel lies between the pixel-wise min and max over channels
    assert (attended <= probs.amax(1, keepdim=True) + 1e-6).all()
    assert (attended >= probs.amin(1, keepdim=True) - 1e-6).all()


def test_attention_branch_contributes_once_gamma_is_nonzero() -> None:
    module = ProbabilityAttention(2, 4, reduced_size=4).eval()
    probs, feats = _inputs(1, 2, 4, 9, 9)
    before = module(probs, feats)
    with torch.no_grad():
        module.position.gamma.fill_(1.0)
    assert not torch.allclose(before, module(probs, feats))


def test_attention_rejects_mismatched_inputs() -> None:
    module = ProbabilityAttention(3, 4)
    probs, feats = _inputs(1, 3, 4, 8, 8)
    with pytest.raises(ValueError, match="probabilities"):
        module(probs[:, :2], feats)
    with pytest.raises(ValueError, match="spatial"):
        module(probs, feats[..., :7])


def test_registry_lists_sqa_models() -> None:
    assert {"sqa_test", "sqa_small"} <= set(list_models())


@pytest.mark.parametrize("size", [(16, 16), (20, 28), (13, 9)])
def test_sqa_test_forward_backward_shapes(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = create_model("sqa_test", in_channels=1, num_classes=3)
    assert isinstance(model, SQANet)
    x = torch.randn(2, 1, *size)
    output = model(x)
    assert isinstance(output, SQAOutput)
    assert output.logits.shape == (2, 3, *size)
    assert output.error_logits.shape == (2, 1, *size)
    target = torch.randint(0, 3, (2, *size))
    target[:, 0] = IGNORE
    terms = sqa_loss(output, target, num_classes=3)
    assert terms.total.ndim == 0 and torch.isfinite(terms.total)
    terms.total.backward()
    for name in ("segmenter.head.weight", "error_head.1.weight", "attention.fuse_in.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_sqa_small_forward() -> None:
    model = create_model("sqa_small", in_channels=1, num_classes=2).eval()
    with torch.no_grad():
        output = model(torch.randn(1, 1, 24, 40))
    assert output.logits.shape == (1, 2, 24, 40) and output.error_logits.shape == (1, 1, 24, 40)


def test_segment_matches_forward_logits() -> None:
    model = create_model("sqa_test", in_channels=2, num_classes=2).eval()
    x = torch.randn(1, 2, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(model.segment(x), model(x).logits)


@pytest.mark.parametrize("detach", [True, False])
def test_error_loss_reaches_segmentation_head_only_when_not_detached(detach: bool) -> None:
    torch.manual_seed(0)
    model = create_model("sqa_test", in_channels=1, num_classes=2, detach_probabilities=detach)
    with torch.no_grad():  # make the attention paths live so the probabilities matter to the error branch
        model.attention.position.gamma.fill_(1.0)
        model.attention.channel.gamma.fill_(1.0)
    output = model(torch.randn(2, 1, 16, 16))
    target = torch.randint(0, 2, (2, 16, 16))
    errors, valid = error_target(output.logits, target)
    class_balanced_bce(output.error_logits, errors, valid_mask=valid).backward()
    head_grad = model.segmenter.head.weight.grad
    # the head only produces logits; its gradient comes only through the probabilities
    assert (head_grad is None or head_grad.abs().sum() == 0) == detach
    encoder_grad = model.segmenter.encoder[0].conv1.weight.grad  # shared features always learn from errors
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0


def test_mc_dropout_samples_differ_only_with_dropout() -> None:
    x = torch.randn(1, 1, 16, 16)
    torch.manual_seed(0)
    stochastic = create_model("sqa_test", in_channels=1, num_classes=2, dropout=0.3).eval()
    assert enable_mc_dropout(stochastic) > 0
    assert all(not m.training for m in stochastic.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        assert not torch.allclose(stochastic(x).logits, stochastic(x).logits)
    plain = create_model("sqa_test", in_channels=1, num_classes=2).eval()
    assert enable_mc_dropout(plain) == 0
    with torch.no_grad():
        torch.testing.assert_close(plain(x).logits, plain(x).logits)


def test_sqa_loss_uses_custom_segmentation_loss_and_error_weight() -> None:
    logits = torch.tensor([[[[2.0, -1.0]], [[-2.0, 1.0]]]])  # argmax [0, 1]
    output = SQAOutput(logits, torch.zeros(1, 1, 1, 2))
    target = torch.tensor([[[0, 0]]])  # pixel 1 wrong -> one error, one correct
    no_seg_loss = lambda lg, tg: lg.sum() * 0.0  # noqa: E731
    terms = sqa_loss(output, target, num_classes=2, seg_loss_fn=no_seg_loss, error_weight=3.0)
    # zero error logits: BCE = log 2 at every pixel, balanced weights average it to log 2
    assert terms.error.item() == pytest.approx(math.log(2))
    assert terms.total.item() == pytest.approx(3.0 * math.log(2))
    with pytest.raises(ValueError):
        sqa_loss(output, target, num_classes=3)


def test_error_fraction_of_the_loss_counts_wrong_labelled_pixels() -> None:
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, :] = 1.0  # predicts class 1 on the top row, class 0 below
    target = torch.tensor([[[1, 0], [1, IGNORE]]])  # wrong at (0, 1) and (1, 0); (1, 1) unlabelled
    output = SQAOutput(logits, torch.zeros(1, 1, 2, 2))
    assert float(sqa_loss(output, target, num_classes=2).error_fraction) == pytest.approx(2 / 3)


def test_recorded_error_prevalence_sets_the_prior_shift() -> None:
    model = SQANet(in_channels=1, num_classes=2, channels=(4, 8))
    assert math.isnan(float(model.error_prevalence)) and model.error_prior_shift() == 0.0
    model.record_error_prevalence(0.2)
    model.record_error_prevalence(0.0, momentum=0.5)
    assert float(model.error_prevalence) == pytest.approx(0.1)
    assert model.error_prior_shift() == pytest.approx(math.log(0.1 / 0.9))
    with pytest.raises(ValueError, match="error fraction"):
        model.record_error_prevalence(float("nan"))
    saved = model.state_dict()
    assert float(saved["error_prevalence"]) == pytest.approx(0.1)
    restored = SQANet(in_channels=1, num_classes=2, channels=(4, 8))
    restored.load_state_dict(saved)
    assert restored.error_prior_shift() == pytest.approx(model.error_prior_shift())
    legacy = {k: v for k, v in saved.items() if k != "error_prevalence"}  # weights saved before the buffer
    restored.load_state_dict(legacy)
    assert restored.error_prior_shift() == 0.0
