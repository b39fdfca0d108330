"""`drover token …` (operator commands: they need the signing key in the data dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from drover.cli.output import Format, FormatOpt, fail, print_json, show_list

token_app = typer.Typer(help="Bearer tokens of drover's built-in issuer (needs the data dir's signing key).",
                        no_args_is_help=True)

policy_app = typer.Typer(help="The API's authorization policy.", no_args_is_help=True)

ConfigOpt = Annotated[str | None, typer.Option("--config", help="TOML configuration file (env DROVER_CONFIG).")]
DataOpt = Annotated[str | None, typer.Option("--data-dir", help="Where the signing key lives.")]


@token_app.command("create")
def token_create(
    project: Annotated[str, typer.Option("--project", help="Project the token acts in.")],
    user: Annotated[str, typer.Option("--user", help="User id (the token's subject).")],
    roles: Annotated[str, typer.Option("--roles", help="Comma-separated: reader, member, admin.")] = "member",
    ttl: Annotated[float, typer.Option("--ttl", help="Lifetime in seconds.")] = 3600.0,
    fmt: Format = FormatOpt,
    config: ConfigOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Issue a token; prints it (-f json: with its claims)."""
    from drover.auth import keys, tokens
    from drover.config import load_config

    cfg = load_config(config, data_dir=data_dir)
    names = [r.strip() for r in roles.split(",") if r.strip()]
    unknown = [r for r in names if r not in tokens.ROLES]
    if unknown:
        fail(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(tokens.ROLES)}")
    try:
        key = keys.load_signing_key(cfg.data_path)
    except FileNotFoundError:
        fail(f"no signing key at {keys.signing_key_path(Path(cfg.data_path))}: run `drover up` (or the API) first")
    try:
        token = tokens.issue(key, cfg.auth, project=project, user=user, roles=names, ttl=ttl)
    except ValueError as exc:
        fail(str(exc))
    if fmt == Format.json:
        print_json({"token": token, "project": project, "user": user, "roles": names, "ttl": ttl})
    else:
        typer.echo(token)


@policy_app.command("list")
def policy_list(fmt: Format = FormatOpt, config: ConfigOpt = None) -> None:
    """The effective rule of every API action: the defaults, overridden by auth.policy_file."""
    from drover.auth import policy
    from drover.config import load_config

    cfg = load_config(config)
    try:
        effective = policy.load(cfg.auth.policy_file)
    except (OSError, ValueError) as exc:
        fail(f"cannot load the policy file: {exc}")
    rows = effective.table()
    show_list(["Action", "Rule", "Default", "Description"],
              ([r["action"], r["rule"] + (" (overridden)" if r["overridden"] else ""), r["default"],
                r["description"]] for r in rows), fmt, rows)
