"""The ``campaignflow`` command: argument parsing and printing; the work is in ``runtime``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console

from campaignflow import __version__
from campaignflow.config import get_settings
from campaignflow.errors import CampaignflowError
from campaignflow.workflow_files import WorkflowFile, discover, load, load_all

if TYPE_CHECKING:
    from campaignflow.runtime import EmbeddedSetup

# Commands import what they need when they run (see the per-file ruff setting): `validate` and
# `version` must not pay for loading the web stack and database drivers.

app = typer.Typer(
    name="campaignflow",
    help="Durable marketing automation: events in, journeys out.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")]


def _fail(exc: CampaignflowError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(2)


def _check(file: WorkflowFile) -> WorkflowFile:
    """Add the definition's own problems to a parsed file's syntax problems."""
    from campaignflow.domain.validation import validate_definition

    if file.problems:
        return file
    result = validate_definition(file.document)
    return WorkflowFile(file.path, file.document, result.problems)


def _check_folder(directory: Path) -> list[WorkflowFile]:
    return [_check(file) for file in load_all(discover(directory))]


def _print_report(files: list[WorkflowFile], *, as_json: bool) -> None:
    if as_json:
        report = [
            {
                "file": str(f.path),
                "ok": not f.problems,
                "problems": [p.to_dict() for p in f.problems],
            }
            for f in files
        ]
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for file in files:
        if not file.problems:
            out.print(f"[green]ok[/green]      {file.path}")
            continue
        out.print(f"[red]invalid[/red] {file.path}: {len(file.problems)} problem(s)")
        for problem in file.problems:
            out.print(
                f"  {file.path}:{problem.pointer or '/'}: {problem.message} "
                f"[dim]\\[{problem.code}][/dim]"
            )


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workflow files (.json, .yaml) or folders.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Check workflow files and print every problem with its JSON path; exit 1 if any."""
    paths = [p for path in files for p in (discover(path) if path.is_dir() else [path])]
    if not paths:
        err.print("[red]error:[/red] no workflow files found")
        raise typer.Exit(2)
    checked = [_check(load(path)) for path in paths]
    _print_report(checked, as_json=json_output)
    if any(f.problems for f in checked):
        raise typer.Exit(1)


@app.command()
def apply(
    directory: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder of workflow files.")
    ],
    activate: Annotated[bool, typer.Option(help="Activate every applied workflow.")] = False,
) -> None:
    """Create or update every workflow in a folder; unchanged files make no new version.

    Nothing is written unless every file is valid. With no CAMPAIGNFLOW_DATABASE_URL this works
    on the embedded SQLite database and migrates it first.
    """
    checked = _check_folder(directory)
    if not checked:
        err.print(f"[red]error:[/red] no workflow files in {directory}")
        raise typer.Exit(2)
    if any(f.problems for f in checked):
        _print_report(checked, as_json=False)
        raise typer.Exit(1)
    from campaignflow import runtime

    try:
        outcomes = asyncio.run(
            runtime.apply_to_database(get_settings(), checked, activate=activate)
        )
    except CampaignflowError as exc:
        raise _fail(exc) from exc
    for file, outcome in zip(checked, outcomes, strict=True):
        record = outcome.record
        out.print(
            f"{outcome.action.value:<9} {record.id} v{record.version} ({record.status})  "
            f"{file.path}"
        )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (idempotent)."""
    from campaignflow import runtime

    try:
        revision = asyncio.run(runtime.migrate(get_settings()))
    except CampaignflowError as exc:
        raise _fail(exc) from exc
    out.print(f"database schema at revision {revision}")


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8080) -> None:
    """Run the API gateway (production). Needs CAMPAIGNFLOW_API_TOKEN and a migrated database."""
    from campaignflow import runtime

    try:
        settings = get_settings(mode="production")
        settings.require_secure()
        asyncio.run(runtime.serve_production(settings, host, port))
    except CampaignflowError as exc:
        raise _fail(exc) from exc


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8080,
    load_examples: Annotated[
        Path | None,
        typer.Option(
            exists=True, file_okay=False, help="Apply the workflows in this folder at start."
        ),
    ] = None,
) -> None:
    """Run everything in one process on the embedded SQLite database (the quick start)."""
    from campaignflow import runtime

    try:
        setup = runtime.prepare_embedded(get_settings(mode="embedded"))
        asyncio.run(_up(setup, host, port, load_examples))
    except CampaignflowError as exc:
        raise _fail(exc) from exc


async def _up(setup: EmbeddedSetup, host: str, port: int, examples: Path | None) -> None:
    from campaignflow import runtime
    from campaignflow.store.migrate import upgrade

    settings = setup.settings
    database = runtime.open_database(settings)
    await upgrade(database)
    if examples is not None:
        files = _check_folder(examples)
        valid = [f for f in files if not f.problems]
        _print_report([f for f in files if f.problems], as_json=False)
        outcomes = await runtime.apply_files(database, settings.workspace_id, valid, activate=False)
        out.print(f"loaded {len(outcomes)} workflow(s) from {examples}")
    _print_banner(setup, host, port)
    await runtime.serve_http(settings, database, host, port)


def _print_banner(setup: EmbeddedSetup, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    token = setup.settings.api_token.get_secret_value() if setup.settings.api_token else "<token>"
    out.print(
        f"\n[bold]campaignflow {__version__}[/bold] "
        f"(embedded: {setup.settings.resolved_database_url})"
    )
    out.print(f"  API        {base}/api/v1   docs: {base}/api/v1/docs")
    if setup.token is not None:
        note = "generated" if setup.token.created else "read"
        note = f"{note}; kept in {setup.token.path}"
        out.print(f"  API token  {token}  ({note})")
    out.print(f'  try        curl -H "Authorization: Bearer {token}" {base}/api/v1/workflows\n')


@app.command()
def version() -> None:
    """Print the campaignflow version."""
    out.print(__version__)


def main() -> None:
    app()
