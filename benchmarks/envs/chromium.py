"""Headless Chromium for the web envs: finding it and the wrapper scripts they launch.

The scripts, written under ``<games_dir>/chromium``, start Chromium with the flags for
headless use on a server and ``XDG_*`` folders the project owns, and ChromeDriver with
``setsid`` so that it and every browser it starts share one session (``close()`` stops that
session). Needs the Debian packages ``chromium chromium-driver``; ``MINIWOB_CHROME_BINARY``
and ``MINIWOB_CHROMEDRIVER`` may name another Chrome and its driver.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from agent.errors import ConfigError

_CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
_CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
APT_HINT = (
    "install the Debian packages `chromium chromium-driver` (apt-get install chromium "
    "chromium-driver) or set MINIWOB_CHROME_BINARY and MINIWOB_CHROMEDRIVER"
)
ENV_LOCK = threading.RLock()
"""miniwob reads the browser paths from os.environ while it starts one (set to the wrappers,
which must not be taken for the user's own paths meanwhile)."""


def find_browser() -> tuple[str, str]:
    """Paths to a Chrome binary and its ChromeDriver; ConfigError naming the apt packages."""
    chrome = os.environ.get("MINIWOB_CHROME_BINARY") or next(
        (path for name in _CHROME_NAMES if (path := shutil.which(name))), None
    )
    driver = os.environ.get("MINIWOB_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [
        name
        for name, path in (("chromium", chrome), ("chromedriver", driver))
        if not path or not os.access(path, os.X_OK)
    ]
    if missing or chrome is None or driver is None:
        raise ConfigError(f"MiniWoB++ needs {' and '.join(missing)}: {APT_HINT}")
    return chrome, driver


def _write_script(path: Path, text: str) -> None:
    """Write an executable script atomically (concurrent envs write the same text)."""
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.replace(path)


def browser_scripts(root: Path) -> tuple[Path, Path]:
    """Write (or reuse) the Chromium and ChromeDriver wrapper scripts under ``root``."""
    with ENV_LOCK:
        chrome, driver = find_browser()
    root.mkdir(parents=True, exist_ok=True)
    xdg = {name: root / "xdg" / name.lower() for name in ("CONFIG", "CACHE")}
    for folder in xdg.values():
        folder.mkdir(parents=True, exist_ok=True)
    exports = "".join(
        f"export XDG_{name}_HOME={shlex.quote(str(folder))}\n" for name, folder in xdg.items()
    )
    flags = " ".join(_CHROME_FLAGS)
    header = "#!/bin/sh\n# Written by Evolvent (benchmarks/envs/chromium.py).\n"
    chrome_sh = root / "chromium.sh"
    _write_script(chrome_sh, f'{header}{exports}exec {shlex.quote(chrome)} {flags} "$@"\n')
    # ChromeDriver leads a session of its own: close() stops everything in it.
    setsid = "setsid " if shutil.which("setsid") else ""
    driver_sh = root / "chromedriver.sh"
    _write_script(driver_sh, f'{header}exec {setsid}{shlex.quote(driver)} "$@"\n')
    return chrome_sh, driver_sh


@contextlib.contextmanager
def browser_environ(chrome_sh: Path, driver_sh: Path) -> Iterator[None]:
    with ENV_LOCK:
        saved = {k: os.environ.get(k) for k in ("MINIWOB_CHROME_BINARY", "MINIWOB_CHROMEDRIVER")}
        os.environ["MINIWOB_CHROME_BINARY"] = str(chrome_sh)
        os.environ["MINIWOB_CHROMEDRIVER"] = str(driver_sh)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
