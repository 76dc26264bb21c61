"""The messenger's encrypted backup: a second run moves only what changed (one deleted, one
changed), a restore into an empty store brings back every byte, and the backup store holds no
plaintext."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from examples.messenger.backup import run
from examples.messenger.chat import create_conversation, sign_up
from examples.messenger.storage import namespace_of
from persisty_blobs.stores import DirectoryStore
from persisty_blobs.sync import ActionKind

from .messenger_support import open_messenger, settings_for


def test_backup_moves_only_changes_and_restores_every_byte(tmp_path: Path) -> None:
    app = open_messenger(tmp_path)
    alice = sign_up(app.engine, "alice", "alice-password")
    sign_up(app.engine, "bob", "bob-password")
    conversation = create_conversation(app.engine, alice, "c", ["bob"])
    keys = [
        app.send(alice, conversation, f"plaintext line {n}\n".encode() * 50, "text/plain", "n")
        for n in range(4)
    ]
    mine = app.store.namespace(namespace_of(alice))
    settings, keyring, target = settings_for(tmp_path), tmp_path / "keyring.json", tmp_path / "bk"
    url = target.as_uri()

    first = run(settings, "alice", url, keyring, show_progress=False)
    assert (first.ok, first.count(ActionKind.UPLOAD)) == (True, 4)

    mine.delete(keys[0])
    mine.put(keys[1], b"plaintext changed\n", content_type="text/plain")
    second = run(settings, "alice", url, keyring, show_progress=False)
    assert second.done == {ActionKind.UPLOAD: 1, ActionKind.DELETE_B: 1}
    assert second.bytes == len(b"plaintext changed\n")
    assert run(settings, "alice", url, keyring, show_progress=False).done == {}

    with DirectoryStore(target) as backup:
        assert backup.namespace(namespace_of(alice)).count() == 3
    files = [path for path in target.rglob("*") if path.is_file()]
    assert not any(b"plaintext" in path.read_bytes() for path in files)

    empty = dataclasses.replace(settings, store_url=(tmp_path / "restored").as_uri())
    restored = run(empty, "alice", url, keyring, restore=True, show_progress=False)
    assert restored.count(ActionKind.DOWNLOAD) == 3
    back = DirectoryStore(tmp_path / "restored").namespace(namespace_of(alice))
    assert sorted(item.key for item in back.list()) == sorted(keys[1:])
    for key in keys[1:]:
        assert back.read_bytes(key) == mine.read_bytes(key)
        assert back.get(key).content_type == "text/plain"  # type: ignore[union-attr]
    back.close()
    app.store.close()
    app.engine.dispose()
