"""Foundation-model commands: ``pseudolabel``, ``finetune-sam`` and ``bench foundation`` (LiteMedSAM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from frugalseg.cli._app import (
    BoxFitOption,
    DataOption,
    FormatOption,
    app,
    bench_app,
    console,
    read_annotations,
    read_data,
)

ShapeOption = Annotated[
    str,
    typer.Option(
        "--shape",
        help="ellipse: each mask becomes the ellipse fitted to its outline, for objects that are ellipses by "
        "definition such as a fetal head (foundation.shape_prior); none keeps the model's masks.",
    ),
]
BoxSlackOption = Annotated[
    str,
    typer.Option(
        "--box-slack",
        help="With --shape: also try each tight box widened by these fractions of its size (comma-separated, "
        "0.05,0.1 on HC18) and keep the most shape-like mask; for boxes that may cut their objects.",
    ),
]
BoxSnapOption = Annotated[
    str,
    typer.Option(
        "--box-snap",
        help="With --shape: INSIDE,OUTSIDE fractions of the box's size; each side of the fitted shape that stops "
        "that little inside its tight box, or runs that little past it, moves onto the box side (0.03,0.02 on "
        "HC18: see the README).",
    ),
]
BoxWidenOption = Annotated[
    float,
    typer.Option(
        "--box-widen",
        help="Decode each tight box widened on every side by this fraction of its size (0.05 on HC18 with "
        "--shape ellipse --box-snap: see the README); 0: the box as given.",
    ),
]
DecoderOption = Annotated[
    Path | None, typer.Option("--decoder", help="A finetune-sam run: use its fine-tuned decoder.")
]
CalibrateMarginOption = Annotated[
    bool,
    typer.Option(help="Before fine-tuning, choose the box margin that scores best on the k images."),
]
ZoomOption = Annotated[
    float,
    typer.Option(
        help="Fine-tune on (and predict from) box-centred crops this many times the box's longest side "
        "(1.5 on HC18: see the README); 0: whole images."
    ),
]

EncoderStagesOption = Annotated[
    int,
    typer.Option(
        help="Also train the last N of the image encoder's 4 stages and its neck (2 on HC18: see the README; "
        "several times slower); 0: frozen encoder."
    ),
]


def _segmenter(
    decoder: Path | None, shape: str = "none", box_slack: str = "", box_snap: str = "", box_widen: float = 0.0
) -> Any:
    """The base or a fine-tuned LiteMedSAM, its options checked before the weights load."""
    from frugalseg.foundation import LiteMedSAMSegmenter
    from frugalseg.foundation.decoder_file import load_finetuned
    from frugalseg.foundation.shape_prior import check_shape

    try:
        slack = tuple(float(part) for part in box_slack.split(",") if part.strip())
        fractions = [float(part) for part in box_snap.split(",") if part.strip()] or [0.0, 0.0]
        if len(fractions) != 2:
            raise ValueError("--box-snap takes two fractions, INSIDE,OUTSIDE")
        snap = (fractions[0], fractions[1])
        check_shape(shape, slack, snap)
        if not 0 <= box_widen < 1:
            raise ValueError("--box-widen must be a fraction of the box's size in [0, 1)")
    except ValueError as error:
        given = " ".join(
            f"{name} {value!r}" for name, value in (("--box-slack", box_slack), ("--box-snap", box_snap)) if value
        )
        raise typer.BadParameter(f"--shape {shape} {given}: {error}") from None
    segmenter = LiteMedSAMSegmenter.from_cache() if decoder is None else load_finetuned(decoder)
    segmenter.shape, segmenter.box_slack, segmenter.box_snap = shape, slack, snap
    segmenter.box_widen = box_widen
    return segmenter


def _is_ivus(dataset: Any) -> bool:
    from frugalseg.engine.evaluate import IVUS_CLASSES

    return list(dataset.class_names) == IVUS_CLASSES


@app.command()
def pseudolabel(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Folder of pseudo-mask PNGs and confidence JSONs.")],
    backend: Annotated[str, typer.Option(help="Promptable model (litemedsam).")] = "litemedsam",
    annotations: Annotated[
        Path | None, typer.Option(help="Prompts: annotations JSON (boxes/points) or scribble PNG folder.")
    ] = None,
    simulate: Annotated[
        str | None, typer.Option(help="Simulate prompts from the full masks: boxes, points or scribbles.")
    ] = None,
    min_confidence: Annotated[float, typer.Option(help="Objects below this confidence are handled by --policy.")] = 0.5,
    policy: Annotated[str, typer.Option(help="drop or downweight low-confidence objects.")] = "drop",
    decoder: DecoderOption = None,
    box_fit: BoxFitOption = False,
    shape: ShapeOption = "none",
    box_slack: BoxSlackOption = "",
    box_snap: BoxSnapOption = "",
    box_widen: BoxWidenOption = 0.0,
    embedding_cache: Annotated[Path | None, typer.Option(help="Embedding cache folder.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    data_format: FormatOption = None,
) -> None:
    """Prompt a foundation model with weak annotations and write pseudo-masks with per-object confidence.

    Without --annotations or --simulate the dataset's own boxes are the prompts. Train a student on the
    result with ``frugalseg train --labels pseudo:DIR``. An interrupted run resumes where it stopped.
    """
    from frugalseg.annotations import from_case
    from frugalseg.engine.weak_config import WeakConfig
    from frugalseg.engine.weak_labels import weak_annotations
    from frugalseg.foundation import CachedSegmenter, EmbeddingCache
    from frugalseg.foundation.pseudolabel import pseudolabel_dataset

    if backend != "litemedsam":
        raise typer.BadParameter(f"--backend {backend}: only litemedsam is available")
    dataset = read_data(data, data_format)
    shapes = {case.case_id: case.shape for case in dataset.cases}
    prompts: dict[str, Any]
    if annotations is not None:
        prompts = read_annotations(annotations, shapes)
    elif simulate is not None:
        weak = WeakConfig(labels=simulate)
        prompts = dict(weak_annotations(dataset.cases, weak, num_classes=dataset.num_classes, seed=seed))
    else:
        prompts = {case.case_id: from_case(case) for case in dataset.cases if case.boxes}
    segmenter = _segmenter(decoder, shape, box_slack, box_snap, box_widen)
    segmenter.fit_boxes = box_fit and decoder is None  # a fine-tuned decoder predicts without
    if embedding_cache is not None:
        segmenter = CachedSegmenter(segmenter, EmbeddingCache(embedding_cache))
    report = pseudolabel_dataset(
        segmenter,
        dataset.cases,
        prompts,
        out_dir=out,
        min_confidence=min_confidence,
        policy=policy,
        ivus=_is_ivus(dataset),
        seed=seed,
        progress=lambda record: console.log(record),
    )
    typer.echo(
        f"{len(report.written)} written, {len(report.skipped)} already there, {len(report.missing)} without prompts; "
        f"objects kept {report.objects_kept}, dropped {report.objects_dropped} -> {report.out_dir}"
    )


@app.command("finetune-sam")
def finetune_sam(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Run folder for the fine-tuned decoder.")],
    k: Annotated[int, typer.Option("--k", help="Fully labelled images to fine-tune on.")] = 10,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 300,
    prompt_encoder: Annotated[bool, typer.Option(help="Also train the prompt encoder.")] = False,
    calibrate_margin: CalibrateMarginOption = False,
    zoom: ZoomOption = 0.0,
    encoder_stages: EncoderStagesOption = 0,
    seed: Annotated[int, typer.Option()] = 0,
    data_format: FormatOption = None,
) -> None:
    """Adapt LiteMedSAM's mask decoder (optionally its prompt encoder and last encoder stages) to a domain with k
    fully labelled images."""
    import numpy as np

    from frugalseg.foundation.finetune import MARGIN_CANDIDATES, FinetuneConfig, finetune_decoder

    dataset = read_data(data, data_format)
    labelled = [case for case in dataset.cases if case.label is not None]
    if len(labelled) < k:
        raise typer.BadParameter(f"--k {k}: the dataset has only {len(labelled)} labelled images")
    chosen = [labelled[i] for i in np.random.default_rng(seed).choice(len(labelled), size=k, replace=False)]
    config = FinetuneConfig(
        steps=steps,
        train_prompt_encoder=prompt_encoder,
        box_margins=MARGIN_CANDIDATES if calibrate_margin else (),
        zoom=zoom,
        encoder_stages=encoder_stages,
        ivus=_is_ivus(dataset),
        seed=seed,
    )
    result = finetune_decoder(_segmenter(None), chosen, out, config=config, progress=lambda r: console.log(r))
    typer.echo(
        f"box margin {result.box_margin:g}, zoom {config.zoom:g}, "
        f"loss {result.initial_loss:.4f} -> {result.final_loss:.4f} in {result.steps} steps "
        f"({result.seconds:.0f} s) -> {result.run_dir}"
    )


@bench_app.command("foundation")
def bench_foundation(
    data: DataOption,
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON.")],
    quick: Annotated[bool, typer.Option(help="8 held-out and 16 pseudo-labelled images, short students.")] = False,
    max_cases: Annotated[
        int | None, typer.Option(help="At most this many held-out and pseudo-labelled images.")
    ] = None,
    max_pseudo: Annotated[
        int | None, typer.Option(help="At most this many pseudo-labelled images (default: as --max-cases).")
    ] = None,
    finetune_k: Annotated[int, typer.Option(help="Also fine-tune the decoder on k training images (0: skip).")] = 0,
    calibrate_margin: CalibrateMarginOption = False,
    zoom: ZoomOption = 0.0,
    encoder_stages: EncoderStagesOption = 0,
    student: Annotated[bool, typer.Option(help="Also train the pseudo-mask student and its full reference.")] = False,
    box_fit: BoxFitOption = False,
    shape: ShapeOption = "none",
    box_slack: BoxSlackOption = "",
    box_snap: BoxSnapOption = "",
    box_widen: BoxWidenOption = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seeds the held-out split by subject, the simulated prompts and the trainings.")
    ] = 0,
    data_format: FormatOption = None,
) -> None:
    """Zero-shot, jittered and point prompts, pseudo-masks, fine-tuning, student and timing of LiteMedSAM."""
    from frugalseg.engine.foundation_bench import bench_foundation as run

    segmenter = _segmenter(None, shape, box_slack, box_snap, box_widen)
    segmenter.fit_boxes = box_fit
    report = run(
        read_data(data, data_format),
        json_path,
        quick=quick,
        max_cases=max_cases,
        max_pseudo=max_pseudo,
        finetune_k=finetune_k,
        calibrate_margin=calibrate_margin,
        zoom=zoom,
        encoder_stages=encoder_stages,
        student=student,
        seed=seed,
        segmenter=segmenter,
        log=console.log,
    )
    rows = [f"{name}: Dice {values['dice']:.4f}" for name, values in report["zero_shot"].items() if values]
    typer.echo("zero-shot " + ", ".join(rows))
    timing = report["timing"]
    typer.echo(f"encoder {timing['encode_s']:.2f} s/image, decoder {timing['decode_s'] * 1000:.1f} ms/prompt")
