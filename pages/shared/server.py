"""Settings of the server process, applied once when the app starts."""
from __future__ import annotations

import threading
import time


def freeze_imported_objects() -> None:
    """Move the objects of the imported libraries (torch, plotly, pandas: about 480,000) out of the garbage
    collector's reach. Streamlit runs a full collection after every script run, a page's or a live view's
    fragment's; over those objects it took 260 ms here, more than the page itself, and with a job watched
    it was over half of the server's CPU. After the freeze it takes well under a millisecond."""
    import gc

    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401

    import aelab.experiment  # noqa: F401  (torch and the rest of aelab)
    import aelab.figures  # noqa: F401

    gc.collect()
    gc.freeze()


CLOSED_GRACE_S = 10.0   # a session gone this long is closed, not reconnecting after a network blip


def release_closed_sessions(every_s: float = 5.0, stop: threading.Event | None = None) -> threading.Thread:
    """Start a thread that cancels the background tasks of browser sessions that have closed (a tab shut, a
    visitor gone), unless another session waits for the same result; it runs until ``stop`` is set."""
    stop = stop or threading.Event()
    def watch():
        from streamlit.runtime import Runtime

        from aelab.jobs import registry

        gone_since: dict[str, float] = {}
        while not stop.wait(every_s):
            if not Runtime.exists():
                continue
            runtime, now = Runtime.instance(), time.monotonic()
            owners = registry().task_owners()
            for owner in owners:
                if runtime.is_active_session(owner):
                    gone_since.pop(owner, None)
                elif now - gone_since.setdefault(owner, now) >= CLOSED_GRACE_S:
                    registry().release(owner)
                    gone_since.pop(owner)
            for owner in set(gone_since) - owners:
                gone_since.pop(owner)

    thread = threading.Thread(target=watch, name="aelab-session-watch", daemon=True)
    thread.start()
    return thread
