"""WatchHistory: what a late WatchServer may replay, and when it must start from the stored state."""

from __future__ import annotations

from drover.services.api.watch_history import WatchHistory
from drover.v1 import conductor_pb2, types_pb2


def _change(iid: str, revision: int, note: str = "") -> conductor_pb2.InstanceChange:
    change = conductor_pb2.InstanceChange(server=types_pb2.Server(id=iid, revision=revision))
    if note:
        change.notification.event_type = note
    return change


def test_replays_the_changes_after_a_revision_in_order() -> None:
    h = WatchHistory()
    for r in (2, 3, 4):
        h.add(_change("a", r), now=0.0)
    h.add(_change("b", 2), now=0.0)
    got = h.between("a", 1, 4)
    assert got is not None and [c.server.revision for c in got[0]] == [2, 3, 4] and got[1]
    assert [c.server.revision for c in (h.between("a", 2, 3) or ([], False))[0]] == [3]
    assert h.between("a", 4, 4) == ([], True)  # nothing happened since


def test_changes_not_yet_relayed_leave_the_replay_incomplete() -> None:
    h = WatchHistory()
    h.add(_change("a", 2), now=0.0)  # the store is at 4 already; 3 and 4 are on their way
    got = h.between("a", 1, 4)
    assert got is not None and [c.server.revision for c in got[0]] == [2] and not got[1]
    assert h.between("b", 1, 3) == ([], False)  # nothing relayed for b yet


def test_a_gap_means_start_from_the_stored_state() -> None:
    h = WatchHistory()
    for r in (3, 4):  # revision 2 was never relayed (the stream was down)
        h.add(_change("a", r), now=0.0)
    assert h.between("a", 1, 4) is None
    h.clear()
    assert h.between("a", 2, 4) == ([], False) and len(h) == 0


def test_a_notification_that_repeats_a_revision_is_kept_in_place() -> None:
    h = WatchHistory()
    h.add(_change("a", 5), now=0.0)
    h.add(_change("a", 5, "instance.delete.start"), now=0.0)
    h.add(_change("a", 6, "instance.delete.end"), now=0.0)
    got = h.between("a", 4, 6)
    assert got is not None and got[1]
    assert [(c.server.revision, c.notification.event_type) for c in got[0]] == [
        (5, ""), (5, "instance.delete.start"), (6, "instance.delete.end")]


def test_old_changes_and_the_overflow_are_dropped() -> None:
    h = WatchHistory(retention=10.0, max_changes=3)
    h.add(_change("a", 2), now=0.0)
    h.add(_change("a", 3), now=5.0)
    h.add(_change("b", 2), now=12.0)  # a@2 is past retention
    assert h.between("a", 1, 3) is None  # revision 2 is gone: start from the stored state
    assert [c.server.revision for c in (h.between("a", 2, 3) or ([], False))[0]] == [3]
    for r in (3, 4, 5):
        h.add(_change("b", r), now=13.0)
    assert len(h) == 3 and h.between("a", 2, 3) == ([], False)  # over max_changes: the oldest go first
