"""The same mesh on PostgreSQL: the store is chosen by a database URL, nothing else changes.

Needs DROVER_TEST_POSTGRES_URL (a role that may create databases; scripts/setup.sh makes one).
Skips without it, unless DROVER_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa

from drover.v1 import api_pb2, api_pb2_grpc
from tests.integration import test_bad_input, test_create_flow, test_probe_hostile
from tests.integration.conftest import register_image, running_mesh
from tests.postgres import fresh_database


@pytest.fixture(scope="module")
def pg_url():
    yield from fresh_database("drover_test")


@pytest.fixture(scope="module")
def pg_mesh(pg_url, tmp_path_factory):
    yield from running_mesh(tmp_path_factory.mktemp("pg"), 4, DATABASE_URL=pg_url, COMPUTE__FAKE_HOSTS="4",
                            COMPUTE__FAKE_MEMORY_MB="8192", COMPUTE__FAKE_VCPUS="4",
                            COMPUTE__FAKE_DISK_GB="100", COMPUTE__REPORT_INTERVAL="1")


@pytest.fixture(scope="module")
def api(pg_mesh):
    with pg_mesh.api_channel() as chan:
        yield api_pb2_grpc.ApiServiceStub(chan)


@pytest.fixture(scope="module")
def image_file(pg_mesh):
    path = pg_mesh.data_dir / "images" / "disk.raw"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 4096)
    return path


@pytest.fixture(scope="module")
def image(api, image_file):
    return register_image(api, image_file, "pg-image")


def test_store_is_postgres(pg_url, pg_mesh) -> None:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert "alembic_version" in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("select count(*) from flavors")).scalar() == 5
    engine.dispose()


def test_create_reaches_active(api, image) -> None:
    test_create_flow.test_create_reaches_active_with_notifications_and_events(api, image)


def test_list_filter_paginate(api, image) -> None:
    test_create_flow.test_get_list_filter_and_paginate(api, image)


def test_no_valid_host(api, image) -> None:
    test_create_flow.test_no_valid_host_explains_itself(api, image)


def test_reschedule_then_error(api, image_file) -> None:
    test_create_flow.test_spawn_failure_reschedules_then_errors(api, image_file)


def test_delete_while_building(api, image_file) -> None:
    test_create_flow.test_delete_while_building(api, image_file)


def test_bad_input_stores_nothing(api, image) -> None:
    network_id = api.ListNetworks(api_pb2.ListNetworksRequest(), timeout=10).networks[0].id
    for _case, overrides, fields in test_bad_input.BAD:
        test_bad_input.test_invalid_argument_with_field_violations(api, image, network_id, _case, overrides, fields)


def test_nul_characters_are_refused_before_the_store(api, image) -> None:
    test_probe_hostile.check_nul_refused(api, image)


@pytest.mark.parametrize("pattern", [r"(?P<n>a)", r"\pN", r"\z", r"\Q.*\E", r"(?U)a+"])
def test_a_name_filter_postgres_cannot_match_is_an_invalid_argument(api, pattern) -> None:
    """Valid RE2 that PostgreSQL's ~ refuses was INTERNAL (invalid regular expression)."""
    with pytest.raises(grpc.RpcError) as err:
        api.ListServers(api_pb2.ListServersRequest(name=pattern), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.value.code(), err.value.details())
    assert "name" in err.value.details()
