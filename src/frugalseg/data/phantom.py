"""Synthetic B-mode IVUS phantom (20-40 MHz look): the built-in data of the demo and the tests.

Each frame is rendered in the polar domain of the catheter (rows = depth, columns = angle) and
scan-converted to a Cartesian image with :func:`scipy.ndimage.map_coordinates`, as a scanner does:

- tissue echogenicity: weak blood echo in the lumen, bright heterogeneous plaque with a bright leading edge,
  a thin dark media just inside the EEM, bright adventitia fading with depth, textured perivascular tissue;
- artefacts: dark catheter with a bright ring-down, guidewire spot with a narrow shadow, calcified arcs
  that shadow everything behind them (the EEM disappears there, as in real pullbacks);
- physics: multiplicative Rayleigh speckle elongated along the angle, attenuation accumulated along each
  ray and an imperfect time-gain compensation, electronic noise, log compression to ``uint8``.

The label map is computed exactly from the border curves (:func:`~frugalseg.data.phantom_shapes.label_map`),
never from the rendered image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter1d, map_coordinates

from frugalseg.data.case import Case, Dataset
from frugalseg.data.phantom_shapes import (
    FrameGeometry,
    label_map,
    pixel_polar_coordinates,
    ray_exit_radius,
    sample_pullback_geometry,
)
from frugalseg.errors import InputError

__all__ = ["CLASS_NAMES", "FOV_MM", "complex_noise", "make_phantom_dataset", "polar_shape", "render_frame"]

CLASS_NAMES = ["background", "lumen", "vessel_wall"]
FOV_MM = 10.0
"""Side of the phantom's square field of view in mm (the imaged disc has this diameter)."""

_DYNAMIC_RANGE_DB = 32.0
_GAMMA = 1.2
_SPECKLE_SIGMA_R_MM = 0.045
_SPECKLE_SIGMA_THETA = 0.045
_TGC_PER_MM = 0.25
_SPECKLE_CORRELATION = 0.85
_BLOOD_LEVEL = 0.022
_PLAQUE_LEVEL = 0.2
_TISSUE_LEVEL = 0.15
_ADVENTITIA_LEVEL = 1.0
_NOISE_LEVEL = 0.025


def polar_shape(size: int) -> tuple[int, int]:
    """``(num_depths, num_angles)`` of the polar grid used to render a ``size x size`` frame."""
    num_angles = int(np.clip(8 * round(2 * size / 8), 256, 1024))
    return max(size // 2 + 8, 24), num_angles


@lru_cache(maxsize=8)
def _polar_grid(size: int, fov_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radii and angles of the polar samples, and the scan-conversion coordinates (read-only, cached)."""
    n_r, n_t = polar_shape(size)
    radius = fov_mm / 2
    r = (np.arange(n_r) + 0.5) * (radius / n_r)
    theta = np.arange(n_t) * (2 * np.pi / n_t)
    r_pix, t_pix = pixel_polar_coordinates(size, fov_mm=fov_mm)
    coords = np.stack([r_pix / (radius / n_r) - 0.5, t_pix / (2 * np.pi / n_t)]).astype(np.float32)
    coords[0][r_pix > radius] = -10.0  # outside the imaged disc: read the zero padding
    out = (r, theta, coords)
    for arr in out:
        arr.setflags(write=False)
    return out


def _texture(modes: tuple[tuple[float, float, float, float], ...], r: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Smooth field ``sum a cos(k_t theta + k_r r + phase)`` on the polar grid, as one matrix product."""
    amp, kt, kr, phase = (np.array(v, dtype=np.float64) for v in zip(*modes, strict=True))
    radial = kr[None, :] * r[:, None] + phase[None, :]
    left = np.concatenate([amp * np.cos(radial), -amp * np.sin(radial)], axis=1)
    right = np.concatenate([np.cos(np.outer(kt, theta)), np.sin(np.outer(kt, theta))], axis=0)
    return np.einsum("ik,kj->ij", left, right).astype(np.float32)  # not BLAS: no thread start-up cost


@lru_cache(maxsize=1)
def _compression_table() -> np.ndarray:
    """Grey level of ``(dB + range) / range`` sampled at 1024 steps of ``[0, 1]`` (gamma included)."""
    table = (np.linspace(0.0, 1.0, 1024) ** _GAMMA * 255.0).astype(np.float32)
    table.setflags(write=False)
    return table


def _log_compress(envelope: np.ndarray) -> np.ndarray:
    """Envelope amplitude (1 = brightest tissue) to grey levels in ``[0, 255]`` over the dynamic range."""
    db = np.float32(20.0) * np.log10(np.maximum(envelope, np.float32(1e-6)))
    index = np.clip((db + _DYNAMIC_RANGE_DB) * (1023.0 / _DYNAMIC_RANGE_DB), 0.0, 1023.0)
    return _compression_table()[index.astype(np.intp)]


def _smoothstep(d: np.ndarray, width: float) -> np.ndarray:
    """0 well below ``-width``, 1 well above ``width``: a logistic ramp centred on ``d = 0``."""
    return (0.5 + 0.5 * np.tanh(d / width)).astype(np.float32)


def complex_noise(size: int, *, rng: np.random.Generator) -> np.ndarray:
    """Complex white Gaussian noise (unit variance) on the polar grid of a ``size`` frame.

    Shape:
        Output is :func:`polar_shape` ``(size)``, complex64.
    """
    shape = polar_shape(size)
    noise = np.empty(shape, dtype=np.complex64)
    noise.real = rng.standard_normal(shape, dtype=np.float32)
    noise.imag = rng.standard_normal(shape, dtype=np.float32)
    return noise * np.float32(np.sqrt(0.5))


def _speckle(white: np.ndarray, *, sigma_r: float, sigma_t: float) -> np.ndarray:
    """Rayleigh-distributed amplitude (unit mean square) from complex white noise blurred by the beam."""
    parts = []
    for part in (white.real, white.imag):
        blurred = gaussian_filter1d(part, sigma_r, axis=0, mode="nearest", truncate=3.0)
        parts.append(gaussian_filter1d(blurred, sigma_t, axis=1, mode="wrap", truncate=3.0))
    amp = np.hypot(parts[0], parts[1])
    return amp * np.float32(1.0 / np.sqrt(np.mean(amp**2)))


def render_frame(
    geometry: FrameGeometry,
    *,
    size: int,
    rng: np.random.Generator,
    tissue_noise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one IVUS frame and its exact label map.

    Args:
        geometry: borders and artefacts of the frame.
        size: side of the square output in pixels.
        rng: source of the speckle and electronic noise.
        tissue_noise: complex white noise for the tissue speckle (see :func:`complex_noise`); pass correlated
            noise across frames for a realistic pullback. Drawn from ``rng`` when ``None``.

    Returns:
        ``(image, label)``: grey ``uint8`` image and ``uint8`` label (0 background, 1 lumen, 2 vessel wall).

    Shape:
        Both outputs are ``(size, size)``.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    fov = float(geometry.fov_mm)
    r, theta, coords = _polar_grid(size, fov)
    n_r, n_t = r.size, theta.size
    dr = float(r[1] - r[0])
    if tissue_noise is None:
        tissue_noise = complex_noise(size, rng=rng)
    elif tissue_noise.shape != (n_r, n_t):
        raise ValueError(f"tissue_noise must have shape {(n_r, n_t)}, got {tissue_noise.shape}")

    # Per-ray borders, then signed depths below them (mm).
    r_lum = ray_exit_radius(geometry.lumen, theta, max_radius=fov / 2).astype(np.float32)
    r_eem = np.maximum(ray_exit_radius(geometry.vessel, theta, max_radius=fov / 2).astype(np.float32), r_lum)
    rr = r.astype(np.float32)[:, None]
    d_lum = rr - r_lum[None, :]
    d_eem = rr - r_eem[None, :]
    # Soft tissue fractions: borders blur over a few tens of microns, as with a finite beam.
    wall_w = _smoothstep(d_lum, 0.03)
    out_w = _smoothstep(d_eem, 0.04)

    # Mean echo amplitude and attenuation (nepers per mm, round trip) of each polar sample.
    plaque = _PLAQUE_LEVEL * np.exp(0.6 * _texture(geometry.plaque_texture, r, theta))
    plaque *= 1.0 + 0.7 * np.exp(-(((d_lum - 0.04) / 0.05) ** 2))  # bright intima leading edge
    plaque *= 1.0 - 0.5 * np.exp(-(((d_eem + 0.09) / 0.06) ** 2))  # thin dark media just inside the EEM
    tissue_field = _texture(geometry.tissue_texture, r, theta)
    tissue = _TISSUE_LEVEL * np.exp(tissue_field)
    # Bright adventitia fading with depth; its brightness varies around the vessel.
    tissue += _ADVENTITIA_LEVEL * np.exp(0.5 * tissue_field[:1] - np.maximum(d_eem, 0.0) / 0.35)
    level = _BLOOD_LEVEL + wall_w * (plaque - _BLOOD_LEVEL + out_w * (tissue - plaque))
    alpha = np.float32(0.05) + wall_w * np.float32(0.4) + out_w * np.float32(0.25)

    calcium = geometry.calcium
    if calcium is not None:
        cols = np.flatnonzero(calcium.angular_weight(theta) > 0)
        weight = calcium.angular_weight(theta[cols]).astype(np.float32)
        r_ca = r_lum[cols] + calcium.depth_fraction * (r_eem[cols] - r_lum[cols])
        sigma = calcium.thickness_mm / 2
        band = np.exp(-0.5 * ((rr - r_ca[None, :]) / sigma) ** 2) * weight
        level[:, cols] += 5.0 * band
        alpha[:, cols] += calcium.shadow_strength / (sigma * np.sqrt(2 * np.pi)) * band

    # Guidewire: a small bright spot (a strong reflector and attenuator); computed near its depth only.
    gw_r, gw_t = geometry.guidewire
    gw_sigma = 0.035
    near = slice(int(max((gw_r - 5 * gw_sigma) / dr, 0)), int(min((gw_r + 5 * gw_sigma) / dr + 1, n_r)))
    gx, gy = gw_r * np.cos(gw_t), gw_r * np.sin(gw_t)
    rn = rr[near]
    dist2 = (rn * np.cos(theta)[None, :] - gx) ** 2 + (rn * np.sin(theta)[None, :] - gy) ** 2
    spot = np.exp(-dist2 / (2 * gw_sigma**2)).astype(np.float32)
    level[near] += 3.0 * spot
    alpha[near] += 2.0 / (gw_sigma * np.sqrt(2 * np.pi)) * spot

    # Catheter: no echo inside, bright ring-down just outside.
    cath = geometry.catheter_radius_mm
    inner = int(np.searchsorted(r, cath))
    ring_rows = slice(inner, int(np.searchsorted(r, cath + 0.4)))
    below = rr[ring_rows] - cath
    level[:inner] = 0.0
    level[ring_rows] += 0.7 * np.exp(-below / 0.06) * (0.75 + 0.25 * np.cos(2 * np.pi * below / 0.08))

    gain = np.exp(-np.cumsum(alpha, axis=0) * dr + _TGC_PER_MM * rr)
    sig_r = _SPECKLE_SIGMA_R_MM / dr
    sig_t = _SPECKLE_SIGMA_THETA / float(theta[1] - theta[0])
    speckle = _speckle(tissue_noise, sigma_r=sig_r, sigma_t=sig_t)
    # Blood speckle decorrelates between frames: fresh noise, only as deep as the lumen reaches.
    rows = min(n_r, int(np.searchsorted(r, float(r_lum.max()))) + 4)
    blood_white = complex_noise(size, rng=rng)
    blood = _speckle(blood_white[:rows], sigma_r=0.8 * sig_r, sigma_t=0.8 * sig_t)
    speckle[:rows] += (1.0 - wall_w[:rows]) * (blood - speckle[:rows])
    # Electronic noise (reusing the unused deep rows of the blood noise), then log compression.
    envelope = np.hypot(level * gain * speckle, _NOISE_LEVEL * np.abs(blood_white[::-1]))
    polar = _log_compress(envelope)
    polar = np.concatenate([polar, polar[:, :1]], axis=1)  # wrap the angle for interpolation
    image = map_coordinates(polar, coords, order=1, mode="constant", cval=0.0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label_map(geometry, size=size)


def make_phantom_dataset(
    num_frames: int = 200,
    *,
    size: int = 256,
    seed: int = 0,
    frames_per_pullback: int = 50,
) -> Dataset:
    """Synthetic IVUS pullbacks with exact lumen and vessel-wall labels.

    Frames are grouped in pullbacks of ``frames_per_pullback`` (the last may be shorter); each pullback is
    one subject (``p00``, ``p01``, ...) whose shapes vary smoothly from frame to frame.

    Args:
        num_frames: total number of frames.
        size: side of each square image in pixels.
        seed: all randomness derives from it (same seed, identical arrays).
        frames_per_pullback: frames per pullback (subject).

    Returns:
        A :class:`~frugalseg.data.case.Dataset` with classes ``background``, ``lumen``, ``vessel_wall``.
    """
    if num_frames < 1:
        raise InputError(f"phantom num_frames={num_frames}: expected at least 1")
    if size < 16:
        raise InputError(f"phantom size={size}: expected at least 16 pixels")
    if frames_per_pullback < 1:
        raise InputError(f"phantom frames_per_pullback={frames_per_pullback}: expected at least 1")
    spacing = FOV_MM / size
    num_pullbacks = -(-num_frames // frames_per_pullback)
    cases: list[Case] = []
    for p, child in enumerate(np.random.SeedSequence(seed).spawn(num_pullbacks)):
        geo_seq, render_seq = child.spawn(2)
        n = min(frames_per_pullback, num_frames - p * frames_per_pullback)
        geometries = sample_pullback_geometry(n, rng=np.random.default_rng(geo_seq), fov_mm=FOV_MM)
        rng = np.random.default_rng(render_seq)
        rho = _SPECKLE_CORRELATION
        noise = complex_noise(size, rng=rng)
        for f, geometry in enumerate(geometries):
            if f > 0:  # tissue speckle decorrelates slowly along the pullback
                noise = rho * noise + np.sqrt(1 - rho**2) * complex_noise(size, rng=rng)
            image, label = render_frame(geometry, size=size, rng=rng, tissue_noise=noise)
            ca = geometry.calcium
            cases.append(
                Case(
                    case_id=f"p{p:02d}_f{f:04d}",
                    subject_id=f"p{p:02d}",
                    image=image,
                    spacing=(spacing, spacing),
                    label=label,
                    metadata={
                        "pullback": p,
                        "frame": f,
                        "calcium": ca is not None,
                        "calcium_arc": None if ca is None else [ca.center_angle, ca.half_width],
                        "fov_mm": FOV_MM,
                    },
                )
            )
    return Dataset(cases=cases, class_names=list(CLASS_NAMES), source_format="phantom", root="")
