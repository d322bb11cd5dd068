"""`chorus user|token|audit` commands: accounts and audit verification from the command line.

Each function takes parsed arguments and settings, calls `accounts` or `audit_trail`, prints, and
returns an exit code; `main` stays a thin parser.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from orchestrator import store
from orchestrator.audit_keys import AuditKeyring, load_keyring
from orchestrator.cli.exit_codes import EXIT_INVALID, EXIT_OK
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ConfigurationError
from orchestrator.engine.accounts import ROLES, Accounts, parse_binding
from orchestrator.engine.audit_trail import verify_chains
from orchestrator.settings import Settings
from orchestrator.store.audit_checkpoint import check_checkpoint, dumps, make_checkpoint
from orchestrator.store.database import Session, sessionmaker
from orchestrator.store.errors import OperationalError

EXIT_BROKEN = EXIT_INVALID  #: `audit verify` found a broken chain
_CLI_ACTOR = "cli"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = commands.add_parser("user", help="users and their role bindings")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    create = user_commands.add_parser("create", help="create a user with role bindings")
    create.add_argument("username")
    create.add_argument(
        "--role",
        action="append",
        default=[],
        help=f"ROLE or ROLE:NAMESPACE_PREFIX, repeatable; roles: {', '.join(ROLES)}",
    )
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument("--no-password", action="store_true", help="a token-only (service) user")

    token = commands.add_parser("token", help="API tokens (bearer)")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    token_create = token_commands.add_parser("create", help="create a token; prints its secret once")
    token_create.add_argument("--user", required=True, help="the user the token acts as")
    token_create.add_argument("--name", required=True, help="a name to recognise the token by")
    token_create.add_argument("--expires-in", help="ISO-8601 duration, e.g. P30D (default: never)")
    token_revoke = token_commands.add_parser("revoke", help="revoke a token by id")
    token_revoke.add_argument("token_id")
    token_list = token_commands.add_parser("list", help="list tokens (never their secrets)")
    token_list.add_argument("--user", help="only this user's tokens")

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser("verify", help="re-walk the hash chains; exit 1 at the first broken link")
    verify.add_argument("--execution", help="only this execution's chain")
    verify.add_argument("--chain", help="only this chain key (e.g. flow:main/ns/id, namespace:main/ns, api:main)")
    verify.add_argument(
        "--allow-unkeyed",
        action="store_true",
        help="with an audit key configured, accept events without a MAC (written before the key existed); "
        "without this flag they fail, since stripping MACs is how a rewrite would hide",
    )
    verify.add_argument(
        "--checkpoint", type=Path, help="also check that every chain still holds what this signed checkpoint recorded"
    )
    checkpoint = audit_commands.add_parser(
        "checkpoint", help="print every chain's head, signed with the audit key: keep it outside the database"
    )
    checkpoint.add_argument("--out", type=Path, help="write to this file instead of standard output")


@contextmanager
def _sessions(settings: Settings, keyring: AuditKeyring) -> Iterator[sessionmaker[Session]]:
    from orchestrator.store.database import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url, pool_size=1)
    try:
        yield make_sessionmaker(engine, audit_key=keyring.current)
    finally:
        engine.dispose()


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _run(args, settings)
    except OperationalError as e:
        raise ConfigurationError("CHORUS_DATABASE_URL", f"cannot reach the database: {str(e.orig).strip()}") from e


def _run(args: argparse.Namespace, settings: Settings) -> int:
    keyring = load_keyring(settings)
    with _sessions(settings, keyring) as sessions:
        if args.command == "user":
            return _user_create(args, Accounts(settings, sessions))
        if args.command == "token":
            return _token(args, Accounts(settings, sessions))
        if args.audit_command == "checkpoint":
            return _audit_checkpoint(args, sessions, keyring)
        return _audit_verify(args, sessions, keyring)


def _user_create(args: argparse.Namespace, accounts: Accounts) -> int:
    bindings = [parse_binding(text) for text in args.role]
    password: str | None = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not args.no_password:
        password = getpass.getpass(f"password for {args.username}: ")
    if password is not None and len(password) < 8:
        raise ConfigurationError("--password-stdin", "the password needs at least 8 characters")
    row = accounts.create_user(args.username, password, bindings, actor=_CLI_ACTOR)
    print(f"created user {row.username} ({row.id})")  # noqa: T201
    return EXIT_OK


def _token(args: argparse.Namespace, accounts: Accounts) -> int:
    if args.token_command == "create":
        try:
            expires_in = parse_duration(args.expires_in) if args.expires_in else None
        except ValueError as e:
            raise ConfigurationError("--expires-in", str(e)) from e
        longest = timedelta(seconds=accounts.settings.token_max_ttl_s)
        if expires_in is not None and expires_in > longest:
            raise ConfigurationError("--expires-in", f"at most {longest.days} days (CHORUS_TOKEN_MAX_TTL_S)")
        new = accounts.create_token(args.user, args.name, expires_in=expires_in, actor=_CLI_ACTOR)
        print(f"token {new.row.id} for {args.user}; its secret (shown once):", file=sys.stderr)  # noqa: T201
        print(new.secret)  # noqa: T201
    elif args.token_command == "revoke":
        accounts.revoke_token(args.token_id, actor=_CLI_ACTOR)
        print(f"revoked token {args.token_id}")  # noqa: T201
    else:
        for row, username in accounts.list_tokens(args.user):
            state = "revoked" if row.revoked_at else "active"
            expires = store.iso(row.expires_at) if row.expires_at else "never"
            print(f"{row.id}  {username}  {row.name}  {state}  expires {expires}")  # noqa: T201
    return EXIT_OK


def _audit_verify(args: argparse.Namespace, sessions: sessionmaker[Session], keyring: AuditKeyring) -> int:
    keys = [args.execution] if args.execution else [args.chain] if args.chain else None
    by_id = keyring.by_id if keyring.by_id else None
    chains = events = unkeyed = 0
    with sessions() as session:
        for report in verify_chains(session, keys, by_id, require_mac=not args.allow_unkeyed):
            chains += 1
            events += report.events
            unkeyed += report.unkeyed
            if keys is not None and report.events == 0:
                print(f"chain {report.chain_key}: no events", file=sys.stderr)  # noqa: T201
                return EXIT_BROKEN
            if report.broken is not None:
                where = {"chain": report.chain_key, "seq": report.broken.seq, "eventId": report.broken_event_id}
                print(f"BROKEN {json.dumps(where)}: {report.broken.reason}")  # noqa: T201
                return EXIT_BROKEN
        if args.checkpoint is not None:
            broken = check_checkpoint(session, _read_json(args.checkpoint), keyring)
            if broken is not None:
                print(f"BROKEN {json.dumps({'chain': broken.chain_key, 'seq': broken.seq})}: {broken.reason}")  # noqa: T201
                return EXIT_BROKEN
    print(f"ok: {chains} chain(s), {events} event(s) verified{_strength(keyring, events, unkeyed)}")  # noqa: T201
    return EXIT_OK


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError("--checkpoint", f"cannot read {path}: {e}") from e


def _audit_checkpoint(args: argparse.Namespace, sessions: sessionmaker[Session], keyring: AuditKeyring) -> int:
    if keyring.current is None:
        raise ConfigurationError("CHORUS_AUDIT_KEY_FILE", "a checkpoint is signed with the audit key: configure one")
    with sessions() as session:
        document = make_checkpoint(session, keyring.current)
    text = dumps(document)
    if args.out is None:
        print(text, end="")  # noqa: T201
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"checkpoint of {len(document['heads'])} chain(s) written to {args.out}", file=sys.stderr)  # noqa: T201
    return EXIT_OK


def _strength(keyring: AuditKeyring, events: int, unkeyed: int) -> str:
    """What the ok means: a keyed MAC resists a database superuser; a bare SHA-256 chain does not."""
    if not keyring.by_id:
        return (
            " as an unkeyed SHA-256 chain only: it shows changes by someone without write access to the database, "
            "not a rewrite by a database superuser (configure CHORUS_AUDIT_KEY_FILE to add a keyed MAC)"
        )
    keyed = f" with HMAC-SHA256 (keys {', '.join(sorted(keyring.by_id))})"
    if unkeyed:
        keyed += f"; {unkeyed} of {events} event(s) have no MAC (written before a key) and are SHA-256 only"
    return keyed
