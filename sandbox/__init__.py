"""Run untrusted commands: bubblewrap, Docker, or (warned) a plain subprocess.

sb = get_sandbox("auto")
res = sb.run(["python3", "-c", code], timeout=5, files={"data.txt": "..."})
res.exit_code, res.stdout, res.timed_out, res.limit_hit
"""

from sandbox.base import (
    InsecureSandboxWarning,
    LimitHit,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)
from sandbox.bwrap import BwrapSandbox
from sandbox.docker_backend import DockerSandbox
from sandbox.factory import NAMES, get_sandbox, probe_backends
from sandbox.fake import FakeSandbox
from sandbox.selfcheck import ProbeOutcome, SelfCheckReport, run_selfcheck
from sandbox.subprocess_backend import SubprocessSandbox

__all__ = [
    "NAMES",
    "BwrapSandbox",
    "DockerSandbox",
    "FakeSandbox",
    "InsecureSandboxWarning",
    "LimitHit",
    "ProbeOutcome",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "SelfCheckReport",
    "SubprocessSandbox",
    "get_sandbox",
    "probe_backends",
    "run_selfcheck",
]
