"""The command's long-running side: sync interrupted by Ctrl-C, progress bars in a terminal
and not in a pipe, encrypted sync with keyring files, serve and presign, and secrets that
never reach the config file, ``ps`` or an error line."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from persisty_blobs.stores.http import HttpStore
from tests.conftest import server_url
from tests.test_cli import Shell, s3_env


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    work = tmp_path / "work"
    work.mkdir()
    return Shell(work)


def _wait_for(predicate: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} (exit status {process.returncode})")
        time.sleep(0.01)


@pytest.mark.slow
def test_sync_interrupted_by_sigint_converges(
    shell: Shell, s3_endpoint: str, s3_bucket: str
) -> None:
    from persisty_blobs.testing.moto import moto_client

    shell.env.update(s3_env(s3_endpoint))
    client = moto_client(s3_endpoint)
    source = shell.cwd / "big"
    source.mkdir()
    for index in range(12):  # above the 8 MiB multipart threshold: each put is streamed
        (source / f"part-{index:02}.bin").write_bytes(os.urandom(9 * 2**20))
    arguments = ("sync", "--concurrency", "2", f"file://{source}", f"s3://{s3_bucket}")

    def copied() -> int:
        return len(client.list_objects_v2(Bucket=s3_bucket).get("Contents", []))

    # One Ctrl-C mid-transfer: the writers abort (no object, no upload left), state saved.
    process = subprocess.Popen(
        shell.command(*arguments), cwd=shell.cwd, env=shell.env, stderr=subprocess.PIPE
    )
    _wait_for(lambda: copied() > 0, "a first item copied (the next ones under way)", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert b"interrupted" in stderr
    assert b"Traceback" not in stderr
    objects = client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert len(objects) < 12
    assert all(item["Size"] == 9 * 2**20 for item in objects)

    # Two Ctrl-Cs: the second exits at once.
    process = subprocess.Popen(
        shell.command(*arguments), cwd=shell.cwd, env=shell.env, stderr=subprocess.PIPE
    )
    _wait_for(lambda: copied() > len(objects), "one more item copied", process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 130

    assert "synced:" in shell.text(*arguments)
    assert shell("check", f"file://{source}", f"s3://{s3_bucket}").returncode == 0


def _in_terminal(shell: Shell, *arguments: str) -> bytes:
    """What the command prints when stdin, stdout and stderr are a terminal."""
    leader, follower = pty.openpty()
    env = dict(shell.env, TERM="xterm", COLUMNS="120")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        shell.command(*arguments),
        cwd=shell.cwd,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        process.wait(timeout=60)
    assert process.returncode == 0, output.decode(errors="replace")
    return output


def test_progress_bars_in_a_terminal_only(shell: Shell, tmp_path: Path) -> None:
    folder = shell.cwd / "folder"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index}.bin").write_bytes(os.urandom(2**20))
    store = f"file://{tmp_path / 'store'}"
    shown = _in_terminal(shell, "cp", "./folder", store, "a/").decode(errors="replace")
    assert "━" in shown
    assert "3/3 items" in shown
    assert "MB" in shown
    piped = shell("cp", "./folder", store, "b/")
    assert piped.stdout == b""
    assert piped.stderr == b""
    quiet = _in_terminal(shell, "--quiet", "cp", "./folder", store, "c/")
    assert "━" not in quiet.decode(errors="replace")


def test_encrypted_sync_with_keyring_files(shell: Shell, tmp_path: Path) -> None:
    plain, cipher = f"file://{tmp_path / 'plain'}", f"file://{tmp_path / 'cipher'}"
    shell("put", "-", plain, "diary.txt", stdin=b"dear diary")
    first = shell.text("keys", "generate", "ring.json").split()[0]
    assert stat.S_IMODE((shell.cwd / "ring.json").stat().st_mode) == 0o600
    plan = shell.text("sync", "--dry-run", "--encrypt", "ring.json", plain, cipher)
    assert "upload" in plan
    assert "diary.txt" in plan
    assert "new on a" in plan
    shell("sync", "--encrypt", "ring.json", plain, cipher)
    assert b"dear diary" not in (tmp_path / "cipher" / "diary.txt").read_bytes()
    # Without --encrypt, DST is another store to this pair: refused, with the way out.
    assert "--resync" in shell.error("sync", plain, cipher, status=1)
    assert "--resync" in shell.error("sync", "--dry-run", plain, cipher, status=1)  # says so too
    resynced = shell.text("sync", "--resync", "--encrypt", "ring.json", plain, cipher)
    assert "adopt 1" in resynced  # equal content: adopted, nothing copied or deleted
    shell("check", "--encrypt", "ring.json", plain, cipher)
    assert shell("check", plain, cipher, status=1).stdout == b"differs: diary.txt\n"

    rotated = json.loads(shell.text("keys", "rotate", "--json", "ring.json", cipher, ""))
    assert rotated["ids"][1] == first
    assert rotated["primary"] != first
    dropped = json.loads(
        shell.text("keys", "rotate", "--drop-old", "--json", "ring.json", cipher, "")
    )
    assert dropped["ids"] == [dropped["primary"]]
    assert shell.text("keys", "show-ids", "ring.json").strip() == f"{dropped['primary']}  (primary)"
    shell("check", "--encrypt", "ring.json", plain, cipher)
    # An item sealed under another keyring is a difference, and the check goes on past it.
    shell("put", "-", plain, "zz/other.txt", stdin=b"other")
    shell("keys", "generate", "other.json")
    shell("sync", "--encrypt", "other.json", plain, cipher, status=1)  # diary.txt: unreadable
    shell("put", "-", plain, "zzz.txt", stdin=b"last")
    checked = shell("check", "--encrypt", "ring.json", plain, cipher, status=1).stdout
    assert checked == b"unreadable in DST (DecryptionError): zz/other.txt\nonly in SRC: zzz.txt\n"
    (shell.cwd / "ring.json").chmod(0o644)
    assert "chmod 600" in shell.error("keys", "show-ids", "ring.json", status=1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_presign_and_secrets_kept_secret(shell: Shell) -> None:
    import httpx

    vault_key, token, server_secret = "vault-key-7f3a9c", "token-b81e44d2", "secret-5c0ffee5c0ffee"
    work = shell.cwd
    (work / "secret").write_text(server_secret)
    (work / "tokens").write_text(f"{token} alice\n")
    (work / "token").write_text(token)
    shell.env["VAULT_KEY"] = vault_key
    shell(
        "remote",
        "add",
        "vault",
        f"sqlcipher://{work / 'vault.db'}",
        "--secret",
        "key=env:VAULT_KEY",
    )
    shell("put", "-", "vault:first.txt", stdin=b"first")  # creates the encrypted database

    port = _free_port()
    arguments = ("serve", "vault:", "--secret-file", "secret", "--tokens-file", "tokens")
    server = subprocess.Popen(
        shell.command(*arguments, "--port", str(port)), cwd=work, env=shell.env
    )
    try:
        _wait_for(lambda: _listening(port), "the server listening", server)
        base = f"http://127.0.0.1:{port}"
        command_line = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        for secret in (vault_key, token, server_secret):
            assert secret.encode() not in command_line
        shell("remote", "add", "hosted", base, "--secret", "token=file:token")
        shell("put", "-", "hosted:hello.txt", stdin=b"hello, hosted")
        assert shell.text("ls", "-n", "alice", "vault:") == "hello.txt\n"
        with HttpStore(base, token=token) as hosted:  # the server's namespace is its own
            items = [*hosted.list(), hosted.copy("hello.txt", "copy.txt")]
            assert {item.namespace for item in items} == {""}
            hosted.delete("copy.txt")
        url = shell.text(
            "presign",
            "--base-url",
            base,
            "--secret-file",
            "secret",
            "-n",
            "alice",
            "vault:hello.txt",
        ).strip()
        with httpx.Client(timeout=10) as client:
            assert client.get(url).content == b"hello, hosted"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)

    config = (work / "config" / "remotes.json").read_text()
    for secret in (vault_key, token, server_secret):
        assert secret not in config
    assert stat.S_IMODE((work / "config" / "remotes.json").stat().st_mode) == 0o600

    shell.env["VAULT_KEY"] = "wrong-" + vault_key
    wrong = shell.error("ls", "vault:", status=1)
    assert "DecryptionError" in wrong
    assert vault_key not in wrong
    refused = shell.error(
        "remote", "add", "v2", "sqlite:///x.db", "--option", "key=abc123", status=2
    )
    assert "--secret key=env:" in refused
    assert "abc123" not in refused
    in_url = shell.error("remote", "add", "pg", "postgresql://u:hunter22@db/app", status=2)
    assert "hunter22" not in in_url
    assert "password" in in_url
    for url in ("postgresql://u@db/app?password=hunter22", f"{base}/?token=hunter22"):
        in_query = shell.error("remote", "add", "q", url, status=2)
        assert "--secret" in in_query
        assert "hunter22" not in in_query
    assert "hunter22" not in (work / "config" / "remotes.json").read_text()
    # As advised: a database driver's other secret goes in the URL's query, in memory only.
    shell.env["SSLPW"] = "hunter23"
    prefix = f"cli{os.getpid()}"
    database = f"{server_url('postgresql')}?sslmode=disable"
    shell(
        "remote",
        "add",
        "pgs",
        database,
        "--secret",
        "sslpassword=env:SSLPW",
        "--option",
        f"table_prefix={prefix}",
    )
    listed = shell("--debug", "ls", "pgs:")
    assert b"hunter23" not in listed.stdout + listed.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(server_url("postgresql"))
    with engine.begin() as connection:
        for name in ("flags", "chunks", "versions", "items", "schema"):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}_{name} CASCADE")
    engine.dispose()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True
