"""What the state machines of the app DB share: transition tables and named predicates.

Each machine (``intake.series_lifecycle``, ``jobs.lifecycle``,
``draw.transfer_lifecycle``) keeps its states as a ``StrEnum`` whose values are
the strings stored in the DB, so rows, tests and the CLI read the same as ever.
Two small pieces are the same for all of them and live here once:

- ``Transitions``: which state may follow which, as data, and the one check that
  refuses anything else with a message naming the row and both states;
- ``StatePredicate``: a named question about a state ("is it receiving?", "may
  the DRAW server hold its data?") that answers for a row's value in Python and
  as an SQL condition on the state column, so callers never compare strings and
  the two forms cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, false, or_

S = TypeVar("S", bound=StrEnum)


class MoveRefused(Exception):
    """A state change its machine does not allow; the message names the row and both states.

    Messages are shown to users and logged: ids and states only, never PHI.
    """

    def __init__(self, subject: str, current: StrEnum | None, target: StrEnum,
                 allowed: Iterable[StrEnum]) -> None:
        self.subject = subject
        self.current = current
        self.target = target
        allowed = sorted(allowed)
        if current is None:
            why = (f"a new {subject} starts as one of: {', '.join(allowed)}" if allowed
                   else f"a new {subject} cannot be created")
            message = f"a new {subject} cannot start as {target} ({why})"
        else:
            why = (f"from {current} only to: {', '.join(allowed)}" if allowed
                   else f"{current} is final")
            message = f"{subject} is {current}: cannot move it to {target} ({why})"
        super().__init__(message)


class Transitions(Generic[S]):
    """The moves a machine allows: ``current -> targets``; ``None`` is a row not stored yet."""

    def __init__(self, allowed: Mapping[S | None, Iterable[S]]) -> None:
        self._allowed: dict[S | None, frozenset[S]] = {
            source: frozenset(targets) for source, targets in allowed.items()
        }

    def targets(self, current: S | None) -> frozenset[S]:
        return self._allowed.get(current, frozenset())

    def allows(self, current: S | None, target: S) -> bool:
        return target in self.targets(current)

    def pairs(self) -> set[tuple[S | None, S]]:
        """Every allowed (current, target), for tests and documentation."""
        return {(source, target) for source, targets in self._allowed.items()
                for target in targets}

    def check(self, subject: str, current: S | None, target: S) -> None:
        """Return if ``current -> target`` is allowed, else raise ``MoveRefused``."""
        if not self.allows(current, target):
            raise MoveRefused(subject, current, target, self.targets(current))


class StatePredicate(Generic[S]):
    """A named set of states of one column: ``pred(row.state)`` and ``pred.clause`` (SQL).

    ``missing`` says whether "no row / NULL" counts (a job without a transfer row, say).
    """

    def __init__(self, column: Any, states: Iterable[S], *, missing: bool = False,
                 doc: str = "") -> None:
        self.column = column
        self.states: frozenset[S] = frozenset(states)
        self.missing = missing
        self.__doc__ = doc

    def __call__(self, state: str | None) -> bool:
        if state is None:
            return self.missing
        return state in self.states

    @property
    def clause(self) -> ColumnElement[bool]:
        """The same question as an SQL condition on the state column."""
        values = sorted(state.value for state in self.states)  # plain strings for every driver
        condition = (self.column == values[0] if len(values) == 1
                     else self.column.in_(values) if values else false())
        return or_(condition, self.column.is_(None)) if self.missing else condition

    def __repr__(self) -> str:
        return f"StatePredicate({', '.join(sorted(self.states))}, missing={self.missing})"
