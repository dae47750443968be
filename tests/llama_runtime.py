"""llama.cpp itself (llama-cpp-python 0.3.36) loading our files, in a subprocess.

Each call runs in its own process: llama.cpp aborts the process on a file it rejects, and
a crash must fail one test, not the run.  ``use_extra_bufts`` is switched off: with this
build, on AVX-512/AMX machines, the CPU repack buffers crash on quantized weights (a
llama-cpp-python/ggml issue, independent of the file: llama.cpp's own quantized files
crash the same way).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SNIPPET = r"""
import contextlib, json, os, sys
import numpy as np
import llama_cpp
import llama_cpp.llama as _L
_orig = llama_cpp.llama_model_default_params
def _params():
    p = _orig()
    p.use_extra_bufts = False
    return p
llama_cpp.llama_model_default_params = _params
_L.llama_cpp.llama_model_default_params = _params
req = json.loads(sys.stdin.read())
emb = req.get("embedding", False)
with open(os.devnull, "w") as dn, contextlib.redirect_stderr(dn):
    llm = llama_cpp.Llama(model_path=req["path"], n_ctx=req.get("n_ctx", 128), n_threads=2,
                          verbose=False, embedding=emb, logits_all=not emb)
out = {"n_vocab": llm.n_vocab(),
       "tokens": [llm.tokenize(s.encode(), add_bos=False, special=False) for s in req.get("texts", [])]}
prompt = req.get("prompt")
if prompt is not None:
    if emb:
        out["embedding"] = [float(v) for v in np.asarray(llm.embed(prompt), dtype=np.float32).ravel()]
    else:
        toks = llm.tokenize(prompt.encode(), add_bos=True, special=False)
        llm.eval(toks)
        lg = np.asarray(llm.scores[: llm.n_tokens], dtype=np.float32)
        out["prompt_tokens"] = toks
        out["logits"] = lg.tolist()
print("RESULT " + json.dumps(out))
"""


def run(path: Path, texts: list[str] = (), prompt: str | None = None, embedding: bool = False,
        timeout: int = 600) -> dict:
    req = {"path": str(path), "texts": list(texts), "prompt": prompt, "embedding": embedding}
    r = subprocess.run([sys.executable, "-c", _SNIPPET], input=json.dumps(req), capture_output=True,
                       text=True, timeout=timeout)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise AssertionError(f"llama.cpp could not load {path} (exit {r.returncode}):\n{r.stderr[-2000:]}")
