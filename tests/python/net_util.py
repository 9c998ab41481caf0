"""Helpers shared by the tests that start servers: a free loopback port, and `edgellm serve`
started on one and stopped again."""
import os
import re
import socket
import subprocess
import tempfile
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """`edgellm serve -m MODEL EXTRA...` on a free loopback port (2 threads unless -t is given),
    ready once /health answers. Its output goes to a temporary file (a pipe nobody drains would
    stall a chatty server), which errors quote."""

    def __init__(self, model, *extra, timeout=120):
        import requests
        self.requests = requests
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        threads = [] if "-t" in extra else ["-t", "2"]
        self.proc = subprocess.Popen([os.environ["EDGELLM_BIN"], "serve", "-m", str(model), "--port", str(self.port),
                                      *threads, *extra], stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edgellm serve exited with {self.proc.returncode}: {self.output()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError(f"edgellm serve did not come up in {timeout} s: {self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def metrics(self):
        text = self.requests.get(self.url + "/metrics", timeout=10).text
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(edgellm_\w+) (\S+)$", text, re.M)}

    def wait_idle(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.metrics()
            if m["edgellm_running_sequences"] == 0 and m["edgellm_queue_depth"] == 0:
                return m
            time.sleep(0.05)
        raise AssertionError(f"server not idle after {timeout} s: {self.metrics()}")

    def close(self):
        """Stops the server (SIGTERM, then SIGKILL after 20 s); returns its exit code."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return self.proc.returncode

    def stop(self):
        """close(), and the server must have exited cleanly."""
        rc = self.close()
        assert rc == 0, self.output()
