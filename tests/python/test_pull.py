"""`edgellm pull` / `models` / `rm`, `-m NAME`, and the server's /api/pull, /api/delete, /api/tags
against a local fake of the Hugging Face resolve protocol (HEAD with X-Linked-Etag/-Size, a
redirect to the storage URL, Range requests) and of the Ollama registry (manifest v2 + blobs),
serving the shared stories260K model. Loopback only."""
import hashlib
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from net_util import Server

BIN = os.environ.get("EDGELLM_BIN")
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
MODEL = SHARED / "models" / "stories260K.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN, reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (the shared test models)"),
]

DATA = MODEL.read_bytes() if MODEL.exists() else b""
SHA = hashlib.sha256(DATA).hexdigest()
TEMPLATE = b"{{ .Prompt }}"
TEMPLATE_SHA = hashlib.sha256(TEMPLATE).hexdigest()
TOKEN = "hf_test_token"


class Fake:
    """What the fake registry saw and how it misbehaves."""

    def __init__(self):
        self.ranges = []       # Range headers of blob downloads
        self.cuts = 0          # this many blob downloads stop half-way and close the connection
        self.blobs = {SHA: DATA, TEMPLATE_SHA: TEMPLATE}


def make_handler(fake):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            if os.environ.get("FAKE_LOG"): print("FAKE", self.headers.get("Range"), *a, flush=True)

        def send_json(self, obj, status=200):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def not_found(self):
            self.send_json({"error": "not found"}, 404)

        def hf_file(self, head):
            parts = self.path.split("/")  # /ORG/REPO/resolve/main/FILE
            org, repo, file = parts[1], parts[2], "/".join(parts[5:])
            if org == "private" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.send_json({"error": "Access to this repository is restricted"}, 401)
            if not file.endswith(".gguf") or repo == "nope":
                return self.not_found()
            self.send_response(302)
            self.send_header("Location", f"/cdn/{SHA}")
            self.send_header("X-Linked-Etag", f'"{SHA}"')
            self.send_header("X-Linked-Size", str(len(DATA)))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def blob(self, sha):
            data = fake.blobs.get(sha)
            if data is None:
                return self.not_found()
            rng = self.headers.get("Range")
            fake.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            body = data[start:]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if fake.cuts:
                fake.cuts -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def manifest(self, name, tag):
            layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{SHA}", "size": len(DATA)},
                      {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{TEMPLATE_SHA}",
                       "size": len(TEMPLATE)}]
            if name == "corrupt":  # the registry claims a digest the blob does not have
                layers[0]["digest"] = "sha256:" + "ab" * 32
                fake.blobs["ab" * 32] = DATA
            elif name != "tiny":
                return self.not_found()
            self.send_json({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                       "digest": f"sha256:{TEMPLATE_SHA}", "size": len(TEMPLATE)},
                            "layers": layers})

        def route(self, head):
            p = self.path
            if p.startswith("/api/models/"):
                repo = p[len("/api/models/"):]
                if repo.endswith("/nope"):
                    return self.not_found()
                return self.send_json({"id": repo, "siblings": [
                    {"rfilename": "README.md"}, {"rfilename": "stories260K-F32.gguf"},
                    {"rfilename": "stories260K-Q4_K_M.gguf"}, {"rfilename": "stories260K-IQ4_K_M.gguf"}]})
            if "/resolve/main/" in p:
                return self.hf_file(head)
            if p.startswith("/cdn/"):
                return self.blob(p[len("/cdn/"):])
            if p.startswith("/v2/library/") and "/manifests/" in p:
                name, tag = p[len("/v2/library/"):].split("/manifests/")
                return self.manifest(name, tag)
            if p.startswith("/v2/library/") and "/blobs/sha256:" in p:
                return self.blob(p.split("/blobs/sha256:")[1])
            return self.not_found()

        def do_GET(self):
            self.route(False)

        def do_HEAD(self):
            self.route(True)

    return H


@pytest.fixture()
def registry():
    fake = Fake()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    fake.host = f"127.0.0.1:{httpd.server_address[1]}"
    fake.url = f"http://{fake.host}"
    yield fake
    httpd.shutdown()


def edgellm(*args, store, env_extra=None, check=True):
    env = dict(os.environ, EDGELLM_MODELS=str(store), **(env_extra or {}))
    env.pop("HF_TOKEN", None)
    env.update(env_extra or {})
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def stored(store):
    return json.loads(edgellm("models", "--json", store=store).stdout)


def test_hf_quant_pull_then_run_by_name(registry, tmp_path):
    hf = {"HF_ENDPOINT": registry.url}
    p = edgellm("pull", "someorg/stories-GGUF:Q4_K_M", store=tmp_path, env_extra=hf)
    assert "pulled hf.co/someorg/stories-GGUF:Q4_K_M" in p.stdout
    [m] = stored(tmp_path)
    assert m["name"] == "hf.co/someorg/stories-GGUF:Q4_K_M" and m["size"] == len(DATA)
    assert m["digest"] == f"sha256-{SHA}" and Path(m["path"]).read_bytes() == DATA
    assert m["source"].endswith("/someorg/stories-GGUF/resolve/main/stories260K-Q4_K_M.gguf")  # not IQ4_K_M
    # -m NAME everywhere: the same greedy text as the file itself.
    by_name = edgellm("run", "-m", m["name"], "-p", "Once upon a time", "-n", "16", "--temp", "0", store=tmp_path)
    by_path = edgellm("run", "-m", str(MODEL), "-p", "Once upon a time", "-n", "16", "--temp", "0", store=tmp_path)
    assert by_name.stdout == by_path.stdout and by_name.stdout.strip()
    # rm removes the entry and its blob.
    edgellm("rm", m["name"], store=tmp_path)
    assert stored(tmp_path) == [] and not Path(m["path"]).exists()
    p = edgellm("run", "-m", m["name"], "-p", "x", store=tmp_path, check=False)
    assert p.returncode != 0 and "no stored model of that name" in p.stderr and "edgellm pull" in p.stderr


def test_quant_not_in_repo_lists_what_is(registry, tmp_path):
    p = edgellm("pull", "someorg/stories-GGUF:Q5_K_S", store=tmp_path, env_extra={"HF_ENDPOINT": registry.url},
                check=False)
    assert p.returncode != 0 and "no GGUF file for Q5_K_S" in p.stderr and "stories260K-F32.gguf" in p.stderr


def test_cut_download_resumes_with_range(registry, tmp_path):
    hf = {"HF_ENDPOINT": registry.url}
    ref = "hf://someorg/stories-GGUF/stories260K-F32.gguf"
    # One cut: the pull itself resumes from where the data stopped.
    registry.cuts = 1
    edgellm("pull", ref, store=tmp_path, env_extra=hf)
    assert registry.ranges == [None, f"bytes={len(DATA) // 2}-"]
    [m] = stored(tmp_path)
    assert Path(m["path"]).read_bytes() == DATA
    edgellm("rm", m["name"], store=tmp_path)

    # A connection that keeps failing: the pull gives up, keeps the partial file out of the
    # store, and the next pull resumes it with a Range request.
    registry.cuts = 100
    registry.ranges.clear()
    p = edgellm("pull", ref, store=tmp_path, env_extra=hf, check=False)
    assert p.returncode != 0 and "run the same pull again to resume" in p.stderr, p.stderr
    assert len(registry.ranges) == 4  # four tries
    [partial] = list((tmp_path / "blobs").glob("partial-*"))
    have = partial.stat().st_size
    assert 0 < have < len(DATA)
    assert stored(tmp_path) == []  # nothing half-written in the store
    registry.cuts = 0
    edgellm("pull", ref, store=tmp_path, env_extra=hf)
    assert registry.ranges[-1] == f"bytes={have}-"
    [m] = stored(tmp_path)
    assert Path(m["path"]).read_bytes() == DATA and not list((tmp_path / "blobs").glob("partial-*"))


def test_errors_404_401_and_token(registry, tmp_path):
    hf = {"HF_ENDPOINT": registry.url}
    p = edgellm("pull", "someorg/nope:Q4_K_M", store=tmp_path, env_extra=hf, check=False)
    assert p.returncode != 0 and "not found (HTTP 404)" in p.stderr
    p = edgellm("pull", "hf://private/repo/m.gguf", store=tmp_path, env_extra=hf, check=False)
    assert p.returncode != 0 and "HTTP 401" in p.stderr and "HF_TOKEN" in p.stderr
    edgellm("pull", "hf://private/repo/m.gguf", store=tmp_path, env_extra=dict(hf, HF_TOKEN=TOKEN))
    assert [m["name"] for m in stored(tmp_path)] == ["hf.co/private/repo/m.gguf"]
    p = edgellm("pull", "a//b", store=tmp_path, check=False)
    assert p.returncode != 0 and "not a model reference" in p.stderr


def test_ollama_registry_pull_and_digest_mismatch(registry, tmp_path):
    p = edgellm("pull", f"{registry.host}/library/tiny", "--insecure", store=tmp_path)
    [m] = stored(tmp_path)
    assert m["name"] == f"{registry.host}/library/tiny:latest" and m["digest"] == f"sha256-{SHA}"
    index = json.loads((tmp_path / "index.json").read_text())
    assert (tmp_path / "blobs" / index["models"][m["name"]]["extra"]["template"]).read_bytes() == TEMPLATE
    p = edgellm("pull", f"{registry.host}/library/corrupt", "--insecure", store=tmp_path, check=False)
    assert p.returncode != 0 and "digest mismatch" in p.stderr and "nothing was stored" in p.stderr
    assert [x["name"] for x in stored(tmp_path)] == [m["name"]]
    assert not list((tmp_path / "blobs").glob("partial-*")) and not (tmp_path / "blobs" / ("sha256-" + "ab" * 32)).exists()


def test_server_pull_delete_tags_with_the_ollama_client(registry, tmp_path):
    ollama = pytest.importorskip("ollama")
    srv = Server(MODEL, "--models-dir", str(tmp_path))
    try:
        client = ollama.Client(host=srv.url)
        name = f"{registry.host}/library/tiny"
        records = list(client.pull(name, insecure=True, stream=True))
        statuses = [r.status for r in records]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
        assert any(r.completed == r.total == len(DATA) for r in records if r.digest == f"sha256:{SHA}")
        assert client.pull(name, insecure=True).status == "success"  # again, not streamed: already there
        names = [m.model for m in client.list().models]
        assert names[0] == "stories260K:latest" and f"{name}:latest" in names
        # serve -m NAME loads the stored model.
        os.environ["EDGELLM_MODELS"] = str(tmp_path)
        try:
            by_name = Server(f"{name}:latest", "--alias", "pulled")
        finally:
            del os.environ["EDGELLM_MODELS"]
        try:
            r = ollama.Client(host=by_name.url).generate(model="pulled", prompt="Once upon a time", raw=True,
                                                         options={"temperature": 0, "num_predict": 8})
            assert r.response.strip()
        finally:
            by_name.stop()
        assert client.delete(f"{name}:latest").status == "success"
        assert f"{name}:latest" not in [m.model for m in client.list().models]
        with pytest.raises(ollama.ResponseError) as e:
            client.delete(f"{name}:latest")
        assert e.value.status_code == 404
        with pytest.raises(ollama.ResponseError) as e:
            client.pull(f"{registry.host}/library/missing", insecure=True)
        assert e.value.status_code == 404 and "not found" in str(e.value)
    finally:
        srv.stop()
