"""Synthetic IVUS phantom: determinism, anatomy of the labels, image realism cues, pullback smoothness."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from frugalseg.data.case import Dataset
from frugalseg.data.phantom import FOV_MM, complex_noise, make_phantom_dataset, polar_shape, render_frame
from frugalseg.data.phantom_shapes import (
    CalciumArc,
    FrameGeometry,
    label_map,
    pixel_polar_coordinates,
    ray_exit_radius,
    sample_pullback_geometry,
)
from frugalseg.errors import InputError

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def small_dataset() -> Dataset:
    return make_phantom_dataset(6, size=64, seed=3, frames_per_pullback=4)


@pytest.fixture(scope="module")
def geometries() -> list[FrameGeometry]:
    """120 frames of 15 short pullbacks with a key frame every 2 frames: a varied sample of shapes."""
    out: list[FrameGeometry] = []
    for seed in range(15):
        out.extend(sample_pullback_geometry(8, rng=np.random.default_rng(seed), frames_per_key=2))
    return out


def test_same_seed_gives_identical_arrays_and_other_seeds_differ(small_dataset: Dataset) -> None:
    again = make_phantom_dataset(6, size=64, seed=3, frames_per_pullback=4)
    other = make_phantom_dataset(6, size=64, seed=4, frames_per_pullback=4)
    for a, b, c in zip(small_dataset.cases, again.cases, other.cases, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
        assert not np.array_equal(a.image, c.image)
        assert not np.array_equal(a.label, c.label)


def test_dataset_contract(small_dataset: Dataset) -> None:
    ds = small_dataset
    assert ds.class_names == ["background", "lumen", "vessel_wall"]
    assert ds.source_format == "phantom"
    assert len(ds) == 6
    assert [c.case_id for c in ds.cases] == [
        "p00_f0000",
        "p00_f0001",
        "p00_f0002",
        "p00_f0003",
        "p01_f0000",
        "p01_f0001",
    ]
    assert [c.subject_id for c in ds.cases] == ["p00"] * 4 + ["p01"] * 2
    for case in ds.cases:
        assert case.image.dtype == np.uint8 and case.image.shape == (64, 64)
        assert case.label is not None and case.label.dtype == np.uint8 and case.label.shape == (64, 64)
        assert set(np.unique(case.label).tolist()) == {0, 1, 2}
        assert case.spacing == (FOV_MM / 64, FOV_MM / 64)
        assert case.metadata["pullback"] == int(case.subject_id[1:])
        assert case.metadata["frame"] == int(case.case_id.split("_f")[1])


@pytest.mark.parametrize("size", [64, 300])
def test_spacing_and_any_size(size: int) -> None:
    ds = make_phantom_dataset(1, size=size, seed=1)
    case = ds.cases[0]
    assert case.image.shape == (size, size) and case.label is not None and case.label.shape == (size, size)
    assert case.spacing == pytest.approx((10.0 / size, 10.0 / size))
    centre = (size - 1) / 2
    for row in (int(np.floor(centre)), int(np.ceil(centre))):
        assert case.label[row, row] == 1
    # Everything outside the imaged disc is black.
    r, _ = pixel_polar_coordinates(size, fov_mm=FOV_MM)
    assert case.image[r > FOV_MM / 2 + FOV_MM / size].max() == 0


@pytest.mark.parametrize("size", [48, 128])
def test_lumen_enclosed_by_wall_and_catheter_in_lumen(geometries: list[FrameGeometry], size: int) -> None:
    r, _ = pixel_polar_coordinates(size, fov_mm=FOV_MM)
    for geometry in geometries:
        label = label_map(geometry, size=size)
        touching = binary_dilation(label == 1, structure=EIGHT_NEIGHBOURS) & (label == 0)
        assert not touching.any(), "a lumen pixel touches background"
        assert (label[r <= geometry.catheter_radius_mm] == 1).all(), "catheter not inside the lumen"
        # The vessel stays inside the imaged disc.
        assert not (label[r >= FOV_MM / 2] > 0).any()
        gw_r, gw_t = geometry.guidewire
        assert geometry.lumen.contains(np.array(gw_r * np.cos(gw_t)), np.array(gw_r * np.sin(gw_t)))


def test_label_is_computed_from_the_curves_per_pixel() -> None:
    geometry = sample_pullback_geometry(1, rng=np.random.default_rng(5))[0]
    size = 96
    label = label_map(geometry, size=size)
    r, theta = pixel_polar_coordinates(size, fov_mm=FOV_MM)
    x, y = r * np.cos(theta), r * np.sin(theta)
    # Point-by-point definition: distance to the curve's centre against its radius in that direction.
    for contour, inside_classes in ((geometry.lumen, {1}), (geometry.vessel, {1, 2})):
        dx, dy = x - contour.center[0], y - contour.center[1]
        inside = np.hypot(dx, dy) < contour.radius_at(np.arctan2(dy, dx))
        np.testing.assert_array_equal(inside, np.isin(label, list(inside_classes)))
    # Along rays, the label changes at the exit radii.
    rays = np.array([0.3, 2.0, 4.4])
    r_lum = ray_exit_radius(geometry.lumen, rays, max_radius=FOV_MM / 2)
    r_eem = ray_exit_radius(geometry.vessel, rays, max_radius=FOV_MM / 2)
    for t, rl, re in zip(rays, r_lum, r_eem, strict=True):
        px, py = np.cos(t), np.sin(t)
        assert geometry.lumen.contains(np.array((rl - 1e-3) * px), np.array((rl - 1e-3) * py))
        assert not geometry.lumen.contains(np.array((rl + 1e-3) * px), np.array((rl + 1e-3) * py))
        assert geometry.vessel.contains(np.array((re - 1e-3) * px), np.array((re - 1e-3) * py))
        assert not geometry.vessel.contains(np.array((re + 1e-3) * px), np.array((re + 1e-3) * py))


def test_lumen_darker_than_wall() -> None:
    ds = make_phantom_dataset(8, size=96, seed=2, frames_per_pullback=2)
    r, _ = pixel_polar_coordinates(96, fov_mm=FOV_MM)
    lumen_means, wall_means = [], []
    for case in ds.cases:
        assert case.label is not None
        blood = (case.label == 1) & (r > 0.8)  # away from the catheter and its ring-down
        lumen_means.append(case.image[blood].mean())
        wall_means.append(case.image[case.label == 2].mean())
    assert np.mean(lumen_means) < 0.6 * np.mean(wall_means)
    assert sum(m < w for m, w in zip(lumen_means, wall_means, strict=True)) >= 7


def test_pullback_frames_vary_smoothly() -> None:
    frames = sample_pullback_geometry(50, rng=np.random.default_rng(11))
    lumens = [label_map(g, size=96) == 1 for g in frames]
    consecutive = [_dice(a, b) for a, b in itertools.pairwise(lumens)]
    far = [_dice(lumens[i], lumens[i + 30]) for i in range(0, 20, 2)]
    assert min(consecutive) > 0.9
    assert np.mean(consecutive) > 0.96
    assert np.mean(far) < np.mean(consecutive) - 0.05


def test_consecutive_images_are_near_duplicates() -> None:
    ds = make_phantom_dataset(12, size=64, seed=0, frames_per_pullback=12)
    images = [c.image.astype(np.float64) for c in ds.cases]
    near = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in itertools.pairwise(images)]
    far = np.corrcoef(images[0].ravel(), images[11].ravel())[0, 1]
    assert np.mean(near) > far


def _calcified(geometry: FrameGeometry, *, center: float, half_width: float) -> FrameGeometry:
    calcium = CalciumArc(
        center_angle=center, half_width=half_width, depth_fraction=0.3, thickness_mm=0.2, shadow_strength=2.0
    )
    gw_r, _ = geometry.guidewire
    return dataclasses.replace(geometry, calcium=calcium, guidewire=(gw_r, center + np.pi))


def _angle_to(theta: np.ndarray, center: float) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (theta - center))))


def test_calcium_shadows_the_tissue_behind_it() -> None:
    size = 128
    base = sample_pullback_geometry(1, rng=np.random.default_rng(7))[0]
    center, half_width = 1.0, 0.8
    geometry = _calcified(base, center=center, half_width=half_width)
    noise = complex_noise(size, rng=np.random.default_rng(0))
    image, _ = render_frame(geometry, size=size, rng=np.random.default_rng(1), tissue_noise=noise)
    plain, _ = render_frame(
        dataclasses.replace(geometry, calcium=None), size=size, rng=np.random.default_rng(1), tissue_noise=noise
    )
    r, theta = pixel_polar_coordinates(size, fov_mm=FOV_MM)
    # Radii beyond the vessel at every angle, well inside the imaged disc.
    bx, by = geometry.vessel.boundary(256)
    ring = (r > np.hypot(bx, by).max() + 0.1) & (r < FOV_MM / 2 - 0.3)
    in_shadow = ring & (_angle_to(theta, center) < half_width - 0.2)
    elsewhere = ring & (_angle_to(theta, center) > half_width + 0.4) & (_angle_to(theta, center + np.pi) > 0.4)
    assert in_shadow.sum() > 100 and elsewhere.sum() > 100
    assert image[in_shadow].mean() < 0.6 * image[elsewhere].mean()
    assert image[in_shadow].mean() < 0.6 * plain[in_shadow].mean()
    # The calcified arc itself is bright: at its depth, brighter than the same pixels without calcium.
    g = geometry.calcium
    assert g is not None
    rays = theta.ravel()
    r_lum = ray_exit_radius(geometry.lumen, rays, max_radius=FOV_MM / 2)
    r_ca = r_lum + g.depth_fraction * (ray_exit_radius(geometry.vessel, rays, max_radius=FOV_MM / 2) - r_lum)
    arc = (np.abs(r.ravel() - r_ca) < 0.08) & (_angle_to(rays, center) < half_width - 0.2)
    assert arc.sum() > 10
    assert image.ravel()[arc].mean() > plain.ravel()[arc].mean() + 30


def test_render_frame_checks_its_inputs() -> None:
    geometry = sample_pullback_geometry(1, rng=np.random.default_rng(0))[0]
    with pytest.raises(ValueError, match="tissue_noise"):
        render_frame(geometry, size=64, rng=np.random.default_rng(0), tissue_noise=np.zeros((3, 3), np.complex64))
    with pytest.raises(ValueError, match="size"):
        render_frame(geometry, size=8, rng=np.random.default_rng(0))
    assert complex_noise(64, rng=np.random.default_rng(0)).shape == polar_shape(64)


@pytest.mark.parametrize(
    "kwargs", [{"num_frames": 0}, {"num_frames": 2, "size": 8}, {"num_frames": 2, "frames_per_pullback": 0}]
)
def test_bad_arguments_raise_input_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(InputError, match="phantom"):
        make_phantom_dataset(**kwargs)


def test_short_last_pullback() -> None:
    ds = make_phantom_dataset(5, size=32, seed=0, frames_per_pullback=2)
    assert [c.subject_id for c in ds.cases] == ["p00", "p00", "p01", "p01", "p02"]
    assert [c.metadata["frame"] for c in ds.cases] == [0, 1, 0, 1, 0]
