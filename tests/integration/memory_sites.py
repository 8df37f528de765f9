"""Backends for the memory tests: a Chroma server started by the test session, and ``Site``,
which hands out stores of any namespace on one backend kind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory import Embedder, EpisodicParams, HashingEmbedder, InProcessBackend, MemoryStore
from memory.base import VectorBackend

REPO = Path(__file__).resolve().parents[2]
KINDS = ["inprocess", "embedded", "embedded-batched", "embedded-direct", "server"]
"""``embedded`` reads small collections from its in-process copy (``memory/replica.py``);
``embedded-batched`` also journals its writes and sends them to Chroma in batches
(``memory/journal.py``); ``embedded-direct`` reads and writes Chroma for everything."""

# -- the Chroma server of this test session ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chroma_cli() -> Path:
    cli = Path(sys.executable).parent / "chroma"
    if not cli.exists():
        pytest.fail(f"the `chroma` CLI is missing ({cli}); install chromadb into the venv")
    return cli


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = (data / "server.log").open("w")
    cmd = [str(_chroma_cli()), "run", "--path", str(data / "db")]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped as a whole below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma server exited ({proc.returncode}): {_tail(data)}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma server not healthy after 60 s: {_tail(data)}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _tail(data: Path) -> str:
    return (data / "server.log").read_text()[-2000:]


# -- one site = one backend kind, handing out stores of any namespace ---------------------


PARAMS = EpisodicParams(epsilon=0.0)


class Site:
    """Stores on one backend kind; each test gets fresh namespaces."""

    def __init__(self, kind: str, tmp: Path, url: str | None) -> None:
        self.kind = kind
        self.path = tmp / "memory"
        self.url = url
        self._prefix = uuid.uuid4().hex[:8]  # the server is shared by the whole session
        self._inproc: dict[int, VectorBackend] = {}
        self._open: list[MemoryStore] = []

    def store(self, namespace: str = "ns", embedder: Embedder | None = None) -> MemoryStore:
        emb = embedder or HashingEmbedder()
        params = PARAMS.model_copy()
        if self.kind == "inprocess":
            backend = self._inproc.setdefault(emb.dim, InProcessBackend(emb.dim))
            st = MemoryStore(backend, emb, namespace, params)
        elif self.kind in ("embedded", "embedded-batched"):
            st = MemoryStore.open(
                path=self.path,
                namespace=namespace,
                embedder=emb,
                episodic=params,
                write_batch=self.write_batch,
            )
        elif self.kind == "embedded-direct":
            from memory.chroma import ChromaBackend

            direct = ChromaBackend.embedded(self.path, embedder=emb.name, replica_limit=0)
            st = MemoryStore(direct, emb, namespace, params)
        else:
            ns = f"{self._prefix}-{namespace}"
            st = MemoryStore.open(url=self.url, namespace=ns, embedder=emb, episodic=params)
        self._open.append(st)
        return st

    @property
    def write_batch(self) -> int:
        return 64 if self.kind == "embedded-batched" else 1

    def location(self) -> dict[str, str]:
        return {"url": str(self.url)} if self.kind == "server" else {"path": str(self.path)}

    def namespace(self, ns: str) -> str:
        return f"{self._prefix}-{ns}" if self.kind == "server" else ns

    def close(self) -> None:
        for st in self._open:
            if self.kind == "server":
                st.reset()
            st.close()


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, text=True,
        capture_output=True, timeout=timeout,
    )  # fmt: skip


WRITE_AND_DIE = """
a = st.episodes.add("cook the potato", "slice it", success=True, reward=1.0)
st.episodes.reinforce([a], 1.0)
st.notes.add("looping", "stop repeating")
print(json.dumps({"id": a, "rows": list(st.export())}))
sys.stdout.flush()
os._exit(0)  # no close(): what was written must already be durable
"""
"""Appended to ``OPEN``: a writer that learns a little, prints it, and exits without close."""

OPEN = """
import json, os, sys
from memory import EpisodicParams, HashingEmbedder, MemoryStore
loc = {loc!r}
batch = {{}} if "url" in loc else {{"write_batch": {wb!r}}}
st = MemoryStore.open(**loc, namespace={ns!r}, embedder=HashingEmbedder(),
                      episodic=EpisodicParams(epsilon=0.0), read_only={ro!r}, **batch)
"""
