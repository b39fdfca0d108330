"""`drover server group …` (openstackclient's `server group`)."""

from __future__ import annotations

from typing import Annotated

import typer

from drover.cli import client
from drover.cli.output import Format, FormatOpt, show_list, show_record, to_dict
from drover.v1 import api_pb2, types_pb2

app = typer.Typer(help="Server groups: affinity and anti-affinity for the servers you boot into them.",
                  no_args_is_help=True)
UrlOpt = Annotated[str | None, typer.Option("--url", help="API address (env DROVER_URL).")]


def _record(g: types_pb2.ServerGroup, fmt: Format) -> None:
    fields: list[tuple[str, object]] = [("id", g.id), ("name", g.name), ("policy", g.policy),
                                        ("max_server_per_host", g.max_server_per_host or None),
                                        ("members", ", ".join(g.members) or None), ("project_id", g.project_id),
                                        ("user_id", g.user_id)]
    show_record(fields, fmt, to_dict(g))


@app.command("create")
def group_create(
    name: str,
    policy: Annotated[str, typer.Option(
        "--policy", help="affinity, anti-affinity, soft-affinity or soft-anti-affinity")] = "affinity",
    max_server_per_host: Annotated[int, typer.Option(
        "--max-server-per-host", help="anti-affinity only: at most this many members on one host (default 1)")] = 0,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    """Create a server group; boot into it with `server create --hint group=ID`."""
    with client.api(url) as stub:
        g = stub.CreateServerGroup(api_pb2.CreateServerGroupRequest(name=name, policy=policy,
                                                                    max_server_per_host=max_server_per_host),
                                   timeout=10).server_group
    _record(g, fmt)


@app.command("list")
def group_list(
    all_projects: Annotated[bool, typer.Option("--all-projects", help="Every project's groups (admin)")] = False,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    with client.api(url) as stub:
        groups = stub.ListServerGroups(api_pb2.ListServerGroupsRequest(all_projects=all_projects),
                                       timeout=10).server_groups
    show_list(["ID", "Name", "Policy", "Members"], ([g.id, g.name, g.policy, len(g.members)] for g in groups),
              fmt, [to_dict(g) for g in groups])


@app.command("show")
def group_show(group: str, fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        g = stub.GetServerGroup(api_pb2.GetServerGroupRequest(id=group), timeout=10).server_group
    _record(g, fmt)


@app.command("delete")
def group_delete(groups: list[str], url: UrlOpt = None) -> None:
    """Delete server groups; their servers keep running."""
    with client.api(url) as stub:
        for group in groups:
            stub.DeleteServerGroup(api_pb2.DeleteServerGroupRequest(id=group), timeout=10)
