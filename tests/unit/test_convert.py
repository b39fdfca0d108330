"""Row → message conversion: timestamps exactly as protobuf's own FromDatetime makes them."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from drover.services.common import convert


def _reference(value: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value)
    return out


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                        dt.timezone(dt.timedelta(hours=-8))]))
def test_timestamps_match_protobuf(value: dt.datetime, tz: dt.tzinfo | None) -> None:
    if tz is not None:
        value = value.replace(tzinfo=tz)
    assert convert.ts(value) == _reference(value)


def test_no_timestamp_for_none() -> None:
    assert convert.ts(None) is None
