"""Conformance: a store used in a forked child, and memory bounded while streaming (both in
child processes)."""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from ..store import DataStore
from ._support import WORKER_TIMEOUT, Workers, payload

BIG_ITEM = 128 * 1024 * 1024  # more than any RSS budget: a buffered item cannot pass
FORK_ROUNDS = 100  # each process: a hundred and more requests on what the fork left it
WRITE_EVERY = 10  # a durable write costs tens of reads on a disk or a server


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/self/status")


def _put_and_read_big_item(store: DataStore, report: Connection) -> None:
    try:
        block = payload(1024 * 1024, seed=11)

        def blocks() -> Iterator[bytes]:
            for _ in range(BIG_ITEM // len(block)):
                yield block

        Path("/proc/self/clear_refs").write_text("5")  # restart the peak-RSS count here
        start_kib = _status_kib("VmRSS")
        item = store.put("big/item.bin", blocks())
        digest = hashlib.sha256()
        with store.open("big/item.bin") as reader:
            while part := reader.read(1024 * 1024):
                digest.update(part)
        peak_kib = _status_kib("VmHWM")
        report.send((item.size, digest.hexdigest(), (peak_kib - start_kib) * 1024))
    except BaseException:
        report.send(traceback.format_exc())  # where it failed: the stack dies with the child


def _exercise(store: DataStore, owner: str, shared: dict[str, bytes]) -> str | None:
    """``FORK_ROUNDS`` reads, of this process's own keys and of keys both processes read, with
    a write of an own key every ``WRITE_EVERY`` rounds; the first wrong answer, or None."""
    names = sorted(shared)
    mine: dict[str, bytes] = {}
    for round_ in range(FORK_ROUNDS):
        if round_ % WRITE_EVERY == 0:
            own = f"{owner}/{round_ // WRITE_EVERY % 10}"
            mine[own] = f"{owner} {round_}".encode()
            store.put(own, mine[own])
        if round_ % 2:
            name = names[round_ % len(names)]
            expected = shared[name]
            item = store.get(name)
            if item is None or item.size != len(expected):
                return f"round {round_}: get({name!r}) gave {item!r}"
        else:
            name = sorted(mine)[round_ % len(mine)]
            expected = mine[name]
        got = store.read_bytes(name)
        if got != expected:
            return f"round {round_}: read {name!r} gave {got[:60]!r}, not {expected[:60]!r}"
    return None


def _last_writes(owner: str) -> dict[str, bytes]:
    """What ``_exercise`` leaves in ``owner``'s keys."""
    return {
        f"{owner}/{round_ // WRITE_EVERY % 10}": f"{owner} {round_}".encode()
        for round_ in range(0, FORK_ROUNDS, WRITE_EVERY)
    }


def _fork_beside(store: DataStore, round_: int) -> None:
    """Fork; the child writes and reads, then lives on until the parent has written too, so
    that neither can be waiting for a lock only the other process's copy of it holds."""
    parent_done, child_waits = os.pipe()
    pid = fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            store.put(f"child/{round_}", b"the child's")
            if store.read_bytes(f"child/{round_}") == b"the child's":
                os.close(child_waits)
                os.read(parent_done, 1)  # until the parent closes its end
                status = 0
        finally:
            os._exit(status)
    os.close(parent_done)
    try:
        parent = Workers()
        parent.start(store.put, f"parent/{round_}", b"the parent's")
        parent.join()
    finally:
        os.close(child_waits)
        code = wait_for_child(pid)
    assert code == 0, f"the child forked in round {round_} exited with {code}"
    assert store.read_bytes(f"child/{round_}") == b"the child's"


def fork() -> int:
    """``os.fork()``, without the warning Python 3.12+ gives a process with threads: the
    child uses none it inherits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def wait_for_child(pid: int) -> int:
    """The child's exit status; a child still running after ``WORKER_TIMEOUT`` is killed and
    fails the test."""
    deadline = time.monotonic() + WORKER_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child was still running after {WORKER_TIMEOUT:.0f} s")


class ProcessTests:
    #: How much the RSS of a process may grow while it puts and reads ``BIG_ITEM``. A store
    #: that uploads parts concurrently (S3) declares more: the parts in flight, and a malloc
    #: arena per upload thread.
    rss_budget = 64 * 1024 * 1024

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_while_other_threads_use_it(self, store: DataStore) -> None:
        if not store.capabilities.shared_across_processes:
            pytest.skip("this store's items live in one process (capabilities)")
        if not store.capabilities.forks_while_busy:
            pytest.skip("this store cannot be used in a child forked while it is busy")
        stop, busy = threading.Event(), Workers()

        def keep_busy(number: int) -> None:
            while not stop.is_set():
                store.put(f"busy/{number}", payload(2000, seed=number))
                store.read_bytes(f"busy/{number}")
                list(store.scan("busy/"))

        for number in range(3):
            busy.start(keep_busy, number)
        try:
            for round_ in range(3):
                time.sleep(0.05)
                _fork_beside(store, round_)
        finally:
            stop.set()
            busy.join()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_used_before_fork_then_in_parent_and_child(self, store: DataStore) -> None:
        if not store.capabilities.shared_across_processes:
            pytest.skip("this store's items live in one process (capabilities)")
        shared = {f"shared/{index}": payload(100 + index, seed=index) for index in range(20)}
        for name, content in shared.items():
            store.put(name, content)
            assert store.read_bytes(name) == content  # pools and connections now in use
        receive, send = os.pipe()
        pid = fork()
        if pid == 0:  # the child: never return into pytest
            status = 2
            try:
                problem = _exercise(store, "child", shared)
                os.write(send, (problem or "").encode()[:4000])
                status = 0 if problem is None else 1
            except BaseException as exc:
                os.write(send, repr(exc).encode()[:4000])
            finally:
                os._exit(status)
        os.close(send)
        # On a thread, so that a parent stuck on a socket the child took fails the test too.
        problems: list[str | None] = []
        parent = Workers()
        parent.start(lambda: problems.append(_exercise(store, "parent", shared)))
        try:
            parent.join()
        finally:
            code = wait_for_child(pid)
            with contextlib.closing(os.fdopen(receive, "rb")) as report:
                child_problem = report.read().decode(errors="replace")
        assert problems == [None], f"parent: {problems}"
        assert code == 0, f"child exited with {code}: {child_problem}"
        for owner in ("child", "parent"):
            for name, content in _last_writes(owner).items():
                assert store.read_bytes(name) == content, name

    @pytest.mark.slow
    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for RSS")
    def test_big_item_streams_in_bounded_memory(self, store: DataStore) -> None:
        if store.capabilities.content_in_process:
            pytest.skip("this store keeps content in the process's memory (capabilities)")
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            child = context.Process(target=_put_and_read_big_item, args=(store, sender))
            child.start()
        try:
            assert receiver.poll(timeout=240), "the child process did not report"
            result = receiver.recv()
        finally:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
                child.join()
        assert isinstance(result, tuple), result
        size, sha256_hex, peak_growth = result
        block = payload(1024 * 1024, seed=11)
        expected = hashlib.sha256()
        for _ in range(BIG_ITEM // len(block)):
            expected.update(block)
        assert size == BIG_ITEM
        assert sha256_hex == expected.hexdigest()
        assert self.rss_budget < BIG_ITEM
        assert peak_growth < self.rss_budget, f"peak RSS grew by {peak_growth / 2**20:.1f} MiB"
