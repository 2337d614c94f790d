"""The `contactcenter` command: the Procfile's processes, `up` for everything at once, and
administration (migrate, create-agent)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from contactcenter.domain.enums import Role
from contactcenter.domain.errors import DomainError
from contactcenter.logs import setup_logging
from contactcenter.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contactcenter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up", help="everything in one command (embedded PostgreSQL/Redis when their URLs are unset)"
    )
    up.add_argument("--demo", action="store_true", help="add sample team, agents and a customer")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--data-dir", default=".data", help="where embedded servers keep their data")

    serve = commands.add_parser("serve", help="the web process (HTTP API and WebSockets)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    commands.add_parser("worker", help="the arq worker (routing, sends, reconciler)")
    commands.add_parser("mail-listen", help="the IMAP listeners, one per mailbox")
    parse = commands.add_parser("email-parse", help="print a mail file parsed, as JSON")
    parse.add_argument("file", help="an RFC 822 file (.eml); - reads standard input")
    commands.add_parser("migrate", help="apply the database migrations")

    create = commands.add_parser("create-agent", help="add an agent and print their token")
    create.add_argument("--name", required=True)
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    create.add_argument("--team", help="team name (default: the default team)")
    create.add_argument("--capacity", type=int, help="how many conversations at once")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    load_dotenv(override=False)  # a .env in the working directory, if there is one
    try:
        settings = Settings.from_env()
        if getattr(args, "host", None):
            settings = settings.replace(host=args.host)
        if getattr(args, "port", None):
            settings = settings.replace(port=args.port)
        setup_logging(settings.log_level, process=args.command)
        _run(args, settings)
    except SettingsError as error:
        sys.exit(f"contactcenter: cannot start: {error}")
    except DomainError as error:
        sys.exit(f"contactcenter: {error.message} ({error.code})")


def _run(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "serve":
        from contactcenter.serve import serve

        serve(settings)
    elif args.command == "worker":
        from workers.run import run_worker

        asyncio.run(run_worker(settings))
    elif args.command == "mail-listen":
        from channels.email.run import run_mail_listeners

        asyncio.run(run_mail_listeners(settings))
    elif args.command == "email-parse":
        _email_parse(args.file, settings)
    elif args.command == "migrate":
        from contactcenter.migrate import migrate

        applied = asyncio.run(migrate(settings.database))
        print(
            f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
        )
    elif args.command == "create-agent":
        print(asyncio.run(_create_agent(settings, args)))
    elif args.command == "up":
        from contactcenter.supervisor import up

        try:
            code = up(settings, demo=args.demo, data_dir=args.data_dir)
        except RuntimeError as error:  # an embedded server or a child failed to start
            sys.exit(f"contactcenter up: {error}")
        sys.exit(code)


def _email_parse(path: str, settings: Settings) -> None:
    import json

    from channels.email.parse import EmailParseError, parse_email

    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        parsed = parse_email(raw, max_attachment_bytes=settings.max_attachment_bytes)
    except EmailParseError as error:
        sys.exit(f"contactcenter email-parse: not a readable mail: {error}")
    print(json.dumps(parsed.to_json(), ensure_ascii=False, indent=2, default=str))


async def _create_agent(settings: Settings, args: argparse.Namespace) -> str:
    from contactcenter import db
    from contactcenter.services.agents import create_agent

    pool = await db.create_pool(settings.database, min_size=1, max_size=2)
    try:
        created = await create_agent(
            pool,
            name=args.name,
            email=args.email,
            role=Role(args.role),
            team_name=args.team,
            capacity=settings.default_agent_capacity if args.capacity is None else args.capacity,
        )
    finally:
        await pool.close()
    return (
        f"created agent {created.id} ({args.email}, {args.role}); token (shown once):\n"
        f"{created.token}"
    )
