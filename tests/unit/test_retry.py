"""The client's retry loop: UNAVAILABLE and DEADLINE_EXCEEDED again with backoff, anything else at once."""

from __future__ import annotations

import grpc
import pytest

from drover import retry


class _Error(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_unavailable_and_lost_answers_are_retried_until_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.time, "sleep", lambda _: None)
    codes = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED]

    def flaky() -> str:
        if codes:
            raise _Error(codes.pop(0))
        return "ok"

    assert retry.call(flaky) == "ok" and codes == []


def test_other_errors_are_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.time, "sleep", lambda _: None)
    calls = []

    def bad() -> str:
        calls.append(1)
        raise _Error(grpc.StatusCode.INVALID_ARGUMENT)

    with pytest.raises(_Error):
        retry.call(bad)
    assert len(calls) == 1


def test_gives_up_at_the_deadline() -> None:
    def down() -> str:
        raise _Error(grpc.StatusCode.UNAVAILABLE)

    with pytest.raises(_Error):
        retry.call(down, deadline=0.5)
