"""Where the model comes from: a local folder, a GGUF file, or a Hugging Face hub repo id.

Hub downloads go through `huggingface_hub` into its standard cache, fetching only what the
conversion reads (config, safetensors, tokenizer files, model card); the token comes from
the environment or ``hf auth login``; ``HF_HUB_OFFLINE=1`` is honoured.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError

# What conversion reads from a repository (never the PyTorch pickles).
HUB_PATTERNS = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "additional_chat_templates/*.jinja",
    "modules.json",
    "*Pooling/config.json",
    "README.md",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def resolve(source: str | Path, revision: str | None = None) -> Path:
    """A local model folder for `source` (downloading from the hub if it is a repo id)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve()  # requantize a GGUF
    if path.exists():
        raise InputError(
            f"{source}: expected a model folder (config.json + *.safetensors) or a .gguf file"
        )
    if not _REPO_ID.match(str(source)):
        raise InputError(
            f"{source}: no such folder, and not a Hugging Face repo id (expected ORG/NAME)"
        )
    return download(str(source), revision)


def download(repo_id: str, revision: str | None = None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS)
    except GatedRepoError as e:
        raise InputError(
            f"{repo_id} is gated: accept its license on huggingface.co and log in "
            "(`hf auth login` or HF_TOKEN=...)"
        ) from e
    except RepositoryNotFoundError as e:
        raise InputError(
            f"{repo_id}: repository not found on the hub (or private: log in with `hf auth login`)"
        ) from e
    except RevisionNotFoundError as e:
        raise InputError(f"{repo_id}: revision {revision!r} not found") from e
    except LocalEntryNotFoundError as e:
        if type(e).__name__ == "IncompleteSnapshotError":  # huggingface_hub >= 1.x
            raise InputError(
                f"{repo_id}: the cached snapshot misses files the conversion needs and the hub "
                f"cannot be reached ({e}); run once with network access to complete it"
            ) from e
        rev = f" (revision {revision})" if revision else ""
        raise InputError(
            f"{repo_id}{rev}: not in the local Hugging Face cache and the hub cannot be reached "
            "(offline mode: HF_HUB_OFFLINE=1, or no network); download it once with network access"
        ) from e
    except OSError as e:
        raise InputError(f"{repo_id}: download failed ({e})") from e
    return Path(folder)
