"""Security probes against every backend. bwrap and docker must contain all of them; the
subprocess backend is no security boundary, and the expected map below documents exactly
what it does and does not contain on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import InsecureSandboxWarning, Sandbox, SandboxUnavailable, get_sandbox, run_selfcheck
from sandbox._cgroup import PREFIX, RunCgroup, sweep_stale
from sandbox._cgroup import support as cgroup_support
from sandbox.selfcheck import PROBE_NAMES, wait_for_no_marker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROOT = os.geteuid() == 0
PIDS_CGROUP = "pids" in cgroup_support()


@pytest.fixture(params=["bwrap", "subprocess", "docker"])
def sb(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSandboxWarning)
        try:
            box = get_sandbox(request.param)
        except SandboxUnavailable as exc:
            pytest.skip(f"{request.param}: {exc}")
    yield box
    box.close()


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A host dir outside /tmp (a private /tmp alone would hide one there)."""
    d = Path(tempfile.mkdtemp(dir=REPO, prefix=".sandbox-probe-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def subprocess_expected() -> dict[str, bool]:
    """What the subprocess backend honestly contains: limits yes, isolation no."""
    expected = {name: False for name in PROBE_NAMES}
    expected.update(
        env_secret=True,  # the environment is scrubbed
        memory_bomb=True,  # RLIMIT_AS
        cpu_loop=True,  # RLIMIT_CPU
        ctypes_segfault=True,  # the crash is reported, the host is fine
        fork_bomb=PIDS_CGROUP,  # only a pids cgroup binds root; without one it is not contained
        capabilities=not ROOT,
        proc_sys_write=not ROOT,
    )
    return expected


def test_probes(sb: Sandbox, outside_dir: Path) -> None:
    report = run_selfcheck(sb, outside_dir=outside_dir)
    got = report.contained()
    if sb.name == "subprocess":
        expected = subprocess_expected()
        if not ROOT:  # depends on the kernel's unprivileged userns setting
            expected.pop("ctypes_userns")
        assert {k: got[k] for k in expected if k in got} == {
            k: v for k, v in expected.items() if k in got
        }, report.format()
    else:
        assert report.all_contained, report.format()
        assert set(got) >= set(PROBE_NAMES) - {"host_shadow"}
    assert not list(outside_dir.glob("written-*")) or sb.name == "subprocess"


def _run_cgroups() -> set[Path]:
    """This process's run groups (``PREFIX<pid>-...``): another test process on the machine,
    e.g. a second suite running side by side, makes and removes its own meanwhile."""
    return set(Path("/sys/fs/cgroup").glob(f"*/**/{PREFIX}{os.getpid()}-*"))


def test_spinning_fork_bomb_is_contained_and_cleaned_up(sb: Sandbox) -> None:
    if sb.name == "subprocess" and not PIDS_CGROUP:
        pytest.skip("subprocess backend without a writable pids cgroup cannot contain a fork bomb")
    marker = f"evolvent-test-{uuid.uuid4().hex}"
    code = f"# {marker}\nimport os\nwhile True:\n    try:\n        os.fork()\n"
    code += "    except OSError:\n        pass\n"
    limits = sb.limits.model_copy(update={"max_processes": 32, "timeout_s": 3})
    # Groups that existed before (another test's process may have been SIGKILLed seconds ago,
    # too recently for the stale sweep) are not this run's to clean up.
    before = _run_cgroups()
    res = sb.run(["python3", "-c", code], limits=limits)
    assert res.timed_out and res.wall_s < 6
    if sb.name != "docker" and PIDS_CGROUP:
        assert res.limit_hit == "processes"
    assert wait_for_no_marker(marker) == []
    assert _run_cgroups() - before == set()


@pytest.mark.skipif(not PIDS_CGROUP, reason="no writable cgroup here: runs get no cgroup at all")
def test_groups_of_a_killed_process_are_swept() -> None:
    """A SIGKILLed process cannot remove its run's groups; the next run's create does."""
    code = (
        "import sys, time\nfrom sandbox._cgroup import RunCgroup\n"
        "g = RunCgroup.create(8, None)\nprint(*g.dirs.values(), flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    dirs = [Path(d) for d in proc.stdout.readline().split()]
    assert dirs and all(d.is_dir() for d in dirs)
    proc.kill()
    proc.wait()
    assert all(d.is_dir() for d in dirs)  # nobody removed them
    assert sweep_stale(min_age_s=3600) == []  # too young to be taken for stale
    assert set(sweep_stale(min_age_s=0)) >= set(dirs)
    assert not any(d.exists() for d in dirs)
    live = RunCgroup.create(8, None)  # a live maker's groups are never swept
    assert live is not None
    try:
        assert not set(live.dirs.values()) & set(sweep_stale(min_age_s=0))
        assert all(d.is_dir() for d in live.dirs.values())
    finally:
        assert live.destroy()


def test_growing_memory_is_stopped(sb: Sandbox) -> None:
    limits = sb.limits.model_copy(update={"address_space_bytes": 256 * 1024 * 1024})
    res = sb.run(
        ["python3", "-c", "x = []\nwhile True:\n    x.append(b'x' * 10**7)"], limits=limits
    )
    assert res.exit_code != 0 and not res.timed_out
    assert res.limit_hit == "memory", res


def test_ctypes_cannot_escape(sb: Sandbox, outside_dir: Path) -> None:
    if sb.name == "subprocess":
        pytest.skip("no isolation to escape from (see test_probes)")
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        # setns needs an fd of a host namespace; mount and chroot need capabilities
        "print('mount', libc.mount(b'none', b'/usr', b'tmpfs', 0, None))\n"
        "print('chroot', libc.chroot(b'/'))\n"
        "print('setuid0', libc.setuid(0))\n"
        f"print('system', libc.system(b'ls {outside_dir} > /dev/null 2>&1'))\n"
    )
    res = sb.run(["python3", "-c", code])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == ["mount", "-1", "chroot", "-1", "setuid0", "-1", "system", "512"]


@pytest.mark.skipif(not PIDS_CGROUP, reason="no writable cgroup here: runs get no cgroup at all")
def test_a_group_still_busy_at_destroy_is_removed_later() -> None:
    group = RunCgroup.create(8, None)
    assert group is not None
    proc = subprocess.Popen(["sleep", "60"])
    for procs in group.procs_files():
        procs.write_text(str(proc.pid))
    assert group.destroy(wait_s=0.0) is False  # killed, but no time left to see it gone
    proc.wait()
    assert set(group.dirs.values()) <= set(sweep_stale(min_age_s=3600))
    assert not any(d.exists() for d in group.dirs.values())
