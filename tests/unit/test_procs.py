"""The /proc helpers the browser envs use to find and stop what they started."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.envs import procs


def test_is_browser_knows_chromium_from_chroma() -> None:
    assert procs.is_browser("/usr/lib/chromium/chromium --type=renderer --headless")
    assert procs.is_browser("/usr/bin/chromedriver --port=9515")
    assert procs.is_browser("/ms-playwright/chromium_headless_shell-1/headless_shell --x")
    assert not procs.is_browser("/venv/bin/chroma run --path /tmp/db --port 8000")
    assert not procs.is_browser("/venv/bin/python3.11 /venv/bin/chroma run --path /x/chromium")


def test_a_process_group_is_found_below_us_and_stopped() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "time.sleep(60)",
        ],
        start_new_session=True,
    )
    try:
        pgid = os.getpgid(child.pid)
        for _ in range(100):  # the grandchild starts a moment later
            if len(procs.group_pids(pgid)) == 2:
                break
            time.sleep(0.05)
        below = {p.pid for p in procs.descendants()}
        assert child.pid in below and set(procs.group_pids(pgid)) <= below
        assert len(procs.group_pids(pgid)) == 2 and procs.session_pids(pgid) == procs.group_pids(
            pgid
        )
        procs.stop(lambda: procs.group_pids(pgid), grace_s=2.0)
        assert procs.group_pids(pgid) == []
    finally:
        child.kill()
        child.wait()
