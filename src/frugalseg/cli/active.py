"""Active-learning commands: ``al`` (one loop) and ``bench al`` (strategies x seeds, label-efficiency curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from frugalseg.cli._app import BoxFitOption, DataOption, FormatOption, app, bench_app, console, print_rows, read_data

AssistOption = Annotated[
    bool,
    typer.Option(
        "--assist",
        help="Full labels: the expert may box each object and correct LiteMedSAM's outline instead, if quicker.",
    ),
]


def parse_count(text: str) -> int | float:
    """``"2%"`` -> 0.02 (a fraction of the pool), ``"12"`` -> 12 (a count)."""
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a percentage such as 2% or a count such as 12") from None


@app.command()
def al(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="Loop folder (state.json, one checkpoint per round).")],
    strategy: Annotated[str, typer.Option(help="Selection strategy, e.g. sqa, sqa_shape, random, entropy.")] = "sqa",
    initial: Annotated[str, typer.Option(help="Cold-start size: a percentage of the pool or a count.")] = "2%",
    batch: Annotated[str, typer.Option(help="Images acquired per round: a percentage or a count.")] = "2%",
    rounds: Annotated[int, typer.Option(help="Acquisition rounds after the cold start.")] = 4,
    epochs_per_round: Annotated[int, typer.Option(help="Fine-tuning epochs per round.")] = 10,
    size: Annotated[int, typer.Option(help="Network side in pixels.")] = 128,
    min_steps: Annotated[int, typer.Option(help="At least this many optimisation steps per round.")] = 0,
    cold_start: Annotated[str, typer.Option(help="random or diverse.")] = "random",
    acquire: Annotated[
        str, typer.Option(help="The expert's label: full, boxes (through LiteMedSAM) or scribbles.")
    ] = "full",
    assist: AssistOption = False,
    box_fit: BoxFitOption = False,
    final_steps: Annotated[
        int, typer.Option(help="Full labels: after the last round, train them once from scratch for this many steps.")
    ] = 0,
    test_data: Annotated[str | None, typer.Option(help="Test set (default: held-out subjects of --data).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    data_format: FormatOption = None,
) -> None:
    """Active learning with the SQA network and a simulated expert; run again to resume an interrupted loop."""
    from frugalseg.engine.al_run import run_al

    dataset = read_data(data, data_format)
    test_cases = None if test_data is None else read_data(test_data, data_format).cases

    def on_round(record: dict[str, Any]) -> None:
        dice = record["metrics"]["dice_mean"]
        console.log(f"round {record['round']}: {record['num_labelled']} labelled, held-out Dice {dice:.4f}")

    result = run_al(
        dataset,
        strategy=strategy,
        initial=parse_count(initial),
        batch=parse_count(batch),
        rounds=rounds,
        out_dir=out,
        seed=seed,
        size=size,
        epochs_per_round=epochs_per_round,
        min_steps=min_steps,
        test_cases=test_cases,
        cold_start=cold_start,  # type: ignore[arg-type]
        acquire=acquire,  # type: ignore[arg-type]
        assist=assist,
        box_fit=box_fit,
        final_steps=final_steps,
        progress=on_round,
    )
    rows = [
        (
            str(r["round"]),
            str(r["num_labelled"]),
            f"{100 * r['fraction']:.1f}%",
            f"{r['metrics']['dice_mean']:.4f}",
            f"{r['effort'].get('seconds', float('nan')) / 60:.1f}",
        )
        for r in result.rounds
    ]
    print_rows(f"active learning ({strategy})", ("round", "labelled", "fraction", "Dice", "expert min"), rows)
    if result.final is not None:
        typer.echo(f"final training on the {result.final['num_labelled']} labels: Dice {result.final['dice_mean']:.4f}")
    typer.echo(f"state: {result.state_path}")


@bench_app.command("al")
def bench_al(
    data: DataOption,
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON (the plot is written beside it as PNG).")],
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies.")] = "random,entropy,sqa,sqa_diverse",
    seeds: Annotated[int, typer.Option(help="Seeds per strategy.")] = 3,
    test_data: Annotated[str | None, typer.Option(help="Test set (default: held-out subjects of --data).")] = None,
    initial: Annotated[str, typer.Option(help="Cold-start size: a percentage or a count.")] = "2%",
    batch: Annotated[str, typer.Option(help="Images acquired per round.")] = "2%",
    rounds: Annotated[int, typer.Option(help="Acquisition rounds.")] = 4,
    epochs_per_round: Annotated[int, typer.Option(help="Fine-tuning epochs per round.")] = 10,
    size: Annotated[int, typer.Option(help="Network side in pixels.")] = 128,
    min_steps: Annotated[int, typer.Option(help="At least this many optimisation steps per round.")] = 0,
    acquire: Annotated[
        str, typer.Option(help="The expert's label: full, boxes (through LiteMedSAM) or scribbles.")
    ] = "full",
    assist: AssistOption = False,
    box_fit: BoxFitOption = False,
    cold_start: Annotated[str, typer.Option(help="random or diverse (evenly spaced over the pool).")] = "random",
    from_scratch: Annotated[
        str,
        typer.Option(
            help="Comma-separated sizes (percentages or counts) of random subsets drawn and trained from scratch: "
            "the passive route the effort is compared with for the same final Dice."
        ),
    ] = "",
    retrain: Annotated[
        bool, typer.Option(help="Also train each run's acquired labels once from scratch (implied by --from-scratch).")
    ] = False,
    reference_steps: Annotated[
        int, typer.Option(help="At least this many steps for the fully supervised reference (default: a run's).")
    ] = 0,
    final_steps: Annotated[
        int,
        typer.Option(
            help="Steps of each run's final training (with --retrain) and of the --from-scratch subsets "
            "(default: a run's)."
        ),
    ] = 0,
    quick: Annotated[bool, typer.Option(help="48-image pool, 2 rounds of 2 epochs at 64 px.")] = False,
    data_format: FormatOption = None,
) -> None:
    """Dice against the fraction of labelled images for each strategy, effort, and quality calibration."""
    from frugalseg.engine.al_bench import bench_al as run

    dataset = read_data(data, data_format)
    report = run(
        dataset,
        None if test_data is None else read_data(test_data, data_format).cases,
        strategies=[name.strip() for name in strategies.split(",") if name.strip()],
        seeds=seeds,
        json_path=json_path,
        quick=quick,
        initial=parse_count(initial),
        batch=parse_count(batch),
        rounds=rounds,
        size=size,
        epochs_per_round=epochs_per_round,
        min_steps=min_steps,
        acquire=acquire,  # type: ignore[arg-type]
        assist=assist,
        box_fit=box_fit,
        cold_start=cold_start,  # type: ignore[arg-type]
        from_scratch=[parse_count(item.strip()) for item in from_scratch.split(",") if item.strip()],
        retrain=retrain,
        reference_steps=reference_steps,
        final_steps=final_steps,
        log=console.log,
    )
    rows = [
        (name, *(f"{point['dice_mean']:.4f}±{point['dice_std']:.4f}" for point in entry["curve"]))
        for name, entry in report["strategies"].items()
    ]
    fractions = [f"{100 * p['fraction']:.0f}%" for p in next(iter(report["strategies"].values()))["curve"]]
    print_rows("held-out Dice by labelled fraction", ("strategy", *fractions), rows)
    quality = report["quality"]
    typer.echo(f"quality: Pearson {quality['pearson']:.3f}, Spearman {quality['spearman']:.3f} -> {json_path}")


@bench_app.command("quality")
def bench_quality(
    data: DataOption,
    checkpoints: Annotated[list[Path], typer.Argument(help="SQA network checkpoints (.pt), e.g. a run's final.pt.")],
    json_path: Annotated[Path, typer.Option("--json", help="Output JSON.")],
    on: Annotated[
        str, typer.Option(help="test (held-out subjects, or --test-data) or pool (the images a run did not label).")
    ] = "test",
    test_data: Annotated[str | None, typer.Option(help="Test set (default: held-out subjects of --data).")] = None,
    model: Annotated[str, typer.Option(help="Model, where no run's settings.json lies beside a checkpoint.")] = (
        "sqa_small"
    ),
    size: Annotated[int, typer.Option(help="Network side, idem.")] = 128,
    dropout: Annotated[float, typer.Option(help="Dropout, idem.")] = 0.1,
    shape: Annotated[
        str,
        typer.Option(
            help="ellipse: also each estimate times the agreement of the predicted mask with its fitted ellipse, "
            "for objects that are ellipses by definition such as a fetal head (quality.shape); none: not."
        ),
    ] = "none",
    data_format: FormatOption = None,
) -> None:
    """How well saved SQA networks predict their own per-image Dice: error branch alone and with flip agreement."""
    from frugalseg.engine.quality_bench import bench_quality as run

    dataset = read_data(data, data_format)
    report = run(
        dataset,
        checkpoints,
        json_path,
        test_cases=None if test_data is None else read_data(test_data, data_format).cases,
        on=on,  # type: ignore[arg-type]
        model=model,
        size=size,
        dropout=dropout,
        shape=shape,
        log=console.log,
    )
    estimates = tuple(report["summary"])
    rows = [
        (
            "/".join(Path(n["checkpoint"]).parts[-2:]),
            f"{n['dice_mean']:.4f}",
            *(_format(n[estimate].get("pearson")) for estimate in estimates),
        )
        for n in report["networks"]
    ]
    print_rows(f"Pearson of predicted vs true Dice ({on})", ("checkpoint", "Dice", *estimates), rows)
    typer.echo(f"-> {json_path}")


def _format(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
