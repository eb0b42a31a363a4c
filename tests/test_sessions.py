"""Work for a session that has gone away is dropped: before a computation starts and between modules."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

import ui.sessions as sessions
from models.gpt import PRESETS, build_gpt
from ui.results import ResultCache, computed


class FakeRuntime:
    active = {"here"}

    @classmethod
    def exists(cls):
        return True

    @classmethod
    def instance(cls):
        return cls

    @classmethod
    def is_active_session(cls, session_id):
        return session_id in cls.active


@pytest.fixture
def in_session(monkeypatch):
    """This thread runs the script of session "here" (or of the one named by `session.id`)."""
    session = SimpleNamespace(id="here")
    monkeypatch.setattr(sessions, "Runtime", FakeRuntime)
    monkeypatch.setattr(
        sessions, "get_script_run_ctx", lambda suppress_warning: SimpleNamespace(session_id=session.id)
    )
    return session


def test_a_session_is_gone_only_inside_the_server_and_once_disconnected(in_session, monkeypatch):
    assert not sessions.session_gone()
    in_session.id = "closed tab"
    assert sessions.session_gone()
    with pytest.raises(StopException):
        sessions.stop_if_gone()
    monkeypatch.setattr(sessions, "get_script_run_ctx", lambda suppress_warning: None)  # not a script
    assert not sessions.session_gone()


def test_a_forward_stops_between_modules_for_a_gone_session(in_session, monkeypatch):
    monkeypatch.setattr(sessions, "CHECK_EVERY", 0.0)
    model = build_gpt(PRESETS["gpt-nano"]).eval()
    ids = torch.randint(0, 97, (1, 9))
    sessions.drop_work_of_gone_sessions()
    sessions.drop_work_of_gone_sessions()  # installed once
    reached = []

    def tab_closes(*_):
        in_session.id = "closed tab" if leave.is_set() else "here"

    leave = threading.Event()
    handles = [
        model.blocks[0].register_forward_pre_hook(tab_closes),  # the tab closes while block 0 runs
        model.blocks[1].register_forward_pre_hook(lambda *_: reached.append(1)),
    ]
    try:
        with torch.no_grad():
            expected = model(ids).logits
            assert reached == [1]
            leave.set()
            with pytest.raises(StopException):
                model(ids)
            assert reached == [1]  # stopped inside block 0: block 1 never ran
            leave.clear()
            in_session.id = "here"
            torch.testing.assert_close(model(ids).logits, expected)  # the shared model is unchanged
    finally:
        for handle in handles:
            handle.remove()


def test_computed_starts_nothing_for_a_gone_session_and_another_session_computes_it(in_session, monkeypatch):
    cache = ResultCache(2**20)
    monkeypatch.setattr("ui.results.result_cache", lambda: cache)
    in_session.id = "closed tab"
    calls = []
    with pytest.raises(StopException):
        computed("key", lambda: calls.append(1) or np.ones(3))
    assert calls == []
    in_session.id = "here"
    assert computed("key", lambda: calls.append(1) or np.ones(3)).sum() == 3 and calls == [1]


def test_a_waiting_session_computes_what_a_gone_one_dropped():
    cache, started, results = ResultCache(2**20), threading.Event(), []

    def dropped():
        started.set()
        raise StopException()

    def gone():
        with pytest.raises(StopException):
            cache.get("k", dropped)

    first = threading.Thread(target=gone)
    first.start()
    started.wait()
    results.append(cache.get("k", lambda: np.arange(4)))
    first.join()
    assert results[0].tolist() == [0, 1, 2, 3]
