"""What `quant convert` prints when its output is not a terminal: plain log lines, --quiet,
and the --json report (files, sizes, bits per weight, time, per-tensor types)."""

from __future__ import annotations

import json
import re

from tests.cli_support import DEMO, quant


def test_plain_lines_when_not_a_terminal(tmp_path):
    out = tmp_path / "out"
    r = quant("convert", DEMO, "Q4_K_M", "Q8_0", "-o", f"{out}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    err = r.stderr
    assert "\x1b[" not in err and "\r" not in err  # no escape sequences, no redraws in a log
    lines = err.splitlines()
    assert lines[0] == ("writing Tiny-Llama-Demo-1.7M-Q4_K_M.gguf, Tiny-Llama-Demo-1.7M-Q8_0.gguf: "
                        "21 tensors, 6.8 MB of weights")
    tensor_lines = [ln for ln in lines if ln.startswith("[")]
    assert len(tensor_lines) == 21
    for i, ln in enumerate(tensor_lines, 1):
        m = re.fullmatch(r"\[ *(\d+)/21\] (\S+) +([\d.,]+) MB +([\d.]+)s", ln)
        assert m and int(m.group(1)) == i, ln
    assert tensor_lines[0].split()[2] == "output.weight"
    assert tensor_lines[-1].split()[2] == "output_norm.weight" and " 6.8 MB" in tensor_lines[-1]
    assert lines[-3] == f"wrote {out}/Tiny-Llama-Demo-1.7M-Q4_K_M.gguf (1.1 MB)"
    assert lines[-2] == f"wrote {out}/Tiny-Llama-Demo-1.7M-Q8_0.gguf (1.8 MB)"
    assert re.fullmatch(r"done in \d+\.\ds", lines[-1])


def test_quiet_prints_nothing(tmp_path):
    from fixtures.registry import ensure_fixture

    # llama-gqa's tokenizer makes gguf warn about a duplicated key: silenced too
    r = quant("convert", ensure_fixture("llama-gqa"), "Q8_0", "-o", tmp_path / "x.gguf", "-q")
    assert r.returncode == 0
    assert r.stdout == "" and r.stderr == ""
    assert (tmp_path / "x.gguf").is_file()
    # errors still are
    r = quant("convert", tmp_path, "Q8_0", "-q")
    assert r.returncode == 3 and r.stderr.startswith("error: ")


def test_json_report(tmp_path):
    out = tmp_path / "out"
    r = quant("convert", DEMO, "Q4_K_M", "Q8_0", "-o", f"{out}/", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --json implies no progress lines
    rep = json.loads(r.stdout)
    assert rep["seconds"] > 0
    assert [o["file"] for o in rep["outputs"]] == [f"{out}/Tiny-Llama-Demo-1.7M-Q4_K_M.gguf",
                                                   f"{out}/Tiny-Llama-Demo-1.7M-Q8_0.gguf"]
    q4, q8 = rep["outputs"]
    for o in rep["outputs"]:
        p = out / o["file"].rsplit("/", 1)[1]
        assert o["file_bytes"] == p.stat().st_size
        assert o["tensor_count"] == len(o["tensors"]) == 21
        assert o["bits_per_weight"] == 8 * o["tensor_bytes"] / o["weights"]
        assert sum(t["bytes"] for t in o["tensors"]) == o["tensor_bytes"]
        assert "metadata" not in o
    assert q8["file_type"] == "MOSTLY_Q8_0" and q4["file_type"] == "MOSTLY_Q4_K_M"
    assert 8.4 < q8["bits_per_weight"] < 8.6 and 4.5 < q4["bits_per_weight"] < 5.5
    types = {t["name"]: t["type"] for t in q4["tensors"]}
    assert types["output.weight"] == "Q6_K" and types["blk.0.attn_q.weight"] == "Q4_K"
    assert types["output_norm.weight"] == "F32"
    assert q4["types"]["Q6_K"]["tensors"] == sum(1 for t in types.values() if t == "Q6_K")
    # the report is what `quant inspect --json` says about the same file
    r2 = quant("inspect", q4["file"], "--json", "--no-metadata")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout) == {k: v for k, v in q4.items()}


def test_json_report_of_split_output(tmp_path):
    out = tmp_path / "out"
    r = quant("convert", DEMO, "Q8_0", "-o", f"{out}/", "--split-max-tensors", "8", "--json")
    assert r.returncode == 0, r.stderr
    (o,) = json.loads(r.stdout)["outputs"]
    names = [p.rsplit("/", 1)[1] for p in o["files"]]
    assert names == [f"Tiny-Llama-Demo-1.7M-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert o["tensor_count"] == 21
    assert o["file_bytes"] == sum((out / n).stat().st_size for n in names)
