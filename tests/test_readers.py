"""Dataset readers on layouts built in tmp_path: values derived from how the fixtures were drawn."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.draw import ellipse_perimeter

from frugalseg.data import (
    IGNORE,
    Dataset,
    describe_dataset,
    detect_format,
    fill_ellipse_outline,
    format_description,
    read_box_csv,
    read_dataset,
    read_dicom,
    read_echoplaque,
    read_folder,
    read_hc18,
    read_image,
    read_mask,
    read_nifti,
    write_image_png,
    write_mask_png,
)
from frugalseg.errors import InputError

# ---------------------------------------------------------------- images and masks


def test_read_image_modes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "grey_rgb.png")
    colour = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    rgba = np.concatenate([colour, np.full((7, 9, 1), 128, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    deep = rng.integers(0, 65536, (7, 9)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")

    out = read_image(tmp_path / "grey_rgb.png")
    assert out.shape == (7, 9) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, grey)
    out = read_image(tmp_path / "rgba.png")
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, colour)
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, deep.astype(np.float32))


def test_write_png_round_trip(tmp_path: Path) -> None:
    label = np.random.default_rng(1).integers(0, 4, (6, 5)).astype(np.uint8)
    label[0, 0] = IGNORE
    write_mask_png(tmp_path / "sub" / "mask.png", label)
    assert Image.open(tmp_path / "sub" / "mask.png").mode == "P"
    np.testing.assert_array_equal(read_mask(tmp_path / "sub" / "mask.png", expected_shape=(6, 5)), label)
    only_ignore = np.where(label == 1, IGNORE, 0).astype(np.uint8)  # background and IGNORE only
    write_mask_png(tmp_path / "ignore.png", only_ignore)
    np.testing.assert_array_equal(read_mask(tmp_path / "ignore.png"), only_ignore)
    image = np.random.default_rng(2).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_image_png(tmp_path / "image.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "image.png"), image)
    ramp = np.linspace(-1000.0, 1000.0, 30, dtype=np.float32).reshape(5, 6)
    write_image_png(tmp_path / "ramp.png", ramp)
    written = read_image(tmp_path / "ramp.png")
    assert written.min() == 0 and written.max() == 255
    assert not list(tmp_path.glob("**/*.tmp"))


def test_binary_mask_becomes_zero_one(tmp_path: Path) -> None:
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask // 255)


# ---------------------------------------------------------------- bad inputs


def test_corrupt_image_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(InputError, match=r"broken\.png") as info:
        read_image(bad)
    assert "\n" not in str(info.value)
    good = tmp_path / "good.png"
    write_image_png(good, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(InputError, match=r"truncated\.png"):
        read_image(truncated)
    with pytest.raises(InputError, match=r"missing\.png"):
        read_image(tmp_path / "missing.png")


def test_mask_of_wrong_size_names_both_shapes(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_image_png(tmp_path / "images" / "a.png", np.zeros((10, 12), np.uint8))
    write_mask_png(tmp_path / "masks" / "a.png", np.zeros((10, 11), np.uint8))
    with pytest.raises(InputError, match=r"a\.png.*\(10, 11\).*\(10, 12\)"):
        read_folder(tmp_path)


def test_unexpected_mask_values_named(tmp_path: Path) -> None:
    mask = np.array([[0, 128, 200], [0, 0, 1]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "odd.png")
    with pytest.raises(InputError, match=r"odd\.png.*128, 200"):
        read_mask(tmp_path / "odd.png")


def test_colour_mask_rejected(tmp_path: Path) -> None:
    mask = np.zeros((3, 3, 3), np.uint8)
    mask[1, 1] = (255, 0, 0)
    Image.fromarray(mask).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match=r"colour\.png"):
        read_mask(tmp_path / "colour.png")


def test_empty_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        read_dataset(tmp_path)
    with pytest.raises(InputError, match="not found"):
        read_dataset(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("nothing to read")
    with pytest.raises(InputError, match="cannot tell the layout"):
        detect_format(tmp_path)
    with pytest.raises(InputError, match="unknown dataset format"):
        read_dataset(tmp_path, format="zarr")


# ---------------------------------------------------------------- folder layouts


def _square(size: int, top: int, left: int, side: int, value: int) -> np.ndarray:
    label = np.zeros((size, size), np.uint8)
    label[top : top + side, left : left + side] = value
    return label


def test_folder_with_palette_masks_and_test_split(tmp_path: Path) -> None:
    for sub in ("images", "masks", "test/images", "test/masks"):
        (tmp_path / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {}
    for index in range(3):
        label = _square(16, 2, 3, 4, 1) + _square(16, 9, 9, 5, 2)
        labels[f"c{index}"] = label
        write_image_png(tmp_path / "images" / f"c{index}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
        write_mask_png(tmp_path / "masks" / f"c{index}.png", label)
    write_image_png(tmp_path / "images" / "unlabelled.png", np.zeros((16, 16), np.uint8))
    write_image_png(tmp_path / "test" / "images" / "t0.png", np.zeros((16, 16), np.uint8))
    write_mask_png(tmp_path / "test" / "masks" / "t0.png", _square(16, 0, 0, 8, 2))
    (tmp_path / "classes.txt").write_text("background\nnerve\nvessel\n")

    assert detect_format(tmp_path) == "folder"
    dataset = read_dataset(tmp_path)
    assert dataset.source_format == "folder"
    assert dataset.class_names == ["background", "nerve", "vessel"]
    by_id = {case.case_id: case for case in dataset.cases}
    assert sorted(by_id) == ["c0", "c1", "c2", "t0", "unlabelled"]
    assert by_id["t0"].split == "test" and by_id["c0"].split is None
    assert by_id["unlabelled"].label is None
    np.testing.assert_array_equal(by_id["c1"].label, labels["c1"])
    assert by_id["c0"].spacing == (1.0, 1.0) and by_id["c0"].metadata["spacing_known"] is False
    assert all(case.subject_id == case.case_id for case in dataset.cases)

    summary = describe_dataset(dataset)
    assert summary["num_cases"] == 5 and summary["num_labelled"] == 4
    assert summary["splits"] == {"none": 4, "test": 1}
    fractions = [entry["pixel_fraction"] for entry in summary["classes"]]
    total = 4 * 256
    assert fractions[1] == pytest.approx(3 * 16 / total)
    assert fractions[2] == pytest.approx((3 * 25 + 64) / total)
    assert summary["spacing"]["known"] is False
    text = format_description(summary)
    assert "nerve" in text and "vessel" in text and "full masks 4" in text


def test_folder_classes_txt_too_short(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_image_png(tmp_path / "images" / "a.png", np.zeros((8, 8), np.uint8))
    write_mask_png(tmp_path / "masks" / "a.png", _square(8, 0, 0, 2, 3))
    (tmp_path / "classes.txt").write_text("background\nlesion\n")
    with pytest.raises(InputError, match="class 3"):
        read_folder(tmp_path)


def test_ph2_like_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "lesion_masks").mkdir()
    rng = np.random.default_rng(3)
    diagnoses = {"IMD001": 0, "IMD002": 2, "IMD003": 1}
    for index, name in enumerate(diagnoses):
        write_image_png(tmp_path / "images" / f"{name}.png", rng.integers(0, 256, (12, 14, 3), dtype=np.uint8))
        mask = _square(12, 1, 1, 3 + index, 255)[:, :12]
        mask = np.pad(mask, ((0, 0), (0, 2)))
        Image.fromarray(mask).save(tmp_path / "lesion_masks" / f"{name}_lesion.png")
    rows = ["Name,Clinical Diagnosis,Asymmetry"] + [f"{name},{value},0" for name, value in diagnoses.items()]
    (tmp_path / "diagnosis.csv").write_text("\n".join(rows) + "\n")

    dataset = read_folder(tmp_path)
    assert dataset.class_names == ["background", "foreground"]
    assert len(dataset) == 3
    for index, case in enumerate(dataset.cases):
        assert case.image.shape == (12, 14, 3)
        assert case.label is not None and set(np.unique(case.label)) == {0, 1}
        assert int(case.label.sum()) == (3 + index) ** 2
        assert case.tags == [diagnoses[case.case_id]]
        assert case.metadata["diagnosis"] == diagnoses[case.case_id]
    assert describe_dataset(dataset)["annotations"]["tags"] == 3


# ---------------------------------------------------------------- HC18


def _hc18_fixture(root: Path, ellipses: dict[str, tuple[int, int, int, int, float]], pixel: float) -> None:
    folder = root / "training_set"
    folder.mkdir(parents=True)
    lines = ["filename,pixel size(mm),head circumference (mm)"]
    for name, (r, c, r_radius, c_radius, orientation) in ellipses.items():
        outline = np.zeros((120, 160), np.uint8)
        rr, cc = ellipse_perimeter(r, c, r_radius, c_radius, orientation=orientation, shape=outline.shape)
        outline[rr, cc] = 255
        write_image_png(folder / f"{name}.png", np.full((120, 160), 90, np.uint8))
        Image.fromarray(outline).save(folder / f"{name}_Annotation.png")
        lines.append(f"{name}.png,{pixel},{12.5}")
    (root / "training_set_pixel_size_and_HC.csv").write_text("\n".join(lines) + "\n")


def test_hc18_fills_outline_and_parses_subjects(tmp_path: Path) -> None:
    ellipses = {
        "010_HC": (60, 80, 30, 45, 0.0),
        "010_2HC": (58, 78, 25, 40, 0.4),
        "011_HC": (62, 82, 35, 50, 1.0),
    }
    _hc18_fixture(tmp_path, ellipses, pixel=0.12)
    assert detect_format(tmp_path) == "hc18"
    dataset = read_hc18(tmp_path)
    assert dataset.class_names == ["background", "head"]
    by_id = {case.case_id: case for case in dataset.cases}
    assert {case_id: case.subject_id for case_id, case in by_id.items()} == {
        "010_HC": "010",
        "010_2HC": "010",
        "011_HC": "011",
    }
    for name, (_, _, r_radius, c_radius, _) in ellipses.items():
        case = by_id[name]
        assert case.spacing == (0.12, 0.12)
        assert case.metadata["hc_mm"] == 12.5
        assert case.metadata["fill_method"] == "ellipse_fit"
        assert case.label is not None and case.label.dtype == np.uint8
        outline = read_mask(tmp_path / "training_set" / f"{name}_Annotation.png") > 0
        # a closed outline: the fitted ellipse gives exactly the filled outline, outline pixels included
        np.testing.assert_array_equal(case.label, ndimage.binary_fill_holes(outline))
        assert int(case.label.sum()) == pytest.approx(math.pi * r_radius * c_radius, rel=0.08)
        a, b = case.metadata["ellipse"][2:4]
        assert sorted((a, b)) == pytest.approx([r_radius, c_radius], abs=1.0)


def test_hc18_open_outline_is_completed(tmp_path: Path) -> None:
    outline = np.zeros((100, 100), bool)
    rr, cc = ellipse_perimeter(50, 50, 30, 40, shape=outline.shape)
    outline[rr, cc] = True
    outline[:, 80:] = False  # a gap: hole filling alone would leave the head empty
    mask, method, ellipse = fill_ellipse_outline(outline)
    assert method == "ellipse_fit" and ellipse is not None
    assert int(mask.sum()) == pytest.approx(math.pi * 30 * 40, rel=0.05)
    xc, yc, a, b, _ = ellipse
    assert (xc, yc) == pytest.approx((50, 50), abs=0.5)
    assert sorted((a, b)) == pytest.approx([30, 40], abs=0.5)


def test_hc18_missing_table_entry(tmp_path: Path) -> None:
    _hc18_fixture(tmp_path, {"001_HC": (60, 80, 30, 45, 0.0)}, pixel=0.1)
    write_image_png(tmp_path / "training_set" / "002_HC.png", np.zeros((120, 160), np.uint8))
    with pytest.raises(InputError, match=r"002_HC\.png"):
        read_hc18(tmp_path)


# ---------------------------------------------------------------- Echoplaque XML


def _circle(cx: float, cy: float, radius: float, n: int = 360) -> str:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return "".join(f"<p>{cx + radius * np.cos(t):.2f},{cy + radius * np.sin(t):.2f}</p>" for t in angles)


def _echoplaque_fixture(folder: Path) -> None:
    folder.mkdir(parents=True)
    frames = ""
    for number, (cx, cy) in ((0, (50.0, 60.0)), (2, (55.0, 52.0))):
        frames += (
            f"<Fm><Num>{number}</Num>"
            f"<Ctr><Npts>360</Npts><Type>L</Type>{_circle(cx, cy, 15)}</Ctr>"
            f"<Ctr><Npts>360</Npts><Type>V</Type>{_circle(cx, cy, 30)}</Ctr></Fm>"
        )
    xml = (
        '<?xml version="1.0" ?><AnalysisState><ImageCalibration><XCalibration>0.030000</XCalibration>'
        "<YCalibration>0.020000</YCalibration></ImageCalibration><FrameState>"
        f"<ImageRelativePoints>TRUE</ImageRelativePoints><Xoffset>36</Xoffset><Yoffset>5</Yoffset>{frames}"
        "</FrameState></AnalysisState>"
    )
    (folder / "PB_data.xml").write_text(xml)
    for number in range(3):
        Image.fromarray(np.full((110, 120, 3), 40 + number, np.uint8)).save(folder / f"{number}.jpg")


def test_echoplaque_contours_to_labels(tmp_path: Path) -> None:
    _echoplaque_fixture(tmp_path / "PB")
    assert detect_format(tmp_path / "PB") == "echoplaque"
    assert detect_format(tmp_path) == "echoplaque"  # a folder of pullbacks
    dataset = read_echoplaque(tmp_path / "PB")
    assert dataset.class_names == ["background", "lumen", "vessel_wall"]
    assert [case.case_id for case in dataset.cases] == ["PB_0000", "PB_0001", "PB_0002"]
    assert {case.subject_id for case in dataset.cases} == {"PB"}
    first, middle, last = dataset.cases
    assert middle.label is None
    for case, (cx, cy) in ((first, (50, 60)), (last, (55, 52))):
        assert case.image.shape == (110, 120) and case.image.dtype == np.uint8
        assert case.spacing == (0.02, 0.03)  # (row = Y, col = X)
        assert case.label is not None
        lumen, wall = case.label == 1, case.label == 2
        assert lumen.sum() == pytest.approx(math.pi * 15**2, rel=0.03)
        assert wall.sum() == pytest.approx(math.pi * (30**2 - 15**2), rel=0.03)
        rows, cols = np.nonzero(lumen)
        assert (cols.mean(), rows.mean()) == pytest.approx((cx, cy), abs=0.5)  # offsets not applied
        assert set(case.metadata["contours"]) == {"L", "V"}
        assert case.metadata["contours"]["L"][0][0] == pytest.approx((cx + 15, cy))


def test_echoplaque_frame_without_image(tmp_path: Path) -> None:
    _echoplaque_fixture(tmp_path / "PB")
    (tmp_path / "PB" / "2.jpg").unlink()
    with pytest.raises(InputError, match="frame 2"):
        read_echoplaque(tmp_path / "PB")


# ---------------------------------------------------------------- box CSV


_HEADER = "filename,width,height,class,xmin,ymin,xmax,ymax"


def _box_fixture(root: Path, extra_row: str = "") -> None:
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    names = {
        "train": [
            "frame_01_0001_001_png.rf.0123456789abcdef.jpg",
            "frame_01_0002_001_png.rf.fedcba9876543210.jpg",
        ],
        "test": ["frame_02_0001_001_png.rf.00112233445566aa.jpg"],
    }
    for split, files in names.items():
        rows = [_HEADER]
        for name in files:
            Image.fromarray(np.full((40, 50, 3), 70, np.uint8)).save(root / split / name)
            rows.append(f"{name},50,40,Lumen,5,6,25,30")
        rows.append(f"{files[0]},50,40,Calcium,30,2,45,10")
        if split == "train" and extra_row:
            rows.append(extra_row.format(name=files[1]))
        (root / split / "_annotations.csv").write_text("\n".join(rows) + "\n")


def test_box_csv_reads_boxes_and_splits(tmp_path: Path) -> None:
    _box_fixture(tmp_path)
    assert detect_format(tmp_path) == "boxcsv"
    dataset = read_box_csv(tmp_path)
    assert dataset.class_names == ["background", "Calcium", "Lumen"]
    by_id = {case.case_id: case for case in dataset.cases}
    assert sorted(by_id) == ["frame_01_0001_001", "frame_01_0002_001", "frame_02_0001_001"]
    first = by_id["frame_01_0001_001"]
    assert first.split == "train" and by_id["frame_02_0001_001"].split == "test"
    assert [box.as_tuple() for box in first.boxes] == [(5, 6, 25, 30), (30, 2, 45, 10)]
    assert [box.label for box in first.boxes] == [2, 1]
    assert first.label is None
    assert {case.subject_id for case in dataset.cases} == {"frame_01", "frame_02"}
    summary = describe_dataset(dataset)
    assert summary["annotations"]["num_boxes"] == 5 and summary["num_labelled"] == 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{name},50,40,Lumen,20,6,10,30", "empty"),
        ("{name},50,40,Lumen,20,6,60,30", "leaves"),
        ("{name},64,40,Lumen,5,6,25,30", "50x40"),
        ("ghost.jpg,50,40,Lumen,5,6,25,30", "ghost.jpg"),
    ],
)
def test_box_csv_bad_row_names_line(tmp_path: Path, row: str, message: str) -> None:
    _box_fixture(tmp_path, extra_row=row)
    with pytest.raises(InputError, match=rf"train.*_annotations\.csv line 5.*{message}"):
        read_box_csv(tmp_path)


# ---------------------------------------------------------------- volumes


def test_nifti_volume_with_labels(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    volume = np.random.default_rng(0).normal(size=(20, 30, 4)).astype(np.float32)
    label = np.zeros((20, 30, 4), np.uint8)
    label[5:10, 8:20, 1:3] = 1
    label[12:15, 3:6, 3] = 2
    affine = np.diag([0.5, 0.7, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), str(tmp_path / "imagesTr" / "liver_003_0000.nii.gz"))
    nib.save(nib.Nifti1Image(label, affine), str(tmp_path / "labelsTr" / "liver_003.nii.gz"))

    assert detect_format(tmp_path) == "nifti"
    dataset = read_nifti(tmp_path)
    assert dataset.class_names == ["background", "class_1", "class_2"]
    assert [case.case_id for case in dataset.cases] == [f"liver_003_z{z:03d}" for z in range(4)]
    for z, case in enumerate(dataset.cases):
        assert case.subject_id == "liver_003"
        assert case.image.dtype == np.float32 and case.image.shape == (20, 30)
        assert case.spacing == pytest.approx((0.5, 0.7))
        np.testing.assert_allclose(case.image, volume[:, :, z], rtol=1e-6)
        assert case.label is not None
        np.testing.assert_array_equal(case.label, label[:, :, z])


def test_nifti_channels_and_plain_numbered_names(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    for sub in ("a/imagesTr", "b/images"):
        (tmp_path / sub).mkdir(parents=True)
    first, second = np.zeros((6, 5, 2), np.float32), np.ones((6, 5, 2), np.float32)
    for folder in ("a/imagesTr", "b/images"):
        nib.save(nib.Nifti1Image(first, np.eye(4)), str(tmp_path / folder / "scan_0000.nii.gz"))
        nib.save(nib.Nifti1Image(second, np.eye(4)), str(tmp_path / folder / "scan_0001.nii.gz"))
    stacked = read_nifti(tmp_path / "a")  # nnU-Net: channel files of one volume
    assert [case.case_id for case in stacked.cases] == ["scan_z000", "scan_z001"]
    assert stacked.cases[0].image.shape == (6, 5, 2)
    np.testing.assert_array_equal(stacked.cases[0].image[..., 1], second[:, :, 0])
    plain = read_nifti(tmp_path / "b")  # generic layout: numbered volumes, not channels
    assert [case.case_id for case in plain.cases] == [
        "scan_0000_z000",
        "scan_0000_z001",
        "scan_0001_z000",
        "scan_0001_z001",
    ]
    assert all(case.label is None for case in plain.cases)


def test_nifti_label_of_wrong_shape(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.float32), np.eye(4)), str(tmp_path / "images" / "v.nii"))
    nib.save(nib.Nifti1Image(np.zeros((8, 7, 2), np.uint8), np.eye(4)), str(tmp_path / "labels" / "v.nii"))
    with pytest.raises(InputError, match=r"v\.nii.*\(8, 7, 2\)"):
        read_nifti(tmp_path)


def _write_dicom(path: Path, *, pixels: np.ndarray, z: float, instance: int, series_uid: str) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "P7"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 3
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.6]
    ds.RescaleSlope = 2
    ds.RescaleIntercept = -1024
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_series_order_and_spacing(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    from pydicom.uid import generate_uid

    uid = generate_uid()
    (tmp_path / "series").mkdir()
    # file names in the reverse order of the slice positions; instance numbers scrambled too
    for file_index, (z, instance) in enumerate([(10.0, 2), (5.0, 3), (0.0, 1)]):
        pixels = np.full((6, 4), int(z) + 100, np.uint16)
        _write_dicom(tmp_path / "series" / f"im{file_index}.dcm", pixels=pixels, z=z, instance=instance, series_uid=uid)
    assert detect_format(tmp_path) == "dicom"
    dataset = read_dicom(tmp_path)
    assert [case.case_id for case in dataset.cases] == ["P7_3_z000", "P7_3_z001", "P7_3_z002"]
    for case, z in zip(dataset.cases, (0.0, 5.0, 10.0), strict=True):
        assert case.spacing == (0.8, 0.6)
        assert case.subject_id == "P7" and case.label is None
        assert case.image.dtype == np.float32 and case.image.shape == (6, 4)
        np.testing.assert_array_equal(case.image, np.full((6, 4), 2 * (z + 100) - 1024, np.float32))


def test_corrupt_dicom_names_file(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    (tmp_path / "bad.dcm").write_bytes(b"this is not dicom at all")
    with pytest.raises(InputError, match=r"bad\.dcm"):
        read_dicom(tmp_path)


# ---------------------------------------------------------------- dispatch


def test_phantom_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    import frugalseg.data.phantom as phantom

    calls: list[tuple[int, int, int]] = []

    def fake(num_frames: int = 200, *, size: int = 256, seed: int = 0) -> Dataset:
        calls.append((num_frames, size, seed))
        return Dataset(cases=[], class_names=["background"], source_format="phantom")

    monkeypatch.setattr(phantom, "make_phantom_dataset", fake)
    assert detect_format("phantom:5") == "phantom"
    read_dataset("phantom")
    read_dataset("phantom:12")
    read_dataset("phantom:7:64")
    assert calls == [(200, 256, 0), (12, 256, 0), (7, 64, 0)]
    for bad in ("phantom:x", "phantom:1:2:3", "phantom:0"):
        with pytest.raises(InputError, match="phantom"):
            read_dataset(bad)
