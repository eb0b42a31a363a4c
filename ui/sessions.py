"""Work for a session that has gone away is dropped, not finished for nobody.

When a browser tab closes, Streamlit asks that session's script to stop (`AppSession.request_script_stop`),
but the script sees the request only at its next `st.*` call: a forward pass, or a loop in models/ (which
never imports Streamlit), runs to its end and holds a core that the live sessions wait for. Here
`stop_if_gone()` raises Streamlit's own StopException, which ends a script run quietly, when the session
of the script running on this thread is no longer active (`Runtime.is_active_session`). `computed` calls
it before a computation starts, and `drop_work_of_gone_sessions()` (app.py) puts it in a process-wide
forward pre-hook of torch modules, looked at most every CHECK_EVERY seconds per thread, so that a model
stops between two of its layers. The hook is global: no model shared by sessions gets a hook of its own.
Outside a script run (tests, scripts) nothing is stopped; under AppTest the session stays active.
"""

import threading
import time

import torch
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

CHECK_EVERY = 0.05  # seconds between two looks from one thread: a module call costs no lookup in between

_installed = False
_install_lock = threading.Lock()
_last_look = threading.local()


def session_gone() -> bool:
    """True when this thread runs the script of a session that is no longer connected."""
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not Runtime.exists():
        return False
    return not Runtime.instance().is_active_session(ctx.session_id)


def stop_if_gone() -> None:
    """Raise StopException when the session this script runs for has gone away."""
    if session_gone():
        raise StopException()


def _between_modules(_module, _args) -> None:
    now = time.monotonic()
    if now - getattr(_last_look, "at", 0.0) < CHECK_EVERY:
        return
    _last_look.at = now
    stop_if_gone()


def drop_work_of_gone_sessions() -> None:
    """Install the forward pre-hook once per process (every later call does nothing)."""
    global _installed
    with _install_lock:
        if not _installed:
            torch.nn.modules.module.register_module_forward_pre_hook(_between_modules)
            _installed = True
