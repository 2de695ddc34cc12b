"""Weak-supervision commands: ``annotations check|simulate`` and ``bench weak``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from frugalseg.cli._app import (
    DEFAULTS,
    DataOption,
    FormatOption,
    annotations_app,
    bench_app,
    console,
    read_annotations,
    read_data,
)

SIMULATED_KINDS = ("tags", "boxes", "points", "scribbles", "partial")


@annotations_app.command("check")
def annotations_check(
    data: DataOption,
    annotations: Annotated[
        Path | None,
        typer.Option(help="Annotations JSON (tags/boxes/points) or scribble PNG folder; default: the dataset's own."),
    ] = None,
    compare: Annotated[
        Path | None, typer.Option(help="A second annotator's file or folder: report agreement with --annotations.")
    ] = None,
    data_format: FormatOption = None,
) -> None:
    """Check annotations (boxes, points, scribbles, labels) against their images; exit 1 on any problem."""
    from frugalseg.annotations import check_annotations, format_report

    dataset = read_data(data, data_format)
    shapes = {case.case_id: case.shape for case in dataset.cases}
    if annotations is None:
        report = check_annotations(dataset, num_classes=dataset.num_classes)
    else:
        report = check_annotations(
            read_annotations(annotations, shapes), num_classes=dataset.num_classes, shapes=shapes
        )
    typer.echo(format_report(report))
    if compare is not None:
        if annotations is None:
            raise typer.BadParameter("--compare needs --annotations (the first annotator)")
        typer.echo(_agreement_text(read_annotations(annotations, shapes), read_annotations(compare, shapes)))
    if not report.ok:
        raise typer.Exit(1)


def _agreement_text(first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]]) -> str:
    """Mean of every agreement measure over the cases and kinds both annotators annotated."""
    import numpy as np

    from frugalseg.annotations import agreement

    values: dict[str, list[float]] = {}
    for case_id, by_kind in first.items():
        for kind, annotation in by_kind.items():
            other = second.get(case_id, {}).get(kind)
            if other is None:
                continue
            for name, value in agreement(annotation, other).items():
                values.setdefault(f"{kind} {name}", []).append(value)
    if not values:
        return "agreement: the two annotators share no annotated case and kind"
    parts = [f"{name} {np.nanmean(v):.3f} (n={len(v)})" for name, v in sorted(values.items())]
    return "agreement: " + ", ".join(parts)


@annotations_app.command("simulate")
def annotations_simulate(
    data: DataOption,
    kind: Annotated[str, typer.Option(help="tags, boxes, points, scribbles or partial.")],
    out: Annotated[Path, typer.Option("--out", help="JSON file (tags/boxes/points) or folder (scribbles/partial).")],
    seed: Annotated[int, typer.Option()] = 0,
    box_jitter: Annotated[float, typer.Option(help="Box side jitter as a fraction of the side.")] = 0.0,
    points_per_object: Annotated[int, typer.Option(help="Clicks per object.")] = 1,
    data_format: FormatOption = None,
) -> None:
    """Simulate one annotator from the full masks (seeded) and write the annotations, with their effort."""
    from frugalseg.annotations import annotation_seconds, write_annotations_json, write_partial_labels, write_scribbles
    from frugalseg.engine.weak_config import WeakConfig
    from frugalseg.engine.weak_labels import weak_annotations

    if kind not in SIMULATED_KINDS:
        raise typer.BadParameter(f"--kind {kind}: expected one of {', '.join(SIMULATED_KINDS)}")
    dataset = read_data(data, data_format)
    weak = WeakConfig(labels=kind, box_jitter=box_jitter, points_per_object=points_per_object)
    made: dict[str, Any] = weak_annotations(dataset.cases, weak, num_classes=dataset.num_classes, seed=seed)
    if kind == "scribbles":
        write_scribbles(out, made)
    elif kind == "partial":
        write_partial_labels(out, made)
    else:
        write_annotations_json(out, {case_id: {kind: annotation} for case_id, annotation in made.items()})
    spacing = {case.case_id: case.spacing for case in dataset.cases}
    seconds = [annotation_seconds(a, num_classes=dataset.num_classes, spacing=spacing[i]) for i, a in made.items()]
    mean = sum(seconds) / max(len(seconds), 1)
    typer.echo(f"{len(made)} {kind} annotations -> {out} (simulated effort {mean:.1f} s per image)")


@bench_app.command("weak")
def bench_weak(
    data: DataOption,
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON.")],
    kinds: Annotated[str, typer.Option(help="Comma-separated annotation kinds.")] = ",".join(SIMULATED_KINDS),
    methods: Annotated[
        list[str] | None, typer.Option("--method", help="KIND:METHOD to run instead of the kind's default (repeat).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Few cases and 2 epochs, for a smoke run.")] = False,
    model: Annotated[str, typer.Option(help="Registered model name (every run).")] = DEFAULTS.model,
    size: Annotated[int, typer.Option(help="Training/inference side in pixels.")] = DEFAULTS.size,
    epochs: Annotated[int, typer.Option(help="Epochs of every run.")] = DEFAULTS.epochs,
    pretrained: Annotated[bool, typer.Option(help="Start from cached ImageNet weights.")] = DEFAULTS.pretrained,
    seed: Annotated[int, typer.Option()] = 0,
    refine_rounds: Annotated[
        int | None, typer.Option(min=0, help="Pseudo-mask re-estimations of refined methods (default: the method's).")
    ] = None,
    data_format: FormatOption = None,
) -> None:
    """Each annotation kind and method against full supervision on held-out subjects, with annotation effort."""
    from frugalseg.engine.config import TrainConfig
    from frugalseg.engine.weak_bench import bench_weak as run
    from frugalseg.engine.weak_bench import format_weak_table, parse_methods

    config = TrainConfig(model=model, size=size, epochs=epochs, pretrained=pretrained, seed=seed)
    report = run(
        read_data(data, data_format),
        json_path,
        kinds=[kind.strip() for kind in kinds.split(",") if kind.strip()],
        methods=parse_methods(methods or []),
        quick=quick,
        seed=seed,
        config=config,
        weak_options=None if refine_rounds is None else {"refine_rounds": refine_rounds},
        log=console.log,
    )
    typer.echo(format_weak_table(report))
