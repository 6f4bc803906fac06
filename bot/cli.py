"""The ``kpibot`` command line. Every command takes ``--config FILE`` (default ``kpibot.yaml``,
or ``KPIBOT_CONFIG``); bad input ends with a message and a non-zero exit code, never a
traceback. Messages are worded from the catalogs in the organisation's language.

Imports are at the top, except those only one command needs that cost a CLI start-up much
more than the rest: the CRM clients (``sync``, the scheduler's modules that pull them),
APScheduler's clock and cron triggers (``clock``, ``run-due``, ``status``, ``serve
--with-scheduler``), the Slack servers and the Teams SDK (``serve``, ``teams-*``: about twice
the start-up of ``kpibot ask`` on their own; ``serve`` imports the Teams SDK only when the
Teams bot's credentials are set), the charts (``digest``: matplotlib is a fifth of the
start-up of ``kpibot serve``, which draws none), the demo company (``demo``: its upsert brings
SQLAlchemy's PostgreSQL and SQLite dialects whichever store is configured) and the CSV
importer (``import csv``). Of these, a Slack-only ``kpibot serve`` imports the Slack servers
alone (a test holds it to that). No import is inside a function to dodge a cycle."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot import rendering, serialize
from bot.core import ConversationCore
from bot.formatting import Formatter
from bot.service import KpiService
from bot.settings import (
    ConfigError,
    Organisation,
    Settings,
    config_path,
    load_settings,
    process_environment,
)
from bot.store.database import (
    SchemaNotCurrent,
    ensure_schema,
    make_engine,
    migrate,
    session_factory,
    transaction,
)
from bot.store.facts_loader import MissingExchangeRate
from bot.subscriptions import load_subscriptions
from bot.text_render import render_text
from conversation.authorization import Role, Viewer
from conversation.grammar import parse_request
from conversation.views import AnswerView, ChangesView, Help
from metrics.limits import date_problem
from metrics.periods import Grain
from metrics.scopes import Scope

if TYPE_CHECKING:
    from bot.scheduling.runtime import Runtime
    from bot.teams.connector import TeamsCredentials


@dataclass
class CliContext:
    config: Path
    environ: Mapping[str, str]
    _settings: Settings | None = None
    _service: KpiService | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, self.environ)
        return self._settings

    def service(self) -> KpiService:
        if self._service is None:
            self._service = KpiService(self.settings())
        return self._service

    def formatter(self) -> Formatter:
        return Formatter.for_organisation(self.settings().organisation)


def _mistake_formatter(obj: CliContext | None, locale: str | None) -> Formatter:
    """Words for a config mistake: the organisation's once its settings are loaded, else those
    of the locale the config file asked for, else English (``.env`` is read before anything)."""
    if obj is not None and obj._settings is not None:
        return obj.formatter()
    return Formatter(locale or "en_US", "EUR", UTC)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"kpibot: {message}", err=True)
    sys.exit(code)


def parse_as_of(value: str | None, settings: Settings) -> datetime:
    """``--as-of``: an ISO date (read at noon in the organisation's zone) or date-time."""
    return as_of_for(value, settings.organisation)


def as_of_for(value: str | None, organisation: Organisation) -> datetime:
    """``parse_as_of`` for an organisation known without a config file (the demo's)."""
    zone = organisation.zone
    if value is None:
        return datetime.now(zone)
    fmt = Formatter.for_organisation(organisation)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(fmt.t("cli.as_of", got=repr(value)))
    if date_problem(parsed.date()) is not None:
        fail(fmt.t("cli.as_of_range", got=parsed.date().isoformat()))
    if len(value) <= 10:
        return datetime.combine(parsed.date(), time(12), zone)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


as_of_option = click.option(
    "--as-of", "as_of", metavar="DATE", help="Evaluate as of this date or date-time (default: now)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


class KpibotGroup(click.Group):
    """Turns the errors a user can fix (config, exchange rates, a schema to migrate, a database
    that cannot be reached) into a message and exit code 2 instead of a traceback, in one place
    for every command."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            fail(error.worded(_mistake_formatter(ctx.obj, error.locale)), code=2)
        except (MissingExchangeRate, SchemaNotCurrent) as error:
            fail(error.worded(_mistake_formatter(ctx.obj, None)), code=2)
        except OperationalError as error:
            url = ctx.obj.settings().redacted_database_url
            reason = str(error.orig or error).strip().splitlines()[0]
            fail(ctx.obj.formatter().t("cli.database", url=url, reason=reason), code=2)


@click.group(cls=KpibotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    metavar="FILE",
    default=None,
    help="Config file (default: $KPIBOT_CONFIG, else kpibot.yaml in the working directory).",
)
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """kpibot: sales KPIs against targets, in Slack, Teams and the terminal."""
    environ = process_environment()
    ctx.obj = CliContext(config_path(config, environ), environ)


# Whoever runs kpibot on the machine holds its config and database: they see everything.
OPERATOR = Viewer("operator", Role.ADMIN)


@main.command()
@click.argument("question", nargs=-1, required=True)
@as_of_option
@json_option
@click.pass_obj
def ask(obj: CliContext, question: tuple[str, ...], as_of: str | None, as_json: bool) -> None:
    """Answer a question or a sub-command, as /kpi does: kpibot ask "revenue team DACH last
    quarter", kpibot ask classement, kpibot ask alertes."""
    service = obj.service()
    now = parse_as_of(as_of, obj.settings())
    core = ConversationCore(service, lambda _user, _now: OPERATOR, session_factory(service.engine))
    reply = core.handle(OPERATOR.user_id, parse_request(" ".join(question)), now)
    view = reply.view
    text = render_text(reply, obj.formatter())
    if reply.refused or (isinstance(view, Help) and view.problem is not None):
        fail(text)
    if not as_json:
        click.echo(text)
        return
    org = obj.settings().organisation
    if isinstance(view, ChangesView):
        click.echo(json.dumps(serialize.changes(view.changes, org.currency), indent=2))
        return
    if not isinstance(view, AnswerView):
        fail(obj.formatter().t("cli.json_one_kpi"))
    click.echo(json.dumps(serialize.answer(view.answer, obj.formatter()), indent=2))


@main.command()
@as_of_option
@json_option
@click.pass_obj
def check(obj: CliContext, as_of: str | None, as_json: bool) -> None:
    """Evaluate every target and print the alerts it would raise."""
    evaluations = obj.service().check(parse_as_of(as_of, obj.settings()))
    alerts = [e for e in evaluations if e.status.is_alert]
    if as_json:
        payload = [serialize.evaluation(e, obj.formatter()) for e in alerts]
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(rendering.render_alerts_text(alerts, obj.formatter()))


@main.command()
@click.option("--dry-run", is_flag=True, required=True, help="Print instead of posting.")
@click.option(
    "--format", "output", type=click.Choice(["text", "blocks"]), default="text", show_default=True
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the digest's chart (revenue against its pace line, per team) as a PNG.",
)
@click.option(
    "--waterfall",
    type=click.Choice(["month", "quarter", "year"]),
    help="Add that period's pipeline waterfall over the last seven days, as a weekly digest.",
)
@click.option(
    "--waterfall-chart",
    "waterfall_chart_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="With --waterfall, also write the waterfall as a PNG.",
)
@as_of_option
@click.pass_obj
def digest(
    obj: CliContext,
    dry_run: bool,
    output: str,
    chart: Path | None,
    waterfall: str | None,
    waterfall_chart_path: Path | None,
    as_of: str | None,
) -> None:
    """Print today's digest as it would be posted."""
    from bot.charts import chart_title, pace_chart, waterfall_chart

    fmt = obj.formatter()
    now = parse_as_of(as_of, obj.settings())
    result = obj.service().digest(now, title=fmt.t("daily_digest"))
    if waterfall is None and waterfall_chart_path is not None:
        fail("--waterfall-chart draws the waterfall of --waterfall: give both", code=2)
    if waterfall is not None:
        changes = obj.service().week_of_changes(now, Scope.company(), Grain(waterfall))
        result = dataclasses.replace(result, changes=changes)
        if waterfall_chart_path is not None:
            title = rendering.changes_view(changes, fmt).title
            waterfall_chart_path.write_bytes(waterfall_chart(changes, fmt, title))
            click.echo(f"Waterfall chart written to {waterfall_chart_path}", err=True)
    if chart is not None:
        paths = obj.service().pace_paths(now)
        if not paths:
            fail(fmt.t("cli.no_chart"))
        chart.write_bytes(pace_chart(paths, fmt, chart_title(paths, fmt)))
        click.echo(fmt.t("cli.chart_written", path=chart), err=True)
    if output == "blocks":
        blocks = rendering.render_digest_blocks(result, fmt)
        click.echo(json.dumps({"blocks": blocks}, indent=2, ensure_ascii=False))
    else:
        click.echo(rendering.render_digest_text(result, fmt))


@main.command("migrate")
@click.pass_obj
def migrate_command(obj: CliContext) -> None:
    """Bring the database schema to this release (the Procfile's release step). Safe to run
    again, and from several processes at once."""
    settings = obj.settings()
    engine = make_engine(settings.database_url)
    try:
        before, after = migrate(engine)
    finally:
        engine.dispose()
    where = settings.redacted_database_url
    fmt = obj.formatter()
    if before == after:
        click.echo(fmt.t("cli.migrate.current", database=where, revision=after))
    elif before is None:
        click.echo(fmt.t("cli.migrate.created", database=where, revision=after))
    else:
        click.echo(fmt.t("cli.migrate.done", database=where, before=before, revision=after))


@main.command("check-config")
@click.pass_obj
def check_config(obj: CliContext) -> None:
    """Validate the config file; mistakes are reported with their key path (exit code 2)."""
    fmt = obj.formatter()
    if not obj.config.exists():
        fail(fmt.t("cli.no_config", path=obj.config), code=2)
    settings = obj.settings()
    unset = settings.unset_webhook_variables()
    if unset:
        fail(fmt.t("cli.webhooks_unset", path=obj.config, variables=", ".join(unset)), code=2)
    config = settings.config
    counts = [
        fmt.tn("cli.targets", len(config.targets)),
        fmt.tn("cli.csv_sources", len(config.imports.csv)),
        fmt.tn("cli.sync_sources", len(config.sources)),
    ]
    database = settings.redacted_database_url
    click.echo(fmt.t("cli.config_ok", path=obj.config, counts=", ".join(counts), database=database))


@main.group("import")
def import_group() -> None:
    """Import CRM data."""


@import_group.command("csv")
@click.argument("source")
@click.pass_obj
def import_csv_command(obj: CliContext, source: str) -> None:
    """Import the CSV files of SOURCE (a name under import.csv in the config)."""
    from bot.importers.csv_import import import_csv

    settings = obj.settings()
    sources = settings.config.imports.csv
    if source not in sources:
        known = ", ".join(sources) or obj.formatter().t("report.none")
        fail(
            obj.formatter().t("cli.no_csv_source", name=repr(source), path=obj.config, known=known),
            2,
        )
    service = obj.service()
    base = obj.config.parent / sources[source].base_dir
    with transaction(session_factory(service.engine)) as session:
        report = import_csv(session, source, sources[source], base, settings.organisation.currency)
    click.echo(report.summary())
    fmt = obj.formatter()
    for problem in report.problems:
        where = {"file": problem.file, "line": problem.line}
        click.echo(fmt.t("import.skipped", reason=problem.worded(fmt.language), **where), err=True)
    if report.changed:
        service.publish_facts()  # the snapshot every serving process maps


@main.command("sync")
@click.argument("source", required=False)
@click.option("--full", is_flag=True, help="Pull every record, not only those changed since.")
@click.option("--dry-run", is_flag=True, help="Fetch and check everything; write nothing.")
@click.pass_obj
def sync_command(obj: CliContext, source: str | None, full: bool, dry_run: bool) -> None:
    """Pull SOURCE (default: scheduling.sync_source) into the store and print what changed."""
    from bot.scheduling.sync import SUCCEEDED, SyncIncomplete, record_sync
    from bot.sources.progress import SyncProgress
    from bot.sources.registry import check_source, source_names, sync_source
    from bot.sources.service import SourceReport

    settings = obj.settings()
    fmt = obj.formatter()
    names = [source] if source else list(settings.config.scheduling.sync_sources)
    if not names:
        known = ", ".join(source_names(settings)) or fmt.t("report.none")
        fail(fmt.t("cli.sync.no_source", known=known), code=2)
    if source:
        check_source(settings, source)  # scheduling.sync_source was checked with the config
    engine = obj.service().engine
    progress = SyncProgress(sys.stderr)
    reports: list[SourceReport] = []

    def pull(session: Session) -> int:
        changed = 0
        for name in names:
            report = sync_source(session, settings, name, full=full, progress=progress)
            reports.append(report)
            click.echo(report.summary(fmt))
            changed += report.changed
            if report.error is not None:
                raise SyncIncomplete(name, report.error, changed)
        return changed

    if dry_run:
        with transaction(session_factory(engine)) as session:
            # A source that stopped has printed why; the dry run writes nothing either way.
            with contextlib.suppress(SyncIncomplete):
                pull(session)
            session.rollback()
        click.echo(fmt.t("cli.sync.dry_run"))
        failed = any(report.error is not None for report in reports)
    else:
        label = "+".join(names)
        run = record_sync(engine, label, pull, datetime.now(settings.organisation.zone), fmt)
        if run.changed:
            obj.service().publish_facts()  # the snapshot every serving process maps
        failed = run.status != SUCCEEDED
        if failed and not reports:
            click.echo(fmt.t("job.sync.failed", source=label, error=run.detail), err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.option("--seed", default=7, show_default=True, help="Random seed of the demo company.")
@as_of_option
@click.pass_obj
def demo(obj: CliContext, seed: int, as_of: str | None) -> None:
    """Build the demo company here and print today's digest, alerts and sample answers
    (--as-of: the demo company as it would be on that day)."""
    from bot.demo import ORGANISATION, build_demo, write_demo_config

    now = as_of_for(as_of, ORGANISATION)
    if not obj.config.exists():
        write_demo_config(obj.config, today=now.date(), seed=seed)
        click.echo(obj.formatter().t("cli.demo.config_written", path=obj.config))
    service = obj.service()
    today = service.local_date(now)
    with transaction(session_factory(service.engine)) as session:
        summary = build_demo(session, today, seed=seed)
    fmt = obj.formatter()
    database = obj.settings().redacted_database_url
    click.echo(fmt.t("cli.demo.built", database=database, summary=summary.worded(fmt)) + "\n")
    # The digest carries today's alerts, as it does in Slack.
    click.echo(rendering.render_digest_text(service.digest(now, title=fmt.t("daily_digest")), fmt))
    for question in DEMO_QUESTIONS:
        click.echo(f"\n$ kpibot ask {json.dumps(question, ensure_ascii=False)}")
        click.echo(rendering.render_answer_text(service.ask(question, now), fmt))


DEMO_QUESTIONS = (
    "ca ce trimestre",
    "taux de gain par équipe trimestre dernier",
    "conversion ce mois",
    "cpa",
    "glissements ce trimestre",
    "ca grands comptes",
    "cpa par canal ce trimestre",
    "montée en puissance",
)


# --- scheduling and delivery (issue 4) -------------------------------------------------------


def _runtime(obj: CliContext) -> Runtime:
    from bot.scheduling.runtime import build_runtime

    # A ConfigError (e.g. an unknown sync_source) is turned into a message by KpibotGroup.
    return build_runtime(obj.settings())


@main.command("run-due")
@click.option(
    "--at",
    "at",
    metavar="DATETIME",
    help="The instant, e.g. 2026-12-01T08:30:00+01:00 (default: now).",
)
@click.pass_obj
def run_due_command(obj: CliContext, at: str | None) -> None:
    """Send the messages a failed delivery left pending, run, once, every job due at an
    instant (sync, evaluation, digests), and exit.

    A job already run for that fire time (by this or another process) is not run again."""
    from bot.scheduling.runner import ERROR, Runner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    instant = parse_as_of(at, obj.settings())
    runtime = _runtime(obj)
    # What the clock's recovery pass does every scheduling.recovery_interval, here on demand;
    # first, so that the messages this run's jobs fail to send wait for the next pass.
    fmt = obj.formatter()
    flushed = runtime.notifier.drain()
    if flushed.seen:
        summary = fmt.tn(
            "job.flushed",
            flushed.seen,
            delivered=flushed.delivered,
            pending=flushed.still_pending,
            given_up=flushed.given_up,
        )
        click.echo(f"{fmt.t('job.flushed.label'):<9} {'outbox':<30} {summary}")
    outcomes = Runner(runtime).run_due(instant)
    for outcome in outcomes:
        local = outcome.fire_time.astimezone(fmt.zone)
        word = fmt.t(f"job.outcome.{outcome.outcome}")
        click.echo(f"{word:<9} {outcome.job_id:<30} {local:%Y-%m-%d %H:%M %Z}  {outcome.detail}")
    if not outcomes:
        click.echo(fmt.t("job.nothing_due", time=instant.isoformat()))
    if any(o.outcome == ERROR for o in outcomes):
        sys.exit(1)


@main.command()
@click.pass_obj
def clock(obj: CliContext) -> None:
    """Run the scheduler until SIGTERM or SIGINT (then finish the running jobs and exit)."""
    from bot.scheduling.clock import Clock

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic says at INFO which dialect it found on every schema check: noise in the log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    scheduler = Clock(_runtime(obj))
    scheduler.start()
    fmt = obj.formatter()
    click.echo(fmt.t("cli.clock.running"), err=True)
    stop.wait()
    click.echo(fmt.t("cli.clock.stopping"), err=True)
    scheduler.shutdown()


@main.command()
@as_of_option
@json_option
@click.pass_obj
def status(obj: CliContext, as_of: str | None, as_json: bool) -> None:
    """Last sync, next runs, outbox backlog, failed deliveries, active alerts and silences."""
    from bot.scheduling.plan import build_plan
    from bot.status import collect_status, render_status

    settings = obj.settings()
    engine = make_engine(settings.database_url)
    ensure_schema(engine)
    with session_factory(engine)() as session:
        plan = build_plan(settings, load_subscriptions(settings, session))
    now = parse_as_of(as_of, settings) if as_of else datetime.now(settings.organisation.zone)
    result = collect_status(settings, engine, plan, now)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2, default=str))
    else:
        click.echo(render_status(result, obj.formatter()))


@main.command()
@click.option(
    "--http", "http_mode", is_flag=True, help="HTTP mode (/slack/events) instead of Socket Mode."
)
@click.option("--host", default="0.0.0.0", show_default=True, help="HTTP server: interface.")
@click.option("--port", type=int, default=None, help="HTTP server: port (default PORT, else 3000).")
@click.option("--with-scheduler", is_flag=True, help="Also run the scheduler (small installs).")
@click.pass_obj
def serve(
    obj: CliContext, http_mode: bool, host: str, port: int | None, with_scheduler: bool
) -> None:
    """Run the bots: Slack in Socket Mode (SLACK_BOT_TOKEN, SLACK_APP_TOKEN) or HTTP mode with
    --http (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET); Microsoft Teams on /api/messages when
    TEAMS_CLIENT_ID and TEAMS_CLIENT_SECRET are set. Both from one process."""
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError
    from starlette.routing import Route

    from bot.delivery.slack_client import slack_client
    from bot.http_app import build_server, serve_http, slack_events_route
    from bot.slack_app import build_app, redact
    from bot.slack_tokens import TokenProblem, accepted, required

    # A server's log: refused requests and listener errors, one line each (uvicorn adds its own).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = obj.settings()
    secrets = settings.secrets
    teams: TeamsCredentials | None = None
    if secrets.teams_bot_set:
        # The Teams SDK is most of this command's imports: a Slack-only install goes without.
        from bot.teams.app import TeamsNotConfigured, credentials, teams_route

        try:
            teams = credentials(settings)
        except TeamsNotConfigured as problem:
            fail(str(problem), code=2)
    slack_set = secrets.slack_bot_token or secrets.slack_app_token or secrets.slack_signing_secret
    routes: list[Route] = []
    app = None
    if slack_set or teams is None:
        client = slack_client(settings)
        try:
            required(secrets, http_mode=http_mode)
            accepted(client, secrets, http_mode=http_mode)
            app = build_app(settings, obj.service(), client=client)
        except TokenProblem as problem:
            fail(problem.worded(obj.formatter()), code=2)
        except (BoltError, SlackApiError, OSError) as error:
            api = settings.slack_api_url or "https://slack.com/api/"
            fail(obj.formatter().t("cli.slack_app", api=api, error=redact(str(error))), code=2)
        if http_mode:
            routes.append(slack_events_route(app, secrets.slack_signing_secret or ""))
    if teams is not None:
        route = teams_route(settings, obj.service())
        assert route is not None
        routes.append(route)
    if with_scheduler:
        # bot.scheduling's clock runs in background threads beside the server (small installs).
        from bot.scheduling.clock import Clock

        Clock(_runtime(obj)).start()
    obj.service().warm_facts()  # mapped before the first question, not inside it
    if app is not None and not http_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, secrets.slack_app_token)
        if not routes:
            handler.start()  # type: ignore[no-untyped-call]
            return
        handler.connect()  # type: ignore[no-untyped-call]  # in its own threads, beside Teams
    serve_http(build_server(routes), host, port or settings.port or 3000)


@main.command("teams-package")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("kpibot-teams.zip"),
    show_default=True, help="Where to write the zip.",
)  # fmt: skip
@click.option("--version", "app_version", default="1.0.0", show_default=True,
              help="The app's version (raise it to update an uploaded app).")  # fmt: skip
@click.option("--publisher", default="kpibot", show_default=True, help="Developer name.")
@click.option(
    "--website", default="https://github.com/kpibot/kpibot", show_default=True,
    help="Developer website (https); also the privacy and terms pages unless given.",
)  # fmt: skip
@click.option("--privacy", default=None, help="Privacy statement URL (https).")
@click.option("--terms", default=None, help="Terms of use URL (https).")
@click.pass_obj
def teams_package(
    obj: CliContext, output: Path, app_version: str, publisher: str, website: str,
    privacy: str | None, terms: str | None,
) -> None:  # fmt: skip
    """Build the Teams app package (manifest.json, icons) to sideload or upload in the Teams
    admin center. The bot's id is TEAMS_CLIENT_ID."""
    from bot.teams.package import Publisher, build_package

    app_id = obj.settings().secrets.teams_client_id
    if not app_id:
        fail("TEAMS_CLIENT_ID is not set: the package names the bot by its Microsoft App ID "
             "(Azure Bot → Configuration)", code=2)  # fmt: skip
    for name, url in (("--website", website), ("--privacy", privacy), ("--terms", terms)):
        if url is not None and not url.startswith("https://"):
            fail(f"{name} must be an https:// URL (Teams refuses others), got {url!r}", code=2)
    who = Publisher(publisher, website, privacy or website, terms or website)
    path = build_package(output, app_id, app_version, who)
    click.echo(f"wrote {path}: upload it in Teams (Apps → Manage your apps → Upload an app) or "
               "in the Teams admin center (Teams apps → Manage apps → Upload new app)")  # fmt: skip


@main.command("teams-conversations")
@click.pass_obj
def teams_conversations(obj: CliContext) -> None:
    """The Teams conversations the bot can post to (installed in, or spoken to), by the name
    that the config's teams routes and teams: destinations use."""
    from bot.teams.conversations import known

    engine = make_engine(obj.settings().database_url)
    ensure_schema(engine)
    references = known(session_factory(engine))
    engine.dispose()
    if not references:
        click.echo("none yet: install the app in a team or chat, or send the bot a message")
    for reference in references:
        click.echo(f"{reference.name}\t{reference.kind}\t{reference.conversation_id}")
