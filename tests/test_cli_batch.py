"""`quant batch MANIFEST.toml`, as CI runs it.

The main scenario: one broken model between two good ones -> the good files, a JSON summary
naming the failure, a non-zero exit code; a second run skips what is finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap

import pytest

from tests.cli_support import (
    DEMO,
    add_snapshot,
    assert_clean,
    base_env,
    copy_model,
    leftovers,
    model_files,
    poke_value,
    quant,
    quant_exe,
)

EXIT_FAILED = 6


def gemma3():
    from fixtures.registry import ensure_fixture

    return ensure_fixture("gemma3")


@pytest.fixture
def project(tmp_path):
    """A CI checkout: models/ (demo, a broken copy with a NaN in a late tensor, gemma3) and
    quant.toml converting them into dist/."""
    models = tmp_path / "models"
    models.mkdir()
    copy_model(DEMO, models / "demo")
    broken = copy_model(DEMO, models / "broken")
    poke_value(broken / "model.safetensors", "model.layers.1.mlp.up_proj.weight", 3, float("nan"))
    (tmp_path / "quant.toml").write_text(textwrap.dedent(f"""
        output = "dist"

        [defaults]
        recipes = ["Q4_K_M", "Q8_0"]

        [[model]]
        source = "models/demo"

        [[model]]
        source = "models/broken"

        [[model]]
        source = "{gemma3()}"
        name = "gemma"
        recipes = ["Q4_0", "Q8_0"]
        options = {{ pure = true, tensor_type = ["attn_v=q8_0"] }}
    """))
    return tmp_path


DEMO_FILES = ["Tiny-Llama-Demo-1.7M-Q4_K_M.gguf", "Tiny-Llama-Demo-1.7M-Q8_0.gguf"]
GEMMA_FILES = ["Gemma3-1.7M-Q4_0-pure.gguf", "Gemma3-1.7M-Q8_0-pure.gguf"]


def listing(folder):
    return {str(p.relative_to(folder)): p.stat() for p in sorted(folder.rglob("*")) if p.is_file()}


def summary(project):
    return json.loads((project / "dist" / "quant-batch.json").read_text())


def test_broken_model_between_good_ones_then_rerun(project, tmp_path):
    dist = project / "dist"
    r = quant("batch", "quant.toml", cwd=project)
    assert r.returncode == EXIT_FAILED, r.stderr[-3000:]
    assert sorted(listing(dist)) == sorted(
        [f"demo/{f}" for f in DEMO_FILES] + [f"gemma/{f}" for f in GEMMA_FILES] + ["quant-batch.json"])
    assert leftovers(dist) == []  # the broken model failed mid-write: nothing of it remains
    s = summary(project)
    assert s["status"] == "failed" and s["failed"] == ["broken"]
    assert s["counts"] == {"ok": 2, "failed": 1}
    demo, broken, gemma = s["models"]
    assert [m["name"] for m in s["models"]] == ["demo", "broken", "gemma"]
    assert demo["status"] == gemma["status"] == "ok"
    assert broken["status"] == "failed" and broken["exit_code"] == 3 and broken["outputs"] == []
    assert "tensor blk.1.ffn_up.weight (from model.layers.1.mlp.up_proj.weight): non-finite value" in broken["error"]
    assert [o["status"] for o in demo["outputs"] + gemma["outputs"]] == ["written"] * 4
    assert [o["file"] for o in demo["outputs"]] == [str(dist / "demo" / f) for f in DEMO_FILES]
    o = demo["outputs"][0]
    assert o["recipe"] == "Q4_K_M" and o["file_type"] == "MOSTLY_Q4_K_M" and o["bytes"] == 1097984
    assert o["types"] == {"F32": 5, "Q4_K": 13, "Q6_K": 3} and 5 < o["bits_per_weight"] < 5.1
    assert gemma["command"].startswith(f"quant convert {gemma3()} Q4_0 Q8_0 -o {dist}/gemma/")
    assert "--pure" in gemma["command"] and "--tensor-type attn_v=q8_0" in gemma["command"]
    # the log names the failure; the final line says what failed and where the summary is
    assert "broken: failed" in r.stderr and "non-finite value" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: 1 of 3 model(s) failed: broken (details in {dist / 'quant-batch.json'})")

    # the outputs are exactly what `quant convert` writes
    ref = tmp_path / "ref"
    assert quant("convert", DEMO, "Q4_K_M", "Q8_0", "-o", f"{ref}/demo/", "-q").returncode == 0
    assert quant("convert", gemma3(), "Q4_0", "Q8_0", "--pure", "--tensor-type", "attn_v=q8_0",
                 "-o", f"{ref}/gemma/", "-q").returncode == 0
    for f in [f"demo/{f}" for f in DEMO_FILES] + [f"gemma/{f}" for f in GEMMA_FILES]:
        assert (dist / f).read_bytes() == (ref / f).read_bytes(), f

    # second run: the finished outputs are skipped (files untouched), the broken model fails again
    before = listing(dist)
    r = quant("batch", "quant.toml", cwd=project)
    assert r.returncode == EXIT_FAILED, r.stderr[-3000:]
    after = listing(dist)
    for f, st in before.items():
        if f != "quant-batch.json":
            assert (after[f].st_ino, after[f].st_mtime_ns) == (st.st_ino, st.st_mtime_ns), f
    s = summary(project)
    assert s["counts"] == {"skipped": 2, "failed": 1} and s["failed"] == ["broken"]
    assert [o["status"] for m in s["models"] for o in m["outputs"]] == ["skipped"] * 4
    assert "already complete, skipped" in r.stderr

    # an output that is damaged, or no longer what the manifest asks for, is rebuilt; the rest skipped
    cut = dist / "demo" / DEMO_FILES[1]
    os.truncate(cut, cut.stat().st_size // 2)
    toml = (project / "quant.toml").read_text().replace(
        'tensor_type = ["attn_v=q8_0"]', 'tensor_type = ["attn_v=q8_0"], override_kv = ["general.name=str:G"]')
    (project / "quant.toml").write_text(toml)
    r = quant("batch", "quant.toml", "--only", "demo", "--only", "gemma", cwd=project)
    assert r.returncode == 0, r.stderr[-3000:]
    s = summary(project)
    statuses = {m["name"]: [o["status"] for o in m["outputs"]] for m in s["models"]}
    assert statuses == {"demo": ["skipped", "written"], "gemma": ["written", "written"]}
    assert [m["name"] for m in s["models"]] == ["demo", "gemma"]
    assert cut.read_bytes() == (ref / "demo" / DEMO_FILES[1]).read_bytes()


def test_jobs_in_parallel_give_the_same_files(project, tmp_path):
    r = quant("batch", "quant.toml", "--jobs", "2", "--threads", "2", "--summary", tmp_path / "s.json", cwd=project)
    assert r.returncode == EXIT_FAILED, r.stderr[-3000:]
    s = json.loads((tmp_path / "s.json").read_text())
    assert {m["name"]: m["status"] for m in s["models"]} == {"demo": "ok", "broken": "failed", "gemma": "ok"}
    assert "--threads 1" in s["models"][0]["command"]  # 2 threads shared by 2 jobs
    assert "broken: failed (exit code 3): " in r.stderr  # parallel workers are quiet: the batch prints the error
    assert "[   1/21]" not in r.stderr
    ref = tmp_path / "ref"
    r = quant("batch", project / "quant.toml", "--output", ref, "--only", "demo", "--only", "gemma", "-q")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for sub, names in (("demo", DEMO_FILES), ("gemma", GEMMA_FILES)):
        for f in names:
            assert (project / "dist" / sub / f).read_bytes() == (ref / sub / f).read_bytes()


def test_dry_run(project):
    r = quant("batch", "quant.toml", "--dry-run", cwd=project)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"3 model(s) into {project / 'dist'} (1 at a time); summary {project / 'dist' / 'quant-batch.json'}"
    assert lines[1] == f"demo: quant convert {project / 'models' / 'demo'} Q4_K_M Q8_0 -o {project / 'dist' / 'demo'}/"
    assert lines[3].startswith("gemma: quant convert ") and lines[3].endswith("--pure --tensor-type attn_v=q8_0")
    assert not (project / "dist").exists()
    plan = json.loads(quant("batch", "quant.toml", "--dry-run", "--json", cwd=project).stdout)
    assert [m["name"] for m in plan["models"]] == ["demo", "broken", "gemma"]
    assert plan["models"][2]["options"] == {"pure": True, "tensor_type": ["attn_v=q8_0"]}


def test_hub_source(tmp_path):
    cache = tmp_path / "hub"
    add_snapshot(cache, "acme/tiny-demo", "c" * 40, model_files(DEMO), refs=("main",))
    (tmp_path / "ci.toml").write_text('output = "out"\n[[model]]\nsource = "acme/tiny-demo"\nrecipes = ["Q8_0"]\n'
                                      '[[model]]\nsource = "acme/missing"\nrecipes = ["Q8_0"]\n')
    r = quant("batch", tmp_path / "ci.toml", env=base_env(HF_HUB_CACHE=cache))
    assert r.returncode == EXIT_FAILED, r.stderr
    s = json.loads((tmp_path / "out" / "quant-batch.json").read_text())
    ok, missing = s["models"]
    assert ok["name"] == "tiny-demo" and ok["status"] == "ok"
    assert (tmp_path / "out" / "tiny-demo" / "Tiny-Llama-Demo-1.7M-Q8_0.gguf").is_file()
    assert missing["status"] == "failed" and "acme/missing: not in the local Hugging Face cache" in missing["error"]
    assert not (tmp_path / "out" / "missing").exists()


@pytest.mark.parametrize("toml, message", [
    ('output = "d"\n[[model]]\nsource = "m"\nrecipe = ["Q8_0"]\n', "unknown key 'recipe' in model 1; did you mean 'recipes'?"),
    ('output = "d"\n[[model]]\nsource = "m"\nrecipes = ["Q4_K_N"]\n', "unknown quantization type 'Q4_K_N'; did you mean"),
    ('[[model]]\nsource = "m"\nrecipes = ["Q8_0"]\n', "no output folder; add  output = \"dist\""),
    ('output = "d"\n[defaults]\nrecipes = ["Q8_0"]\n[[model]]\nsource = "a/m"\n[[model]]\nsource = "b/m"\n',
     "model 2 (m): model 1 has the same name"),
    ('output = "d"\n[[model]]\nsource = "m"\nrecipes = ["Q8_0"]\noptions = { pure = "yes" }\n',
     "option pure (--pure) expects bool, got 'yes'"),
    ('output = "d"\n[[model]]\nsource = "m"\nrecipes = ["Q8_0"]\noptions = { tensor_types = [] }\n',
     "unknown option 'tensor_types'; did you mean 'tensor_type'?"),
    ('output = "d"\n[[model]]\nsource = "m"\nrecipes = ["Q8_0"]\noptions = { tensor_type = ["attn_v"] }\n',
     "malformed tensor type 'attn_v' (expected PATTERN=TYPE)"),
    ('output = "d"\n', "no models; add one or more [[model]] tables"),
    ('output = "d"\n[[model]]\nrecipes = ["Q8_0"]\n', "model 1: no source"),
    ('output = "d"\n[[model]\n', "not valid TOML"),
], ids=["key-typo", "recipe-typo", "no-output", "same-name", "option-type", "option-typo", "tensor-type",
        "no-models", "no-source", "bad-toml"])
def test_manifest_errors_stop_before_any_work(tmp_path, toml, message):
    (tmp_path / "m.toml").write_text(toml)
    r = quant("batch", tmp_path / "m.toml")
    assert r.returncode == 3, r.stderr
    assert message in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {tmp_path / 'm.toml'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.toml"]


def test_cli_errors(tmp_path):
    r = quant("batch", tmp_path / "none.toml")
    assert r.returncode == 3 and "none.toml: no such manifest file" in r.stderr
    (tmp_path / "m.toml").write_text(f'output = "d"\n[[model]]\nsource = "{DEMO}"\nrecipes = ["Q8_0"]\n')
    r = quant("batch", tmp_path / "m.toml", "--only", "dmeo")
    assert r.returncode == 3 and "--only dmeo: no model of that name" in r.stderr and "did you mean 'demo'?" in r.stderr
    r = quant("batch", tmp_path / "m.toml", "--jobs", "0")
    assert r.returncode == 2


def test_sigterm_stops_the_batch_cleanly(tmp_path):
    """SIGTERM to the batch while a model is being written: the worker removes its temporary
    files, the summary says interrupted / not run, exit code 143."""
    from fixtures.registry import ensure_fixture

    gqa = ensure_fixture("llama-gqa")
    (tmp_path / "m.toml").write_text(textwrap.dedent(f"""
        output = "dist"
        [[model]]
        source = "{gqa}"
        name = "gqa"
        recipes = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q8_0", "Q4_0"]
        [[model]]
        source = "{DEMO}"
        recipes = ["Q8_0"]
    """))
    p = subprocess.Popen([quant_exe(), "batch", str(tmp_path / "m.toml")], env=base_env(),
                         stderr=subprocess.PIPE, text=True)
    during = []
    try:
        for line in p.stderr:
            if line.startswith("[   2/22]"):
                during = leftovers(tmp_path / "dist")
                p.send_signal(signal.SIGTERM)
                break
        rest = p.stderr.read()
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert len(during) == 6, f"the model finished before it could be interrupted: {during}"
    assert rc == 143, rest
    assert "terminated; no output file was left behind" in rest
    assert_clean(tmp_path / "dist")
    s = json.loads((tmp_path / "dist" / "quant-batch.json").read_text())
    assert s["status"] == "interrupted"
    assert [(m["name"], m["status"]) for m in s["models"]] == [("gqa", "interrupted"), ("demo", "not run")]
    assert s["models"][0]["exit_code"] == 143


def test_force_rebuilds_and_json_summary_on_stdout(tmp_path):
    (tmp_path / "m.toml").write_text(f'output = "out"\n[[model]]\nsource = "{DEMO}"\nname = "d"\nrecipes = ["Q8_0"]\n')
    r = quant("batch", tmp_path / "m.toml", "-q", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    s = json.loads(r.stdout)
    assert s == json.loads((tmp_path / "out" / "quant-batch.json").read_text())
    assert s["status"] == "ok" and s["models"][0]["outputs"][0]["status"] == "written"
    f = tmp_path / "out" / "d" / "Tiny-Llama-Demo-1.7M-Q8_0.gguf"
    ino = f.stat().st_ino
    s = json.loads(quant("batch", tmp_path / "m.toml", "-q", "--json").stdout)
    assert s["models"][0]["status"] == "skipped" and f.stat().st_ino == ino
    s = json.loads(quant("batch", tmp_path / "m.toml", "-q", "--json", "--force").stdout)
    assert s["models"][0]["outputs"][0]["status"] == "written" and f.stat().st_ino != ino
