"""Architecture adapters: one small module per family, registered by HF class name."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, UnsupportedError
from . import bert, gemma, gpt2, llama, phi3, qwen  # noqa: F401  (register the adapters)
from .base import Adapter, OutTensor, Piece
from .registry import ADAPTERS

__all__ = ["Adapter", "OutTensor", "Piece", "ADAPTERS", "adapter_for"]


def architecture_of(hparams: dict) -> str:
    """get_model_architecture: architectures[0], text_config's winning when present."""
    arch = None
    tc = hparams.get("text_config")
    if isinstance(tc, dict) and tc.get("architectures"):
        arch = tc["architectures"][0]
    if arch is None:
        archs = hparams.get("architectures")
        if not archs:
            raise InputError("config.json has no \"architectures\" entry; cannot tell which model this is")
        arch = archs[0]
    return arch


def adapter_for(folder: Path, hparams: dict, vocab_pre: str | None = None) -> Adapter:
    arch = architecture_of(hparams)
    cls = ADAPTERS.get(arch)
    if cls is None:
        supported = ", ".join(sorted(ADAPTERS))
        raise UnsupportedError(
            f"{folder}: architecture {arch} is not supported yet. Supported: {supported}"
        )
    return cls(folder, hparams, vocab_pre)
