"""Instance actions and their events, written with single Core statements.

The conductor records an event at every step of every build, inside the
group-commit transaction that holds SQLite's write lock, so each record must
be cheap: no ORM unit of work, ids remembered instead of looked up. The store
stays the truth: a cache miss (a restart, work begun before this conductor
started) falls back to a query with the same idempotence rules. One conductor
records an instance's events at a time (its casts are ordered per instance).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from drover.store import models as m
from drover.store.tables import ACTIONS, EVENTS

# Built once: building and cache-keying a statement costs more than running it on SQLite.
_NEWEST_ACTION = (select(ACTIONS.c.id)
                  .where(ACTIONS.c.instance_id == bindparam("b_instance"), ACTIONS.c.action == bindparam("b_action"))
                  .order_by(ACTIONS.c.id.desc()).limit(1))
_ANY_EVENT = select(EVENTS.c.id).where(EVENTS.c.action_id == bindparam("b_action_id")).limit(1)
_LATEST_EVENT = (select(EVENTS.c.id, EVENTS.c.start_time, EVENTS.c.finish_time)
                 .where(EVENTS.c.action_id == bindparam("b_action_id"), EVENTS.c.event == bindparam("b_event"))
                 .order_by(EVENTS.c.id.desc()).limit(1))
_INSERT_EVENT = insert(EVENTS)
_FINISH_EVENT = (update(EVENTS).where(EVENTS.c.id == bindparam("b_id"))
                 .values(finish_time=bindparam("b_finish"), result=bindparam("b_result"),
                         details=bindparam("b_details")))
_FINISH_ACTION = (update(ACTIONS).where(ACTIONS.c.id == bindparam("b_id"), ACTIONS.c.finish_time.is_(None))
                  .values(finish_time=bindparam("b_finish")))
_FINISH_ACTION_WITH_MESSAGE = _FINISH_ACTION.values(message=bindparam("b_message"))


class ActionRecorder:
    """Action ids and open events of the instances this conductor is working on."""

    def __init__(self) -> None:
        # (instance id, action) -> newest action id. Only "create" is trusted from the
        # cache: an instance has one create action, but may get a second delete.
        self._action_ids: dict[tuple[str, str], int] = {}
        # (action id, event) -> id of the event row still open (started, not finished).
        self._open: dict[tuple[int, str], int] = {}
        # Actions whose every event went through this recorder (they had none when it first
        # saw them): no need to ask the store whether an event is a replay.
        self._complete: set[int] = set()
        self._checked: set[int] = set()

    def clear(self) -> None:
        """Forget everything (a transaction that wrote some of it rolled back)."""
        self._action_ids.clear()
        self._open.clear()
        self._complete.clear()
        self._checked.clear()

    def remember_action(self, instance_id: str, action: str, action_id: int, has_events: bool | None = None) -> None:
        """Cache an action's id; ``has_events`` (when the caller read it) saves asking the store."""
        self._action_ids[(instance_id, action)] = action_id
        if has_events is not None and action_id not in self._checked:
            self._checked.add(action_id)
            if not has_events:
                self._complete.add(action_id)

    def forget(self, instance_id: str) -> None:
        for action in ("create", "delete"):
            action_id = self._action_ids.pop((instance_id, action), None)
            if action_id is not None:
                for key in [k for k in self._open if k[0] == action_id]:
                    del self._open[key]
                self._complete.discard(action_id)
                self._checked.discard(action_id)

    def action_id(self, c: Connection, instance_id: str, action: str) -> int | None:
        cached = self._action_ids.get((instance_id, action))
        if cached is not None and action == "create":
            return cached
        found = c.execute(_NEWEST_ACTION, {"b_instance": instance_id, "b_action": action}).scalar_one_or_none()
        if found is not None:
            self._action_ids[(instance_id, action)] = found
        return found

    def _latest(self, c: Connection, action_id: int, event: str) -> Any:
        return c.execute(_LATEST_EVENT, {"b_action_id": action_id, "b_event": event}).first()

    def start(self, c: Connection, instance_id: str, action: str, event: str, host: str = "",
              when: dt.datetime | None = None) -> None:
        """Open ``event``; nothing when it is open already or this exact start is recorded (a replay)."""
        action_id = self.action_id(c, instance_id, action)
        if action_id is None:
            return
        key = (action_id, event)
        if key in self._open:
            return
        if action_id not in self._checked:
            self._checked.add(action_id)
            if c.execute(_ANY_EVENT, {"b_action_id": action_id}).first() is None:
                self._complete.add(action_id)
        if action_id not in self._complete:
            latest = self._latest(c, action_id, event)
            if latest is not None and (latest.finish_time is None or latest.start_time == when):
                if latest.finish_time is None:
                    self._open[key] = latest.id
                return
        inserted = c.execute(_INSERT_EVENT, {"action_id": action_id, "event": event, "start_time": when or m.utcnow(),
                                             "finish_time": None, "host": host, "result": "", "details": ""}
                             ).inserted_primary_key
        assert inserted is not None
        self._open[key] = inserted[0]

    def finish(self, c: Connection, instance_id: str, action: str, event: str, result: str,
               details: str = "", when: dt.datetime | None = None, host: str = "") -> None:
        """Close ``event`` (recording it whole if it was never started); a replayed finish changes nothing."""
        action_id = self.action_id(c, instance_id, action)
        if action_id is None:
            return
        finish_time = when or m.utcnow()
        event_id = self._open.pop((action_id, event), None)
        if event_id is None and action_id not in self._complete:
            latest = self._latest(c, action_id, event)
            if latest is not None and when is not None and latest.finish_time == when:
                return
            if latest is not None and latest.finish_time is None:
                event_id = latest.id
        if event_id is None:
            c.execute(_INSERT_EVENT, {"action_id": action_id, "event": event, "start_time": finish_time,
                                      "finish_time": finish_time, "result": result, "details": details, "host": host})
            return
        c.execute(_FINISH_EVENT, {"b_id": event_id, "b_finish": finish_time, "b_result": result, "b_details": details})

    def record(self, c: Connection, instance_id: str, action: str, event: str, *, start: dt.datetime,
               finish: dt.datetime, result: str, details: str = "", host: str = "") -> None:
        """An event whose start and finish arrive together: one row, written whole.

        Only for actions whose every event went through this recorder (nothing to check for
        replays) and an event not open already; otherwise it is a start and a finish.
        """
        action_id = self.action_id(c, instance_id, action)
        if action_id is None:
            return
        if action_id not in self._complete or (action_id, event) in self._open:
            self.start(c, instance_id, action, event, host, start)
            self.finish(c, instance_id, action, event, result, details, finish, host)
            return
        c.execute(_INSERT_EVENT, {"action_id": action_id, "event": event, "start_time": start,
                                  "finish_time": finish, "result": result, "details": details, "host": host})

    def finish_action(self, c: Connection, instance_id: str, action: str, message: str = "") -> None:
        """Mark the newest ``action`` of the instance finished (once)."""
        action_id = self.action_id(c, instance_id, action)
        if action_id is None:
            return
        if message:
            c.execute(_FINISH_ACTION_WITH_MESSAGE, {"b_id": action_id, "b_finish": m.utcnow(), "b_message": message})
        else:
            c.execute(_FINISH_ACTION, {"b_id": action_id, "b_finish": m.utcnow()})
