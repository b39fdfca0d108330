"""`drover server …`"""

from __future__ import annotations

import time
from typing import Annotated, Any

import grpc
import typer

from drover import retry
from drover.cli import client, groups
from drover.cli.output import (
    Format,
    FormatOpt,
    enum_name,
    fail,
    print_json,
    show_list,
    show_record,
    status,
    to_dict,
)
from drover.v1 import api_pb2, types_pb2

app = typer.Typer(help="Servers (Nova instances).", no_args_is_help=True)
event_app = typer.Typer(help="Server actions and their events.", no_args_is_help=True)
app.add_typer(event_app, name="event")
app.add_typer(groups.app, name="group")

UrlOpt = Annotated[str | None, typer.Option("--url", help="API address (env DROVER_URL).")]


def _fields(s: types_pb2.Server) -> list[tuple[str, object]]:
    addresses = ", ".join(f"{a.network_name}={a.address}" for a in s.addresses)
    out: list[tuple[str, object]] = [
        ("id", s.id),
        ("name", s.name),
        ("status", status(s)),
        ("vm_state", enum_name(types_pb2.VmState, s.vm_state, "VM_STATE_")),
        ("task_state", enum_name(types_pb2.TaskState, s.task_state, "TASK_STATE_") or None),
        ("power_state", enum_name(types_pb2.PowerState, s.power_state, "POWER_STATE_") or "NOSTATE"),
        ("flavor", s.flavor_id),
        ("image", s.image_id),
        ("host", s.host or None),
        ("addresses", addresses or None),
        ("created", s.created_at.ToJsonString() if s.HasField("created_at") else None),
        ("launched_at", s.launched_at.ToJsonString() if s.HasField("launched_at") else None),
    ]
    if s.HasField("fault"):
        out.append(("fault", s.fault.message))
    if s.HasField("scheduler_explanation"):
        e = s.scheduler_explanation
        out.append(("scheduler", e.summary or f"{e.hosts_passed} of {e.hosts_total} hosts passed"))
        for r in e.rejections:
            sample = f" (e.g. {r.sample_reasons[0]})" if r.sample_reasons else ""
            out.append((f"  {r.filter}", f"rejected {r.rejected}{sample}"))
    return out


def _wait(stub: client.api_pb2_grpc.ApiServiceStub, server_id: str, follow: bool, timeout: float,
          quiet: bool = False, since_revision: int = 0) -> types_pb2.Server:
    last = None
    deadline = time.monotonic() + timeout
    try:
        request = api_pb2.WatchServerRequest(id=server_id, follow=follow, since_revision=since_revision)
        for ev in stub.WatchServer(request, timeout=timeout):
            last = ev.server
            if not quiet and ev.HasField("notification"):
                typer.echo(f"  {ev.notification.event_type}", err=True)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED or time.monotonic() > deadline:  # type: ignore[attr-defined]
            fail(f"gave up waiting for server {server_id} after {timeout:.0f} s")
        raise
    if last is None:
        fail(f"server {server_id} vanished")
    return last


def _wait_ready(stub: client.api_pb2_grpc.ApiServiceStub, server: types_pb2.Server, timeout: float) -> None:
    """Poll the console log until the guest prints its image's ready marker."""
    image = stub.GetImage(api_pb2.GetImageRequest(id=server.image_id), timeout=10).image
    marker = image.properties.get("ready_marker")
    if not marker:
        fail(f"image {image.name} has no ready_marker property; --wait is all there is to wait for")
    deadline = time.monotonic() + max(timeout, 1.0)
    while time.monotonic() < deadline:
        out = stub.GetConsoleOutput(api_pb2.GetConsoleOutputRequest(id=server.id), timeout=10).output
        if marker in out:
            typer.echo(f"  guest ready ({marker})", err=True)
            return
        time.sleep(0.2)
    fail(f"server {server.name} is ACTIVE but its guest did not print {marker!r} within {timeout:.0f} s")


def _hints(pairs: list[str]) -> api_pb2.SchedulerHints:
    hints = api_pb2.SchedulerHints()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            fail(f"--hint takes KEY=VALUE, not {pair!r}")
        if key == "group":
            hints.group = value
        elif key in ("same_host", "different_host"):
            getattr(hints, key).append(value)
        else:
            fail(f"unknown scheduler hint {key!r} (known: group, same_host, different_host)")
    return hints


@app.command("create")
def create(
    name: str,
    flavor: Annotated[str, typer.Option("--flavor", help="Flavor name or id.")],
    image: Annotated[str, typer.Option("--image", help="Image name or id.")],
    network: Annotated[
        list[str] | None, typer.Option("--network", help="Network name/id, or net=ID,v4-fixed-ip=IP")
    ] = None,
    availability_zone: Annotated[str, typer.Option("--availability-zone")] = "",
    min_count: Annotated[int, typer.Option("--min")] = 0,
    max_count: Annotated[int, typer.Option("--max")] = 0,
    prop: Annotated[list[str] | None, typer.Option("--property", help="key=value metadata")] = None,
    hint: Annotated[list[str] | None, typer.Option(
        "--hint", help="Scheduler hint: group=GROUP_ID, same_host=SERVER_ID or different_host=SERVER_ID"
    )] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until ACTIVE or ERROR.")] = False,
    wait_ready: Annotated[bool, typer.Option(
        "--wait-ready", help="Also wait for the guest's ready marker (image property ready_marker) on its console."
    )] = False,
    timeout: Annotated[float, typer.Option("--timeout")] = 300.0,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    """Create a server."""
    nets = []
    for n in network or []:
        if "=" in n:
            parts = dict(p.split("=", 1) for p in n.split(",") if "=" in p)
            nets.append(api_pb2.NetworkRequest(uuid=parts.get("net", ""),
                                               fixed_ip=parts.get("v4-fixed-ip", parts.get("v6-fixed-ip", ""))))
        else:
            nets.append(api_pb2.NetworkRequest(uuid=n))
    meta = dict(p.split("=", 1) for p in (prop or []) if "=" in p)
    req = api_pb2.CreateServerRequest(name=name, flavor_ref=flavor, image_ref=image, networks=nets,
                                      availability_zone=availability_zone, min_count=min_count,
                                      max_count=max_count, metadata=meta, scheduler_hints=_hints(hint or []),
                                      client_token=retry.new_token())
    with client.api(url) as stub:
        # The token makes the retry of a lost answer return the same servers, never new ones.
        resp = retry.call(lambda: stub.CreateServer(req, timeout=30))
        server = resp.server
        started = time.monotonic()
        if wait or wait_ready:
            server = _wait(stub, server.id, False, timeout, quiet=fmt == Format.json, since_revision=server.revision)
        if wait_ready and server.vm_state == types_pb2.VM_STATE_ACTIVE:
            _wait_ready(stub, server, timeout - (time.monotonic() - started))
    show_record(_fields(server), fmt, to_dict(server))
    if (wait or wait_ready) and server.vm_state == types_pb2.VM_STATE_ERROR:
        raise typer.Exit(1)


@app.command("list")
def list_(
    status_: Annotated[str, typer.Option("--status", help="BUILD, ACTIVE, ERROR, SHUTOFF, DELETED")] = "",
    name: Annotated[str, typer.Option("--name", help="Regular expression")] = "",
    host: Annotated[str, typer.Option("--host")] = "",
    limit: Annotated[int, typer.Option("--limit", help="Page size")] = 0,
    marker: Annotated[str, typer.Option("--marker", help="Page token from a previous list")] = "",
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
    all_projects: Annotated[bool, typer.Option("--all-projects", help="Every project's servers (admin)")] = False,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    """List servers, newest first."""
    from drover.services.common.states import STATUS_NAMES

    st: Any = 0
    if status_:
        if status_.upper() not in STATUS_NAMES:
            fail(f"unknown status {status_!r}; one of {', '.join(STATUS_NAMES)}")
        st = STATUS_NAMES[status_.upper()]
    servers: list[types_pb2.Server] = []
    token = marker
    with client.api(url) as stub:
        while True:
            resp = stub.ListServers(api_pb2.ListServersRequest(status=st, name=name, host=host, page_size=limit,
                                                               page_token=token, all_projects=all_projects),
                                    timeout=30)
            servers.extend(resp.servers)
            token = resp.next_page_token
            if not all_pages or not token:
                break
    show_list(
        ["ID", "Name", "Status", "Task State", "Power State", "Host", "Networks"],
        ([s.id, s.name, status(s), enum_name(types_pb2.TaskState, s.task_state, "TASK_STATE_"),
          enum_name(types_pb2.PowerState, s.power_state, "POWER_STATE_") or "NOSTATE", s.host,
          ", ".join(a.address for a in s.addresses)] for s in servers),
        fmt,
        [to_dict(s) for s in servers],
    )
    if token and not all_pages and fmt == Format.table:
        typer.echo(f"more: --marker {token}", err=True)


@app.command("show")
def show(server: str, fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    """Show one server (with the scheduler's explanation when no host was found)."""
    with client.api(url) as stub:
        s = client.find_server(stub, server)
    show_record(_fields(s), fmt, to_dict(s))


@app.command("delete")
def delete(
    servers: list[str],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until deleted.")] = False,
    timeout: Annotated[float, typer.Option("--timeout")] = 300.0,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    """Delete servers (also while they are building); shows each as the delete left it."""
    with client.api(url) as stub:
        done = []
        for ref in servers:
            s = client.find_server(stub, ref)
            req = api_pb2.DeleteServerRequest(id=s.id, client_token=retry.new_token())
            done.append(retry.call(lambda req=req: stub.DeleteServer(req, timeout=30)).server)  # type: ignore[misc]
        if wait:
            done = [_wait(stub, d.id, True, timeout, quiet=True, since_revision=d.revision) for d in done]
    show_list(["ID", "Name", "Status", "Task State"],
              ([d.id, d.name, status(d),
                enum_name(types_pb2.TaskState, d.task_state, "TASK_STATE_")] for d in done),
              fmt, [to_dict(d) for d in done])


@app.command("console-log")
def console_log(
    server: str,
    lines: Annotated[int, typer.Option("--lines", help="Last N lines")] = 0,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    """Show the guest's serial console (as it is; -f json: {"id", "name", "output"})."""
    with client.api(url) as stub:
        s = client.find_server(stub, server)
        out = stub.GetConsoleOutput(api_pb2.GetConsoleOutputRequest(id=s.id, length=lines), timeout=30)
    if fmt == Format.json:
        print_json({"id": s.id, "name": s.name, "output": out.output})
        return
    typer.echo(out.output, nl=False)


@event_app.command("list")
def event_list(server: str, fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    """List a server's actions and their events (`openstack server event list` + `show`)."""
    with client.api(url) as stub:
        s = client.find_server(stub, server, deleted=True)
        resp = stub.ListServerActions(api_pb2.ListServerActionsRequest(server_id=s.id), timeout=30)
    rows = []
    for a in resp.actions:
        rows.append([a.request_id, a.action, a.start_time.ToJsonString(),
                     a.finish_time.ToJsonString() if a.HasField("finish_time") else "", "", "", a.message])
        for e in a.events:
            rows.append(["", f"  {e.event}", e.start_time.ToJsonString(),
                         e.finish_time.ToJsonString() if e.HasField("finish_time") else "", e.result, e.host,
                         e.details])
    show_list(["Request ID", "Action / Event", "Start", "Finish", "Result", "Host", "Message"], rows, fmt,
              [to_dict(a) for a in resp.actions])
