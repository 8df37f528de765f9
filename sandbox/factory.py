"""Pick a sandbox backend by name; ``auto`` takes the strongest one that works here."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.errors import ConfigError
from sandbox.base import Sandbox, SandboxLimits, SandboxUnavailable
from sandbox.bwrap import BwrapSandbox
from sandbox.docker_backend import DockerSandbox
from sandbox.subprocess_backend import SubprocessSandbox

log = logging.getLogger(__name__)

BACKENDS: dict[str, Callable[[SandboxLimits | None], Sandbox]] = {
    "docker": DockerSandbox,
    "bwrap": BwrapSandbox,
    "subprocess": SubprocessSandbox,
}
AUTO_ORDER = ("docker", "bwrap", "subprocess")
NAMES = ("auto", *BACKENDS)


def get_sandbox(name: str = "auto", limits: SandboxLimits | None = None) -> Sandbox:
    """The backend ``name``; raises SandboxUnavailable when that one cannot run here.

    ``auto``: Docker when an engine answers (and the image is present), else bubblewrap when a
    trial run works (tried once per process), else the subprocess backend, which warns that it
    is no security boundary.
    """
    if name == "auto":
        for candidate in AUTO_ORDER[:-1]:
            try:
                return BACKENDS[candidate](limits)
            except SandboxUnavailable as exc:
                log.info("sandbox backend %s skipped: %s", candidate, exc)
        return BACKENDS[AUTO_ORDER[-1]](limits)
    factory = BACKENDS.get(name)
    if factory is None:
        raise ConfigError(f"unknown sandbox backend {name!r}; valid: {', '.join(NAMES)}")
    return factory(limits)


def probe_backends(limits: SandboxLimits | None = None) -> dict[str, Sandbox | str]:
    """Every backend by name: an instance, or the one-line reason it cannot run here."""
    found: dict[str, Sandbox | str] = {}
    for name, factory in BACKENDS.items():
        try:
            found[name] = factory(limits)
        except SandboxUnavailable as exc:
            found[name] = str(exc)
    return found
