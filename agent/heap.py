"""Keep Python's garbage collector off the long-lived heap of a process that plays episodes.

Once litellm, Chroma, LangGraph and TextWorld are loaded, such a process holds about half a
million objects that live as long as it does. CPython's full collections scan every one of
them (about 300 ms a pass on these machines), and they come whenever the objects surviving
younger collections reach a quarter of the old ones: in a run of short episodes, every
second or so, inside whatever step, LLM call or memory write happens to be running.
``settle_once()`` collects once and then freezes what is left (``gc.freeze``): frozen objects
are no longer scanned, and everything made later is collected as before. A frozen object
that later becomes garbage in a reference cycle is never freed, so this is done once per
process, after the first episode has loaded what loads lazily (litellm, the games).
"""

from __future__ import annotations

import gc
import threading

_settled = False
_lock = threading.Lock()


def settle_once() -> bool:
    """Collect, then freeze the survivors; only the first call in a process does anything.
    Returns whether this call did it."""
    global _settled
    with _lock:
        if _settled:
            return False
        _settled = True
    gc.collect()
    gc.freeze()
    return True


def settled() -> bool:
    """Whether ``settle_once`` has run in this process."""
    return _settled
