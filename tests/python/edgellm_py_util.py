"""Imports the edgellm Python package the build made (build/python, or EDGELLM_PYTHON_DIR) for
the tests of python/; skips with the reason where it was not built."""
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PY_DIR = Path(os.environ.get("EDGELLM_PYTHON_DIR", HERE.parents[1] / "build" / "python"))
SHARED = Path(os.environ.get("EDGELLM_SHARED", HERE.parents[2] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"
BIN = os.environ.get("EDGELLM_BIN", str(HERE.parents[1] / "build" / "bin" / "edgellm"))


def import_edgellm():
    if not (PY_DIR / "edgellm").is_dir():
        pytest.skip(f"the edgellm Python module is not built in {PY_DIR} (needs pybind11: apt install pybind11-dev)",
                    allow_module_level=True)
    if str(PY_DIR) not in sys.path:
        sys.path.insert(0, str(PY_DIR))
    import edgellm
    return edgellm


def require_stories():
    if not STORIES.exists():
        pytest.skip(f"{STORIES} missing (../shared not present)")
    return STORIES


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PY_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
