"""One contract every sandbox backend meets; backends that cannot run here are skipped with
the reason (docker: no engine reachable)."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import sandbox._limits
from agent.errors import ConfigError
from sandbox import (
    DockerSandbox,
    FakeSandbox,
    InsecureSandboxWarning,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    get_sandbox,
    probe_backends,
)
from sandbox.selfcheck import wait_for_no_marker

BACKENDS = ["bwrap", "subprocess", "docker"]
LOCAL = {"bwrap", "subprocess"}


@pytest.fixture(params=BACKENDS)
def sb(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSandboxWarning)
        try:
            box = get_sandbox(request.param)
        except SandboxUnavailable as exc:
            pytest.skip(f"{request.param}: {exc}")
    yield box
    box.close()


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


def test_exit_code_stdout_stderr(sb: Sandbox) -> None:
    res = sb.run(py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"))
    assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert not res.ok and not res.timed_out
    assert res.killed_by is None and res.limit_hit is None and res.killed_reason is None
    assert res.backend == sb.name and res.wall_s > 0


def test_a_missing_command_is_a_result_not_an_exception(sb: Sandbox) -> None:
    res = sb.run(["no-such-command-xyz", "arg"])
    assert res.exit_code == 127 and "no-such-command-xyz" in res.stderr


def test_files_are_in_a_writable_private_work_dir(sb: Sandbox) -> None:
    code = (
        "import os\n"
        "assert os.environ['HOME'] == os.getcwd(), (os.environ['HOME'], os.getcwd())\n"
        "print(sorted(os.listdir('.')), open('a.txt').read(), open('pkg/b.bin', 'rb').read())\n"
        "open('new.txt', 'w').write('made here')\n"
        "print(open('new.txt').read())\n"
    )
    res = sb.run(py(code), files={"a.txt": "héllo", "pkg/b.bin": b"\x00\x01"})
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "['a.txt', 'pkg'] héllo b'\\x00\\x01'\nmade here\n"
    again = sb.run(py("import os; print(os.listdir('.'))"))
    assert again.stdout == "[]\n"


def test_environment_is_scrubbed_and_env_is_added(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVOLVENT_TEST_SECRET", "hunter2")
    res = sb.run(py("import os; print(sorted(os.environ.items()))"), env={"EXTRA": "yes"})
    assert "hunter2" not in res.stdout
    assert "('EXTRA', 'yes')" in res.stdout


def test_timeout_kills_the_whole_tree(sb: Sandbox) -> None:
    marker = f"evolvent-test-{uuid.uuid4().hex}"
    code = (
        f"# {marker}\nimport subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)  # {marker}'])\n"
        "print('started', flush=True)\ntime.sleep(60)\n"
    )
    res = sb.run(py(code), timeout=1.5)
    assert res.timed_out and res.limit_hit == "timeout"
    assert (res.exit_code, res.killed_by) == (-9, "SIGKILL")
    assert res.stdout == "started\n"  # output before the kill is kept
    assert 1.5 <= res.wall_s < 4
    assert wait_for_no_marker(marker) == []


def test_background_processes_do_not_outlive_the_command(sb: Sandbox) -> None:
    marker = f"evolvent-test-{uuid.uuid4().hex}"
    code = (
        f"import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)  # {marker}'])\n"
    )
    res = sb.run(py(code), timeout=20)
    assert res.exit_code == 0 and res.wall_s < 5
    assert wait_for_no_marker(marker) == []


def test_output_is_truncated_to_the_limit(sb: Sandbox) -> None:
    limits = sb.limits.model_copy(update={"max_output_bytes": 1000})
    code = "import sys; sys.stdout.write('x' * 200_000); sys.stderr.write('y' * 200_000)"
    res = sb.run(py(code), limits=limits)
    assert res.exit_code == 0
    assert res.stdout == "x" * 1000 and res.stderr == "y" * 1000
    assert res.stdout_truncated and res.stderr_truncated and res.limit_hit == "output"


def test_signal_death_is_reported_as_negative_exit(sb: Sandbox) -> None:
    res = sb.run(py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"))
    assert (res.exit_code, res.killed_by) == (-15, "SIGTERM")
    assert res.killed_reason == "killed by SIGTERM"


def test_cpu_limit_stops_a_busy_loop(sb: Sandbox) -> None:
    limits = sb.limits.model_copy(update={"cpu_s": 1, "timeout_s": 20})
    res = sb.run(py("while True: pass"), limits=limits)
    assert res.limit_hit == "cpu" and res.killed_by in ("SIGXCPU", "SIGKILL")
    assert res.wall_s < 10 and not res.timed_out


def test_file_size_limit(sb: Sandbox) -> None:
    limits = sb.limits.model_copy(update={"max_file_bytes": 100_000})
    res = sb.run(py("open('big', 'wb').write(b'x' * 1_000_000)"), limits=limits)
    assert res.exit_code != 0 and res.limit_hit == "file_size"


def test_resource_usage_is_reported(sb: Sandbox) -> None:
    res = sb.run(py("sum(range(2_000_000))"))
    assert res.exit_code == 0
    if sb.name in LOCAL:
        assert res.cpu_s is not None and 0 < res.cpu_s < 5


@pytest.mark.parametrize("backend", sorted(LOCAL))
def test_limits_hold_with_the_preexec_fallback(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where prlimit is missing, a preexec_fn applies the same rlimits and cgroup."""
    monkeypatch.setattr(sandbox._limits, "PRLIMIT", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSandboxWarning)
        try:
            box = get_sandbox(backend)
        except SandboxUnavailable as exc:
            pytest.skip(f"{backend}: {exc}")
    limits = SandboxLimits(cpu_s=1, address_space_bytes=256 * 1024 * 1024, max_processes=8)
    assert box.run(py("b = b'x' * 10**9"), limits=limits).limit_hit == "memory"
    assert box.run(py("while True: pass"), limits=limits).limit_hit == "cpu"
    forks = "import os, time\nfor _ in range(50):\n    if os.fork() == 0:\n"
    forks += "        time.sleep(30)\n        os._exit(0)"
    res = box.run(py(forks), limits=limits)
    assert res.exit_code != 0 and "BlockingIOError" in res.stderr


@pytest.mark.parametrize("interpreter", ["python3", sys.executable])
def test_system_python_and_this_interpreter_work(sb: Sandbox, interpreter: str) -> None:
    if sb.name not in LOCAL and interpreter != "python3":
        pytest.skip("the container has its own interpreter only")
    res = sb.run([interpreter, "-c", "import json, sys; print(sys.version_info[0])"])
    assert (res.exit_code, res.stdout) == (0, "3\n"), res.stderr
    if interpreter == sys.executable:  # the venv's packages come along
        assert sb.run([interpreter, "-c", "import pydantic"]).exit_code == 0


@pytest.mark.parametrize(
    ("argv", "files"),
    [([], {}), (["true"], {"../escape": "x"}), (["true"], {"/etc/x": "x"}), ("true", {})],
)
def test_bad_arguments_are_caller_errors(argv: Any, files: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        FakeSandbox().run(argv, files=files)


@pytest.mark.parametrize("timeout", [0, -1.5, float("nan"), float("inf")])
def test_a_timeout_that_is_no_duration_is_one_line(timeout: float) -> None:
    # It was a pydantic ValidationError of several lines about SandboxLimits.
    with pytest.raises(ValueError, match=r"^timeout must be a positive number of seconds, not"):
        FakeSandbox().run(["true"], timeout=timeout)
    with pytest.raises(TypeError, match="timeout must be a number of seconds, not '5'"):
        FakeSandbox().run(["true"], timeout="5")  # type: ignore[arg-type]


def test_unknown_backend_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: auto, docker, bwrap, subprocess"):
        get_sandbox("chroot")


def test_auto_picks_the_strongest_available_backend() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSandboxWarning)
        found = probe_backends()
        expected = next(
            n for n in ("docker", "bwrap", "subprocess") if isinstance(found[n], Sandbox)
        )
        assert get_sandbox("auto").name == expected
    if isinstance(found["docker"], str):
        assert found["docker"].startswith(("no Docker engine reachable", "docker image"))


def test_fake_sandbox_scripts_results_and_records_calls() -> None:
    fake = FakeSandbox([FakeSandbox.result("hi\n"), lambda call: FakeSandbox.result(call.argv[-1])])
    assert fake.run(["echo", "hi"], files={"a": "b"}).stdout == "hi\n"
    assert fake.run(["echo", "x"], timeout=2).stdout == "x"
    assert fake.calls[0].files == {"a": b"b"} and fake.calls[1].limits.timeout_s == 2


# --- the docker backend's use of the SDK, against a recording fake client -------------------


class _FakeContainer:
    def __init__(self, client: _FakeDocker, kwargs: dict[str, Any]) -> None:
        self.client, self.kwargs = client, kwargs
        self.archives: list[tuple[str, bytes]] = []
        self.events: list[str] = []
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": False}}

    def put_archive(self, path: str, data: bytes) -> bool:
        self.archives.append((path, data))
        return True

    def start(self) -> None:
        self.events.append("start")
        if self.kwargs["command"][0] == "missing":
            raise RuntimeError('exec: "missing": executable file not found in $PATH')

    def wait(self, timeout: float) -> dict[str, int]:
        self.events.append("wait")
        if self.client.hang and "kill" not in self.events:
            raise requests.exceptions.ReadTimeout("read timed out")
        return {"StatusCode": 137 if "kill" in self.events else self.client.status}

    def kill(self) -> None:
        self.events.append("kill")

    def reload(self) -> None:
        pass

    def logs(self, stdout: bool, stderr: bool, stream: bool, follow: bool) -> Iterator[bytes]:
        assert stream and not follow and stdout != stderr
        yield from self.client.out if stdout else [b"err"]

    def remove(self, force: bool, v: bool) -> None:
        self.events.append(f"remove force={force} v={v}")


class _FakeDocker:
    def __init__(self, status: int = 0, hang: bool = False, out: tuple[bytes, ...] = (b"ok",)):
        self.status, self.hang, self.out = status, hang, list(out)
        self.created: list[_FakeContainer] = []
        self.images = self
        self.containers = self

    def get(self, image: str) -> object:
        return object()

    def create(self, image: str, **kwargs: Any) -> _FakeContainer:
        self.created.append(_FakeContainer(self, {"image": image, **kwargs}))
        return self.created[-1]


def test_docker_backend_locks_the_container_down_and_cleans_up() -> None:
    client = _FakeDocker(status=128 + 11, out=(b"a" * 600, b"b" * 600))
    sb = DockerSandbox(SandboxLimits(max_output_bytes=1000), client=client)
    res = sb.run(["python3", "-c", "x"], files={"d/a.txt": "hi"}, env={"K": "v"})
    (box,) = client.created
    kw = box.kwargs
    assert kw["image"] == "python:3.11-slim" and kw["command"] == ["python3", "-c", "x"]
    assert kw["network_mode"] == "none" and kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and kw["security_opt"] == ["no-new-privileges"]
    assert kw["user"] == "65534:65534" and kw["pids_limit"] == 64
    assert kw["mem_limit"] == kw["memswap_limit"] == 2048 * 1024 * 1024
    assert "/tmp" in kw["tmpfs"] and kw["environment"]["K"] == "v"
    assert "EVOLVENT_TEST_SECRET" not in kw["environment"]
    ((path, data),) = box.archives
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["work"].mode == 0o777 and kw["working_dir"] == f"{path}/work"
        assert tar.extractfile(members["work/d/a.txt"]).read() == b"hi"  # type: ignore[union-attr]
    assert box.events == ["start", "wait", "remove force=True v=True"]
    assert (res.exit_code, res.killed_by) == (-11, "SIGSEGV")
    assert res.stdout == "a" * 600 + "b" * 400 and res.stdout_truncated and res.stderr == "err"


def test_docker_backend_reports_a_missing_executable_as_127() -> None:
    client = _FakeDocker()
    res = DockerSandbox(client=client).run(["missing"])
    assert res.exit_code == 127 and "executable file not found" in res.stderr
    assert client.created[0].events == ["start", "remove force=True v=True"]


def test_docker_backend_kills_on_timeout() -> None:
    client = _FakeDocker(hang=True)
    res = DockerSandbox(client=client).run(["sleep", "100"], timeout=0.5)
    assert res.timed_out and res.limit_hit == "timeout" and res.killed_by == "SIGKILL"
    assert client.created[0].events == ["start", "wait", "kill", "wait", "remove force=True v=True"]


def test_bwrap_read_only_binds_under_tmp_survive_the_private_tmp() -> None:
    """A venv or checkout under /tmp (CI clones may live there) must stay visible inside."""
    import tempfile

    from sandbox.bwrap import BwrapSandbox

    try:
        BwrapSandbox()
    except SandboxUnavailable as e:
        pytest.skip(f"bwrap: {e}")
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o755)  # the sandbox runs as an unprivileged uid
        marker = Path(d) / "marker.txt"
        marker.write_text("visible")
        marker.chmod(0o644)
        sb = BwrapSandbox(ro_binds=[d])
        res = sb.run(["cat", str(marker)], timeout=10)
        assert (res.exit_code, res.stdout) == (0, "visible")
        # The sandbox's own /tmp is still private and writable.
        res = sb.run(["sh", "-c", f"echo x > /tmp/own && ls {d}"], timeout=10)
        assert res.exit_code == 0 and "marker.txt" in res.stdout
