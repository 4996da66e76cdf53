"""The ``campaignflow`` command: argument parsing and printing; the work is in ``runtime``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console

from campaignflow import __version__
from campaignflow.config import get_settings
from campaignflow.errors import CampaignflowError, InvalidScenario
from campaignflow.workflow_files import WorkflowFile, discover, load, load_all

if TYPE_CHECKING:
    from campaignflow.engine.model import StepEntry
    from campaignflow.engine.scenario import Scenario
    from campaignflow.engine.simulation_result import (
        EventReport,
        SimulatedMessage,
        SimulationResult,
    )
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

# File tools that only print: they start fast and have nothing to log. Every other command
# (and any new one) gets the masked, structured logging of observability/logging.py.
_UNLOGGED_COMMANDS = frozenset({"validate", "simulate", "version"})


@app.callback()
def _configure_process(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand not in _UNLOGGED_COMMANDS:
        from campaignflow.observability.logging import configure_logging

        configure_logging(get_settings().log)


def _fail(exc: CampaignflowError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(2)


def _check(file: WorkflowFile) -> WorkflowFile:
    """Add the definition's own problems to a parsed file's syntax problems."""
    from campaignflow.domain.validation import validate_definition
    from campaignflow.integrations.catalog import connector_catalog

    if file.problems:
        return file
    result = validate_definition(file.document, catalog=connector_catalog())
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
    """Run the API gateway (production). Needs an encryption key and a migrated database."""
    from campaignflow import runtime

    try:
        settings = get_settings(mode="production")
        settings.require_secure()
        runtime.tune_garbage_collector()
        with runtime.traced_process(settings, "serve"):
            asyncio.run(runtime.serve_production(settings, host, port))
    except CampaignflowError as exc:
        raise _fail(exc) from exc


@app.command()
def worker() -> None:
    """Run the engine: executions, timers, retries (production; run as many as you need)."""
    from campaignflow import runtime

    try:
        settings = get_settings()
        settings.require_secure()
        runtime.tune_garbage_collector()
        with runtime.traced_process(settings, "worker"):
            asyncio.run(runtime.serve_worker(settings))
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
        runtime.tune_garbage_collector()
        with runtime.traced_process(setup.settings, "up"):
            asyncio.run(_up(setup, host, port, load_examples))
    except CampaignflowError as exc:
        raise _fail(exc) from exc


async def _up(setup: EmbeddedSetup, host: str, port: int, examples: Path | None) -> None:
    from campaignflow import runtime
    from campaignflow.security.contact_fields import contact_cipher_from
    from campaignflow.store.migrate import upgrade

    settings = setup.settings
    database = runtime.open_database(settings)
    await upgrade(database)
    cipher = contact_cipher_from(settings)
    await runtime.seal_plaintext(database, cipher, settings)
    setup = runtime.EmbeddedSetup(settings, await runtime.bootstrap_credential(database, settings))
    if examples is not None:
        files = _check_folder(examples)
        valid = [f for f in files if not f.problems]
        _print_report([f for f in files if f.problems], as_json=False)
        outcomes = await runtime.apply_files(database, settings.workspace_id, valid, activate=False)
        out.print(f"loaded {len(outcomes)} workflow(s) from {examples}")
    _print_banner(setup, host, port)
    await runtime.serve_http(settings, database, host, port, cipher=cipher, with_worker=True)


def _print_banner(setup: EmbeddedSetup, host: str, port: int) -> None:
    base = f"{'https' if setup.settings.network.tls else 'http'}://{host}:{port}"
    out.print(
        f"\n[bold]campaignflow {__version__}[/bold] "
        f"(embedded: {setup.settings.resolved_database_url})"
    )
    out.print(f"  API        {base}/api/v1   docs: {base}/api/v1/docs")
    created = setup.credential
    if created is None:
        out.print(
            "  API key    the owner key printed at the first start (only its hash is kept).\n"
            "             Lost it? `campaignflow create-key --role owner` makes another."
        )
        token = "$CAMPAIGNFLOW_KEY"  # noqa: S105 — a shell variable, not a secret
    else:
        token = created.value
        out.print(
            f"  API key    [bold]{token}[/bold]\n"
            "             owner of the default workspace; shown [bold]only now[/bold] "
            "(only its hash is kept): store it, e.g. export CAMPAIGNFLOW_KEY=<key>"
        )
    out.print(f'  try        curl -H "Authorization: Bearer {token}" {base}/api/v1/workflows')
    out.print(
        f"  events     Segment/RudderStack host {base}, write key = an API key with the "
        f"events:write scope (or POST {base}/api/v1/events)\n"
    )


@app.command()
def simulate(
    file: Annotated[Path, typer.Argument(help="Workflow file (.json, .yaml).")],
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            help="Scenario file (JSON or YAML): contact, input, timed events, action overrides; "
            "a bare list is the events.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Dry-run a workflow on a virtual clock: every step, branch, wait and message; nothing sent.

    Exit 1 if the workflow is invalid, 2 if the scenario is.
    """
    from campaignflow.engine import simulator

    workflow = _check(load(file))
    if workflow.problems or not isinstance(workflow.document, Mapping):
        _print_report([workflow], as_json=json_output)
        raise typer.Exit(1)
    scenario = _read_scenario(events, as_json=json_output)
    try:
        result = asyncio.run(simulator.simulate(workflow.document, scenario))
    except InvalidScenario as exc:
        _print_report(
            [WorkflowFile(events or file, None, tuple(exc.problems))], as_json=json_output
        )
        raise typer.Exit(2) from exc
    if json_output:
        sys.stdout.write(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print_simulation(result)


def _read_scenario(path: Path | None, *, as_json: bool) -> Scenario:
    from campaignflow.engine.scenario import Scenario, parse_scenario

    if path is None:
        return Scenario()
    file = load(path)
    problems = file.problems
    if not problems:
        try:
            return parse_scenario(file.document)
        except InvalidScenario as exc:
            problems = tuple(exc.problems)
    _print_report([WorkflowFile(path, file.document, problems)], as_json=as_json)
    raise typer.Exit(2)


_FIXED_COLUMNS = frozenset({"time", "elapsed", "type", "status"})
_PIPE_WIDTH = 200
_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "timed_out": "yellow",
    "retrying": "yellow",
    "deferred": "yellow",
}


def _print_simulation(result: SimulationResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    out.print(
        f"[bold]dry-run[/bold] {escape(result.workflow_id)} for {escape(result.subject)} from "
        f"{_clock(result.start)} UTC [dim](virtual time; nothing was sent)[/dim]"
    )
    table = Table(header_style="bold", box=None, pad_edge=False)
    for name in ("time", "elapsed", "node", "type", "branch", "status", "detail"):
        table.add_column(name, no_wrap=name in _FIXED_COLUMNS, overflow="fold")
    for row in _simulation_rows(result):
        table.add_row(*row)
    # A terminal folds the long columns to fit; a pipe or a file gets them in full.
    wide = out if out.is_terminal else Console(highlight=False, width=_PIPE_WIDTH)
    wide.print(table)
    out.print(_simulation_summary(result))
    for wait in result.waits:
        until = f" until {_clock(wait.expires_at)}" if wait.expires_at else ""
        out.print(f"  open wait: {escape(wait.node_id)} for {escape(wait.event_name)}{until}")
    for letter in result.dead_letters:
        error = letter.errors[-1].get("message", "") if letter.errors else ""
        out.print(
            f"  [red]dead letter[/red]: {escape(letter.node_id)}: {escape(_first_line(error))}"
        )


def _simulation_rows(result: SimulationResult) -> Iterator[tuple[str, ...]]:
    """The path, with each of the scenario's events placed where it was offered."""
    events = sorted(result.events, key=lambda event: event.after_step)
    calls = result.calls()
    position = 0
    for step in [None, *result.path]:
        if step is not None:
            yield _step_row(result, step, calls.get(step.seq))
        seq = 0 if step is None else step.seq
        while position < len(events) and events[position].after_step <= seq:
            yield _event_row(result, events[position])
            position += 1


def _step_row(
    result: SimulationResult, step: StepEntry, call: SimulatedMessage | None
) -> tuple[str, ...]:
    from rich.markup import escape

    status = str(step.status)
    style = _STATUS_STYLES.get(status, "white")
    return (
        _clock(step.finished_at),
        _elapsed(step.finished_at - result.start),
        escape(step.node_id),
        step.node_type,
        escape(step.token.lstrip("/")),
        f"[{style}]{status}[/{style}]",
        escape(_step_detail(step.output, step.error, call)),
    )


def _event_row(result: SimulationResult, event: EventReport) -> tuple[str, ...]:
    from rich.markup import escape

    detail = f"taken by {event.node_id}" if event.matched else (event.reason or "")
    return (
        _clock(event.at),
        _elapsed(event.at - result.start),
        escape(event.name),
        "event",
        escape((event.branch or "").lstrip("/")),
        "[cyan]taken[/cyan]" if event.matched else "[dim]ignored[/dim]",
        escape(detail),
    )


def _step_detail(
    output: object, error: dict[str, object] | None, call: SimulatedMessage | None
) -> str:
    parts = []
    if call is not None:
        parts.append(f"{call.action} → {call.target}" if call.target else call.action)
    if error is not None:
        parts.append(_first_line(error.get("message", "")))
    elif isinstance(output, Mapping) and call is None:
        shown = {key: output[key] for key in ("next", "variant", "until", "name") if key in output}
        parts.extend(f"{key}: {value}" for key, value in shown.items())
    return "; ".join(parts)


def _simulation_summary(result: SimulationResult) -> str:
    style = _STATUS_STYLES.get(result.status, "yellow")
    sent = sum(1 for message in result.messages if message.error is None)
    taken = sum(1 for event in result.events if event.matched)
    facts = [
        f"[{style}]{result.status}[/{style}]",
        f"{len(result.path)} step(s)",
        f"{sent} message(s) would be sent",
        f"{taken} of {len(result.events)} event(s) taken",
    ]
    if result.finished_at is not None:
        facts[0] += f" at {_clock(result.finished_at)}"
    if result.truncated:
        facts.append("[yellow]truncated: step limit reached[/yellow]")
    elif result.horizon_reached:
        facts.append(f"stopped at the horizon ({_clock(result.simulated_until)})")
    return " · ".join(facts)


def _first_line(text: object) -> str:
    return str(text).strip().split("\n", 1)[0]


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _elapsed(delta: timedelta) -> str:
    """``+1d4h``, ``+30s``, ``+1m10.5s``: virtual time since the start."""
    days, rest = divmod(round(delta.total_seconds() * 1000), 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, millis = divmod(rest, 60_000)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    if millis or not any(parts):
        parts.append(f"{millis / 1000:g}s")
    return "+" + "".join(parts)


@app.command()
def version() -> None:
    """Print the campaignflow version."""
    out.print(__version__)


@app.command(name="create-key")
def create_key(
    name: Annotated[str, typer.Option(help="Who the key is for (a new principal).")] = "admin",
    role: Annotated[str, typer.Option(help="owner, admin, editor, operator or viewer.")] = "owner",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Limit the key to these permissions (repeat); default: its role's."),
    ] = None,
) -> None:
    """Create a principal and an API key for it directly in the database, and print the key
    once: the first credential of a production workspace, or a replacement for a lost one."""
    from campaignflow import runtime
    from campaignflow.security.rbac import Role, parse_scopes

    try:
        chosen = Role(role)
        parse_scopes(scope or [])
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        created = asyncio.run(
            runtime.create_key(get_settings(), name=name, role=chosen, scopes=scope)
        )
    except CampaignflowError as exc:
        raise _fail(exc) from exc
    err.print(
        f"API key for {name!r} ({chosen.value} of workspace {created.record.workspace_id}); "
        "shown only now, only its hash is kept:"
    )
    out.print(created.value)


@app.command(name="rotate-key")
def rotate_key(
    resume: Annotated[
        bool, typer.Option(help="Add no key: only finish re-wrapping after a run that stopped.")
    ] = False,
) -> None:
    """Add a new encryption key and re-wrap every stored secret and signing key under it.

    Safe to stop and run again (with --resume). Restart API and worker processes afterwards so
    that they load the new key.
    """
    from campaignflow.security.rotation import rotate_keys_in

    try:
        report = asyncio.run(rotate_keys_in(get_settings(), new_key=not resume))
    except CampaignflowError as exc:
        raise _fail(exc) from exc
    verb = "added and activated" if report.new_key else "active"
    out.print(f"key {report.active_key_id} {verb}")
    out.print(
        f"re-wrapped {report.secrets_rewrapped} secret(s), "
        f"{report.signing_keys_rewrapped} signing key(s), {report.contacts_rewrapped} "
        f"contact(s), {report.executions_rewrapped} execution(s) and "
        f"{report.events_rewrapped} event(s)"
    )
    if report.note:
        err.print(f"[yellow]note:[/yellow] {report.note}")


audit_app = typer.Typer(help="The audit (access) log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command(name="verify")
def audit_verify(
    workspace: Annotated[
        str | None, typer.Option(help="Check this workspace only (default: every workspace).")
    ] = None,
) -> None:
    """Check the audit log's hash chains; exit 1 if an entry was tampered with."""
    from campaignflow.services.audit import verify_audit_log_in

    try:
        reports = asyncio.run(verify_audit_log_in(get_settings(), workspace))
    except CampaignflowError as exc:
        raise _fail(exc) from exc
    for report in reports:
        if report.valid:
            out.print(f"{report.workspace_id}: ok, {report.checked} entries")
        else:
            out.print(
                f"{report.workspace_id}: [red]BROKEN[/red] at seq {report.first_broken_seq} "
                f"({report.checked} entries sound before it)"
            )
    if not all(report.valid for report in reports):
        raise typer.Exit(1)


def main() -> None:
    app()
