"""Open-loop arrival schedules, the dispatcher's due-time timing, and latency counted from due times."""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from typing import Any

import pytest

from benchmarks import _mesh_client as client
from benchmarks import arrivals
from benchmarks.mesh import analyse, generator_warning, parse_args, saturation


def test_uniform_schedule_is_evenly_spaced_at_the_rate() -> None:
    offs = arrivals.schedule(50, 2.0, "uniform")
    assert len(offs) == 100
    assert offs[0] == 0.0 and offs[-1] < 2.0
    gaps = [b - a for a, b in itertools.pairwise(offs)]
    assert all(math.isclose(g, 0.02, abs_tol=1e-12) for g in gaps)
    assert len(arrivals.schedule(7.5, 2.0, "uniform")) == 15


def test_poisson_counts_have_the_rate_as_mean_and_variance() -> None:
    # N(seed) ~ Poisson(rate * duration = 100): over 300 seeds the sample mean is within ~4 sd (sd 0.58)
    # and the sample variance within ~4 sd (sd ~8.2) of 100. A uniform or a fixed-count schedule has
    # variance 0 and fails.
    counts = [len(arrivals.schedule(50, 2.0, "poisson", seed=s)) for s in range(300)]
    assert abs(statistics.fmean(counts) - 100) < 2.5
    assert 70 < statistics.variance(counts) < 130


def test_poisson_gaps_are_exponential_and_in_range() -> None:
    offs = arrivals.schedule(200, 50.0, "poisson", seed=3)
    assert offs == sorted(offs) and offs[0] > 0 and offs[-1] < 50.0
    gaps = [b - a for a, b in itertools.pairwise(offs)]
    mean = statistics.fmean(gaps)
    assert abs(mean - 1 / 200) < 0.05 / 200  # 10,000 gaps: sd of the mean is 1 %
    assert 0.9 < statistics.stdev(gaps) / mean < 1.1  # exponential: coefficient of variation 1
    assert arrivals.schedule(200, 50.0, "poisson", seed=3) == offs  # reproducible
    assert arrivals.schedule(200, 50.0, "poisson", seed=4) != offs


@pytest.mark.parametrize(("rate", "duration", "kind"), [(0, 1, "poisson"), (-1, 1, "uniform"), (10, 0, "poisson"),
                                                        (math.inf, 1, "poisson"), (10, 1, "bursty")])
def test_bad_schedule_arguments_are_refused(rate: float, duration: float, kind: str) -> None:
    with pytest.raises(ValueError):
        arrivals.schedule(rate, duration, kind)


def test_split_deals_every_request_once_round_robin() -> None:
    offs = arrivals.schedule(100, 1.0, "poisson", seed=1)
    shares = arrivals.split(offs, 3)
    merged = sorted(x for share in shares for x in share)
    assert merged == list(enumerate(offs))
    assert [len(s) for s in shares] == [len(offs[k::3]) for k in range(3)]
    assert all(share == sorted(share) for share in shares)


def test_parse_sweep_and_cli_choices() -> None:
    assert arrivals.parse_sweep("100, 200,300") == [100.0, 200.0, 300.0]
    for bad in ("", "200,100", "0,10", "10,10"):
        with pytest.raises(ValueError):
            arrivals.parse_sweep(bad)
    assert parse_args(["--rate", "sweep"]).rates == list(arrivals.SWEEP_RATES)
    a = parse_args(["--rate", "250", "--duration", "5"])
    assert a.rates == [250.0] and not a.sweeping and a.duration == 5.0
    assert parse_args([]).rates is None  # closed loop stays the default
    for argv in (["--rate", "10", "--sweep", "10,20"], ["--rate", "-3"], ["--rate", "fast"], ["--sweep", "20,10"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


class _Recorder(client.Worker):
    """The real dispatcher; ``one`` only records when it was called and for which due time."""

    def __init__(self, schedule: list[tuple[int, float]], busy_s: float = 0.0) -> None:
        super().__init__(0, {"schedule": schedule}, counters=None, stop=None)
        self.sent: list[tuple[int, float, float]] = []
        self.busy_s = busy_s
        self.in_flight = self.peak = 0

    async def one(self, stub: Any, index: int, t_due: float | None = None) -> None:
        assert t_due is not None
        self.sent.append((index, t_due, time.monotonic()))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.busy_s)
        self.in_flight -= 1


def test_dispatch_sends_each_create_when_due_from_the_shared_start() -> None:
    offs = arrivals.schedule(100, 0.5, "uniform")
    w = _Recorder(arrivals.split(offs, 1)[0], busy_s=0.05)

    async def go() -> tuple[float, int]:
        t0 = time.monotonic() + 0.05
        work, unsent = w.dispatch([object()], t0, max_in_flight=1000)
        await work
        return t0, unsent()

    t0, unsent = asyncio.run(go())
    assert unsent == 0 and [i for i, _, _ in w.sent] == list(range(50))
    for (_, due, sent_at), off in zip(w.sent, offs, strict=True):
        assert math.isclose(due, t0 + off, abs_tol=1e-9)  # due = shared start + schedule offset
        assert sent_at >= due - 0.002  # never early (asyncio may wake a hair before the deadline)
    lags = sorted(sent_at - due for _, due, sent_at in w.sent)
    assert lags[len(lags) // 2] < 0.03  # on time, even on a loaded machine
    assert w.peak > 1  # did not wait for earlier creates to finish (open loop)


def test_dispatch_full_in_flight_makes_creates_wait_but_keeps_their_due_time() -> None:
    offs = arrivals.schedule(200, 0.1, "uniform")  # 20 creates in 0.1 s, each busy 0.1 s, 2 at a time
    w = _Recorder(arrivals.split(offs, 1)[0], busy_s=0.1)

    async def go() -> float:
        t0 = time.monotonic() + 0.02
        work, _ = w.dispatch([object()], t0, max_in_flight=2)
        await work
        return t0

    t0 = asyncio.run(go())
    assert w.peak == 2
    assert [due for _, due, _ in w.sent] == [t0 + o for o in offs]
    assert w.sent[-1][2] - w.sent[-1][1] > 0.5  # the last one waited ~0.9 s for a slot: that is its lag


def _record(**kw: Any) -> dict[str, Any]:
    base = dict(index=0, id="s", t_start=0.0, t_due=0.0, t_accept=0.0, t_accept_wall=0.0, create_code="",
                t_host=0.0, t_net=0.0, t_spawn=0.0, t_end=0.0, final="ACTIVE", exact=0b111111, revisions=6,
                watch_code="", fault="", lag_host=math.nan, lag_end=math.nan, c2c_end=math.nan, notes=3)
    base.update(kw)
    assert set(base) == set(client.FIELDS)
    return base


def test_latency_counts_from_the_due_time_not_from_the_send() -> None:
    # Due at 10.0, the busy client sent it at 10.5, accepted 10.6, ACTIVE at 11.0.
    late = _record(index=0, t_due=10.0, t_start=10.5, t_accept=10.6, t_host=10.7, t_net=10.8, t_spawn=10.9,
                   t_end=11.0)
    on_time = _record(index=1, id="t", t_due=10.1, t_start=10.1, t_accept=10.12, t_host=10.13, t_net=10.14,
                      t_spawn=10.15, t_end=10.2)
    st = analyse([late, on_time])["stages"]
    assert st["api_accept"] == pytest.approx([600.0, 20.0])
    assert st["create_rpc"] == pytest.approx([100.0, 20.0])
    assert st["send_lag"] == pytest.approx([500.0, 0.0])
    assert st["total"] == pytest.approx([1000.0, 100.0])


def test_saturation_rule() -> None:
    ok = {"offered_per_s": 100.0, "creates_per_s": 97.0, "dropped": 0, "late": 2, "scheduled": 2000,
          "active": 2000, "aborted": False}
    assert saturation(ok) == ""
    assert "90 %" in saturation({**ok, "creates_per_s": 80.0})
    assert "never sent" in saturation({**ok, "dropped": 5, "active": 1995})
    assert "late" in saturation({**ok, "late": 200})
    assert "not ACTIVE" in saturation({**ok, "active": 1990})


def test_generator_warning_names_a_busy_client_or_late_sends() -> None:
    step = {"generator": {"busiest_util_pct": 20.0}, "late": 0, "scheduled": 1000, "late_ms": 10.0}
    assert generator_warning(step) == ""
    assert "--workers" in generator_warning({**step, "generator": {"busiest_util_pct": 85.0}})
    assert "late" in generator_warning({**step, "late": 50})
    assert generator_warning({"generator": {"busiest_util_pct": 20.0}}) == ""  # closed loop: no schedule
