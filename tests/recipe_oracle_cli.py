"""llama-quantize's own command-line code as an oracle, compiled from the vendored sources.

llama-cpp-python ships libllama (``llama_model_quantize``) but not the ``llama-quantize``
tool, whose ``tools/quantize/quantize.cpp`` holds what libllama does not: the ftype names
(``try_parse_ftype``), ``parse_ggml_type``, ``parse_tensor_type``, imatrix loading and
normalisation (``load_imatrix`` / ``prepare_imatrix`` over ``common/imatrix-loader.cpp``)
and the ``quantize.imatrix.*`` KV overrides.  This module compiles those two files *as they
are* into a small shared library linked against the installed libllama / libggml-base:

* ``quantize.cpp`` is included into a wrapper translation unit so its ``static`` functions
  can be called; ``exit()`` (usage errors, imatrix load failures) is turned into a C++
  exception so a failure does not end the test process;
* the few helpers the two files take from ``common/`` (``string_split``,
  ``string_remove_suffix``, ``string_parse_kv_override``) are cut out of the vendored
  ``common.h`` / ``common.cpp`` text, logging goes to stderr, and
  ``llama_print_build_info`` prints nothing.

The library is built once per source version into the temp directory (about 20 s).  The
sources are the llama-cpp-python 0.3.36 sdist's vendor/llama.cpp, the tree the reference
converter comes from (``tests.reference.llama_cpp_source``: downloaded from PyPI once into
the test cache); ``QUANTCLI_LLAMA_CPP_SRC`` names another tree.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests import recipe_oracle_worker as worker

def llama_src() -> Path:
    """The llama.cpp tree holding tools/quantize/quantize.cpp and common/imatrix-loader.cpp."""
    from tests.reference import llama_cpp_source

    p = Path(os.environ["QUANTCLI_LLAMA_CPP_SRC"]) if os.environ.get("QUANTCLI_LLAMA_CPP_SRC") else llama_cpp_source()
    if not ((p / "tools/quantize/quantize.cpp").is_file() and (p / "common/imatrix-loader.cpp").is_file()):
        raise RuntimeError(f"llama.cpp sources not found under {p} (tools/quantize/quantize.cpp, common/imatrix-loader.cpp)")
    return p


def _cut_function(text: str, signature: str) -> str:
    """The text of a function definition that starts with ``signature`` (brace matched)."""
    start = text.index(signature)
    brace = text.index("{", start)
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1] + "\n"
    raise ValueError(signature)


_LOG_H = """#pragma once
#include <cstdio>
#define LOG_ERR(...) fprintf(stderr, __VA_ARGS__)
#define LOG_WRN(...) fprintf(stderr, __VA_ARGS__)
#define LOG_INF(...) fprintf(stderr, __VA_ARGS__)
#define LOG_DBG(...) do {} while (0)
#define LOG(...) fprintf(stderr, __VA_ARGS__)
"""

_WRAPPER = r"""
// every header quantize.cpp and imatrix-loader.cpp pull in, before exit() is redefined
#include <algorithm>
#include <cctype>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include "llama.h"
#include "gguf.h"
#include "ggml.h"
#include "common.h"
#include "log.h"
#include "build-info.h"
#include "imatrix-loader.h"

struct oracle_exit { int code; };
#define exit(code) throw oracle_exit{code}
#include "quantize.cpp"
#undef exit
#include "imatrix-loader.cpp"

void llama_print_build_info(const char *, FILE *) {}

struct oracle_imatrix {
    std::unordered_map<std::string, std::vector<float>> data;
    std::vector<std::string> names;
    std::vector<std::string> datasets;
    int m_last_call = -1;
};

extern "C" {

int oracle_llama_quantize(int argc, char ** argv) {
    try {
        return llama_quantize(argc, argv);
    } catch (const oracle_exit & e) {
        return 1000 + e.code;
    }
}

int oracle_try_parse_ftype(const char * s, int * ftype, char * name, int name_len) {
    llama_ftype ft;
    std::string out;
    if (!try_parse_ftype(s, ft, out)) {
        return 0;
    }
    *ftype = (int) ft;
    std::snprintf(name, name_len, "%s", out.c_str());
    return 1;
}

int oracle_parse_ggml_type(const char * s) {
    return (int) parse_ggml_type(s);
}

int oracle_parse_tensor_type(const char * s, char * pattern, int pattern_len, int * type) {
    std::vector<tensor_type_option> v;
    bool ok = parse_tensor_type(s, v);
    if (!v.empty()) {
        std::snprintf(pattern, pattern_len, "%s", v.back().name.c_str());
        *type = (int) v.back().type;
    }
    return ok ? 1 : 0;
}

int oracle_parse_kv_override(const char * s, int * tag, char * key, long long * i64, double * f64, int * b, char * str) {
    std::vector<llama_model_kv_override> v;
    if (!string_parse_kv_override(s, v)) {
        return 0;
    }
    const auto & o = v.back();
    *tag = (int) o.tag;
    std::snprintf(key, 128, "%s", o.key);
    if (o.tag == LLAMA_KV_OVERRIDE_TYPE_INT)   *i64 = o.val_i64;
    if (o.tag == LLAMA_KV_OVERRIDE_TYPE_FLOAT) *f64 = o.val_f64;
    if (o.tag == LLAMA_KV_OVERRIDE_TYPE_BOOL)  *b = o.val_bool ? 1 : 0;
    if (o.tag == LLAMA_KV_OVERRIDE_TYPE_STR)   std::snprintf(str, 128, "%s", o.val_str);
    return 1;
}

// prepare_imatrix (load_imatrix + include/exclude); returns NULL if llama-quantize exits
void * oracle_prepare_imatrix(const char * file, const char ** inc, int n_inc, const char ** exc, int n_exc) {
    auto * r = new oracle_imatrix;
    std::vector<std::string> included, excluded;
    for (int i = 0; i < n_inc; i++) included.emplace_back(inc[i]);
    for (int i = 0; i < n_exc; i++) excluded.emplace_back(exc[i]);
    try {
        r->m_last_call = prepare_imatrix(file, r->datasets, included, excluded, r->data);
    } catch (const oracle_exit &) {
        delete r;
        return nullptr;
    }
    for (const auto & kv : r->data) r->names.push_back(kv.first);
    std::sort(r->names.begin(), r->names.end());
    return r;
}
int oracle_imatrix_n(void * h) { return (int) ((oracle_imatrix *) h)->names.size(); }
const char * oracle_imatrix_name(void * h, int i) { return ((oracle_imatrix *) h)->names[i].c_str(); }
size_t oracle_imatrix_size(void * h, int i) {
    auto * r = (oracle_imatrix *) h;
    return r->data.at(r->names[i]).size();
}
const float * oracle_imatrix_data(void * h, int i) {
    auto * r = (oracle_imatrix *) h;
    return r->data.at(r->names[i]).data();
}
int oracle_imatrix_n_datasets(void * h) { return (int) ((oracle_imatrix *) h)->datasets.size(); }
const char * oracle_imatrix_dataset(void * h, int i) { return ((oracle_imatrix *) h)->datasets[i].c_str(); }
int oracle_imatrix_last_call(void * h) { return ((oracle_imatrix *) h)->m_last_call; }
void oracle_imatrix_free(void * h) { delete (oracle_imatrix *) h; }

}
"""


def _libdir() -> Path:
    """llama-cpp-python's lib directory, found without importing (and loading) it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-cpp-python is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def build() -> Path:
    """Compile (or reuse) the oracle library; returns its path.  Raises RuntimeError."""
    src = llama_src()
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        raise RuntimeError("no C++ compiler")

    common_h = (src / "common/common.h").read_text()
    common_cpp = (src / "common/common.cpp").read_text()
    stub_common = "\n".join(
        [
            "#pragma once",
            "#include <cstdio>",
            "#include <cstring>",
            "#include <cstdlib>",
            "#include <sstream>",
            "#include <stdexcept>",
            "#include <string>",
            "#include <string_view>",
            "#include <type_traits>",
            "#include <vector>",
            '#include "llama.h"',
            "#define COM_ERR(...) fprintf(stderr, __VA_ARGS__)",
            _cut_function(common_h, "inline bool string_ends_with("),
            _cut_function(common_h, "inline bool string_remove_suffix("),
            "template<class T>\n" + _cut_function(common_h, "static std::vector<T> string_split(const std::string & str, char delim)"),
            "template<>\n" + _cut_function(common_h, "inline std::vector<std::string> string_split<std::string>("),
            "inline " + _cut_function(common_cpp, "bool string_parse_kv_override("),
        ]
    )
    files = {
        "quantize.cpp": (src / "tools/quantize/quantize.cpp").read_text(),
        "imatrix-loader.cpp": (src / "common/imatrix-loader.cpp").read_text(),
        "imatrix-loader.h": (src / "common/imatrix-loader.h").read_text(),
        "build-info.h": (src / "common/build-info.h").read_text(),
        "common.h": stub_common,
        "log.h": _LOG_H,
        "oracle.cpp": _WRAPPER,
    }
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode() + b"\0" + files[k].encode() + b"\0")
    h.update(str(_libdir()).encode())
    out_dir = Path(tempfile.gettempdir()) / f"quantcli-llama-quantize-oracle-{h.hexdigest()[:16]}"
    lib = out_dir / "liboracle.so"
    if lib.is_file():
        return lib
    build_dir = Path(tempfile.mkdtemp(prefix="quantcli-oracle-build-"))
    for k, v in files.items():
        (build_dir / k).write_text(v)
    libdir = _libdir()
    cmd = [
        cxx, "-std=c++17", "-O1", "-fPIC", "-shared", "-w",
        f"-I{build_dir}", f"-I{src / 'include'}", f"-I{src / 'ggml/include'}",
        str(build_dir / "oracle.cpp"),
        f"-L{libdir}", "-l:libllama.so", "-l:libggml-base.so", f"-Wl,-rpath,{libdir}",
        "-o", str(build_dir / "liboracle.so"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the llama-quantize oracle failed:\n{proc.stderr[-4000:]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"liboracle.so.{os.getpid()}"
    shutil.copy2(build_dir / "liboracle.so", tmp)
    os.replace(tmp, lib)
    shutil.rmtree(build_dir, ignore_errors=True)
    return lib


class Oracle:
    """The compiled llama-quantize code; every call runs in the worker process
    (tests/recipe_oracle_native.py has the ctypes side)."""

    def __init__(self, lib_path: Path):
        self.lib_path = str(lib_path)

    def llama_quantize(self, *args: str) -> int:
        """Run ``llama-quantize ARGS...``; returns its exit code (1000+code for exit())."""
        return worker.call("cli_llama_quantize", self.lib_path, list(args))[0]

    def try_parse_ftype(self, s: str) -> tuple[int, str] | None:
        return worker.call("cli_try_parse_ftype", self.lib_path, s)

    def parse_ggml_type(self, s: str) -> int:
        return worker.call("cli_parse_ggml_type", self.lib_path, s)

    def parse_tensor_type(self, s: str) -> tuple[bool, str, int]:
        return worker.call("cli_parse_tensor_type", self.lib_path, s)

    def parse_kv_override(self, s: str) -> tuple[str, Any] | None:
        return worker.call("cli_parse_kv_override", self.lib_path, s)

    def prepare_imatrix(self, path: str, include=(), exclude=()):
        """llama-quantize's prepare_imatrix: (entries, datasets, m_last_call), or None if
        llama-quantize would exit."""
        return worker.call("cli_prepare_imatrix", self.lib_path, str(path), list(include), list(exclude))


_oracle: Oracle | None = None
_error: str | None = None
_offline = False  # the sources could not be downloaded (no registry)


def get() -> Oracle | None:
    """The oracle, building it on first use; None (the reason in `_error`) if it cannot be built."""
    global _oracle, _error, _offline
    if _oracle is None and _error is None:
        from tests.reference import ReferenceUnavailable

        try:
            lib = build()
            worker.call("cli_try_parse_ftype", str(lib), "Q4_0")  # loads in the worker
            _oracle = Oracle(lib)
        except ReferenceUnavailable as e:  # the sdist could not be downloaded
            _error, _offline = str(e), True
        except (RuntimeError, OSError) as e:
            _error = str(e)
    return _oracle


def require() -> Oracle:
    """The oracle for a test: skipped only when the package registry cannot be reached (no
    sources to compile); any other reason it cannot be built fails the test."""
    import pytest

    o = get()
    if o is None:
        if _offline:
            pytest.skip(f"llama-quantize oracle unavailable: {_error}")
        pytest.fail(f"llama-quantize oracle could not be built: {_error}")
    return o
