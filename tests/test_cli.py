"""The ``persisty-blobs`` command, run as a child process as a user runs it, against a
directory, a SQLite and an S3 (moto) store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from persisty_blobs.cli import cli

ROOT = Path(__file__).resolve().parent.parent


class Shell:
    """Runs ``python -m persisty_blobs`` with its own config and state folders."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.cwd = tmp_path
        self.env = dict(os.environ)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            self.env.pop(name, None)
        self.env.update(
            PERSISTY_BLOBS_CONFIG_DIR=str(tmp_path / "config"),
            PERSISTY_BLOBS_STATE_DIR=str(tmp_path / "state"),
            PYTHONPATH=str(ROOT),
            **env,
        )

    def command(self, *arguments: str) -> list[str]:
        return [sys.executable, "-m", "persisty_blobs", *arguments]

    def __call__(
        self, *arguments: str, status: int = 0, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            self.command(*arguments),
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == status, (arguments, done.returncode, done.stderr.decode())
        return done

    def text(self, *arguments: str, status: int = 0) -> str:
        return self(*arguments, status=status).stdout.decode()

    def error(self, *arguments: str, status: int) -> str:
        """The one line the command printed on stderr."""
        lines = self(*arguments, status=status).stderr.decode().strip().splitlines()
        assert "Traceback" not in "\n".join(lines)
        return lines[-1]


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture(params=["directory", "sqlite", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, shell: Shell) -> str:
    if request.param == "directory":
        return f"file://{tmp_path / 'store'}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    shell.env.update(s3_env(request.getfixturevalue("s3_endpoint")))
    return f"s3://{request.getfixturevalue('s3_bucket')}/cli"


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    work = tmp_path / "work"
    work.mkdir()
    return Shell(work)


@pytest.fixture
def s3_shell(shell: Shell, s3_endpoint: str) -> Shell:
    shell.env.update(s3_env(s3_endpoint))
    return shell


def test_every_command_on_each_store(shell: Shell, store_url: str, tmp_path: Path) -> None:
    work = shell.cwd
    report = os.urandom(3000)
    (work / "report.pdf").write_bytes(report)
    (work / "album" / "2024").mkdir(parents=True)
    (work / "album" / "a.jpg").write_bytes(b"a" * 5000)
    (work / "album" / "2024" / "b.jpg").write_bytes(b"b" * 7000)
    shell("remote", "add", "st", store_url)

    # put (a file, stdin, a folder), ls, cat, get
    shell("put", "report.pdf", "st:docs/", "-m", "owner=ann", "--flag", "pending")
    shell("put", "-", "st:docs/note.txt", stdin=b"from stdin")
    shell("cp", "./album", "st:album/")
    listed = [json.loads(line) for line in shell.text("ls", "--json", "st:").splitlines()]
    assert [(item["key"], item["size"], item["flags"], item["metadata"]) for item in listed] == [
        ("album/2024/b.jpg", 7000, [], {}),
        ("album/a.jpg", 5000, [], {}),
        ("docs/note.txt", 10, [], {}),
        ("docs/report.pdf", 3000, ["pending"], {"owner": "ann"}),
    ]
    assert listed[3]["content_type"] == "application/pdf"
    assert shell.text("cat", "st:docs/note.txt") == "from stdin"
    shell("get", "st:docs/report.pdf", "out/")
    assert (work / "out" / "report.pdf").read_bytes() == report

    # cp a prefix to another store, named by URL with the key as its own argument
    shell("cp", "st:album/", f"file://{tmp_path / 'other'}", "copied/")
    assert (tmp_path / "other" / "copied" / "2024" / "b.jpg").read_bytes() == b"b" * 7000

    shell("flags", "set", "st:docs/note.txt", "processed,failed")
    assert shell.text("flags", "get", "st:docs/note.txt") == "failed\nprocessed\n"

    # check finds what differs (exit 1), sync removes it
    mirror = f"file://{tmp_path / 'mirror'}"
    assert "does not exist" in shell.error("check", "st:", mirror, status=3)  # a typo?
    (tmp_path / "mirror").mkdir()
    assert shell.text("check", "st:", mirror, status=1).count("only in SRC:") == 4
    assert "upload 4" in shell.text("sync", "st:", mirror)
    assert (tmp_path / "mirror" / "docs" / "report.pdf").read_bytes() == report
    assert len(list((work / "state" / "sync").glob("*.db"))) == 1

    shell("rm", "st:docs/note.txt")
    shell("rm", "--prefix", "--yes", "st:album/")
    assert shell.text("check", "st:", mirror, status=1).count("only in DST:") == 3


def test_presign_s3_download_url(s3_shell: Shell, s3_bucket: str) -> None:
    shell = s3_shell
    import httpx

    shell("put", "-", f"s3://{s3_bucket}", "signed.txt", stdin=b"signed content")
    url = shell.text("presign", "--expires-in", "60", f"s3://{s3_bucket}", "signed.txt").strip()
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=60" in url
    with httpx.Client(timeout=10) as client:
        assert client.get(url).content == b"signed content"
    form = json.loads(shell.text("presign", "--form", "--max-size", "100", f"s3://{s3_bucket}"))
    assert form["max_size"] == 100
    assert form["key"].endswith("${filename}")


def test_exit_statuses_and_errors(shell: Shell) -> None:
    shell("remote", "add", "d", f"file://{shell.cwd / 'd'}")
    shell("put", "-", "d:dir/x", stdin=b"x")
    long = shell.text("ls", "-l", "d:")
    assert long.split()[0] == "1"
    assert long.rstrip().endswith("  dir/x")
    assert "--yes" in shell.error("rm", "--prefix", "d:dir/", status=2)
    assert "NotFound" in shell.error("rm", "d:missing", status=3)
    for key in ("k1", "k2", "k3"):
        shell("put", "-", f"d:{key}", stdin=b"k")
    # Every argument is checked before anything is deleted; a missing key stops no other.
    assert "not a store location" in shell.error("rm", "d:k1", "local.txt", status=2)
    assert "1 of 3 items not found" in shell.error("rm", "d:k1", "d:gone", "d:k2", status=3)
    assert shell.text("ls", "d:k") == "k3\n"
    # A command that only reads makes no store of a typo.
    typo = shell.cwd / "typo"
    for command in (("ls", f"file://{typo}"), ("cat", f"sqlite:///{typo}.db", "k")):
        assert "does not exist" in shell.error(*command, status=3)
    assert not typo.exists()
    assert not Path(f"{typo}.db").exists()
    assert "the same store" in shell.error("sync", "d:", "d:", status=2)
    assert "lies inside" in shell.error("sync", f"file://{shell.cwd}", "memory://", status=2)
    assert "does not exist" in shell.error(
        "rm", "d:k3", f"file://{shell.cwd / 'nope'}", "k", status=3
    )
    assert shell.text("ls", "d:k3") == "k3\n"  # nothing deleted before the refusal
    assert "URL scheme 'foo'" in shell.error("ls", "foo://x", status=2)
    shell("put", "-", "-n", "alice", "d:a.txt", stdin=b"a")
    assert shell.text("ls", "--namespaces", "d:") == "''\nalice\n"
    assert shell.error("cat", "d:missing", status=3).startswith("persisty-blobs: NotFound")
    assert "missing" in shell.error("cat", "d:missing", status=3)
    assert "no remote named 'nope'" in shell.error("ls", "nope:", status=3)
    assert "usage" in shell.error("ls", "--bogus", "d:", status=2)
    assert "InvalidKey" in shell.error("cat", "d:a//b", status=2)
    assert "No such file" in shell.error("put", "absent.txt", "d:x", status=3)
    debug = shell("--debug", "cat", "d:missing", status=3).stderr.decode()
    assert "Traceback" in debug
    # A sync refused for its arguments leaves nothing behind: no store made, no state.
    source, target = f"file://{shell.cwd / 'src'}", f"file://{shell.cwd / 'dst'}"
    assert "no namespace name" in shell.error("sync", "--trash", "a//b", source, target, status=2)
    assert "no namespace name" in shell.error("sync", "-n", "../x", source, target, status=2)
    assert "URL scheme 'foo'" in shell.error("sync", source, "foo://nowhere", status=2)
    assert "of its own" in shell.error("sync", "--trash", "", source, target, status=2)
    assert "of its own" in shell.error("sync", "-n", "p", "--trash", "p", source, target, status=2)
    assert "keyring" in shell.error("sync", "--encrypt", "absent.json", source, target, status=3)
    nested = f"{source}/backup"
    assert "overlap" in shell.error("sync", source, nested, status=2)
    (shell.cwd / "alias").symlink_to(shell.cwd / "src")
    for same in (f"{source}/", f"file://{shell.cwd / 'alias'}"):  # one folder, spelled twice
        assert "overlap" in shell.error("sync", source, same, status=2)
    database = f"sqlite:///{shell.cwd / 'src' / 'backup.db'}"  # would hold its own copies
    assert "overlap" in shell.error("sync", source, database, status=2)
    assert "the same prefix" in shell.error("sync", source, "d:notes/", status=2)
    assert not (shell.cwd / "src").exists()
    assert not (shell.cwd / "dst").exists()
    assert not list((shell.cwd / "state").glob("sync/*.db"))
    # A conflict left for a choice is said so, and a later sync with a policy settles it.
    for side, data in (("src", b"mine"), ("dst", b"theirs")):
        (shell.cwd / side).mkdir()
        (shell.cwd / side / "doc.txt").write_bytes(data)
    manual = shell("sync", "--conflict", "manual", source, target).stderr.decode()
    assert "1 conflicts wait for a choice" in manual
    shell("sync", "--conflict", "prefer-a", source, target)
    assert (shell.cwd / "dst" / "doc.txt").read_bytes() == b"mine"
    shared = f"sqlite:///{shell.cwd / 'shared.db'}"  # one file, two stores in it
    shell("remote", "add", "one", shared, "-o", "table_prefix=one")
    shell("remote", "add", "two", shared, "-o", "table_prefix=two")
    shell("put", "-", "one:k", stdin=b"k")
    assert "upload 1" in shell.text("sync", "one:", "two:")
    assert shell.text("ls", "two:") == "k\n"
    # A dry run says when the real run would stop at a guard, in this command's terms.
    (shell.cwd / "src" / "doc.txt").unlink()
    refused = shell.error("sync", "--dry-run", source, target, status=1)
    assert "would stop before acting" in refused
    assert "--force" in refused
    assert "--force" in shell.error("sync", source, target, status=1)
    assert (shell.cwd / "dst" / "doc.txt").exists()


def test_every_command_has_help_with_an_example() -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    commands: list[list[str]] = []
    for name, command in cli.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            commands += [[name, sub] for sub in subcommands]
        else:
            commands.append([name])
    assert len(commands) >= 18
    for words in commands:
        result = runner.invoke(cli, [*words, "--help"])
        assert result.exit_code == 0, words
        assert "Examples:" in result.output, words
        assert "persisty-blobs " in result.output, words


def test_console_script_and_version() -> None:
    script = Path(sys.executable).with_name("persisty-blobs")
    if not script.exists():
        pytest.fail(f"{script} is missing: pip install -e '.[cli]'")
    done = subprocess.run([str(script), "--version"], capture_output=True, check=True)
    assert done.stdout.decode().startswith("persisty-blobs, version ")
