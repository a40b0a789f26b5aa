"""One small registry for everything a user chooses by name.

Models, explanation methods, quality metrics, zone sets, guide regions and guide
penalties each keep one :class:`Registry`, filled at import time with its
``@register(name)`` decorator (wrapped by the module's own ``register_*``)::

    ZONE_SET_REGISTRY: Registry[ZoneSetFn] = Registry("zone set")

    @ZONE_SET_REGISTRY.register("thirds")
    def thirds(ctx, shape, **params): ...

    ZONE_SET_REGISTRY.get("thirds")     # the function
    ZONE_SET_REGISTRY.names()           # ['thirds', ...] in registration order

Every registry behaves the same way:

- names are listed in registration order;
- registering a name twice raises :class:`DuplicateNameError` (a ``ValueError``),
  even for the same object: a registration is written once, in one place;
- an unknown name raises :class:`UnknownNameError`, a
  :class:`~retcore.errors.RetcoreError` whose one-line message names the unknown
  name(s) and lists the valid ones. It is also a ``KeyError`` and a
  ``ValueError``, so callers that caught either before the registries were
  unified still catch it. A registry may raise a subclass of it (models raise
  ``UnknownModelError``, explanation methods ``UnknownMethodError``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from retcore.errors import RetcoreError

__all__ = ["DuplicateNameError", "Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(RetcoreError, KeyError, ValueError):
    """A name that is not registered; the message lists the registered names.

    Attributes:
        kind: what the registry holds (``'model'``, ``'zone set'``...).
        unknown: the names that were not found.
        choices: the registered names, in registration order.
    """

    def __init__(self, kind: str, unknown: Iterable[str], choices: Iterable[str]) -> None:
        self.kind = kind
        self.unknown = list(unknown)
        self.choices = list(choices)
        names = ", ".join(repr(n) for n in self.unknown)
        listed = ", ".join(self.choices) if self.choices else "(none registered)"
        super().__init__(f"unknown {kind} {names}: choose one of {listed}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])

    def __reduce__(self):  # picklable (DataLoader workers) despite the custom __init__
        return type(self), (self.kind, self.unknown, self.choices)


class DuplicateNameError(ValueError):
    """A name registered a second time (a programming error: it keeps its traceback)."""


class Registry(Generic[T]):
    """Names -> objects (factories, functions, classes), in registration order.

    Args:
        kind: what it holds, singular, as the error messages say it
            (``'model'``, ``'explanation method'``...).
        error: the :class:`UnknownNameError` subclass raised for an unknown name.
    """

    def __init__(self, kind: str, *, error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its argument under ``name`` and returning it unchanged.

        Raises:
            DuplicateNameError: ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise DuplicateNameError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> T:
        """Remove ``name`` (tests, plugins) and return what it held; unknown names raise."""
        self.check([name])
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """What ``name`` holds.

        Raises:
            UnknownNameError: (``self.error``) ``name`` is not registered; the message lists the names.
        """
        self.check([name])
        return self._entries[name]

    def check(self, names: Iterable[str]) -> None:
        """Raise ``self.error`` naming every one of ``names`` that is not registered."""
        unknown = [n for n in names if n not in self._entries]
        if unknown:
            raise self.error(self.kind, unknown, self._entries)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
