"""Printing: rich tables for people, JSON for programs, one clear line for errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NoReturn

import grpc
import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from rich.console import Console
from rich.table import Table

from drover.v1 import types_pb2

# Piped output (no terminal) would be cut at 80 columns; give tables room instead.
console = Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=160)
err_console = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = typer.Option(Format.table, "-f", "--format", help="Output format.")


def to_dict(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def show_record(fields: Sequence[tuple[str, Any]], fmt: Format, raw: Any = None) -> None:
    if fmt == Format.json:
        print_json(raw if raw is not None else dict(fields))
        return
    table = Table("Field", "Value", show_header=True, header_style="bold")
    for name, value in fields:
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


def show_list(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: Format, raw: list[Any]) -> None:
    if fmt == Format.json:
        print_json(raw)
        return
    table = Table(*columns, show_header=True, header_style="bold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    name = enum_type.Name(value)
    return "" if name.endswith("UNSPECIFIED") else name.removeprefix(prefix)


def status(server: types_pb2.Server) -> str:
    return enum_name(types_pb2.ServerStatus, server.status, "SERVER_STATUS_")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def describe_rpc_error(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach drover ({details}); is `drover up` running?"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (f"UNAUTHENTICATED: {details} (pass --token, set DROVER_TOKEN, or run where `drover up` keeps "
                "its data dir)")
    parts = [f"{code.name if code else 'ERROR'}: {details}"]
    trailing = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    raw = trailing.get("grpc-status-details-bin")
    if raw and code == grpc.StatusCode.INVALID_ARGUMENT:
        from google.rpc import status_pb2

        st = status_pb2.Status.FromString(raw)
        for d in st.details:
            if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                d.Unpack(bad)
                parts = [f"{code.name}: " + "; ".join(f"{v.field}: {v.description}" for v in bad.field_violations)]
    return parts[0]
