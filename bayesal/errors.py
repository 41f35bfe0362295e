"""Errors raised by bayesal.

Every error a user can trigger with bad input is an :class:`InvalidInput`, and its message names
the argument, what was expected and what arrived, so that one line is enough to fix the call.
"""

from __future__ import annotations

__all__ = [
    "BayesalError",
    "InvalidInput",
    "UnknownName",
    "NotFitted",
    "OracleFailed",
    "StoreError",
    "Unsupported",
]


class BayesalError(Exception):
    """Base class of every error bayesal raises on purpose."""


class InvalidInput(BayesalError, ValueError):
    """An argument has the wrong shape, type or value.

    Args:
        argument: the name of the argument, as the user wrote it (``"y"``, ``"X_pending"``).
        expected: what a valid value looks like (``"a finite tensor of shape [N]"``).
        got: what arrived (``"NaN at rows [3, 7]"``).
    """

    def __init__(self, argument: str, expected: str, got: str):
        self.argument = argument
        self.expected = expected
        self.got = got
        super().__init__(f"invalid {argument}: expected {expected}, got {got}")


class UnknownName(InvalidInput):
    """A registry lookup (problem, model, strategy, kernel) found no entry of that name."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        super().__init__(kind, "one of " + ", ".join(self.known), repr(name))


class Unsupported(InvalidInput, NotImplementedError):
    """A surrogate, acquisition and space were combined where the combination has no meaning or no
    implementation (a box for a classifier, greedy conditioning of a sample posterior, ...).

    The message names the object, the capability it lacks and what asked for it.

    Args:
        what: the object that lacks the capability (``"MCDropoutNet"``).
        capability: what it would need (``"a joint Gaussian posterior"``).
        purpose: who asked for it (``"box optimisation of joint-information"``).
    """

    def __init__(self, what: str, capability: str, purpose: str):
        self.what, self.capability, self.purpose = what, capability, purpose
        InvalidInput.__init__(self, "combination", f"{capability} for {purpose}", what)


class NotFitted(BayesalError, RuntimeError):
    """A surrogate was asked for a posterior before it saw any data."""


class OracleFailed(BayesalError, RuntimeError):
    """The oracle (simulator, data set, human) raised or returned an unusable label.

    The observations collected before the failure are kept by the learner; the campaign's
    records so far are attached as :attr:`history`.
    """

    def __init__(self, message: str, history: list | None = None):
        self.history = list(history) if history is not None else []
        super().__init__(message)


class StoreError(BayesalError, RuntimeError):
    """A campaign store cannot be used: the file is missing, corrupt, not a bayesal store, written
    by a newer schema, or does not hold the campaign the caller expects. The message names the
    file and what is wrong with it."""
