"""Our emulation of transformers' AutoConfig against AutoConfig itself (reference venv)."""

from __future__ import annotations

import json
import subprocess

import pytest

from quantcli.hparams import TRANSFORMERS_DEFAULTS, load_hparams
from tests.reference import REF_PYTHON
from tests.test_convert_reference import REAL, REAL_LAYOUTS, SYNTHETIC, fixture

_SNIPPET = r"""
import json, sys
from transformers import AutoConfig
out = {}
for d in sys.argv[1:]:
    hp = AutoConfig.from_pretrained(d, trust_remote_code=False).to_dict()
    if "text_config" in hp:
        hp = {**hp, **hp["text_config"]}
    out[d] = hp
print(json.dumps(out, default=str))
"""

FIELDS = {k for d in TRANSFORMERS_DEFAULTS.values() for k in d} | {"rope_scaling", "head_dim", "num_key_value_heads"}


@pytest.fixture(scope="module")
def autoconfig():
    if not REF_PYTHON.exists():
        pytest.skip("reference venv missing; run `make test`")
    folders = [str(fixture(n)) for n in SYNTHETIC + REAL + REAL_LAYOUTS]
    r = subprocess.run([str(REF_PYTHON), "-c", _SNIPPET, *folders], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", SYNTHETIC + REAL + REAL_LAYOUTS)
def test_fields_the_converter_reads_match_autoconfig(name, autoconfig):
    folder = fixture(name)
    theirs = autoconfig[str(folder)]
    ours = load_hparams(folder)
    for key in sorted(FIELDS):
        assert (key in ours) == (key in theirs), f"{key}: present in ours={key in ours}, AutoConfig={key in theirs}"
        if key in ours:
            assert json.loads(json.dumps(ours[key], default=str)) == theirs[key], key
