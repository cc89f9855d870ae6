"""Commands about training data: `lumiere data check`."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from lumiere_cli.choices import Stage
from lumiere_cli.cli import options as o
from lumiere_cli.cli.ui import handle_errors

PANEL = "Model"

data_app = typer.Typer(help="Training data: check a dataset before training on it.", no_args_is_help=True)

Bucket = Annotated[
    Optional[list[str]],
    typer.Option("--bucket", metavar="FRAMESxSIZE",
                 help="A clip shape to train (repeat for several), e.g. 16x32; the model's config decides which "
                      "exist. Default: the model's own clip.", show_default=False),
]


def register(app: typer.Typer) -> None:
    data_app.command(name="check")(handle_errors(check))
    app.add_typer(data_app, name="data", rich_help_panel=PANEL)


def check(
    data: Annotated[Path, typer.Argument(help="A CSV/JSONL manifest (columns path, text; optional start, end) or a "
                                              "folder of videos and images with same-stem .txt captions.",
                                         show_default=False)],
    stage: Annotated[Stage, typer.Option(help="The stage to check for: t2i trains single frames (images too), "
                                              "the others clips.")] = Stage.video,
    init: Annotated[Optional[Path], typer.Option(help="Check for the config of these weights (as train --init).",
                                                 show_default=False)] = None,
    config: Annotated[Optional[str], typer.Option(help="ModelConfig changes, inline JSON or a .json file (as train "
                                                       "--config).", show_default=False)] = None,
    bucket: Bucket = None,
    rescan: Annotated[bool, typer.Option(help="Open every file again, even those unchanged since an earlier "
                                              "check or training run.")] = False,
    json: o.Json = False,
) -> None:
    """Dry-run a dataset: entries, how many decode, durations, sizes and frame rates, clips per
    bucket, and every unusable entry with its reason. Reads headers and seeks, never decodes whole
    files, and does not open again a file unchanged (size, modification time) since an earlier
    check or training run; exit code 3 when nothing is usable.

    Example: [bold]lumiere data check clips/ --config '{"frames": 16, "size": 64}'[/]
    """
    from lumiere_cli.cli.model_cmds import _load_json_arg
    from lumiere_cli.data.buckets import parse_bucket
    from lumiere_cli.data.check import check_data, model_config
    from lumiere_cli.errors import InputError

    buckets = [parse_bucket(b) for b in bucket] if bucket else None
    model = model_config(init, _load_json_arg(config) if config else None)
    report = check_data(data, model=model, stage=stage.value, buckets=buckets, rescan=rescan)
    if json:
        typer.echo(jsonlib.dumps(report.to_dict()))
    else:
        for line in report.lines():
            typer.echo(line)
    if not report.survey.items:
        raise InputError(f"nothing in {data} is usable for the {stage.value} stage (see the reasons above)")
