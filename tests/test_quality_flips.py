"""Flip agreement in the quality estimate, and ``bench quality`` over saved SQA checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import disc_case
from frugalseg.data.case import Case, Dataset
from frugalseg.engine.bench import held_out_split
from frugalseg.engine.config import TrainConfig
from frugalseg.engine.preprocess import image_to_tensor
from frugalseg.engine.quality_bench import bench_quality
from frugalseg.engine.sqa_train import fine_tune_sqa, predict_with_quality
from frugalseg.errors import InputError
from frugalseg.models.sqa import SQANet
from frugalseg.quality import predicted_dice
from frugalseg.quality.flips import FLIPS, flip_error_map, flipped_views

pytestmark = pytest.mark.usefixtures("one_thread")


def test_flip_error_map_joins_the_error_maps_and_the_views_disagreement() -> None:
    labels = torch.tensor([[[0, 1, 1]]])  # (B=1, H=1, W=3)
    agree = torch.tensor([[0.9, 0.2, 0.3], [0.1, 0.8, 0.7]])[None, :, None, :]  # (1, C=2, 1, 3): argmax 0, 1, 1
    differ = torch.tensor([[0.9, 0.2, 0.6], [0.1, 0.8, 0.4]])[None, :, None, :]  # the third pixel turns to 0
    views = torch.stack([agree, agree, agree, differ])
    errors = torch.tensor([0.1, 0.0, 0.2]).expand(4, 1, 1, 3)
    combined, mean_probs = flip_error_map(labels, views, errors)
    # u = 0, 0, 1/4: e' = e on stable pixels, 1 - (1 - 0.2)(1 - 0.25) = 0.4 on the unstable one
    np.testing.assert_allclose(combined[0, 0].numpy(), [0.1, 0.0, 0.4], atol=1e-6)
    torch.testing.assert_close(mean_probs, views.mean(dim=0))
    with pytest.raises(ValueError, match="do not match"):
        flip_error_map(labels, views, errors[:3])


def test_flipped_views_are_flipped_back_onto_the_image_grid() -> None:
    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)

    def equivariant(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([inputs, -inputs], dim=1), inputs[:, 0]

    def top_row(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        marker = torch.zeros_like(inputs)
        marker[..., 0, :] = 1.0  # marks the top row of whatever it is given
        return marker, marker[:, 0]

    probs, errors = flipped_views(equivariant, x)
    assert probs.shape == (len(FLIPS), 2, 2, 3, 4) and errors.shape == (len(FLIPS), 2, 3, 4)
    for v in range(len(FLIPS)):  # a pixelwise network gives every view back exactly
        torch.testing.assert_close(probs[v, :, 0], x[:, 0])
        torch.testing.assert_close(errors[v], x[:, 0])
    _, marked = flipped_views(top_row, x)
    # left-right flip keeps the top row on top; an up-down flip brings it back at the bottom
    assert marked[0, :, 0].eq(1).all() and marked[1, :, -1].eq(1).all() and marked[2, :, -1].eq(1).all()


def _network(cases: list[Case], *, seed: int = 0) -> SQANet:
    config = TrainConfig(model="sqa_test", size=32, epochs=1, batch_size=4, lr=3e-3)
    return fine_tune_sqa(
        None, cases, config=config, epochs=1, generator=torch.Generator().manual_seed(seed), num_classes=3
    )


def test_flip_quality_is_predicted_dice_of_the_joined_error_map() -> None:
    cases = [disc_case(i, size=40) for i in range(4)]
    network = _network(cases)
    plain = predict_with_quality(network, cases, size=32, keep_maps=False)
    flipped = predict_with_quality(network, cases, size=32, keep_maps=False, flips=True)
    assert all(p.flip_quality is None for p in plain)
    assert [p.quality for p in flipped] == pytest.approx([p.quality for p in plain])  # the plain estimate stays
    x = torch.stack([image_to_tensor(c.image, size=32, in_channels=1) for c in cases])
    shift = network.error_prior_shift()
    with torch.no_grad():

        def view(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = network(inputs)
            return torch.softmax(out.logits, 1), torch.sigmoid(out.error_logits[:, 0] + shift)

        base_p, base_e = view(x)
        more_p, more_e = flipped_views(view, x)
    labels = base_p.argmax(1)
    joined, mean_p = flip_error_map(labels, torch.cat([base_p[None], more_p]), torch.cat([base_e[None], more_e]))
    expected = predicted_dice(labels, joined, num_classes=3, probabilities=mean_p).mean(dim=1)
    np.testing.assert_allclose([p.flip_quality for p in flipped], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_bench_quality_scores_checkpoints_on_test_and_on_their_unlabelled_pool(tmp_path: Path) -> None:
    cases = [disc_case(i, size=40) for i in range(10)]
    dataset = Dataset(cases=cases, class_names=["background", "inner", "ring"], source_format="test")
    run = tmp_path / "run"
    run.mkdir()
    network = _network(cases[:4])
    torch.save(network.state_dict(), run / "final.pt")
    report = bench_quality(dataset, [run / "final.pt"], tmp_path / "q.json", model="sqa_test", size=32)
    assert json.loads((tmp_path / "q.json").read_text())["networks"][0]["cases"] == report["networks"][0]["cases"]
    entry = report["networks"][0]
    assert report["on"] == "test" and 2 <= entry["cases"] < 10
    assert set(entry["quality"]) == set(entry["quality_flips"]) == {"pearson", "spearman", "mae"}
    assert report["summary"]["quality_flips"]["mae_mean"] == pytest.approx(entry["quality_flips"]["mae"])
    with pytest.raises(InputError, match=r"state\.json"):
        bench_quality(dataset, [run / "final.pt"], tmp_path / "p.json", on="pool", model="sqa_test", size=32)
    learned = [c.case_id for c in cases[:4]]
    (run / "state.json").write_text(json.dumps({"labelled": learned}))
    pool_report = bench_quality(dataset, [run / "final.pt"], tmp_path / "p.json", on="pool", model="sqa_test", size=32)
    pool, _ = held_out_split(dataset, seed=0)
    assert pool_report["networks"][0]["cases"] == len([c for c in pool if c.case_id not in learned]) > 0
    # settings.json beside a checkpoint wins over the options: a wrong model name there is refused
    (run / "settings.json").write_text(json.dumps({"train": {"model": "unet_small", "size": 32}, "dropout": 0.0}))
    with pytest.raises(InputError, match="not a segmentation-quality network"):
        bench_quality(dataset, [run / "final.pt"], tmp_path / "s.json", model="sqa_test", size=32)
    (run / "settings.json").write_text("{")
    with pytest.raises(InputError, match="unreadable"):
        bench_quality(dataset, [run / "final.pt"], tmp_path / "s.json", model="sqa_test", size=32)
    with pytest.raises(InputError, match="missing"):
        bench_quality(dataset, [tmp_path / "absent.pt"], tmp_path / "m.json", model="sqa_test", size=32)
    torch.save({"not": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="do not fit"):
        bench_quality(dataset, [tmp_path / "foreign.pt"], tmp_path / "f.json", model="sqa_test", size=32)
