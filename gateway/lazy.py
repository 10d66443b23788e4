"""`cached_property` without Python 3.11's lock.

On 3.11, `functools.cached_property` takes one lock per property shared by every
instance of the class: while a worker thread computes one message's `parts` (or an
HTML part's text), the event loop asking for another message's waits for it, and a
big message parsed in a thread stalls every session of the process. Python 3.12
dropped that lock (gh-87634); this is its behaviour: two threads that race may both
compute the value (every cached value here is a pure function of the instance), and
the first stored wins only until the second stores the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class cached_property(Generic[T]):
    """Computed on first access, then kept in the instance's __dict__ (which a
    non-data descriptor lets shadow it, so later reads cost a dict lookup)."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.attrname: str | None = None
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.attrname or self.func.__name__] = value
        return value
