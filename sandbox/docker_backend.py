"""The Docker backend: one throwaway container per run, via the docker SDK.

No network, read-only root filesystem, all capabilities dropped, no-new-privileges, an
unprivileged user, memory and pids limits, a private tmpfs ``/tmp``. Files go in with
``put_archive`` before the start, into an anonymous volume (archives cannot be written to a
read-only rootfs or into a tmpfs mount). The image is never pulled implicitly.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from pathlib import PurePosixPath
from typing import Any, ClassVar

from sandbox.base import (
    BASE_ENV,
    MiB,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
    exit_from_shell_code,
)

DEFAULT_IMAGE = "python:3.11-slim"
VOLUME = "/sandbox"
WORKDIR = f"{VOLUME}/work"
"""cwd inside the container; a sub dir because the volume root itself stays root-owned
(archive extraction skips the metadata of ``.``), while ``work/`` is created 0777."""
USER = "65534:65534"
LABEL = "evolvent.sandbox"

# An unreachable DOCKER_HOST costs a connect timeout; ask once per process.
_engine_failure: list[str] = []


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = {"work"}
        for name in files:
            parents = PurePosixPath("work", name).parents
            dirs.update(str(p) for p in parents if str(p) not in (".", ""))
        for d in sorted(dirs, key=lambda p: p.count("/")):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o777, now
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"work/{name}")
            info.size, info.mode, info.mtime = len(data), 0o666, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class DockerSandbox(Sandbox):
    """A fresh, locked-down container per command."""

    name: ClassVar[str] = "docker"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        image: str = DEFAULT_IMAGE,
        client: Any = None,
    ) -> None:
        super().__init__(limits)
        self.image = image
        self._client = client if client is not None else self._connect()
        try:
            self._client.images.get(image)
        except Exception as exc:  # ImageNotFound, APIError, connection errors
            if type(exc).__name__ == "ImageNotFound":
                raise SandboxUnavailable(
                    f"docker image {image} is not present; pull it first (docker pull {image})"
                ) from exc
            raise SandboxUnavailable(f"docker image {image} unusable: {_one_line(exc)}") from exc

    @staticmethod
    def _connect() -> Any:
        if _engine_failure:
            raise SandboxUnavailable(_engine_failure[0])
        try:
            import docker

            client = docker.from_env(timeout=60)
            client.ping()
        except Exception as exc:  # DockerException, requests errors, missing socket
            _engine_failure.append(f"no Docker engine reachable: {_one_line(exc)}")
            raise SandboxUnavailable(_engine_failure[0]) from exc
        return client

    def _execute(
        self, argv: list[str], files: dict[str, bytes], env: dict[str, str], limits: SandboxLimits
    ) -> RunResult:
        from docker.types import LogConfig, Mount, Ulimit

        ulimits = [Ulimit(name="core", soft=0, hard=0)]
        if limits.cpu_s is not None:
            ulimits.append(Ulimit(name="cpu", soft=limits.cpu_s, hard=limits.cpu_s + 1))
        if limits.max_file_bytes is not None:
            ulimits.append(
                Ulimit(name="fsize", soft=limits.max_file_bytes, hard=limits.max_file_bytes)
            )
        memory = limits.address_space_bytes
        try:
            container = self._client.containers.create(
                self.image,
                command=argv,
                user=USER,
                working_dir=WORKDIR,
                environment={**BASE_ENV, "HOME": WORKDIR, "TMPDIR": "/tmp", **env},
                hostname="sandbox",
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777"},
                mounts=[Mount(target=VOLUME, source=None, type="volume")],
                mem_limit=memory,
                memswap_limit=memory,  # equal to mem_limit: no swap
                pids_limit=limits.max_processes,
                ulimits=ulimits,
                # The daemon keeps all output on disk until removal; cap a flood.
                log_config=LogConfig(
                    type="json-file",
                    config={
                        "max-size": str(max(64 * MiB, 2 * limits.max_output_bytes)),
                        "max-file": "1",
                    },
                ),
                labels={LABEL: "1"},
            )
        except Exception as exc:
            raise SandboxError(f"docker: cannot create a container: {_one_line(exc)}") from exc
        try:
            return self._run_container(container, files, limits)
        finally:
            # Already gone, or the engine went away: nothing is left to clean up then.
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)

    def _run_container(
        self, container: Any, files: dict[str, bytes], limits: SandboxLimits
    ) -> RunResult:
        import requests

        try:
            container.put_archive(VOLUME, _archive(files))
            container.start()
        except Exception as exc:
            why = _one_line(exc)
            if "executable file not found" in why or "no such file or directory" in why:
                # The command's problem, not the sandbox's: report it like a shell would.
                return RunResult(
                    exit_code=127, stdout="", stderr=why, wall_s=0.0, backend=self.name
                )
            raise SandboxError(f"docker: cannot start the container: {why}") from exc
        start = time.monotonic()
        timed_out = False
        try:
            status = container.wait(timeout=limits.timeout_s)
        except requests.exceptions.RequestException:
            timed_out = True
            with contextlib.suppress(Exception):  # it may exit between the timeout and the kill
                container.kill()
            status = container.wait(timeout=30)
        wall = time.monotonic() - start
        exit_code, killed_by = exit_from_shell_code(int(status.get("StatusCode", -1)))
        if timed_out:
            exit_code, killed_by = -9, "SIGKILL"
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        out, out_cut = self._read_logs(container, stdout=True, limit=limits.max_output_bytes)
        err, err_cut = self._read_logs(container, stdout=False, limit=limits.max_output_bytes)
        hit: Any = None
        if oom or (exit_code != 0 and "MemoryError" in err[-2048:]):
            hit = "memory"
        elif killed_by == "SIGXCPU":
            hit = "cpu"
        elif killed_by == "SIGXFSZ" or (exit_code != 0 and "File too large" in err[-2048:]):
            hit = "file_size"
        elif timed_out:
            hit = "timeout"
        elif out_cut or err_cut:
            hit = "output"
        return RunResult(
            exit_code=exit_code,
            stdout=out,
            stderr=err,
            timed_out=timed_out,
            wall_s=round(wall, 6),
            killed_by=killed_by,
            limit_hit=hit,
            stdout_truncated=out_cut,
            stderr_truncated=err_cut,
            backend=self.name,
        )

    @staticmethod
    def _read_logs(container: Any, *, stdout: bool, limit: int) -> tuple[str, bool]:
        """Stream one log channel, keeping at most ``limit`` bytes in memory."""
        kept = bytearray()
        seen = 0
        for chunk in container.logs(stdout=stdout, stderr=not stdout, stream=True, follow=False):
            seen += len(chunk)
            if len(kept) < limit:
                kept += chunk[: limit - len(kept)]
        return kept.decode("utf-8", errors="replace"), seen > limit

    def info(self) -> dict[str, str]:
        return {
            "filesystem": f"image {self.image}, read-only root, tmpfs /tmp, volume {VOLUME}",
            "network": "network_mode=none",
            "environment": "only BASE_ENV and the run's env",
            "user": f"{USER}, cap_drop ALL, no-new-privileges",
            "processes": "pids_limit",
            "memory": "mem_limit (= memswap_limit)",
            "cleanup": "kill + remove(force, v) per run",
        }

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()
