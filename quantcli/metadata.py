"""general.* metadata, the size label and the output file name, via gguf's own helpers.

`gguf.Metadata` reads the README front matter, config.json and generation_config.json as
llama.cpp's converter does; the one behaviour its PyPI release lacks (generation_config's
``repetition_penalty`` as ``penalty_repeat``) is added here.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gguf
import numpy as np

from .archs.base import OutTensor


def parameter_counts(tensors: list[OutTensor]) -> tuple[int, int, int, int]:
    """GGUFWriter.get_total_parameter_count over the planned tensors."""
    w = gguf.GGUFWriter(None, "llama")
    for t in tensors:
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), int(np.prod(t.shape)) * 4)
    return w.get_total_parameter_count()


def hub_repo_name(folder: Path) -> str | None:
    """The repository name of a Hugging Face cache snapshot (.../models--org--name/snapshots/<rev>)."""
    folder = Path(folder)
    repo_dir = folder.parent.parent
    if folder.parent.name == "snapshots" and repo_dir.name.startswith("models--"):
        return repo_dir.name.split("--", 2)[-1]
    return None


def model_metadata(folder: Path, tensors: list[OutTensor], name_override: str | None = None) -> gguf.Metadata:
    total, shared, expert, n_expert = parameter_counts(tensors)
    folder = Path(folder)
    repo = hub_repo_name(folder)
    if repo is not None:
        # the metadata heuristics read the folder's name: give them the repository's name,
        # as for a `hf download --local-dir <name>` folder, not the snapshot's commit hash
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / repo
            link.symlink_to(folder, target_is_directory=True)
            meta = gguf.Metadata.load(None, link, name_override, total)
    else:
        meta = gguf.Metadata.load(None, folder, name_override, total)
    gen = Path(folder) / "generation_config.json"
    if gen.is_file():
        try:
            cfg = json.loads(gen.read_text(encoding="utf-8"))
        except ValueError:
            cfg = {}
        if "penalty_repeat" not in cfg and "repetition_penalty" in cfg:
            meta.sampling_penalty_repeat = cfg["repetition_penalty"]
    if meta.name is None:
        meta.name = repo or folder.name
    if meta.size_label is None and total > 0:
        meta.size_label = gguf.size_label(total, shared, expert, n_expert)
    return meta


def default_filename(meta: gguf.Metadata, output_type: str, suffix: str = "") -> str:
    """<BaseName>-<SizeLabel>-<FineTune>-<Version>-<TYPE>[-imat].gguf (gguf.naming_convention,
    plus a suffix when the file is not the plain recipe: -imat, -pure, -custom)."""
    return gguf.naming_convention(
        meta.name, meta.basename, meta.finetune, meta.version, meta.size_label, output_type
    ) + suffix + ".gguf"
