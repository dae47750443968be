"""Architecture adapters by Hugging Face class name."""

from __future__ import annotations

from .base import Adapter

ADAPTERS: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    for name in cls.architectures:
        ADAPTERS[name] = cls
    return cls
