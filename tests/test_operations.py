"""What the app ships with for running it for a group: upload limits that agree with the server's, and a
health check that answers."""

import ast
import inspect
import urllib.request
from pathlib import Path

import tomllib

from ui.uploads import UPLOAD_MB, decode_text

ROOT = Path(__file__).parents[1]


def server_max_upload_mb() -> int:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]


def uploader_limits() -> dict[str, object]:
    """'file:line' -> the max_upload_size expression of every st.file_uploader in the app's code."""
    found = {}
    for path in [ROOT / "app.py", *ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "file_uploader"
            ):
                size = next((k.value for k in node.keywords if k.arg == "max_upload_size"), None)
                found[f"{path.relative_to(ROOT)}:{node.lineno}"] = size
    return found


def test_every_uploader_names_its_limit_and_the_server_allows_the_largest():
    limits = uploader_limits()
    assert len(limits) >= 4  # text, the positional page's image, DETR's image and checkpoint
    values = {}
    for where, expression in limits.items():
        assert expression is not None, f"{where}: the uploader falls back to the server's limit"
        values[where] = eval(compile(ast.Expression(expression), where, "eval"), {"UPLOAD_MB": UPLOAD_MB})
        assert 0 < values[where] <= max(UPLOAD_MB.values()), f"{where}: {ast.unparse(expression)}"
    # the server refuses a request body over server.maxUploadSize whatever the widget says, and a larger
    # server limit would only let a hostile client send more than any page reads
    assert server_max_upload_mb() == max(values.values()) == max(UPLOAD_MB.values())


def test_the_text_reader_refuses_what_its_uploader_would_not_send():
    limit = inspect.signature(decode_text).parameters["max_bytes"].default
    assert limit == UPLOAD_MB["text"] * 2**20


def test_the_health_check_answers(app_url):
    """What a load balancer polls: 200 and "ok" once the server is up (tests.app_server waits for it too)."""
    with urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=10) as answer:
        assert answer.status == 200 and answer.read() == b"ok"
