"""`edgellm device -m MODEL` shows the loader's own plan (engine::plan_load): for a --memory-limit that
forces a fallback, its context, KV type and fallback note are what `edgellm run --json` then loads
with, including the KV-type rung; a budget nothing fits is refused by both with the same text.
Expected rungs are worked out here from the models' shapes, not read from either command."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_models  # noqa: E402

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"

pytestmark = pytest.mark.skipif(not BIN or not Path(BIN).exists(), reason="EDGELLM_BIN not set (run through ctest)")


def device_plan(model, *args):
    r = subprocess.run([BIN, "device", "--json", "-m", str(model), *args], capture_output=True, text=True, timeout=120)
    return r.returncode, json.loads(r.stdout)["load_plan"]


def run_json(model, *args, check=True):
    return subprocess.run([BIN, "run", "-m", str(model), "-p", "hi", "-n", "1", "--json", *args],
                          capture_output=True, text=True, timeout=300, check=check)


def check_agree(model, limit, expect_kv, expect_ctx):
    args = ["-c", "512", "--memory-limit", str(limit)]
    rc, plan = device_plan(model, *args)
    assert rc == 0, plan
    run = json.loads(run_json(model, *args).stdout)
    assert (plan["kv_type"], plan["n_ctx"]) == (expect_kv, expect_ctx), plan
    assert (run["kv_type"], run["n_ctx"]) == (expect_kv, expect_ctx), run
    assert plan["fallback"] == run["fallback"]
    assert run["fallback"].startswith(f"fallback: {expect_kv} KV cache, context {expect_ctx} (asked: F16, 512;")
    assert run["kv_bytes"] == plan["kv_bytes"] and plan["explicit_budget"] and plan["budget_bytes"] == limit
    return plan


@pytest.mark.skipif(not STORIES.exists(), reason=f"reference model missing: {STORIES}")
def test_device_shows_the_context_rung_run_takes_and_the_same_refusal():
    # stories260K: 5 layers, K and V of 32 F16 values: 640 bytes per position. The file plus
    # 200 000 bytes holds 256 positions, not 512; its 8-wide heads have no quantized-KV rung.
    size = STORIES.stat().st_size
    plan = check_agree(STORIES, size + 200000, "F16", 256)
    assert plan["rung"] == "smaller context" and plan["tried"] == ["F16 x 512"]
    # The file alone: nothing fits; both refuse with the same message naming every rung.
    rc, plan = device_plan(STORIES, "-c", "512", "--memory-limit", str(size))
    run = run_json(STORIES, "-c", "512", "--memory-limit", str(size), check=False)
    assert rc == 1 and run.returncode != 0
    assert "every rung too big: F16 x 512, F16 x 256)" in plan["error"]
    assert plan["error"] in run.stderr
    # --no-fallback: the plain refusal in both.
    rc, plan = device_plan(STORIES, "-c", "512", "--memory-limit", str(size + 200000), "--no-fallback")
    assert rc == 1 and plan["error"].startswith("not enough memory: the model needs")
    # Bad settings are refused as `run` refuses them.
    r = subprocess.run([BIN, "device", "-m", str(STORIES), "--kv-type", "q5_9"], capture_output=True, text=True)
    assert r.returncode != 0 and "--kv-type must be f16, f32, q8_0 or q4_0" in r.stderr


def test_device_shows_the_kv_type_rung_run_takes():
    model = real_models.require("smollm2")
    # SmolLM2-135M: 30 layers, 3 KV heads of 64. Per position: F16 2*192*2*30 = 23040 bytes, Q8_0
    # (34 bytes per 32 values) 12240. With 4 000 000 bytes beside the file: F16 x 512 (11.8 MB),
    # F16 x 256 (5.9 MB) and Q8_0 x 512 (6.3 MB) do not fit, Q8_0 x 256 (3.1 MB) does.
    plan = check_agree(model, model.stat().st_size + 4_000_000, "Q8_0", 256)
    assert plan["rung"] == "smaller KV type and context"
    assert plan["tried"] == ["F16 x 512", "F16 x 256", "Q8_0 x 512"]
    assert plan["kv_bytes"] == 12240 * 256


@pytest.mark.skipif(not STORIES.exists(), reason=f"reference model missing: {STORIES}")
def test_device_fixture_plans_gpu_layers_with_the_fixtures_memory():
    # Under --root the plan takes the fixture's GPU (NVML fixture) instead of this machine's.
    fixtures = Path(os.environ.get("EDGELLM_SOURCE_DIR", Path(__file__).resolve().parents[2])) / "tests/fixtures/devices"
    free = json.loads((fixtures / "x86-rtx" / "nvml.json").read_text())["gpus"][0]["memory_free_bytes"]
    rc, plan = device_plan(STORIES, "--root", str(fixtures / "x86-rtx"), "-ngl", "99")
    assert rc == 0 and plan["gpu_free_bytes"] == free and plan["n_gpu_layers"] == 99 and plan["gpu_bytes"] > 0
    rc, plan = device_plan(STORIES, "--root", str(fixtures / "arm-cpu-only"), "-ngl", "4")
    assert rc == 1 and plan["error"].startswith("-ngl 4: the device has no NVIDIA GPU"), plan
