"""Weak annotations: kinds, file round trips, simulated annotators, effort model, checks and agreement."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from conftest import real_data_root
from frugalseg.annotations import (
    EFFORT_MODEL,
    Annotation,
    Boxes,
    PartialLabels,
    Point,
    Points,
    Scribbles,
    Tags,
    agreement,
    annotation_seconds,
    boundary_length,
    box_iou,
    check_annotation,
    check_annotations,
    check_case,
    format_report,
    from_case,
    full_mask_seconds,
    points_to_label_map,
    read_annotations_json,
    read_partial_labels,
    read_scribbles,
    simulate,
    simulate_boxes,
    simulate_partial,
    simulate_points,
    simulate_scribbles,
    simulate_tags,
    write_annotations_json,
    write_partial_labels,
    write_scribbles,
)
from frugalseg.data.boxcsv import read_box_csv
from frugalseg.data.case import IGNORE, Box, Case
from frugalseg.errors import InputError

SIZE = 96


def _disc(radius: float, *, size: int = SIZE, centre: tuple[float, float] = (40.0, 45.0)) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return np.hypot(rows - centre[0], cols - centre[1]) < radius


def scene() -> np.ndarray:
    """A disc (class 1) inside a ring (class 2), and a square of class 1 touching the image's corner."""
    label = np.zeros((SIZE, SIZE), dtype=np.uint8)
    label[_disc(26)] = 2
    label[_disc(15)] = 1
    label[80:, :12] = 1
    return label


# ------------------------------------------------------------------------------------------------ kinds


def test_points_to_label_map_places_each_click() -> None:
    points = Points((Point(3, 4, 2), Point(5.4, 0.6, 0), Point(7, 7, 1)))
    label, valid = points_to_label_map(points, (8, 9))
    assert label.dtype == np.uint8 and valid.dtype == bool and label.shape == (8, 9)
    assert (label[3, 4], label[5, 1], label[7, 7]) == (2, 0, 1)  # (5.4, 0.6) rounds to pixel (5, 1)
    assert int(valid.sum()) == 3 and np.all(label[~valid] == IGNORE)
    with pytest.raises(InputError, match="outside"):
        points_to_label_map([Point(8, 0, 1)], (8, 9))
    with pytest.raises(InputError, match="disagree"):
        points_to_label_map([Point(1, 1, 1), Point(1.2, 0.9, 0)], (8, 9))


def test_kind_names_and_conversions() -> None:
    assert [k.kind for k in (Tags(()), Boxes(()), Points(()))] == ["tags", "boxes", "points"]
    scribbles = Scribbles(np.array([[0, 255], [2, 255]]))
    assert scribbles.kind == "scribbles" and scribbles.classes() == (0, 2)
    assert scribbles.valid_mask.tolist() == [[True, False], [True, False]]
    assert not scribbles.label.flags.writeable
    partial = PartialLabels(np.array([[0, 1], [1, 0]]), (3, 1))
    assert partial.kind == "partial" and partial.annotated_classes == (1, 3)
    assert partial.annotated_mask(4).tolist() == [True, True, False, True]
    assert Tags((2, 1)).as_vector(3).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="background"):
        PartialLabels(np.zeros((2, 2), dtype=np.uint8), (0,))
    with pytest.raises(ValueError, match="2D"):
        Scribbles(np.zeros(4, dtype=np.uint8))


def test_from_case_takes_boxes_and_tags_only_when_asked() -> None:
    case = Case(case_id="c", subject_id="s", image=np.zeros((4, 4)), boxes=[Box(xmin=0, ymin=0, xmax=2, ymax=2)])
    case.tags = [1]
    assert set(from_case(case)) == {"boxes"}
    assert from_case(case, tags=True)["tags"] == Tags((1,))


# -------------------------------------------------------------------------------------------------- io


def test_json_round_trip(tmp_path: Path) -> None:
    annotations: dict[str, dict[str, Annotation]] = {
        "frame_01": {
            "tags": Tags((1, 2)),
            "boxes": Boxes(
                (Box(xmin=1, ymin=2, xmax=10.5, ymax=20, label=1), Box(xmin=0, ymin=0, xmax=3, ymax=4, label=2))
            ),
            "points": Points((Point(5, 6, 1), Point(7.25, 8, 0))),
        },
        "valid/frame_02": {"points": Points(())},
    }
    path = write_annotations_json(tmp_path / "ann" / "weak.json", annotations)
    document = json.loads(path.read_text())
    assert document["schema_version"] == 1
    assert json.dumps(document["cases"]["frame_01"]["boxes"][0]) == "[1, 1, 2, 10.5, 20]"
    assert document["cases"]["frame_01"]["points"][1] == [7.25, 8, 0]
    assert read_annotations_json(path) == annotations
    assert not list(tmp_path.glob("ann/.*.tmp"))  # atomic write left no temporary file


def test_json_rejects_non_finite_coordinates(tmp_path: Path) -> None:
    bad = {"c": {"boxes": Boxes((Box(xmin=math.nan, ymin=0, xmax=1, ymax=1),))}}
    with pytest.raises(ValueError, match="case 'c'"):
        write_annotations_json(tmp_path / "a.json", bad)
    with pytest.raises(ValueError, match="label maps"):
        write_annotations_json(tmp_path / "a.json", {"c": {"scribbles": Scribbles(np.zeros((2, 2), np.uint8))}})


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ({"boxes": [[1, 0, 0, 5]]}, "case 'bad' field boxes[0]"),
        ({"boxes": [[1, 0, None, 5, 5]]}, "case 'bad' field boxes[0][2]"),
        ({"boxes": [[1.5, 0, 0, 5, 5]]}, "case 'bad' field boxes[0][0] (label)"),
        ({"points": [[1, "x", 1]]}, "case 'bad' field points[0][1] (col)"),
        ({"points": {"row": 1}}, "case 'bad' field points is not a list"),
        ({"tags": [1, True]}, "case 'bad' field tags[1]"),
        ({"scribbles": []}, "case 'bad' has unknown field 'scribbles'"),
    ],
)
def test_json_malformed_entries_name_case_and_field(tmp_path: Path, case: dict, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema_version": 1, "cases": {"good": {"tags": [1]}, "bad": case}}))
    with pytest.raises(InputError) as info:
        read_annotations_json(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_json_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"schema_version": 1, "cases": {')
    with pytest.raises(InputError, match="not valid JSON"):
        read_annotations_json(path)
    path.write_text(json.dumps({"schema_version": 99, "cases": {}}))
    with pytest.raises(InputError, match="newer"):
        read_annotations_json(path)
    with pytest.raises(InputError, match="not found"):
        read_annotations_json(tmp_path / "missing.json")


def test_scribble_pngs_round_trip_keep_ignore(tmp_path: Path) -> None:
    only_background = np.full((6, 7), IGNORE, dtype=np.uint8)
    only_background[2, 1:5] = 0  # values {0, 255}: must not be read as a binary 0/1 mask
    rich = np.full((6, 7), IGNORE, dtype=np.uint8)
    rich[0, :3], rich[4, 2:6], rich[5, 6] = 1, 2, 0
    scribbles = {"a": Scribbles(only_background), "test/b": Scribbles(rich)}
    paths = write_scribbles(tmp_path / "scr", scribbles)
    assert paths[1] == tmp_path / "scr" / "test" / "b.png"
    back = read_scribbles(tmp_path / "scr")
    assert set(back) == {"a", "test/b"}
    for key, annotation in scribbles.items():
        assert np.array_equal(back[key].label, annotation.label)
    with pytest.raises(InputError, match="shape"):
        read_scribbles(tmp_path / "scr", expected_shapes={"a": (7, 6)})


def test_partial_label_pngs_round_trip(tmp_path: Path) -> None:
    label = scene()
    partial = {
        "p1": simulate_partial(label, annotated_classes=[2]),
        "p2": simulate_partial(label, annotated_classes=[1, 2]),
    }
    write_partial_labels(tmp_path / "partial", partial)
    back = read_partial_labels(tmp_path / "partial")
    for key, annotation in partial.items():
        assert np.array_equal(back[key].label, annotation.label)
        assert back[key].annotated_classes == annotation.annotated_classes
    (tmp_path / "partial" / "annotated_classes.json").unlink()
    with pytest.raises(InputError, match=r"annotated_classes\.json"):
        read_partial_labels(tmp_path / "partial")


# ------------------------------------------------------------------------------------------- simulators


def test_tags_and_partial() -> None:
    label = scene()
    label[0, 0] = IGNORE
    assert simulate_tags(label) == Tags((1, 2))
    assert simulate_tags(label, min_pixels=10_000) == Tags(())
    partial = simulate_partial(label, annotated_classes=[2])
    assert np.array_equal(partial.label == 2, label == 2)
    assert np.all(partial.label[label == 1] == 0) and partial.label[0, 0] == IGNORE
    assert partial.annotated_classes == (2,)


def test_tight_boxes_equal_bounding_boxes() -> None:
    label = scene()
    boxes = simulate_boxes(label)
    expected = []
    for c in (1, 2):
        components, count = ndimage.label(label == c, structure=np.ones((3, 3)))
        for index in range(1, count + 1):
            rows, cols = np.nonzero(components == index)
            expected.append((c, cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    got = [(b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes.boxes]
    assert sorted(got) == sorted(expected) and len(got) == 3
    rows, cols = np.nonzero(label == 1)
    per_class = simulate_boxes(label, per="class").boxes
    assert (per_class[0].xmin, per_class[0].ymin, per_class[0].xmax, per_class[0].ymax) == (
        cols.min(),
        rows.min(),
        cols.max() + 1,
        rows.max() + 1,
    )


def test_jittered_boxes_stay_in_the_image_and_are_not_empty() -> None:
    label = scene()
    tight = simulate_boxes(label).boxes
    moved = 0
    for seed in range(30):
        for box, ref in zip(simulate_boxes(label, jitter=0.4, rng=seed).boxes, tight, strict=True):
            assert 0 <= box.xmin < box.xmax <= SIZE and 0 <= box.ymin < box.ymax <= SIZE
            assert box.label == ref.label
            width, height = ref.xmax - ref.xmin, ref.ymax - ref.ymin
            assert abs(box.xmin - ref.xmin) <= 0.4 * width + 0.5 and abs(box.ymax - ref.ymax) <= 0.4 * height + 0.5
            moved += box != ref
    assert moved > 0
    with pytest.raises(ValueError, match="jitter"):
        simulate_boxes(label, jitter=0.5, rng=0)


@pytest.mark.parametrize("kind", ["points", "scribbles", "boxes"])
def test_simulators_replay_by_seed_and_differ_across_seeds(kind: str) -> None:
    label = scene()
    options = {"jitter": 0.2} if kind == "boxes" else {}

    def run(seed: int) -> object:
        annotation = simulate(kind, label, rng=np.random.default_rng(seed), **options)
        return annotation.label.tobytes() if isinstance(annotation, Scribbles) else annotation

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_points_fall_inside_their_object_and_negatives_away_from_objects() -> None:
    label = scene()
    distance_to_objects = ndimage.distance_transform_edt(label == 0)
    for seed in range(5):
        points = simulate_points(label, points_per_object=3, negatives=4, negative_margin=6, rng=seed).points
        positives = [p for p in points if p.label > 0]
        negatives = [p for p in points if p.label == 0]
        assert len(positives) == 9 and len(negatives) == 4  # three objects
        for p in positives:
            assert label[int(p.row), int(p.col)] == p.label
        for p in negatives:
            assert label[int(p.row), int(p.col)] == 0 and distance_to_objects[int(p.row), int(p.col)] >= 6
        assert len({(p.row, p.col) for p in points}) == len(points)


def test_points_prefer_the_interior() -> None:
    disc = _disc(20).astype(np.uint8)
    depth = ndimage.distance_transform_edt(disc)

    def mean_depth(bias: float) -> float:
        points = simulate_points(disc, points_per_object=200, negatives=0, interior_bias=bias, rng=3).points
        return float(np.mean([depth[int(p.row), int(p.col)] for p in points]))

    assert mean_depth(2.0) > mean_depth(0.0) + 2.0


def test_scribbles_lie_on_their_class_and_cover_a_small_part() -> None:
    label = scene()
    for seed in range(3):
        scribbles = simulate_scribbles(label, rng=seed)
        assert scribbles.shape == label.shape
        assert scribbles.classes() == (0, 1, 2)
        labelled = scribbles.valid_mask
        assert np.all(scribbles.label[labelled] == label[labelled])  # no scribble pixel on another class
        for c in (0, 1, 2):
            fraction = np.count_nonzero(scribbles.label == c) / np.count_nonzero(label == c)
            assert 0 < fraction < 0.35, (c, fraction)
    ring_only = simulate_scribbles(label, rng=0, background=False, classes=[2])
    assert ring_only.classes() == (2,)


def test_background_is_scribbled_beside_the_objects_and_far_from_them() -> None:
    label = np.zeros((160, 160), dtype=np.uint8)
    label[70:90, 70:90] = 1
    distance = ndimage.distance_transform_edt(label == 0)
    background = simulate_scribbles(label, rng=0, erosion=3, background_ring=10).label == 0
    assert background[(distance > 3) & (distance <= 13)].any()  # the ring hugging the object
    assert background[distance > 30].any()  # the rest of the image, as ACDC's background strokes
    assert not background[distance <= 3].any()


def test_simulate_dispatch_errors() -> None:
    label = scene()
    with pytest.raises(ValueError, match="kind"):
        simulate("polygons", label, rng=0)
    with pytest.raises(ValueError, match="annotated_classes"):
        simulate("partial", label, rng=0)
    partial = simulate("partial", label, rng=0, annotated_classes=[1])
    assert isinstance(partial, PartialLabels) and partial.annotated_classes == (1,)
    with pytest.raises(ValueError, match="rng"):
        simulate_points(label, rng=None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- effort


def test_boundary_length_of_a_disc_is_its_circumference() -> None:
    for radius in (10, 20, 30):
        assert boundary_length(_disc(radius, centre=(47.5, 47.5))) == pytest.approx(2 * math.pi * radius, rel=0.05)
    square = np.zeros((10, 10), dtype=bool)
    square[2:6, 2:6] = True
    assert boundary_length(square, spacing=(2.0, 0.5)) == pytest.approx((8 * 0.5 + 8 * 2.0) * math.pi / 4)


def test_full_mask_cost_grows_with_the_boundary() -> None:
    costs = [full_mask_seconds(_disc(r, centre=(48, 48)).astype(np.uint8)) for r in (5, 10, 20, 40)]
    assert all(a < b for a, b in itertools.pairwise(costs))
    label = _disc(20, centre=(48, 48)).astype(np.uint8)
    expected = EFFORT_MODEL.object_seconds + boundary_length(label) / 10.0 * EFFORT_MODEL.vertex_seconds
    assert full_mask_seconds(label) == pytest.approx(expected)
    assert full_mask_seconds(label, spacing=(0.3, 0.3)) == pytest.approx(full_mask_seconds(label))


def test_effort_orders_the_kinds_for_a_typical_image() -> None:
    label = np.zeros((256, 256), dtype=np.uint8)
    label[_disc(60, size=256, centre=(128, 128))] = 2
    label[_disc(35, size=256, centre=(128, 128))] = 1
    rng = np.random.default_rng(0)
    full = full_mask_seconds(label)
    scribbles = annotation_seconds(simulate_scribbles(label, rng=rng))
    boxes = annotation_seconds(simulate_boxes(label))
    tags = annotation_seconds(simulate_tags(label))
    assert full > scribbles > boxes > tags > 0
    assert boxes == 2 * EFFORT_MODEL.box_seconds and tags == 2 * EFFORT_MODEL.tag_seconds
    assert annotation_seconds(Tags((1,)), num_classes=5) == 4 * EFFORT_MODEL.tag_seconds
    assert annotation_seconds(simulate_partial(label, annotated_classes=[1, 2])) == pytest.approx(full)
    drawn = replace(EFFORT_MODEL, box_seconds=34.5)
    assert annotation_seconds(simulate_boxes(label), model=drawn) == 69.0
    assert annotation_seconds(Points((Point(0, 0, 1), Point(1, 1, 0)))) == 2 * EFFORT_MODEL.point_seconds


# ---------------------------------------------------------------------------------------------- checks


def _good_case() -> tuple[dict, tuple[int, int]]:
    label = scene()
    return (
        {
            "tags": simulate_tags(label),
            "boxes": simulate_boxes(label),
            "points": simulate_points(label, points_per_object=2, negatives=2, rng=0),
            "scribbles": simulate_scribbles(label, rng=0),
        },
        label.shape,
    )


def test_good_annotations_raise_no_problem() -> None:
    annotations, shape = _good_case()
    assert check_case(annotations, case_id="ok", num_classes=3, shape=shape) == []
    partial = simulate_partial(scene(), annotated_classes=[1])
    assert check_annotation(partial, case_id="ok", num_classes=3, shape=shape) == []
    report = check_annotations({"ok": annotations, "ok2": {"partial": partial}}, num_classes=3)
    assert report.ok and report.num_cases == 2 and report.annotations["boxes"] == 1
    assert "no problem" in format_report(report)


def _scribble_map(value: int, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    out = np.full(shape, IGNORE, dtype=np.uint8)
    out[41, 40:50] = value
    return out


BAD_ANNOTATIONS = [
    ("degenerate box", {"boxes": Boxes((Box(xmin=5, ymin=5, xmax=5, ymax=9),))}, "is empty"),
    ("box leaves image", {"boxes": Boxes((Box(xmin=50, ymin=5, xmax=97, ymax=9),))}, "leaves the 96x96"),
    ("NaN box", {"boxes": Boxes((Box(xmin=math.nan, ymin=5, xmax=9, ymax=9),))}, "non-finite"),
    ("unknown box label", {"boxes": Boxes((Box(xmin=0, ymin=0, xmax=9, ymax=9, label=3),))}, "not a foreground class"),
    ("background box", {"boxes": Boxes((Box(xmin=0, ymin=0, xmax=9, ymax=9, label=0),))}, "not a foreground class"),
    ("duplicate box", {"boxes": Boxes((Box(xmin=0, ymin=0, xmax=9, ymax=9),) * 2)}, "repeats box 0"),
    ("point outside", {"points": Points((Point(96, 3, 1),))}, "outside the 96x96"),
    ("NaN point", {"points": Points((Point(math.nan, 3, 1),))}, "non-finite"),
    ("unknown point label", {"points": Points((Point(3, 3, 7),))}, "not a class"),
    ("conflicting points", {"points": Points((Point(3, 3, 1), Point(3, 3, 0)))}, "same pixel"),
    ("scribble size", {"scribbles": Scribbles(_scribble_map(1, (SIZE, SIZE + 1)))}, "but the image is 96x96"),
    ("scribble label", {"scribbles": Scribbles(_scribble_map(5))}, "unknown labels [5]"),
    ("empty scribbles", {"scribbles": Scribbles(np.full((SIZE, SIZE), IGNORE, np.uint8))}, "no pixel"),
    ("unknown tag", {"tags": Tags((4,))}, "tag 4 is not a class"),
    ("background tag", {"tags": Tags((0,))}, "tag 0 is background"),
    ("undeclared partial class", {"partial": PartialLabels(scene(), (1,))}, "does not list"),
    ("partial class unknown", {"partial": PartialLabels(np.zeros((SIZE, SIZE), np.uint8), (9,))}, "annotated class 9"),
    (
        "point outside its box",
        {"boxes": Boxes((Box(xmin=0, ymin=0, xmax=10, ymax=10),)), "points": Points((Point(20, 20, 1),))},
        "lies in no box of its class",
    ),
    (
        "point in a box of another class",
        {"boxes": Boxes((Box(xmin=0, ymin=0, xmax=10, ymax=10, label=2),)), "points": Points((Point(5, 5, 1),))},
        "lies in no box of its class",
    ),
    (
        "scribble outside its box",
        {"boxes": Boxes((Box(xmin=40, ymin=41, xmax=45, ymax=42),)), "scribbles": Scribbles(_scribble_map(1))},
        "5 scribble pixels of class 1 lie in no box",
    ),
    (
        "untagged box class",
        {"tags": Tags((1,)), "boxes": Boxes((Box(xmin=0, ymin=0, xmax=9, ymax=9, label=2),))},
        "[2]",
    ),
]


@pytest.mark.parametrize(("name", "annotations", "needle"), BAD_ANNOTATIONS, ids=[b[0] for b in BAD_ANNOTATIONS])
def test_each_check_triggers_on_a_crafted_bad_annotation(name: str, annotations: dict, needle: str) -> None:
    problems = check_case(annotations, case_id="case7", num_classes=3, shape=(SIZE, SIZE))
    assert problems, name
    assert any(needle in p.message for p in problems), [str(p) for p in problems]
    assert all(p.case_id == "case7" for p in problems)
    report = check_annotations({"case7": annotations}, num_classes=3, shapes={"case7": (SIZE, SIZE)})
    assert not report.ok and "case7" in format_report(report)


def test_checks_on_cases_include_their_label_maps() -> None:
    label = scene()
    label[0, 0] = 9
    case = Case(case_id="c1", subject_id="s", image=np.zeros((SIZE, SIZE), np.uint8), label=label)
    case.boxes = [Box(xmin=0, ymin=0, xmax=200, ymax=5)]
    report = check_annotations([case], num_classes=3)
    assert {p.kind for p in report.problems} == {"label", "boxes"}
    assert "1 cases" in format_report(report)


# ------------------------------------------------------------------------------------------- agreement


def test_agreement_of_two_offset_boxes_is_analytic() -> None:
    a = Box(xmin=0, ymin=0, xmax=10, ymax=10)
    b = Box(xmin=4, ymin=2, xmax=14, ymax=12)
    inter = (10 - 4) * (10 - 2)
    expected = inter / (100 + 100 - inter)
    assert box_iou(a, b) == pytest.approx(expected)
    far = Box(xmin=50, ymin=50, xmax=60, ymax=60, label=1)
    other_class = Box(xmin=0, ymin=0, xmax=10, ymax=10, label=2)
    result = agreement(Boxes((a, far, other_class)), Boxes((b, other_class)))
    assert result["box_iou"] == pytest.approx((expected + 1.0) / 2)
    assert result["matched"] == 2 and result["unmatched"] == 1


def test_agreement_of_points_scribbles_and_tags() -> None:
    a = Points((Point(0, 0, 1), Point(10, 10, 0)))
    b = Points((Point(3, 4, 1), Point(10, 10, 0), Point(50, 50, 2)))
    result = agreement(a, b)
    assert result["point_distance"] == pytest.approx(2.5) and result["unmatched"] == 1
    assert agreement(a, b, spacing=(2.0, 1.0))["point_distance"] == pytest.approx(math.hypot(6, 4) / 2)
    first = np.full((4, 4), IGNORE, np.uint8)
    second = first.copy()
    first[0, :4] = [1, 1, 0, 0]
    second[0, :3] = [1, 0, 0]
    second[3, 3] = 1  # labelled by one annotator only: not compared
    dice = agreement(Scribbles(first), Scribbles(second))
    # on the 3 pixels both labelled: class 1 {0,1} vs {0} -> 2/3; class 0 {2} vs {1,2} -> 2/3
    assert dice["both_labelled"] == 3 and dice["dice"] == pytest.approx(2 / 3)
    assert agreement(Tags((1, 2)), Tags((2, 3)))["tag_jaccard"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="one kind"):
        agreement(Tags((1,)), a)


# ------------------------------------------------------------------------------------------- real data


def test_real_ivus_lumen_boxes_pass_the_checks() -> None:
    root = real_data_root() / "ivus_2011b_lumen_boxes"
    if not root.is_dir():
        pytest.skip(f"real data {root} is absent (set FRUGAL_DATA to the shared data folder)")
    dataset = read_box_csv(root)
    report = check_annotations(dataset, num_classes=dataset.num_classes)
    assert report.ok, format_report(report)
    boxed = [case for case in dataset.cases if case.boxes]
    assert report.annotations.get("boxes", 0) == len(boxed) > 0
    effort = sum(annotation_seconds(from_case(case)["boxes"]) for case in boxed)
    assert effort == sum(len(case.boxes) for case in boxed) * EFFORT_MODEL.box_seconds
    # the lumen box of the first case, taken as a scribble-free point check: its centre lies in its box
    case = boxed[0]
    box = case.boxes[0]
    centre = Points((Point((box.ymin + box.ymax) / 2, (box.xmin + box.xmax) / 2, box.label),))
    assert (
        check_case(
            {"boxes": Boxes(tuple(case.boxes)), "points": centre},
            case_id=case.case_id,
            num_classes=dataset.num_classes,
            shape=case.shape,
        )
        == []
    )
