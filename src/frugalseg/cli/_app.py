"""The typer application, its command groups and the helpers every command module shares."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

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
annotations_app = typer.Typer(no_args_is_help=True, help="Check and simulate weak annotations.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(weights_app, name="weights")
app.add_typer(annotations_app, name="annotations")

console = Console(stderr=True)
DEFAULTS = TrainConfig()

DataOption = Annotated[str, typer.Option("--data", help="Dataset folder, or 'phantom[:N[:SIZE]]'.")]
FormatOption = Annotated[str | None, typer.Option("--format", help="Override the detected dataset format.")]
BoxFitOption = Annotated[
    bool,
    typer.Option(
        "--box-fit", help="LiteMedSAM widens the sides of tight boxes its outline does not reach (foundation.box_fit)."
    ),
]


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
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


def read_data(data: str, data_format: str | None) -> Any:
    """The :class:`~frugalseg.data.case.Dataset` at ``data`` (a folder or a phantom spec)."""
    from frugalseg.data import read_dataset

    return read_dataset(data, format=data_format)


def read_annotations(path: Path, shapes: dict[str, tuple[int, int]]) -> dict[str, dict[str, Any]]:
    """``{case_id: {kind: annotation}}`` from a JSON file or a scribble PNG folder."""
    from frugalseg.annotations import read_annotations_json, read_scribbles

    if path.is_dir():
        return {case_id: {"scribbles": s} for case_id, s in read_scribbles(path, expected_shapes=shapes).items()}
    return dict(read_annotations_json(path))


def print_report(report: dict[str, Any], *, title: str = "evaluation") -> None:
    """An evaluation report (``per_class`` and ``mean``) as a table on stdout."""
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


def print_rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table of strings on stdout."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def main() -> None:
    """Entry point: bad input prints one line and exits with status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        app(prog_name="frugalseg")
    except InputError as error:
        console.print(f"[red]error[/red]: {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
