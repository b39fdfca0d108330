"""`drover flavor|image|network|host …`"""

from __future__ import annotations

from typing import Annotated

import typer

from drover.cli import client
from drover.cli.output import Format, FormatOpt, fail, show_list, show_record, to_dict
from drover.v1 import api_pb2, types_pb2

UrlOpt = Annotated[str | None, typer.Option("--url", help="API address (env DROVER_URL).")]

flavor_app = typer.Typer(help="Flavors.", no_args_is_help=True)
image_app = typer.Typer(help="Images: uploaded, or registered from the API host.", no_args_is_help=True)
network_app = typer.Typer(help="Networks.", no_args_is_help=True)
host_app = typer.Typer(help="Compute hosts (admin).", no_args_is_help=True)


def _flavor_row(f: types_pb2.Flavor) -> list[object]:
    return [f.id, f.name, f.memory_mb, f.root_gb, f.ephemeral_gb, f.vcpus, f.is_public]


@flavor_app.command("list")
def flavor_list(fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        resp = stub.ListFlavors(api_pb2.ListFlavorsRequest(), timeout=10)
    show_list(["ID", "Name", "RAM", "Disk", "Ephemeral", "VCPUs", "Is Public"],
              (_flavor_row(f) for f in resp.flavors), fmt, [to_dict(f) for f in resp.flavors])


@flavor_app.command("show")
def flavor_show(flavor: str, fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        f = stub.GetFlavor(api_pb2.GetFlavorRequest(id=flavor), timeout=10).flavor
    d = to_dict(f)
    show_record(list(d.items()), fmt, d)


@flavor_app.command("create")
def flavor_create(
    name: str,
    vcpus: Annotated[int, typer.Option("--vcpus")] = 1,
    ram: Annotated[int, typer.Option("--ram", help="MB")] = 512,
    disk: Annotated[int, typer.Option("--disk", help="GB")] = 1,
    flavor_id: Annotated[str, typer.Option("--id")] = "",
    prop: Annotated[list[str] | None, typer.Option("--property", help="extra spec key=value")] = None,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    specs = dict(p.split("=", 1) for p in (prop or []) if "=" in p)
    with client.api(url) as stub:
        f = stub.CreateFlavor(api_pb2.CreateFlavorRequest(flavor=types_pb2.Flavor(
            id=flavor_id, name=name, vcpus=vcpus, memory_mb=ram, root_gb=disk, extra_specs=specs)),
            timeout=10).flavor
    d = to_dict(f)
    show_record(list(d.items()), fmt, d)


def _image_fields(i: types_pb2.Image) -> list[tuple[str, object]]:
    return [("id", i.id), ("name", i.name), ("disk_format", i.disk_format), ("path", i.path),
            ("initrd_path", i.initrd_path or None), ("size", i.size_bytes), ("checksum", i.checksum_sha256),
            ("owner", i.owner or None), ("visibility", i.visibility),
            ("properties", ", ".join(f"{k}={v}" for k, v in sorted(i.properties.items())) or None)]


@image_app.command("create")
def image_create(
    name: str,
    file: Annotated[str, typer.Option("--file", help="Upload this local disk image (qcow2 or raw) to the "
                                                     "project")] = "",
    path: Annotated[str, typer.Option("--path", help="Admin: register a file already in one of the API host's "
                                                     "image directories (a kernel for direct boot too)")] = "",
    disk_format: Annotated[str, typer.Option("--disk-format", help="qcow2, raw, or kernel (--path)")] = "",
    initrd: Annotated[str, typer.Option("--initrd", help="Initrd for direct kernel boot (--path)")] = "",
    prop: Annotated[list[str] | None, typer.Option("--property", help="key=value")] = None,
    fmt: Format = FormatOpt,
    url: UrlOpt = None,
) -> None:
    """Upload an image (--file), or register one from the API host's image directories (--path)."""
    import os

    if bool(file) == bool(path):
        fail("give exactly one of --file (upload) or --path (a file on the API host)")
    if file and not os.path.isfile(file):
        fail(f"{file} is not a file")
    if file and initrd:
        fail("--initrd goes with --path (a kernel registered on the API host)")
    props = dict(p.split("=", 1) for p in (prop or []) if "=" in p)
    with client.api(url) as stub:
        if file:
            i = client.upload_image(stub, file, name, disk_format=disk_format, properties=props)
        else:
            i = stub.CreateImage(api_pb2.CreateImageRequest(
                name=name, path=path, disk_format=disk_format, initrd_path=initrd, properties=props),
                timeout=120).image
    show_record(_image_fields(i), fmt, to_dict(i))


@image_app.command("list")
def image_list(fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        resp = stub.ListImages(api_pb2.ListImagesRequest(), timeout=10)
    show_list(["ID", "Name", "Format", "Size", "Status"],
              ([i.id, i.name, i.disk_format, i.size_bytes, "active"] for i in resp.images), fmt,
              [to_dict(i) for i in resp.images])


@image_app.command("show")
def image_show(image: str, fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        i = stub.GetImage(api_pb2.GetImageRequest(id=image), timeout=10).image
    show_record(_image_fields(i), fmt, to_dict(i))


@image_app.command("delete")
def image_delete(image: str, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        stub.DeleteImage(api_pb2.DeleteImageRequest(id=image), timeout=10)


@network_app.command("list")
def network_list(fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        resp = stub.ListNetworks(api_pb2.ListNetworksRequest(), timeout=10)
    show_list(["ID", "Name", "Subnets"], ([n.id, n.name, ", ".join(c for c in (n.cidr, n.cidr_v6) if c)]
                                          for n in resp.networks), fmt, [to_dict(n) for n in resp.networks])


@host_app.command("list")
def host_list(fmt: Format = FormatOpt, url: UrlOpt = None) -> None:
    with client.api(url) as stub:
        resp = stub.ListHosts(api_pb2.ListHostsRequest(), timeout=10)
    show_list(
        ["Host", "Zone", "State", "Status", "vCPUs (used/total)", "RAM MB (used/total)", "Disk GB (used/total)",
         "Instances"],
        ([h.host, h.availability_zone, "up" if h.up else "down", "enabled" if h.enabled else "disabled",
          f"{h.vcpus_used}/{h.vcpus}", f"{h.memory_mb_used}/{h.memory_mb}", f"{h.disk_gb_used}/{h.disk_gb}",
          h.num_instances] for h in resp.hosts),
        fmt, [to_dict(h) for h in resp.hosts])
