"""Geometry of the synthetic IVUS phantom: border curves, artefacts, pullbacks and the exact label map.

All lengths are millimetres and all positions are relative to the catheter, which sits at the centre of
the image. Angles are radians, ``theta = atan2(y, x)`` with ``x`` along columns and ``y`` along rows
(downwards), so they match :func:`pixel_polar_coordinates`.

A pullback is sampled as a few random *key* frames whose parameters are interpolated (monotone cubic)
along the pullback; every frame is then built from its interpolated parameters by a deterministic,
continuous construction that enforces the anatomy (catheter inside the lumen, lumen inside the vessel
with a minimum wall, everything inside the field of view). Neighbouring frames are therefore near-duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = [
    "CalciumArc",
    "Contour",
    "FrameGeometry",
    "label_map",
    "pixel_polar_coordinates",
    "ray_exit_radius",
    "sample_pullback_geometry",
]

_NUM_HARMONICS = 3
_NUM_TEXTURE_MODES = 6
_MIN_WALL_MM = 0.3
_CATHETER_MARGIN_MM = 0.08
_MAX_EXTENT = 0.92
_MAX_LUMEN_RIPPLE = 0.35


@dataclass(frozen=True, kw_only=True)
class Contour:
    """A smooth closed curve, star-shaped about ``center``.

    In the direction ``phi`` about its centre the curve lies at
    ``rho(phi) = radius * (1 + sum_k a_k cos(k phi) + b_k sin(k phi))``.

    Attributes:
        center: ``(x_mm, y_mm)`` of the curve's centre, relative to the catheter.
        radius: mean radius in mm.
        cos_coeffs: relative amplitudes ``a_1..a_K``.
        sin_coeffs: relative amplitudes ``b_1..b_K``.
    """

    center: tuple[float, float]
    radius: float
    cos_coeffs: tuple[float, ...]
    sin_coeffs: tuple[float, ...]

    def radius_at(self, phi: np.ndarray) -> np.ndarray:
        """Distance from ``center`` to the curve in the directions ``phi`` (radians about ``center``)."""
        phi = np.asarray(phi, dtype=np.float64)
        return self._radius_of_direction(np.cos(phi), np.sin(phi))

    def _radius_of_direction(self, cos_phi: np.ndarray, sin_phi: np.ndarray) -> np.ndarray:
        """Like :meth:`radius_at`, from ``cos phi`` and ``sin phi`` (harmonics by recurrence)."""
        rel = np.ones(np.shape(cos_phi), dtype=np.float64)
        cos_k, sin_k = cos_phi, sin_phi
        for k, (a, b) in enumerate(zip(self.cos_coeffs, self.sin_coeffs, strict=True)):
            if k > 0:
                cos_k, sin_k = cos_k * cos_phi - sin_k * sin_phi, sin_k * cos_phi + cos_k * sin_phi
            rel += a * cos_k + b * sin_k
        return self.radius * rel

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean mask of the points ``(x, y)`` (mm, catheter-relative) strictly inside the curve."""
        dx = np.asarray(x, dtype=np.float64) - self.center[0]
        dy = np.asarray(y, dtype=np.float64) - self.center[1]
        dist2 = dx * dx + dy * dy
        inv = 1.0 / np.sqrt(np.maximum(dist2, 1e-24))
        rho = self._radius_of_direction(dx * inv, dy * inv)
        return dist2 < rho * rho

    def boundary(self, num_points: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``num_points`` points on the curve, in mm relative to the catheter."""
        phi = np.linspace(0.0, 2 * np.pi, num_points, endpoint=False)
        rho = self.radius_at(phi)
        return self.center[0] + rho * np.cos(phi), self.center[1] + rho * np.sin(phi)

    def min_radius(self) -> float:
        """Smallest distance from ``center`` to the curve (a disc of this radius lies inside)."""
        return float(self.radius_at(np.linspace(0.0, 2 * np.pi, 256, endpoint=False)).min())


@dataclass(frozen=True, kw_only=True)
class CalciumArc:
    """A calcified arc inside the plaque, which casts an acoustic shadow outwards.

    Attributes:
        center_angle: angle of the arc's middle, radians about the catheter.
        half_width: half its angular extent, radians.
        depth_fraction: where it lies across the wall along each ray (0 at the lumen border, 1 at the EEM).
        thickness_mm: radial thickness of the bright arc.
        shadow_strength: attenuation across the arc in nepers (amplitude falls by ``exp(-shadow_strength)``).
    """

    center_angle: float
    half_width: float
    depth_fraction: float
    thickness_mm: float
    shadow_strength: float

    def angular_weight(self, theta: np.ndarray) -> np.ndarray:
        """Weight in ``[0, 1]`` of the arc at angles ``theta``: 1 inside, raised-cosine edges of 0.15 rad."""
        dist = np.abs(np.angle(np.exp(1j * (theta - self.center_angle))))
        edge = 0.15
        t = np.clip((self.half_width - dist) / edge + 0.5, 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * t)


@dataclass(frozen=True, kw_only=True)
class FrameGeometry:
    """Everything that fixes one phantom frame except its speckle.

    Attributes:
        lumen: lumen border (blood/intima).
        vessel: vessel border (external elastic membrane, EEM).
        fov_mm: side of the square field of view; the imaged disc has diameter ``fov_mm``.
        catheter_radius_mm: radius of the catheter (dark disc at the centre).
        guidewire: ``(radius_mm, angle)`` of the guidewire about the catheter, inside the lumen.
        calcium: the calcified arc, or ``None``.
        plaque_texture: modes ``(amplitude, k_theta, k_r_per_mm, phase)`` of the plaque echogenicity field.
        tissue_texture: the same for the perivascular tissue.
    """

    lumen: Contour
    vessel: Contour
    fov_mm: float
    catheter_radius_mm: float
    guidewire: tuple[float, float]
    calcium: CalciumArc | None
    plaque_texture: tuple[tuple[float, float, float, float], ...]
    tissue_texture: tuple[tuple[float, float, float, float], ...]


def pixel_polar_coordinates(size: int, *, fov_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Radius (mm) and angle (radians in ``[0, 2 pi)``) of every pixel centre of a ``size x size`` image.

    The catheter (the origin) is at the image centre ``((size - 1) / 2, (size - 1) / 2)``.

    Shape:
        Both outputs are ``(size, size)`` float64.
    """
    spacing = fov_mm / size
    coords = (np.arange(size, dtype=np.float64) - (size - 1) / 2.0) * spacing
    y, x = np.meshgrid(coords, coords, indexing="ij")
    return np.hypot(x, y), np.mod(np.arctan2(y, x), 2 * np.pi)


def label_map(geometry: FrameGeometry, *, size: int) -> np.ndarray:
    """Exact ground truth on the Cartesian grid: 0 background, 1 lumen, 2 vessel wall (inside EEM, not lumen).

    Shape:
        Output is ``(size, size)`` uint8.
    """
    spacing = geometry.fov_mm / size
    coords = (np.arange(size, dtype=np.float64) - (size - 1) / 2.0) * spacing
    label = np.zeros((size, size), dtype=np.uint8)
    for contour, value in ((geometry.vessel, 2), (geometry.lumen, 1)):
        # Only the pixels of the curve's bounding box can be inside it.
        reach = contour.radius * (1.0 + sum(map(abs, contour.cos_coeffs)) + sum(map(abs, contour.sin_coeffs)))
        cols = np.flatnonzero(np.abs(coords - contour.center[0]) <= reach)
        rows = np.flatnonzero(np.abs(coords - contour.center[1]) <= reach)
        if cols.size and rows.size:
            y, x = np.meshgrid(coords[rows], coords[cols], indexing="ij")
            box = label[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            box[contour.contains(x, y)] = value
    return label


def ray_exit_radius(contour: Contour, theta: np.ndarray, *, max_radius: float, steps: int = 30) -> np.ndarray:
    """Distance from the catheter along rays ``theta`` to where they cross ``contour`` (catheter inside it).

    Solved by bisection on each ray, assuming the ray crosses the border once (true for the phantom's
    gently curved, star-shaped borders); ``max_radius`` where a ray never leaves within it.
    """
    theta = np.asarray(theta, dtype=np.float64)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    lo = np.zeros(theta.shape)
    hi = np.full(theta.shape, float(max_radius))
    never = contour.contains(hi * cos_t, hi * sin_t)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        inside = contour.contains(mid * cos_t, mid * sin_t)
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    return np.where(never, float(max_radius), 0.5 * (lo + hi))


def _wall_margins(x: np.ndarray, y: np.ndarray, vessel: Contour) -> np.ndarray:
    """Smallest radial distance (about the vessel centre) from points ``(..., n)`` out to the EEM, per row."""
    dx, dy = x - vessel.center[0], y - vessel.center[1]
    return (vessel.radius_at(np.arctan2(dy, dx)) - np.hypot(dx, dy)).min(axis=-1)


def _last_valid(slack: np.ndarray, grid: np.ndarray) -> float:
    """Largest ``grid`` value before ``slack`` first turns negative, refined linearly (``slack[0] >= 0``).

    Continuous in the inputs, so interpolated pullback parameters give smoothly varying frames.
    """
    bad = np.flatnonzero(slack < 0)
    if bad.size == 0:
        return float(grid[-1])
    i = int(bad[0])
    if i == 0:
        return float(grid[0])
    s0, s1 = float(slack[i - 1]), float(slack[i])
    return float(grid[i - 1] + (grid[i] - grid[i - 1]) * s0 / (s0 - s1))


def _build_frame(p: dict[str, np.ndarray], *, fov_mm: float, catheter_radius_mm: float) -> FrameGeometry:
    """Turn interpolated parameters into a valid frame (deterministic and continuous in ``p``)."""
    k = _NUM_HARMONICS

    def _coeffs(key: str, limit: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        v = np.asarray(p[key], dtype=np.float64)
        total = float(np.abs(v).sum())
        v = v * min(1.0, limit / max(total, 1e-12))
        return tuple(float(c) for c in v[:k]), tuple(float(c) for c in v[k:])

    v_cos, v_sin = _coeffs("vessel_coeffs", 0.22)
    l_cos, l_sin = _coeffs("lumen_coeffs", _MAX_LUMEN_RIPPLE)
    vessel = Contour(center=(0.0, 0.0), radius=float(p["vessel_radius"]), cos_coeffs=v_cos, sin_coeffs=v_sin)
    min_lumen = (catheter_radius_mm + 2 * _CATHETER_MARGIN_MM) / (1.0 - _MAX_LUMEN_RIPPLE)
    lumen_r = max(float(p["vessel_radius"]) * (1.0 - float(p["burden"])), min_lumen)
    lumen = Contour(center=(0.0, 0.0), radius=lumen_r, cos_coeffs=l_cos, sin_coeffs=l_sin)
    # Shrink the lumen (continuously) until the thinnest wall reaches the minimum.
    bx, by = lumen.boundary(96)
    scales = np.linspace(0.2, 1.0, 41)[:, None]
    lumen_r *= _last_valid(_wall_margins(scales * bx, scales * by, vessel) - _MIN_WALL_MM, scales[:, 0])
    lumen = Contour(center=(0.0, 0.0), radius=lumen_r, cos_coeffs=l_cos, sin_coeffs=l_sin)
    bx, by = lumen.boundary(96)
    # Eccentric plaque: slide the lumen towards one side by a fraction of the room available.
    u = np.array([np.cos(p["ecc_angle"]), np.sin(p["ecc_angle"])])
    shifts = np.linspace(0.0, vessel.radius, 49)[:, None]
    margins = _wall_margins(bx + shifts * u[0], by + shifts * u[1], vessel)
    room = _last_valid(margins - _MIN_WALL_MM, shifts[:, 0])
    lumen_offset = float(np.clip(p["eccentricity"], 0.0, 0.97)) * room * u
    # Catheter somewhere inside the largest disc centred on the lumen centre.
    cath_room = max(lumen.min_radius() - catheter_radius_mm - _CATHETER_MARGIN_MM, 0.0)
    cath_offset = (
        float(np.clip(p["catheter_fraction"], 0.0, 0.95))
        * cath_room
        * np.array([np.cos(p["catheter_angle"]), np.sin(p["catheter_angle"])])
    )
    # Keep the vessel inside the field of view by pulling both offsets back (continuously) if needed.
    vx, vy = vessel.boundary(128)
    pulls = np.linspace(0.0, 1.0, 33)[:, None]
    shift = cath_offset + lumen_offset
    extent = np.hypot(vx - pulls * shift[0], vy - pulls * shift[1]).max(axis=1)
    if extent[0] > _MAX_EXTENT * fov_mm / 2:
        raise ValueError(f"phantom vessel of radius {vessel.radius:.2f} mm does not fit a {fov_mm} mm view")
    pull = _last_valid(_MAX_EXTENT * fov_mm / 2 - extent, pulls[:, 0])
    lumen_center = -pull * cath_offset
    vessel_center = lumen_center - pull * lumen_offset
    lumen = Contour(
        center=(float(lumen_center[0]), float(lumen_center[1])),
        radius=lumen_r,
        cos_coeffs=l_cos,
        sin_coeffs=l_sin,
    )
    vessel = Contour(
        center=(float(vessel_center[0]), float(vessel_center[1])),
        radius=vessel.radius,
        cos_coeffs=v_cos,
        sin_coeffs=v_sin,
    )

    gw_angle = float(np.mod(p["guidewire_angle"], 2 * np.pi))
    exit_r = float(ray_exit_radius(lumen, np.array([gw_angle]), max_radius=fov_mm / 2)[0])
    lo = catheter_radius_mm + 0.6 * _CATHETER_MARGIN_MM  # the catheter's margin guarantees this is lumen
    hi = max(exit_r - 0.15, lo)
    gw_r = lo + float(np.clip(p["guidewire_fraction"], 0.0, 1.0)) * (hi - lo)

    strength = float(p["calcium_strength"])
    calcium = None
    if strength > 0.0:
        calcium = CalciumArc(
            center_angle=float(np.mod(p["calcium_angle"], 2 * np.pi)),
            half_width=float(min(strength, 1.0) * 1.0 + 0.05),
            depth_fraction=float(np.clip(p["calcium_depth"], 0.1, 0.6)),
            thickness_mm=0.2,
            shadow_strength=float(1.4 + 0.6 * min(strength, 1.0)),
        )

    def _texture(amp: str, kt: str, kr: str, ph: str) -> tuple[tuple[float, float, float, float], ...]:
        return tuple(
            (float(a), float(b), float(c), float(d)) for a, b, c, d in zip(p[amp], p[kt], p[kr], p[ph], strict=True)
        )

    return FrameGeometry(
        lumen=lumen,
        vessel=vessel,
        fov_mm=fov_mm,
        catheter_radius_mm=catheter_radius_mm,
        guidewire=(gw_r, gw_angle),
        calcium=calcium,
        plaque_texture=_texture("pt_amp", "pt_kt", "pt_kr", "pt_phase"),
        tissue_texture=_texture("tt_amp", "tt_kt", "tt_kr", "tt_phase"),
    )


def _random_walk(rng: np.random.Generator, n: int, step: float, size: int | None = None) -> np.ndarray:
    shape = (n,) if size is None else (n, size)
    start = rng.uniform(0.0, 2 * np.pi, size=shape[1:])
    return start + np.cumsum(rng.normal(0.0, step, size=shape), axis=0)


def _texture_modes(rng: np.random.Generator, n_keys: int, prefix: str, kr_max: float) -> dict[str, np.ndarray]:
    m = _NUM_TEXTURE_MODES
    amp = rng.uniform(0.2, 1.0, size=m) / np.sqrt(m / 2)
    return {
        f"{prefix}_amp": np.broadcast_to(amp, (n_keys, m)),
        f"{prefix}_kt": np.broadcast_to(rng.integers(1, 9, size=m).astype(np.float64), (n_keys, m)),
        f"{prefix}_kr": np.broadcast_to(rng.uniform(-kr_max, kr_max, size=m), (n_keys, m)),
        f"{prefix}_phase": _random_walk(rng, n_keys, 0.5, m),
    }


def sample_pullback_geometry(
    num_frames: int,
    *,
    rng: np.random.Generator,
    fov_mm: float = 10.0,
    frames_per_key: int = 15,
) -> list[FrameGeometry]:
    """Sample the geometry of ``num_frames`` consecutive frames of one pullback.

    Args:
        num_frames: number of frames.
        rng: source of randomness.
        fov_mm: field of view (square side, and diameter of the imaged disc) in mm.
        frames_per_key: spacing of the independently drawn key frames; frames in between are interpolated.

    Returns:
        One :class:`FrameGeometry` per frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if frames_per_key < 1:
        raise ValueError(f"frames_per_key must be >= 1, got {frames_per_key}")
    scale = fov_mm / 10.0
    n_keys = max(2, int(np.ceil((num_frames - 1) / frames_per_key)) + 2)
    h = 2 * _NUM_HARMONICS
    damp = np.tile(1.0 / np.arange(1, _NUM_HARMONICS + 1), 2)
    rv0 = rng.uniform(2.1, 2.8) * scale
    burden0 = rng.uniform(0.3, 0.6)
    calc_bias = rng.normal(-0.2, 0.6)
    params: dict[str, np.ndarray] = {
        "vessel_radius": np.clip(rv0 * np.exp(rng.normal(0.0, 0.06, size=n_keys)), 1.8 * scale, 3.1 * scale),
        "vessel_coeffs": rng.normal(0.0, 0.07, size=(n_keys, h)) * damp,
        "burden": np.clip(burden0 + rng.normal(0.0, 0.08, size=n_keys), 0.12, 0.72),
        "lumen_coeffs": rng.normal(0.0, 0.14, size=(n_keys, h)) * damp,
        "eccentricity": np.clip(rng.uniform(0.3, 0.9) + rng.normal(0.0, 0.12, size=n_keys), 0.0, 0.95),
        "ecc_angle": _random_walk(rng, n_keys, 0.5),
        "catheter_fraction": rng.uniform(0.1, 0.85, size=n_keys),
        "catheter_angle": _random_walk(rng, n_keys, 0.7),
        "guidewire_angle": _random_walk(rng, n_keys, 0.25),
        "guidewire_fraction": rng.uniform(0.1, 0.9, size=n_keys),
        "calcium_strength": calc_bias + rng.normal(0.0, 0.7, size=n_keys),
        "calcium_angle": _random_walk(rng, n_keys, 0.3),
        "calcium_depth": rng.uniform(0.15, 0.55, size=n_keys),
        **_texture_modes(rng, n_keys, "pt", 3.0 / scale),
        **_texture_modes(rng, n_keys, "tt", 2.0 / scale),
    }
    key_pos = (np.arange(n_keys) - 0.5) * frames_per_key
    frames = np.arange(num_frames, dtype=np.float64)
    interp = {name: PchipInterpolator(key_pos, vals, axis=0)(frames) for name, vals in params.items()}
    catheter_radius = 0.5 * scale
    return [
        _build_frame(
            {name: vals[i] for name, vals in interp.items()},
            fov_mm=fov_mm,
            catheter_radius_mm=catheter_radius,
        )
        for i in range(num_frames)
    ]
