"""One small registry type: things register themselves by name and are built by name.

Example:
    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... class Square:
    ...     "A square."
    ...     def __init__(self, side: float = 1.0):
    ...         self.side = side
    >>> shapes.build("square", side=2.0).side
    2.0
    >>> shapes.build("circle")
    Traceback (most recent call last):
    ...
    raysurr.errors.RegistryError: unknown shape 'circle'; registered: square
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from raysurr.errors import ConfigError, RaysurrError, RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes (or factories) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str, replace: bool = False) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a class under `name`.

        A name that is taken is refused (a plugin would otherwise silently replace a built-in), unless `replace`,
        or unless the class is the same definition again (its module re-imported, e.g. by a notebook's reload).
        """

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            taken = self._entries.get(name)
            if taken is not None and not replace and _where(taken) != _where(factory):
                raise RegistryError(f"{self.kind} {name!r} is already registered ({_where(taken)}); register "
                                    f"{_where(factory)} under another name, or pass replace=True")  # fmt: skip
            self._entries[name] = factory
            factory.registered_name = name  # type: ignore[attr-defined]
            return factory

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def build(self, name: str, section: str | None = None, **options: Any) -> T:
        """Build `name` with keyword options, rejecting options its signature lacks.

        Args:
            name: the registered name.
            section: the config section the options come from, used in error messages.
            **options: passed to the factory.
        """
        factory = self.get(name)
        where = f"{section or self.kind} ({self.kind} {name!r})"
        check_options(factory, options, where=where)
        try:
            return factory(**options)
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # an option of the wrong type or range
            if isinstance(exc, RaysurrError):
                raise
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"{where}: the options {dict(options)} are not valid: {detail}") from None

    def summary(self, name: str) -> str:
        """The first line of the entry's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _where(factory: Callable[..., Any]) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def check_options(
    factory: Callable[..., Any], options: Mapping[str, Any], where: str, supplied: Sequence[str] = ()
) -> None:
    """Raise ConfigError if `options` holds a key the factory does not accept.

    `supplied` names arguments the caller passes itself (not options a user may set).
    """
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL and n not in supplied]
    for key in options:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown option {key!r}; allowed: {', '.join(allowed) or '(none)'}")
