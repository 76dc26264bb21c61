"""``DirectoryStore``: items are plain files under a root folder.

Point it at an existing folder and its files appear as items. What a file cannot hold itself
(content type, metadata, flags, checksum) lives in sidecars under ``<root>/.persisty-blobs/``,
which never shows as an item; other namespaces live there too, apart from the root's own files.

A write streams into a temp file beside its target, is fsynced, and becomes visible with one
``os.replace``, so a reader sees the old file or the whole new one. An interrupted write leaves
only a temp file, which is never listed and is removed the next time the store is opened.
A file system cannot hold both ``a`` and ``a/b``, nor a key segment longer than its name limit
(255 bytes on most): such keys raise ``Unsupported`` or ``InvalidKey`` here.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from secrets import token_hex

from ..driver import (
    Driver,
    DriverWriter,
    ItemHeader,
    WriteSpec,
    check_precondition,
    clip_range,
    etag_for,
)
from ..errors import InvalidKey, NotFound, Unsupported, from_os_error
from ..item import DataItem, Flag
from ..keys import guess_content_type, validate_key
from ..store import DataStore
from ._files import (
    RESERVED,
    FileRangeRaw,
    Sidecar,
    SidecarStore,
    check_inside,
    decode_name,
    encode_segment,
    file_lock,
    fsync_directory,
    process_alive,
    sha256_of_fd,
    start_writeback,
    temp_name,
    unlink_in_background,
    write_all,
)

__all__ = ["DirectoryStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CREATE_ATTEMPTS = 5
_WRITEBACK_STEP = 8 * 1024 * 1024
_RELEASE_LATER_BYTES = 8 * 1024 * 1024


class DirectoryStore(DataStore):
    """Items as files under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str], *, chunk_size: int = 1024 * 1024) -> None:
        super().__init__(_DirectoryDriver(os.fspath(root), chunk_size))

    @classmethod
    def from_url(cls, url: str) -> DirectoryStore:
        """``file:///absolute/path``."""
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not os.path.isabs(path):
            raise ValueError(f"a directory store URL is file:///absolute/path, not {url!r}")
        return cls(path)


@dataclass
class _Current:
    """The file a key names right now, seen under the store's lock."""

    link: os.stat_result  # of the name itself: a symlink, or the file
    stat: os.stat_result  # of the file it leads to
    sidecar: Sidecar


class _DirectoryDriver(Driver):
    def __init__(self, root: str, chunk_size: int) -> None:
        self.name = f"DirectoryStore({root!r})"
        self.chunk_size = chunk_size
        try:
            os.makedirs(root, exist_ok=True)
            self.real_root = os.path.realpath(root)
            self.state_dir = os.path.join(self.real_root, RESERVED)
            self.sidecars = SidecarStore(self.state_dir)
            os.makedirs(self.sidecars.meta_dir, exist_ok=True)
            os.makedirs(self.sidecars.temp_dir, exist_ok=True)
            self.lock_path = os.path.join(self.state_dir, "lock")
            self._name_max = os.pathconf(self.real_root, "PC_NAME_MAX")
            self._clean_interrupted_writes()
        except OSError as exc:
            raise from_os_error(exc, store=self.name) from exc

    # Paths -------------------------------------------------------------------------------

    def base(self, namespace: str) -> str:
        if not namespace:
            return self.real_root
        return os.path.join(self.state_dir, "ns", encode_segment(namespace))

    def path(self, namespace: str, key: str) -> str:
        names = [encode_segment(segment) for segment in key.split("/")]
        for name in names:
            if len(name.encode()) > self._name_max:
                raise InvalidKey(
                    f"a key segment of {len(name.encode())} bytes is longer than this file "
                    f"system allows ({self._name_max})",
                    key=key,
                    store=self.name,
                )
        return os.path.join(self.base(namespace), *names)

    @contextlib.contextmanager
    def os_errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise from_os_error(exc, key=key, store=self.name) from exc

    def conflict(self, key: str) -> Unsupported:
        return Unsupported(
            "a directory store cannot hold both a key and a key below it (as 'a' and 'a/b')",
            key=key,
            store=self.name,
        )

    # Reading -----------------------------------------------------------------------------

    def stat(self, namespace: str, key: str) -> DataItem | None:
        with self.os_errors(key):
            opened = self._open_item(namespace, key, self.path(namespace, key))
        if opened is None:
            return None
        os.close(opened[1])
        return opened[0]

    def open_range(
        self, namespace: str, key: str, start: int, end: int | None
    ) -> tuple[DataItem, io.RawIOBase]:
        with self.os_errors(key):
            opened = self._open_item(namespace, key, self.path(namespace, key))
        if opened is None:
            raise NotFound("no such item", key=key, store=self.name)
        item, fd = opened
        try:
            first, stop = clip_range(item.size, start, end, key, self.name)
        except BaseException:
            os.close(fd)
            raise
        if first == 0 and stop == item.size:
            # A whole-item read needs no range limit, so it can run on C's FileIO: about 10%
            # faster than a Python raw reader. Only another program appending to the file in
            # place could make it read past ``item.size``.
            return item, io.FileIO(fd, "rb", closefd=True)
        return item, FileRangeRaw(fd, first, stop)

    def _open_item(self, namespace: str, key: str, path: str) -> tuple[DataItem, int] | None:
        """The current version and an open descriptor on it, or None if there is none."""
        # Shared lock: a commit cannot swap the file and drop its sidecar in between.
        with file_lock(self.lock_path, exclusive=False):
            opened = self._open_file(path)
            if opened is None:
                return None
            fd, file_stat = opened
            try:
                sidecar = self.sidecars.read(file_stat)
            except BaseException:
                os.close(fd)
                raise
        if sidecar is None:
            sidecar = self._adopt(fd, file_stat, path)
        return self.item(namespace, key, file_stat, sidecar), fd

    def _open_file(self, path: str) -> tuple[int, os.stat_result] | None:
        """An open descriptor on the regular file at ``path`` inside the root, or None."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            file_stat = os.fstat(fd)
            if not stat.S_ISREG(file_stat.st_mode):
                os.close(fd)
                return None
            check_inside(fd, self.real_root, path, self.name)
        except BaseException:
            os.close(fd)
            raise
        return fd, file_stat

    def _adopt(self, fd: int, file_stat: os.stat_result, path: str) -> Sidecar:
        """A file another program wrote: hash it once and cache that by (inode, size, mtime)."""
        sidecar = Sidecar(file_stat.st_size, file_stat.st_mtime_ns, sha256_of_fd(fd))
        with file_lock(self.lock_path, exclusive=True), contextlib.suppress(OSError):
            now = os.stat(path)
            if now.st_ino == file_stat.st_ino and sidecar.describes(now):
                self.sidecars.write(file_stat.st_ino, sidecar, durable=False)
        return sidecar

    def item(
        self, namespace: str, key: str, file_stat: os.stat_result, sidecar: Sidecar
    ) -> DataItem:
        return DataItem(
            key=key,
            namespace=namespace,
            size=file_stat.st_size,
            etag=etag_for(sidecar.checksum),
            content_type=sidecar.content_type or guess_content_type(key),
            updated_at=_EPOCH + timedelta(microseconds=file_stat.st_mtime_ns // 1000),
            checksum=sidecar.checksum,
            metadata=sidecar.metadata,
            flags=frozenset(Flag(flag) for flag in sidecar.flags),
        )

    # Writing (callers hold the exclusive lock where noted) ----------------------------------

    def new_writer(self, namespace: str, key: str, header: ItemHeader) -> DriverWriter:
        with self.os_errors(key):
            return _DirectoryWriter(self, namespace, key, self.path(namespace, key))

    def current(self, path: str) -> _Current | None:
        """The file at ``path`` under the exclusive lock (adopted without caching)."""
        try:
            link = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        opened = self._open_file(path)
        if opened is None:
            return None
        fd, file_stat = opened
        try:
            sidecar = self.sidecars.read(file_stat) or Sidecar(
                file_stat.st_size, file_stat.st_mtime_ns, sha256_of_fd(fd)
            )
        finally:
            os.close(fd)
        return _Current(link, file_stat, sidecar)

    def forget(self, current: _Current) -> None:
        """Drop the sidecar of a file that no longer has a name (not a symlink's target, nor a
        file still reachable through another hard link)."""
        if stat.S_ISREG(current.link.st_mode) and current.link.st_nlink <= 1:
            self.sidecars.remove(current.stat.st_ino)

    def commit(self, namespace: str, key: str, path: str, temp: str, spec: WriteSpec) -> DataItem:
        with self.os_errors(key), file_lock(self.lock_path, exclusive=True):
            current = self.current(path)
            current_item = None if current is None else self._item_of(namespace, key, current)
            check_precondition(current_item, key, self.name, spec.if_match, spec.if_none_match)
            written = os.stat(temp)
            if current is not None and current.stat.st_mtime_ns > written.st_mtime_ns:
                # updated_at must not go backwards, even if the clock did.
                os.utime(temp, ns=(written.st_atime_ns, current.stat.st_mtime_ns))
                written = os.stat(temp)
            sidecar = Sidecar(
                written.st_size,
                written.st_mtime_ns,
                spec.checksum,
                spec.content_type,
                dict(spec.metadata),
                sorted(spec.flags),
            )
            self.sidecars.write(written.st_ino, sidecar, durable=True)
            replaced = None if current is None else self._keep_for_later_release(path, current)
            try:
                os.replace(temp, path)
            except OSError as exc:
                self.sidecars.remove(written.st_ino)
                if replaced is not None:
                    unlink_in_background(replaced)
                if isinstance(exc, IsADirectoryError):
                    raise self.conflict(key) from None
                raise
            fsync_directory(os.path.dirname(path))
            if current is not None:
                self.forget(current)
        if replaced is not None:
            unlink_in_background(replaced)
        return self.item(namespace, key, written, sidecar)

    def _keep_for_later_release(self, path: str, current: _Current) -> str | None:
        """Give a large file that is about to be replaced a second name in the state folder,
        so that ``os.replace`` does not free its blocks while the writer waits."""
        if current.link.st_nlink != 1 or current.stat.st_size < _RELEASE_LATER_BYTES:
            return None
        keeper = os.path.join(self.sidecars.temp_dir, f"{os.getpid()}.{token_hex(8)}.old")
        try:
            os.link(path, keeper, follow_symlinks=False)
        except OSError:  # another file system (a mount inside the root), or no hard links
            return None
        return keeper

    def _item_of(self, namespace: str, key: str, current: _Current) -> DataItem:
        return self.item(namespace, key, current.stat, current.sidecar)

    def delete(self, namespace: str, key: str, if_match: str | None) -> bool:
        path = self.path(namespace, key)
        with self.os_errors(key), file_lock(self.lock_path, exclusive=True):
            current = self.current(path)
            current_item = None if current is None else self._item_of(namespace, key, current)
            check_precondition(current_item, key, self.name, if_match, False)
            if current is None:
                return False
            os.unlink(path)
            fsync_directory(os.path.dirname(path))
            self.forget(current)
            self.prune(os.path.dirname(path), namespace)
        return True

    def prune(self, directory: str, namespace: str) -> None:
        """Remove folders left empty up to the namespace's base (a namespace's own folder too)."""
        stop = self.real_root if not namespace else os.path.dirname(self.base(namespace))
        while directory != stop and directory.startswith(stop + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    def set_flags(self, namespace: str, key: str, flags: frozenset[Flag]) -> None:
        path = self.path(namespace, key)
        with self.os_errors(key), file_lock(self.lock_path, exclusive=True):
            current = self.current(path)
            if current is None:
                raise NotFound("no such item", key=key, store=self.name)
            current.sidecar.flags = sorted(flags)
            self.sidecars.write(current.stat.st_ino, current.sidecar, durable=True)

    # Listing -----------------------------------------------------------------------------

    def list_page(
        self, namespace: str, prefix: str, after: str | None, limit: int, flag: Flag | None
    ) -> list[DataItem]:
        items: list[DataItem] = []
        if limit == 0:
            return items
        for key, path in self._walk_from(namespace, prefix, after):
            with self.os_errors(key):
                opened = self._open_item(namespace, key, path)
            if opened is None:  # deleted since the folder was read
                continue
            os.close(opened[1])
            if flag is None or flag in opened[0].flags:
                items.append(opened[0])
                if len(items) == limit:
                    break
        return items

    def count(self, namespace: str, prefix: str, flag: Flag | None) -> int:
        if flag is not None:
            return super().count(namespace, prefix, flag)
        return sum(1 for _ in self._walk_from(namespace, prefix, None))

    def namespaces(self) -> list[str]:
        names = [""] if next(self._walk_from("", "", None), None) else []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(os.path.join(self.state_dir, "ns")):
                name = decode_name(entry.name)
                if name is not None and next(self._walk_from(name, "", None), None):
                    names.append(name)
        return sorted(names)

    def _walk_from(
        self, namespace: str, prefix: str, after: str | None
    ) -> Iterator[tuple[str, str]]:
        """(key, path) of every file whose key starts with ``prefix`` and is above ``after``."""
        head, _, _ = prefix.rpartition("/")
        segments = head.split("/") if head else []
        if any(segment in ("", ".", "..") for segment in segments):
            return iter(())
        directory = os.path.join(self.base(namespace), *map(encode_segment, segments))
        return self._walk(directory, head + "/" if head else "", prefix, after)

    def _walk(
        self, directory: str, key_prefix: str, prefix: str, after: str | None
    ) -> Iterator[tuple[str, str]]:
        try:
            with os.scandir(directory) as scan:
                entries = [(decode_name(entry.name), entry) for entry in scan]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        named: list[tuple[str, str, bool]] = []
        for segment, entry in entries:
            if segment is None or not _valid(key_prefix + segment):
                continue
            if entry.is_dir(follow_symlinks=False):
                named.append((key_prefix + segment + "/", entry.path, True))
            elif entry.is_file() and self._stays_inside(entry):
                named.append((key_prefix + segment, entry.path, False))
        named.sort()
        for name, path, is_dir in named:
            if is_dir:
                if not (name.startswith(prefix) or prefix.startswith(name)):
                    continue
                if after is not None and after > name and not after.startswith(name):
                    continue
                yield from self._walk(path, name, prefix, after)
            elif name.startswith(prefix) and (after is None or name > after):
                yield name, path

    def _stays_inside(self, entry: os.DirEntry[str]) -> bool:
        if not entry.is_symlink():
            return True
        return os.path.realpath(entry.path).startswith(self.real_root + os.sep)

    # Recovery ----------------------------------------------------------------------------

    def _clean_interrupted_writes(self) -> None:
        """Remove what writers that died mid-write left: their temp files and records."""
        for name in os.listdir(self.sidecars.temp_dir):
            owner = name.split(".", 1)[0]
            if not owner.isdigit() or process_alive(int(owner)):
                continue
            record = os.path.join(self.sidecars.temp_dir, name)
            if name.endswith(".write"):
                with open(record, encoding="utf-8") as file:
                    temp = os.path.normpath(os.path.join(self.real_root, file.read()))
                if temp.startswith(self.real_root + os.sep):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(record)


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True


class _DirectoryWriter(DriverWriter):
    """Streams into a temp file beside the target; a record in the state folder names it, so
    the next opening of the store can remove it if this process dies first."""

    def __init__(self, driver: _DirectoryDriver, namespace: str, key: str, path: str) -> None:
        self._driver = driver
        self._namespace = namespace
        self._key = key
        self._path = path
        self._temp = os.path.join(os.path.dirname(path), temp_name())
        self._record = os.path.join(driver.sidecars.temp_dir, f"{os.getpid()}.{token_hex(8)}.write")
        with open(self._record, "w", encoding="utf-8") as file:
            file.write(os.path.relpath(self._temp, driver.real_root))
        self._fd = -1
        self._written = self._flushed = 0
        try:
            self._fd = self._create_temp()
            check_inside(self._fd, driver.real_root, path, driver.name)
        except BaseException:
            self.abort()
            raise

    def _create_temp(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for _ in range(_CREATE_ATTEMPTS):
            try:
                os.makedirs(os.path.dirname(self._path), exist_ok=True)
                return os.open(self._temp, flags, 0o666)
            except (FileExistsError, NotADirectoryError):
                raise self._driver.conflict(self._key) from None
            except FileNotFoundError:
                continue  # a delete pruned the empty folder meanwhile: make it again
        raise from_os_error(FileNotFoundError(2, "folder keeps vanishing"), key=self._key)

    def write(self, chunk: memoryview) -> None:
        with self._driver.os_errors(self._key):
            write_all(self._fd, chunk)
            self._written += len(chunk)
            if self._written - self._flushed >= _WRITEBACK_STEP:
                start_writeback(self._fd, self._flushed, self._written - self._flushed)
                self._flushed = self._written

    def commit(self, spec: WriteSpec) -> DataItem:
        with self._driver.os_errors(self._key):
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
        item = self._driver.commit(self._namespace, self._key, self._path, self._temp, spec)
        with contextlib.suppress(OSError):
            os.unlink(self._record)
        return item

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self._temp)
        with contextlib.suppress(OSError):
            os.unlink(self._record)
        self._driver.prune(os.path.dirname(self._path), self._namespace)
