"""The Python worker backends' failures, without their packages: a missing or broken package is
named by `edgellm list` and `edgellm run` (with how to install it), and a worker that crashes is a
clear error carrying its exit and the end of its log. Stub modules on PYTHONPATH stand in for
absent or broken packages; a stand-in worker script (EDGELLM_WORKERS_DIR) crashes on cue."""
import json
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
WORKERS = Path(__file__).resolve().parents[2] / "workers"
pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="EDGELLM_BIN (the edgellm CLI) is not built")


def edgellm(*args, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def stub_packages(root, absent=(), broken=None):
    """Modules that fail to import: `absent` as if not installed, `broken` {name: message} as if
    installed but failing (a missing shared library)."""
    for name in absent:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\")\n")
    for name, message in (broken or {}).items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    return {"PYTHONPATH": str(root)}


def list_rows(env):
    r = edgellm("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return {b["name"]: b for b in json.loads(r.stdout)}


def test_list_names_exactly_the_missing_packages(tmp_path):
    env = stub_packages(tmp_path, absent=["torch", "onnxruntime_genai"])
    rows = list_rows(env)
    tf, ort = rows["transformers"], rows["onnxruntime_genai"]
    assert not tf["available"] and not ort["available"]
    # torch is missing; transformers is installed or not depending on the machine: the reason
    # names torch, and transformers only where it is really absent.
    assert "missing Python packages" in tf["reason"] and "torch" in tf["reason"].split(": ", 1)[1], tf
    try:
        import transformers  # noqa: F401
        assert "transformers" not in tf["reason"].split(": ", 1)[1], tf
    except ImportError:
        assert "transformers" in tf["reason"].split(": ", 1)[1], tf
    # The PyPI name, not the import name.
    assert ort["reason"].endswith(": onnxruntime-genai"), ort
    for row in (tf, ort):
        assert "scripts/install-deps.sh --test --python-backends" in row["hint"], row
        assert "-m pip install" in row["hint"], row


def test_list_tells_an_installed_but_broken_package_apart(tmp_path):
    env = stub_packages(tmp_path, broken={"torch": "libcufile.so.0: cannot open shared object file"},
                        absent=["transformers"])
    tf = list_rows(env)["transformers"]
    assert not tf["available"]
    assert "torch is installed but fails to import: ImportError: libcufile.so.0" in tf["reason"], tf


def test_run_on_a_missing_package_says_what_to_install(tmp_path):
    env = stub_packages(tmp_path, absent=["onnxruntime_genai"])
    r = edgellm("run", "--backend", "onnxruntime_genai", "-m", str(tmp_path), "-p", "hi", "-n", "2", env=env)
    assert r.returncode != 0
    assert "onnxruntime-genai" in r.stderr and "install-deps.sh --test --python-backends" in r.stderr, r.stderr


CRASHING_WORKER = '''
import json, os, signal, sys
sys.path.insert(0, {workers!r})
import worker_protocol
REQUIRED = []
def versions():
    return {{"stand-in": "1"}}
def load(model, settings):
    if model == "exit-on-load":
        print("Traceback (most recent call last):\\nRuntimeError: stand-in failure while loading", file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)
def generate(msg, emit):
    emit("one piece")
    os.kill(os.getpid(), signal.SIGKILL)
worker_protocol.serve(sys.modules[__name__])
'''


@pytest.fixture
def crashing_worker(tmp_path):
    (tmp_path / "transformers_worker.py").write_text(CRASHING_WORKER.format(workers=str(WORKERS)))
    return {"EDGELLM_WORKERS_DIR": str(tmp_path)}


def test_worker_exiting_during_load_is_a_clear_error(crashing_worker):
    r = edgellm("run", "--backend", "transformers", "-m", "exit-on-load", "-p", "hi", "-n", "2", env=crashing_worker)
    assert r.returncode != 0
    assert "transformers worker exited unexpectedly (exit status 3)" in r.stderr, r.stderr
    assert "stand-in failure while loading" in r.stderr, r.stderr  # the end of its log


def test_worker_killed_while_generating_is_a_clear_error(crashing_worker):
    r = edgellm("run", "--backend", "transformers", "-m", "any", "-p", "hi", "-n", "2", env=crashing_worker)
    assert r.returncode != 0
    assert "transformers worker exited unexpectedly (killed by signal 9)" in r.stderr, r.stderr
