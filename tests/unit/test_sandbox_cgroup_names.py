from __future__ import annotations

import os
import subprocess
import sys

from sandbox._cgroup import PREFIX, _maker_alive


def test_a_group_is_stale_only_when_its_named_maker_is_gone() -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(gone.stdout)
    assert _maker_alive(f"{PREFIX}{os.getpid()}-0123456789ab")
    assert not _maker_alive(f"{PREFIX}{dead_pid}-0123456789ab")
    # Names without a maker's pid (older versions) are never taken for stale, including a
    # random part that happens to be all digits and would overflow a pid.
    assert _maker_alive(f"{PREFIX}0123456789ab")
    assert _maker_alive(f"{PREFIX}123456789012")
    assert _maker_alive(f"{PREFIX}999999999999-0123456789ab")
