"""`quant batch MANIFEST.toml`: many models x recipes into one output folder, for CI.

The manifest (TOML; relative paths are relative to the manifest's folder)::

    output = "dist"                # each model writes to OUTPUT/<name>/
    jobs = 1                       # models converted side by side (--jobs)
    threads = 8                    # total threads, divided among the jobs (--threads)
    # summary = "dist/quant-batch.json"   (default: OUTPUT/quant-batch.json)

    [defaults]                     # what every model gets unless it sets its own
    recipes = ["Q4_K_M", "Q8_0"]
    # imatrix = "imatrix.gguf"
    # revision = "main"
    options = { leave_output_tensor = false }

    [[model]]
    source = "HuggingFaceTB/SmolLM2-135M-Instruct"   # hub repo id, model folder or .gguf
    name = "smollm2"               # output subfolder (default: the last part of source)
    recipes = ["Q4_K_M", "Q5_K_M"] # replaces defaults.recipes
    options = { tensor_type = ["attn_v=q8_0"] }      # merged over defaults.options

`options` are `quant convert`'s options with underscores (see `OPTIONS`).

Each model runs in its own worker process (``python -m quantcli.batch JOB RESULT``), one
`convert` per model: the model is read once for all its recipes.  Before converting, every
planned output that already exists is read back: if it is a complete GGUF holding exactly
the planned tensors, types and key/value pairs it is skipped, otherwise rebuilt.  A failed
model does not stop the others; the JSON summary (rewritten after every model) names each
model's status, files and error; the exit code is `EXIT_FAILED` if any model failed.

Ctrl-C / SIGTERM: the workers run in their own sessions, so each receives exactly one
signal, forwarded by the batch; they remove their temporary files, the summary records
them as interrupted, and the batch exits with 130 / 143.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError, OutputError, QuantError

SUMMARY_NAME = "quant-batch.json"
EXIT_FAILED = 6  # at least one model failed (each model's own exit code is in the summary)

TOP_KEYS = ("output", "jobs", "threads", "summary", "defaults", "model")
DEFAULT_KEYS = ("recipes", "revision", "imatrix", "options")
MODEL_KEYS = ("source", "name", *DEFAULT_KEYS)

# manifest option -> (value kind, `quant convert` flag)
OPTIONS: dict[str, tuple[str, str]] = {
    "pure": ("bool", "--pure"),
    "leave_output_tensor": ("bool", "--leave-output-tensor"),
    "output_tensor_type": ("str", "--output-tensor-type"),
    "token_embedding_type": ("str", "--token-embedding-type"),
    "tensor_type": ("list", "--tensor-type"),
    "tensor_type_file": ("paths", "--tensor-type-file"),
    "override_kv": ("list", "--override-kv"),
    "allow_requantize": ("bool", "--allow-requantize"),
    "no_fallback": ("bool", "--no-fallback"),
    "include_weights": ("list", "--include-weights"),
    "exclude_weights": ("list", "--exclude-weights"),
    "vocab_pre": ("str", "--vocab-pre"),
    "split_max_tensors": ("int", "--split-max-tensors"),
    "split_max_size": ("size", "--split-max-size"),
    "model_name": ("str", "--model-name"),
}


class ManifestError(InputError):
    """The manifest cannot be read or describes something impossible (exit code 3)."""


@dataclass
class Job:
    """One model: everything its worker needs (JSON-serialisable)."""

    index: int
    name: str
    source: str  # absolute path for local sources, else the repo id
    recipes: list[str]
    out: str
    revision: str | None = None
    imatrix: str | None = None
    options: dict = field(default_factory=dict)
    threads: int | None = None
    force: bool = False
    quiet: bool = False

    def command(self) -> list[str]:
        """The equivalent `quant convert` command line (it rebuilds every output)."""
        argv = ["quant", "convert", self.source, *self.recipes, "-o", self.out + "/"]
        if self.revision:
            argv += ["--revision", self.revision]
        if self.imatrix:
            argv += ["--imatrix", self.imatrix]
        for key, value in self.options.items():
            kind, flag = OPTIONS[key]
            if kind == "bool":
                argv += [flag] if value else []
            elif kind in ("list", "paths"):
                for v in value:
                    argv += [flag, str(v)]
            else:
                argv += [flag, str(value)]
        if self.threads:
            argv += ["--threads", str(self.threads)]
        return argv


@dataclass
class Batch:
    manifest: Path
    output: Path
    summary: Path
    jobs: int
    threads: int | None
    models: list[Job]


# -- the manifest --------------------------------------------------------------------------

def _unknown(keys, known, where: str, manifest: Path) -> None:
    for k in keys:
        if k not in known:
            close = difflib.get_close_matches(k, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise ManifestError(f"{manifest}: unknown key {k!r} in {where}{hint}")


def _check_recipe(name, where: str) -> None:
    from . import recipe as R
    from .convert import OUTTYPES

    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}: recipes must be names such as \"Q4_K_M\", got {name!r}")
    if name.upper() in OUTTYPES or name.lower() == "auto":
        return
    try:
        r = R.resolve_recipe(name)
    except R.RecipeError as e:
        raise ManifestError(f"{where}: {e}") from None
    if not r.supported:
        raise ManifestError(f"{where}: recipe {r.name} is not supported yet; supported: {', '.join(R.SUPPORTED_RECIPES)}")


def _check_options(opts, where: str, base: Path) -> dict:
    """Type-check an options table; resolve file paths; parse every value once to fail early."""
    from . import recipe as R

    if not isinstance(opts, dict):
        raise ManifestError(f"{where}: options must be a table, e.g. options = {{ pure = true }}")
    out = {}
    for key, value in opts.items():
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, list(OPTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(OPTIONS)})"
            raise ManifestError(f"{where}: unknown option {key!r}{hint}")
        kind, flag = OPTIONS[key]
        bad = ManifestError(f"{where}: option {key} ({flag}) expects {kind}, got {value!r}")
        if kind == "bool":
            if not isinstance(value, bool):
                raise bad
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad
        elif kind == "size":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise bad
            _size(value, where)
        elif kind == "str":
            if not isinstance(value, str):
                raise bad
        else:  # list / paths: a string or a list of strings
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad
            if kind == "paths":
                value = [str((base / v).expanduser().resolve()) for v in value]
        try:
            if key in ("output_tensor_type", "token_embedding_type"):
                R.parse_ggml_type(value)
            elif key == "tensor_type":
                for v in value:
                    R.parse_tensor_type(v)
            elif key == "override_kv":
                for v in value:
                    R.parse_kv_override(v)
        except (R.RecipeError, ValueError) as e:
            raise ManifestError(f"{where}: option {key}: {e}") from None
        out[key] = value
    return out


def _size(value, where: str) -> int:
    if isinstance(value, int):
        return value
    import typer

    from .cli import parse_size

    try:
        return parse_size(value)
    except typer.BadParameter as e:
        raise ManifestError(f"{where}: split_max_size: {e}") from None


def _local(source: str, base: Path) -> Path | None:
    """The local path `source` names (relative to the manifest), or None for a repo id."""
    p = Path(source).expanduser()
    cand = p if p.is_absolute() else base / p
    if p.is_absolute() or source.startswith(("./", "../", "~")) or cand.exists():
        return cand.resolve()
    return None


def _default_name(source: str, local: Path | None) -> str:
    if local is None:
        return source.rstrip("/").split("/")[-1]
    name = local.name
    if local.suffix == ".gguf":
        name = re.sub(r"-\d{5}-of-\d{5}$", "", local.stem)
    return name


def load_manifest(path: Path, *, output: Path | None = None, summary: Path | None = None,
                  jobs: int | None = None, threads: int | None = None, force: bool = False,
                  quiet: bool = False) -> Batch:
    """Read and check a manifest; command-line values override the manifest's."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: not valid TOML ({e})") from None
    base = path.resolve().parent
    _unknown(data, TOP_KEYS, "the top level", path)
    if output is None:
        if "output" not in data:
            raise ManifestError(f"{path}: no output folder; add  output = \"dist\"  (or pass --output)")
        if not isinstance(data["output"], str):
            raise ManifestError(f"{path}: output must be a folder name, got {data['output']!r}")
        output = base / data["output"]
    output = Path(output).expanduser().resolve()
    if summary is None:
        s = data.get("summary")
        if s is not None and not isinstance(s, str):
            raise ManifestError(f"{path}: summary must be a file name, got {s!r}")
        summary = base / s if s else output / SUMMARY_NAME
    summary = Path(summary).expanduser().resolve()
    for key, value in (("jobs", jobs), ("threads", threads)):
        v = data.get(key) if value is None else value
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ManifestError(f"{path}: {key} must be a positive integer, got {v!r}")
    jobs = jobs or data.get("jobs") or 1
    threads = threads or data.get("threads")
    per_job = None if (jobs == 1 and threads is None) else max(1, (threads or os.cpu_count() or 1) // jobs)

    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ManifestError(f"{path}: [defaults] must be a table")
    _unknown(defaults, DEFAULT_KEYS, "[defaults]", path)
    default_opts = _check_options(defaults.get("options", {}), f"{path}: [defaults]", base)
    models = data.get("model")
    if not models:
        raise ManifestError(f"{path}: no models; add one or more [[model]] tables with a source")
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ManifestError(f"{path}: model must be an array of tables ([[model]])")
    jobs_out: list[Job] = []
    names: dict[str, int] = {}
    for i, m in enumerate(models):
        where = f"{path}: model {i + 1}"
        _unknown(m, MODEL_KEYS, f"model {i + 1}", path)
        source = m.get("source")
        if not isinstance(source, str) or not source:
            raise ManifestError(f"{where}: no source (a hub repo id ORG/NAME, a model folder or a .gguf file)")
        local = _local(source, base)
        name = m.get("name", _default_name(source, local))
        if not isinstance(name, str) or not re.fullmatch(r"[\w][\w.+\-]*", name):
            raise ManifestError(f"{where}: name {name!r} must be a plain folder name (letters, digits, . _ + -)")
        where = f"{path}: model {i + 1} ({name})"
        if name in names:
            raise ManifestError(f"{where}: model {names[name]} has the same name; give one of them another name = \"...\"")
        names[name] = i + 1
        recipes = m.get("recipes", defaults.get("recipes"))
        if isinstance(recipes, str):
            recipes = [recipes]
        if not recipes or not isinstance(recipes, list):
            raise ManifestError(f"{where}: no recipes; set recipes = [\"Q4_K_M\", ...] here or in [defaults]")
        for r in recipes:
            _check_recipe(r, where)
        revision = m.get("revision", defaults.get("revision"))
        if revision is not None and not isinstance(revision, str):
            raise ManifestError(f"{where}: revision must be a string, got {revision!r}")
        imatrix = m.get("imatrix", defaults.get("imatrix"))
        if imatrix is not None:
            if not isinstance(imatrix, str):
                raise ManifestError(f"{where}: imatrix must be a file name, got {imatrix!r}")
            imatrix = str((base / imatrix).expanduser().resolve())
        opts = dict(default_opts)
        opts.update(_check_options(m.get("options", {}), where, base))
        jobs_out.append(Job(
            index=i + 1,
            name=name,
            source=str(local) if local is not None else source,
            recipes=list(recipes),
            out=str(output / name),
            revision=revision,
            imatrix=imatrix,
            options=opts,
            threads=per_job,
            force=force,
            quiet=quiet or jobs > 1,
        ))
    return Batch(path.resolve(), output, summary, jobs, threads, jobs_out)


# -- one model (runs in the worker process) ------------------------------------------------

def convert_options(job: Job):
    """`convert.Options` for a job (the same values `quant convert` would build from flags)."""
    from . import convert as C
    from . import recipe as R

    o = job.options
    tensor_types = list(o.get("tensor_type", ()))
    for f in o.get("tensor_type_file", ()):
        try:
            tensor_types += Path(f).read_text(encoding="utf-8").split()
        except OSError as e:
            raise InputError(f"tensor_type_file {f}: {e.strerror}") from None
    try:
        quant = R.Options(
            pure=o.get("pure", False),
            leave_output_tensor=o.get("leave_output_tensor", False),
            output_tensor_type=R.parse_ggml_type(o["output_tensor_type"]) if "output_tensor_type" in o else None,
            token_embedding_type=R.parse_ggml_type(o["token_embedding_type"]) if "token_embedding_type" in o else None,
            tensor_types=tuple(R.parse_tensor_type(s) for s in tensor_types),
            allow_requantize=o.get("allow_requantize", False),
            no_fallback=o.get("no_fallback", False),
        )
        overrides = tuple(R.parse_kv_override(s) for s in o.get("override_kv", ()))
    except (R.RecipeError, ValueError) as e:
        raise InputError(f"model {job.name}: {e}") from None
    return C.Options(
        out=Path(job.out),
        threads=job.threads,
        force=True,  # only outputs found missing or invalid are written
        split_max_tensors=o.get("split_max_tensors", 0),
        split_max_size=_size(o["split_max_size"], job.name) if "split_max_size" in o else 0,
        model_name=o.get("model_name"),
        vocab_pre=o.get("vocab_pre"),
        quant=quant,
        imatrix=Path(job.imatrix) if job.imatrix else None,
        include_weights=tuple(o.get("include_weights", ())),
        exclude_weights=tuple(o.get("exclude_weights", ())),
        override_kv=overrides,
    )


def _same(a, b) -> bool:
    """Equality of a key/value pair as planned and as read back from a GGUF file."""
    import numpy as np

    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bytes):
        a = a.decode("utf-8", "surrogateescape")
    if isinstance(b, bytes):
        b = b.decode("utf-8", "surrogateescape")
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        x, y = np.float64(a), np.float64(b)
        return bool(x == y or np.float32(x) == np.float32(y) or (np.isnan(x) and np.isnan(y)))
    return bool(a == b)


def existing_output(target) -> tuple[dict | None, str]:
    """(`inspect.summarize` of the file already holding `target`, "complete") if it is a
    complete GGUF with the planned tensors, types and key/value pairs, else (None, why it
    must be (re)written)."""
    from .gguf_source import GGUFModel
    from .inspect import check_model_complete, summarize_model

    path = Path(target.path)
    if path.is_file():
        first = path
    else:
        shards = sorted(path.parent.glob(glob.escape(path.stem) + "-00001-of-*.gguf"))
        if not shards:
            return None, "missing"
        first = shards[0]
    try:
        model = GGUFModel(first)
    except QuantError as e:
        return None, f"exists but is not a readable GGUF file ({e})"
    try:
        try:
            check_model_complete(model, first)
        except QuantError as e:
            return None, f"exists but is not complete ({e})"
        types = {t.name: t.qtype for t in model.tensors.values()}
        if list(model.tensors) != list(target.order) or any(types[n] != target.types[n] for n in target.order):
            return None, "exists but holds other tensors or types than planned"
        have = {kv.key: kv.value for kv in model.kv if not kv.key.startswith("split.")}
        want = {k: v.value for k, v in target.kv.items()}
        if set(have) != set(want):
            return None, "exists but its metadata keys differ from the plan"
        for k, v in want.items():
            if not _same(v, have[k]):
                return None, f"exists but its {k} differs from the plan"
        return summarize_model(model, first, with_metadata=False, with_tensors=False), "complete"
    finally:
        model.close()


def _describe(s: dict, recipe: str, label: str, status: str) -> dict:
    return {
        "recipe": recipe,
        "type": label,
        "status": status,
        "file": s["file"],
        "files": s["files"],
        "bytes": s["file_bytes"],
        "bits_per_weight": round(s["bits_per_weight"], 4),
        "file_type": s["file_type"],
        "types": {k: v["tensors"] for k, v in s["types"].items()},
    }


def run_job(job: Job) -> dict:
    """Convert one model (in this process); never raises for a model's own failures."""
    import traceback

    from .progress import Reporter

    class JobReporter(Reporter):
        error: str | None = None

        def _print_error(self, msg: str) -> None:
            self.error = msg
            super()._print_error(f"{job.name}: {msg}")

    result = {"status": "failed", "exit_code": 1, "error": None, "outputs": []}
    rep = JobReporter(quiet=job.quiet)
    if job.quiet:  # errors only (as `quant convert -q`)
        import logging

        logging.getLogger("gguf").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    try:
        with rep.guard():
            _convert(job, rep, result)
        written = any(o["status"] == "written" for o in result["outputs"])
        result.update(status="ok" if written else "skipped", exit_code=0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        result.update(exit_code=code, error=rep.error,
                      status="interrupted" if code in (130, 143) else "failed")
    except Exception as e:  # a bug: report it, and go on with the other models
        traceback.print_exc()
        result.update(exit_code=1, error=f"internal error ({type(e).__name__}: {e}); please report it")
    if result.pop("created_folder", False) and result["status"] not in ("ok", "skipped"):
        try:
            os.rmdir(job.out)  # only if empty: a failed model leaves nothing behind
        except OSError:
            pass
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _convert(job: Job, rep, result: dict) -> None:
    from . import convert as C
    from . import source as S

    opts = convert_options(job)
    folder = S.resolve(job.source, job.revision)
    imatrix = C.read_imatrix(opts)
    with C.open_model(folder, opts) as model:
        out = Path(job.out)
        if not out.is_dir():
            try:
                out.mkdir(parents=True)
            except OSError as e:
                raise OutputError(f"cannot create the output folder {out}: {e.strerror}") from None
            result["created_folder"] = True
        targets = C.plan_targets(model, job.recipes, opts, imatrix)
        todo = []
        for recipe, target in zip(job.recipes, targets):
            found, why = (None, "--force") if job.force else existing_output(target)
            if found is not None:
                result["outputs"].append(_describe(found, recipe, target.label, "skipped"))
                if not job.quiet:
                    print(f"{found['file']}: already complete, skipped", file=sys.stderr, flush=True)
            else:
                if why not in ("missing", "--force") and not job.quiet:
                    print(f"{target.path}: {why}; rebuilding it", file=sys.stderr, flush=True)
                todo.append((recipe, target))
        if not todo:
            return
        written = C.write_targets(model, [t for _, t in todo], opts, imatrix, rep)
    rep.done(written)
    from .inspect import summarize

    for recipe, target in todo:
        first = target.path if target.path in written else next(p for p in written if p.name.startswith(target.path.stem + "-00001-of-"))
        s = summarize(first, with_metadata=False, with_tensors=False)
        result["outputs"].append(_describe(s, recipe, target.label, "written"))


def _worker_main(argv: list[str]) -> None:
    job_file, result_file = argv
    job = Job(**json.loads(Path(job_file).read_text()))
    result = run_job(job)
    Path(result_file).write_text(json.dumps(result))
    sys.exit(result["exit_code"])


# -- the batch (parent process) -------------------------------------------------------------

def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


class _Run:
    """Bookkeeping of one running worker."""

    def __init__(self, job: Job, tmpdir: Path, inherit_stderr: bool):
        self.job = job
        self.job_file = tmpdir / f"{job.index}.job.json"
        self.result_file = tmpdir / f"{job.index}.result.json"
        self.log_file = tmpdir / f"{job.index}.log"
        self.job_file.write_text(json.dumps(asdict(job)))
        self.t0 = time.perf_counter()
        log = None if inherit_stderr else open(self.log_file, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "quantcli.batch", str(self.job_file), str(self.result_file)],
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else sys.stderr,
                stderr=log if log is not None else None,
                start_new_session=True,  # a terminal's Ctrl-C reaches the batch only; it forwards one signal
            )
        finally:
            if log is not None:
                log.close()

    def result(self) -> dict:
        code = self.proc.wait()
        try:
            result = json.loads(self.result_file.read_text())
        except (OSError, ValueError):
            tail = ""
            try:
                lines = self.log_file.read_text(errors="replace").strip().splitlines()
                tail = "; last output: " + " | ".join(lines[-3:]) if lines else ""
            except OSError:
                pass
            code = 128 - code if code < 0 else code  # killed by a signal: shell convention
            status = "interrupted" if code in (130, 143) else "failed"
            result = {"status": status, "exit_code": code, "outputs": [],
                      "error": f"the worker process ended with exit code {code} without a result{tail}",
                      "seconds": round(time.perf_counter() - self.t0, 3)}
        return result


def _model_entry(job: Job, result: dict | None, status: str | None = None) -> dict:
    entry = {
        "name": job.name,
        "source": job.source,
        "revision": job.revision,
        "recipes": job.recipes,
        "output_folder": job.out,
        "command": shlex.join(job.command()),
    }
    if result is None:
        entry.update(status=status, exit_code=None, error=None, seconds=0.0, outputs=[])
    else:
        entry.update(status=result["status"], exit_code=result["exit_code"], error=result["error"],
                     seconds=result["seconds"], outputs=result["outputs"])
    return entry


def run_batch(manifest: Path, *, jobs: int | None = None, threads: int | None = None,
              output: Path | None = None, summary: Path | None = None, only: list[str] = (),
              force: bool = False, dry_run: bool = False, as_json: bool = False,
              quiet: bool = False) -> int:
    """`quant batch`: returns the exit code."""
    from rich.console import Console

    # markup=False: messages hold brackets ([[model]], [1/3], tensor shapes) that are not styles
    console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    if jobs is not None and jobs < 1:
        console.print("error: --jobs must be at least 1")
        return 2
    try:
        batch = load_manifest(manifest, output=output, summary=summary, jobs=jobs, threads=threads,
                              force=force, quiet=quiet)
        if only:
            names = [j.name for j in batch.models]
            for n in only:
                if n not in names:
                    close = difflib.get_close_matches(n, names, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else f" (models: {', '.join(names)})"
                    raise ManifestError(f"--only {n}: no model of that name in {manifest}{hint}")
            batch.models = [j for j in batch.models if j.name in only]
    except QuantError as e:
        from rich.text import Text

        console.print(Text.assemble(("error:", "bold red"), f" {e}"))
        return e.exit_code

    if dry_run:
        plan = [{"name": j.name, "source": j.source, "revision": j.revision, "recipes": j.recipes,
                 "output_folder": j.out, "options": j.options, "command": shlex.join(j.command())}
                for j in batch.models]
        if as_json:
            print(json.dumps({"manifest": str(batch.manifest), "output": str(batch.output),
                              "summary": str(batch.summary), "jobs": batch.jobs, "models": plan}, indent=1))
        else:
            out = Console(highlight=False, soft_wrap=True, markup=False)
            out.print(f"{len(plan)} model(s) into {batch.output} ({batch.jobs} at a time); summary {batch.summary}")
            for p in plan:
                out.print(f"{p['name']}: {p['command']}", soft_wrap=True)
        return 0

    return _run(batch, console, as_json, quiet)


def _run(batch: Batch, console, as_json: bool, quiet: bool) -> int:
    stop: list[int] = []

    def on_signal(signum, frame):
        if not stop:
            stop.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    n = len(batch.models)
    entries: dict[int, dict] = {}

    def summary_data(final: bool) -> dict:
        models = []
        for j in batch.models:
            e = entries.get(j.index)
            models.append(e if e is not None else _model_entry(j, None, "not run" if final else "pending"))
        counts: dict[str, int] = {}
        for m in models:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        status = "interrupted" if stop else "failed" if counts.get("failed") else "ok" if final else "running"
        return {"manifest": str(batch.manifest), "output": str(batch.output), "started": started,
                "seconds": round(time.perf_counter() - t0, 3), "status": status, "counts": counts,
                "failed": [m["name"] for m in models if m["status"] == "failed"], "models": models}

    def say(msg: str) -> None:
        if not quiet:
            console.print(msg)

    try:
        batch.output.mkdir(parents=True, exist_ok=True)
        _write_json(batch.summary, summary_data(False))
    except OSError as e:
        console.print(f"error: cannot write to {batch.summary.parent}: {e.strerror}; choose another output folder")
        return 5
    queue = list(batch.models)
    running: list[_Run] = []
    with tempfile.TemporaryDirectory(prefix="quant-batch-") as tmp:
        try:
            while (queue or running) and not stop:
                while queue and len(running) < batch.jobs and not stop:
                    job = queue.pop(0)
                    say(f"[{job.index}/{n}] {job.name}: {', '.join(job.recipes)} from {job.source}")
                    running.append(_Run(job, Path(tmp), inherit_stderr=batch.jobs == 1))
                for r in [r for r in running if r.proc.poll() is not None]:
                    running.remove(r)
                    entries[r.job.index] = entry = _model_entry(r.job, r.result())
                    _report(entry, r.job, n, say, console, batch.jobs == 1)
                    _write_json(batch.summary, summary_data(False))
                time.sleep(0.05)
        finally:
            if stop or running:
                for s in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(s, signal.SIG_IGN)
                for r in running:
                    try:
                        r.proc.send_signal(stop[0] if stop else signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                for r in running:
                    entries[r.job.index] = entry = _model_entry(r.job, r.result())
                    if entry["status"] == "ok":
                        pass
                    elif entry["status"] != "failed":
                        entry["status"] = "interrupted"
                    _report(entry, r.job, n, say, console, batch.jobs == 1)
            for s, h in old.items():
                signal.signal(s, h)
    data = summary_data(True)
    _write_json(batch.summary, data)
    if as_json:
        print(json.dumps(data, indent=1))
    if not quiet:
        _print_table(data, console)
    console.print(f"summary: {batch.summary}") if not quiet else None
    if stop:
        console.print("error: interrupted; finished outputs are kept, no partial file was left behind")
        return 130 if stop[0] == signal.SIGINT else 143
    if data["failed"]:
        console.print(f"error: {len(data['failed'])} of {n} model(s) failed: {', '.join(data['failed'])} "
                      f"(details in {batch.summary})")
        return EXIT_FAILED
    return 0


def _report(entry: dict, job: Job, n: int, say, console, shown: bool) -> None:
    outs = entry["outputs"]
    written = sum(o["status"] == "written" for o in outs)
    skipped = sum(o["status"] == "skipped" for o in outs)
    head = f"[{job.index}/{n}] {job.name}"
    if entry["status"] in ("ok", "skipped"):
        say(f"{head}: {entry['status']} ({written} written, {skipped} already complete) in {entry['seconds']:.1f}s")
    elif shown and entry["error"]:  # the worker printed its error just above
        say(f"{head}: {entry['status']} (exit code {entry['exit_code']})")
    else:  # errors are shown even with --quiet
        console.print(f"{head}: {entry['status']} (exit code {entry['exit_code']}): {entry['error']}")


def _print_table(data: dict, console) -> None:
    from rich.table import Table

    table = Table(title="quant batch", title_justify="left")
    for col in ("model", "status", "outputs", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for m in data["models"]:
        outs = "\n".join(f"{Path(o['file']).name} ({o['status']}, {o['bits_per_weight']:.2f} bpw)" for o in m["outputs"])
        if m["status"] == "failed":
            outs = outs or (m["error"] or "")[:200]
        table.add_row(m["name"], m["status"], outs, f"{m['seconds']:.1f}")
    console.print(table)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
