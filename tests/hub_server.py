"""A stand-in for the Hugging Face Hub and for dl.fbaipublicfiles.com on 127.0.0.1, for the tests of
models/hub.py: the few routes huggingface_hub calls (repo info, tree listing, file resolve) and plain files.

    with FakeHub() as hub:
        hub.add_repo("org/tiny", {"config.json": b"{}", "model.safetensors": data})
        hub.add_file("detr-r50-0123abcd.pth", data)      # served at hub.url + "/files/<name>"
        hub.cut["model.safetensors"] = 100               # close the connection after 100 bytes of that file
"""

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def stand_in(tmp_path, monkeypatch) -> Iterator["FakeHub"]:
    """For a fixture: a running FakeHub as HF_ENDPOINT, with HF_HOME and TORCH_HOME under tmp_path and no
    offline or memory settings from the environment."""
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ATTN_MEMORY_BYTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo id -> {"files": {name: bytes}, "gated": bool}
        self.files: dict[str, bytes] = {}  # plain files served under /files/
        self.cut: dict[str, int] = {}  # file name -> bytes sent before the connection is closed
        self.requests: list[str] = []  # "METHOD path" of every request

    def add_repo(self, repo_id: str, files: dict[str, bytes], gated: bool = False) -> None:
        self.repos[repo_id] = {"files": files, "gated": gated}

    def add_file(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"{self.url}/files/{name}"

    def __enter__(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.route(head=True)

            def do_GET(self):
                self.route(head=False)

            def route(self, head: bool):
                hub.requests.append(f"{self.command} {self.path}")
                parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
                if parts[0] == "files" and len(parts) == 2 and parts[1] in hub.files:
                    return self.send_bytes(parts[1], hub.files[parts[1]], head)
                if parts[:2] == ["api", "models"]:
                    return self.api(parts[2:])
                if "resolve" in parts:
                    i = parts.index("resolve")
                    repo, revision, name = "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2 :])
                    found = self.repo(repo, revision)
                    if found is None:
                        return None
                    if name not in found["files"]:
                        return self.error(404, "EntryNotFound")
                    return self.send_bytes(name, found["files"][name], head, commit=True)
                return self.error(404, "RepoNotFound")

            def repo(self, repo: str, revision: str) -> dict | None:
                if repo not in hub.repos:
                    self.error(401, "RepoNotFound")
                    return None
                if hub.repos[repo]["gated"]:
                    self.error(403, "GatedRepo")
                    return None
                if revision not in ("main", COMMIT):
                    self.error(404, "RevisionNotFound")
                    return None
                return hub.repos[repo]

            def api(self, rest: list[str]):
                # <org>/<name>/revision/<rev> or <org>/<name>/tree/<rev>[/path]
                key = next((i for i, p in enumerate(rest) if p in ("revision", "tree")), None)
                if key is None:
                    return self.error(404, "RepoNotFound")
                repo, what, revision = "/".join(rest[:key]), rest[key], rest[key + 1]
                found = self.repo(repo, revision)
                if found is None:
                    return None
                files = found["files"]
                if what == "revision":
                    body = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                else:
                    body = [
                        {"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                        for f, d in files.items()
                    ]
                return self.send_json(body)

            def send_json(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def send_bytes(self, name: str, data: bytes, head: bool, commit: bool = False):
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                if commit:
                    self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if head:
                    return
                if name in hub.cut:
                    self.wfile.write(data[: hub.cut[name]])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data)

            def error(self, status: int, code: str):
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
