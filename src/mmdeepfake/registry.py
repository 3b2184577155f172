"""A small name -> builder registry shared by encoders and fusion strategies.

Architectures are stored in ``config.json`` by name (``"resnet18"``, ``"mid"``), so every
buildable part is looked up in a registry rather than imported by path. A wrong name is a user
mistake (a typo in a config or a CLI flag), so it raises :class:`~mmdeepfake.errors.ConfigError`
listing the names that do exist. This module imports nothing heavy: ``import mmdeepfake`` uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from mmdeepfake.errors import ConfigError

T = TypeVar("T")
B = TypeVar("B", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Maps names to builders (classes or functions) that return a ``T``.

    ``kind`` is the word used in error messages, e.g. ``"encoder"`` or ``"fusion strategy"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[B], B]:
        """Decorator that registers a builder under ``name`` (names are unique)."""

        def decorator(builder: B) -> B:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            return builder

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """The builder registered as ``name``; ConfigError with the known names otherwise."""
        try:
            return self._builders[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "(none)"
            raise ConfigError(f"Unknown {self.kind} {name!r}. Choose one of: {known}.") from None

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the ``name`` entry with keyword arguments."""
        return self.get(name)(**kwargs)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self._builders)})"
