"""The console's static files on the RPC server (node/console/): served from a table read once,
with their content types and a Content-Security-Policy of this origin only; no request path ever
reaches the file system. Also: the package ships them, and `[rpc] console` is validated."""

from __future__ import annotations

import asyncio
import fnmatch
import tomllib
from pathlib import Path

import pytest

from node.console import CONTENT_SECURITY_POLICY, CONTENT_TYPES, load_files, mount
from node.rpc import MethodRegistry, RpcServer
from node.setup.config import ConfigError, RpcSection, load_config

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "node" / "console" / "static"


async def raw_get(server: RpcServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` byte for byte as given: no client normalises '..' or percent escapes here."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
async def server():
    running = RpcServer(MethodRegistry(title="t", version="0"))
    mount(running)
    async with running:
        yield running


async def test_every_file_is_served_with_its_type_and_the_policy(server: RpcServer) -> None:
    files = load_files()
    assert {"index.html", "console.css", "js/app.js", "js/rpc.js"} <= set(files)
    for name, (content, content_type) in files.items():
        status, headers, body = await raw_get(server, f"/console/{name}")
        assert status == 200 and body == content, name
        assert headers["content-type"] == content_type
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    status, headers, body = await raw_get(server, "/console/")
    assert status == 200 and body == files["index.html"][0]
    status, headers, _ = await raw_get(server, "/console")
    assert status == 308 and headers["location"] == "/console/"


def test_the_policy_allows_this_origin_only() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["img-src"] == "'self' data:"
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "*" not in CONTENT_SECURITY_POLICY
    assert "http:" not in CONTENT_SECURITY_POLICY and "https:" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", [
    "/console/../rpc_api.py", "/console/../../node/setup/config.py", "/console/%2e%2e/__init__.py",
    "/console/%2E%2E%2F__init__.py", "/console/..%2f..%2fpyproject.toml", "/console/js/../../__init__.py",
    "/console/js/..%2f..%2f__init__.py", "/console/..\\__init__.py", "/console/%5c..%5c__init__.py",
    "/console//etc/passwd", "/console/%2fetc%2fpasswd", "/console/static/index.html", "/console/js/",
    "/console/js", "/console/./index.html", "/console/index.html/", "/console/%00", "/console/index.html%00.js",
    "/console/INDEX.HTML", "/console/__init__.py", "/console/~", "/console/.", "/console/..",
])
async def test_traversal_and_unknown_paths_are_refused(server: RpcServer, path: str) -> None:
    status, _, body = await raw_get(server, path)
    if status == 200:  # only a name that normalises to a file of the table may answer 200
        assert body in {content for content, _ in load_files().values()}, path
    else:
        assert status in (400, 404, 405), (path, status)
        assert b"import " not in body and b"root:" not in body and b"[project]" not in body


async def test_a_server_without_the_console_answers_404() -> None:
    async with RpcServer(MethodRegistry(title="t", version="0")) as bare:
        for path in ("/console/", "/console/index.html", "/console"):
            assert (await raw_get(bare, path))[0] == 404


def test_the_package_ships_every_console_file() -> None:
    """pyproject's package-data globs cover each file, so a non-editable install serves the console."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["node.console"]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "node" / "console").as_posix()
            assert any(fnmatch.fnmatchcase(relative, p) and relative.count("/") == p.count("/") for p in patterns), relative
            assert path.suffix in CONTENT_TYPES, f"{relative}: a kind of file the console does not serve"


def test_the_console_key_is_validated(tmp_path: Path) -> None:
    assert RpcSection().console is True
    base = ('[node]\nmoniker = "v"\nmode = "observer"\nhome = "d"\ngenesis_file = "g.toml"\n'
            'node_key_file = "k.json"\n[rpc]\n')
    path = tmp_path / "n.toml"
    path.write_text(base + "console = false\n")
    assert load_config(path, check_files=False).rpc.console is False
    path.write_text(base + 'console = "off"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, check_files=False)
    assert error.value.key == "rpc.console" and "expected true or false" in error.value.problem
