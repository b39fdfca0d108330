"""Name filters as regular expressions, matched in linear time (RE2), never by a backtracking engine.

Nova filters server names by regex; a user's pattern run by Python's ``re`` can take exponential
time (``^(a|a)*$``). RE2 guarantees time linear in the input, so SQLite's REGEXP is bound to it.
PostgreSQL matches with its own engine (``~``), which refuses some RE2 syntax (``(?P<n>…)``,
``\\pN``, ``\\z``): that refusal is the caller's error too (``refused_by_store``).
"""

from __future__ import annotations

import functools
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the caller's error, reported to them, not logged
_OPTIONS.max_mem = 8 << 20  # a pattern whose program needs more is refused


class PatternError(ValueError):
    pass


@functools.lru_cache(maxsize=256)
def compile_filter(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise PatternError(str(exc) or "not a valid RE2 expression") from None


def sqlite_regexp(pattern: str, value: str | None) -> bool:
    """SQLite's ``value REGEXP pattern``."""
    return value is not None and compile_filter(pattern).search(value) is not None


# PostgreSQL's SQLSTATE for a pattern its regex engine does not accept.
_INVALID_REGULAR_EXPRESSION = "2201B"


def refused_by_store(exc: BaseException) -> bool:
    """Whether a database error is the store's regex engine refusing a (valid RE2) pattern."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == _INVALID_REGULAR_EXPRESSION
