"""The seed's unified_llm_demo.py structure (shared/seed/what-are-llms.md: a backends list, a
BenchmarkManager with run_benchmark / compare_backends, a benchmark mode comparing backends on the
same prompts) rebuilt on top of the edgellm package and the other edgellm backends:

- "llama_cpp": the seed's llama-cpp-python backend code with `from edgellm import Llama`;
- "edgellm_cli": the edgellm CLI (`edgellm run --json`);
- "ollama": the seed's Ollama backend, here with nothing listening (it must be reported as
  unavailable with the reason, and the benchmark must go on with what works).

Its benchmark mode runs on stories260K; the two edgellm paths must print the same greedy text."""
import json
import os
import resource
import socket
import statistics
import subprocess
import time

import pytest

from edgellm_py_util import BIN, import_edgellm, require_stories

edgellm = import_edgellm()


class LLMBackend:
    name = "base"

    def load_model(self, model):
        raise NotImplementedError

    def generate(self, prompt, max_tokens, temperature):
        raise NotImplementedError


class LlamaCppBackend(LLMBackend):
    """The seed's llama_cpp backend; only its import changed."""
    name = "llama_cpp"

    def load_model(self, model):
        from edgellm import Llama  # was: from llama_cpp import Llama
        self.llm = Llama(model_path=model, n_ctx=512, n_threads=2, n_batch=256,
                         n_gpu_layers=0, verbose=False)

    def generate(self, prompt, max_tokens, temperature):
        out = self.llm(prompt, max_tokens=max_tokens, temperature=temperature)
        return out["choices"][0]["text"]


class EdgellmCliBackend(LLMBackend):
    name = "edgellm_cli"

    def load_model(self, model):
        if not os.path.exists(BIN):
            raise RuntimeError(f"edgellm CLI not built at {BIN}")
        self.model = model

    def generate(self, prompt, max_tokens, temperature):
        r = subprocess.run([BIN, "run", "-m", self.model, "-p", prompt, "-n", str(max_tokens), "--temp",
                            str(temperature), "-t", "2", "--json"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip())
        return json.loads(r.stdout)["text"]


class OllamaBackend(LLMBackend):
    name = "ollama"

    def load_model(self, model):
        import ollama
        self.client = ollama.Client(host=os.environ["OLLAMA_HOST"], timeout=5)
        self.client.list()  # raises when the server is not there
        self.model = model

    def generate(self, prompt, max_tokens, temperature):
        r = self.client.generate(model=self.model, prompt=prompt,
                                 options={"num_predict": max_tokens, "temperature": temperature})
        return r["response"]


BACKENDS = {b.name: b for b in (LlamaCppBackend, EdgellmCliBackend, OllamaBackend)}


class BenchmarkManager:
    def run_benchmark(self, backend_name, model, prompts, num_runs=3, max_tokens=50, temperature=0.0):
        backend = BACKENDS[backend_name]()
        backend.load_model(model)
        times, texts = [], {}
        for prompt in prompts:
            for _ in range(num_runs):
                t0 = time.perf_counter()
                texts[prompt] = backend.generate(prompt, max_tokens, temperature)
                times.append(time.perf_counter() - t0)
        return {"backend": backend_name, "model": model, "avg_time_s": statistics.fmean(times),
                "std_time_s": statistics.stdev(times) if len(times) > 1 else 0.0,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "texts": texts}

    def compare_backends(self, prompts, backends_models, num_runs=3, max_tokens=50):
        results, unavailable = [], {}
        for name, model in backends_models:
            try:
                results.append(self.run_benchmark(name, model, prompts, num_runs, max_tokens))
            except Exception as e:  # the seed prints the failure and goes on
                unavailable[name] = f"{type(e).__name__}: {e}"
        return results, unavailable


@pytest.fixture
def no_ollama(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")


def test_benchmark_mode_on_the_package_and_the_cli(no_ollama):
    pytest.importorskip("ollama")
    model = str(require_stories())
    prompts = ["Once upon a time", "The little dog"]
    results, unavailable = BenchmarkManager().compare_backends(
        prompts, [("llama_cpp", model), ("edgellm_cli", model), ("ollama", "llama2:7b-chat")], num_runs=2,
        max_tokens=16)
    assert set(unavailable) == {"ollama"}, unavailable
    assert "Connect" in unavailable["ollama"] or "connect" in unavailable["ollama"], unavailable
    by = {r["backend"]: r for r in results}
    assert set(by) == {"llama_cpp", "edgellm_cli"}
    for r in results:
        assert r["avg_time_s"] > 0 and r["std_time_s"] >= 0 and r["peak_rss_mb"] > 0
        print(f"{r['backend']}: {1000 * r['avg_time_s']:.1f} ms per generation (sd {1000 * r['std_time_s']:.1f})")
    for p in prompts:
        assert by["llama_cpp"]["texts"][p], p
        assert by["llama_cpp"]["texts"][p] == by["edgellm_cli"]["texts"][p], p


def test_bench_and_device_from_the_package():
    r = edgellm.bench(str(require_stories()), n_predict=16, runs=2, n_threads=1)
    assert len(r["runs"]) == 2 and all(x["n_gen"] == 16 for x in r["runs"])
    assert r["decode_tokens_per_s"]["mean"] > 0 and r["decode_tokens_per_s"]["min"] <= r["decode_tokens_per_s"]["max"]
    d = edgellm.device()
    assert d["device"] and isinstance(d["capabilities"], list)
