"""Encryption: the streaming AEAD in process against this machine's raw AES-GCM speed and
against tink's own streaming AEAD; EncryptedStore over DirectoryStore against DirectoryStore."""

from __future__ import annotations

import functools
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from persisty_blobs import DataStore
from persisty_blobs.crypto import EncryptedStore
from persisty_blobs.crypto.streaming import Geometry, SegmentDecrypter, SegmentEncrypter
from persisty_blobs.stores import MemoryStore

from ._harness import Row, compare
from ._worker import FROM_DISK
from .directory import make_source

SEGMENT = 1024 * 1024
TINK_SIZE = 256 * 1024 * 1024  # tink's Python streaming is slow; its speed is per byte anyway
SMALL_PUTS = 2000
_KEY = bytes(range(32))
_AD = b"bench"


def run(size: int, repeats: int) -> list[Row]:
    rows = [*_in_process(size, repeats), _small_puts(repeats)]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as scratch:
        source = Path(scratch) / "source.bin"
        make_source(source, size)
        plain_root, encrypted_root = str(Path(scratch) / "plain"), str(Path(scratch) / "encrypted")
        for name, verb, before, after in (
            ("put", "put", [str(source)], []),
            ("get", "get", [], []),
            ("get from disk", "get", [], [FROM_DISK]),
        ):
            rows.append(
                compare(
                    f"EncryptedStore(Directory) {name}",
                    size,
                    (f"encrypted_{verb}", [*before, encrypted_root, *after]),
                    (f"directory_{verb}", [*before, plain_root, *after]),
                    repeats,
                )
            )
    rows.append(_get_bound(rows))
    return rows


def _get_bound(rows: list[Row]) -> Row:
    """The best a get that reads, then decrypts, can do on one core: the baseline's read plus
    one raw AES-GCM pass, at the speeds measured above. Computed, not measured: it shows how
    much of the gap to the baseline is AES itself."""
    aes = next(row for row in rows if row.name == "streaming AEAD decrypt vs raw AES-GCM")
    get = next(row for row in rows if row.name == "EncryptedStore(Directory) get")
    bound = 1 / (1 / get.baseline_mb_s + 1 / aes.baseline_mb_s)
    return Row(
        name="get bound: read + AES-GCM",
        subject="computed",
        baseline=get.baseline,
        size=get.size,
        subject_mb_s=bound,
        baseline_mb_s=get.baseline_mb_s,
        ratio=bound / get.baseline_mb_s,
        subject_peak_rss_mib=0.0,
        baseline_peak_rss_mib=0.0,
    )


def _segments(size: int) -> int:
    return max(1, size // SEGMENT)


def _seconds(work: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _in_process(size: int, repeats: int) -> list[Row]:
    """Memory to memory, on one core: segments of 1 MiB, as the store writes them."""
    geometry = Geometry(SEGMENT)
    plain = os.urandom(geometry.plain)
    count = _segments(size)
    aesgcm = AESGCM(_KEY)
    nonce = bytes(12)

    def raw_encrypt() -> None:
        for _ in range(count):
            aesgcm.encrypt(nonce, plain, None)

    def ours_encrypt() -> None:
        encrypter = SegmentEncrypter(_KEY, _AD)
        for index in range(count):
            encrypter.encrypt(plain, last=index == count - 1)

    encrypter = SegmentEncrypter(_KEY, _AD)
    sealed = [encrypter.encrypt(plain, last=False) for _ in range(64)]  # 64 MiB, cycled
    raw_sealed = aesgcm.encrypt(nonce, plain, None)

    def raw_decrypt() -> None:
        for _ in range(count):
            aesgcm.decrypt(nonce, raw_sealed, None)

    def ours_decrypt() -> None:
        decrypter = SegmentDecrypter(_KEY, _AD, encrypter.header)
        for index in range(count):
            decrypter.decrypt(index % 64, sealed[index % 64], last=False)

    tink_encrypt, tink_decrypt = _tink(plain)
    tink_count = _segments(min(size, TINK_SIZE))
    processed = count * len(plain)
    rows = []
    for verb, ours, raw, tink in (
        ("encrypt", ours_encrypt, raw_encrypt, tink_encrypt),
        ("decrypt", ours_decrypt, raw_decrypt, tink_decrypt),
    ):
        ours_s, raw_s = _seconds(ours, repeats), _seconds(raw, repeats)
        rows.append(_row(f"streaming AEAD {verb} vs raw AES-GCM", processed, ours_s, raw_s))
        if tink is not None:
            tink_s = _seconds(functools.partial(tink, tink_count), repeats) * count / tink_count
            rows.append(_row(f"streaming AEAD {verb} vs tink", processed, ours_s, tink_s))
    return rows


def _small_puts(repeats: int) -> Row:
    """Puts of 1 KiB: what a store of many small items pays per item for encryption."""
    content = os.urandom(1024)
    plain, encrypted = MemoryStore(), EncryptedStore(MemoryStore(), _KEY)

    def puts(store: DataStore) -> None:
        for index in range(SMALL_PUTS):
            store.put(f"small/{index}", content)

    subject_s = _seconds(functools.partial(puts, encrypted), repeats)
    baseline_s = _seconds(functools.partial(puts, plain), repeats)
    return Row(
        name="EncryptedStore(Memory) put of 1 KiB vs MemoryStore",
        subject="in process",
        baseline="in process",
        size=SMALL_PUTS,
        subject_mb_s=SMALL_PUTS / subject_s,
        baseline_mb_s=SMALL_PUTS / baseline_s,
        ratio=baseline_s / subject_s,
        subject_peak_rss_mib=0.0,
        baseline_peak_rss_mib=0.0,
        unit="items/s",
    )


def _row(name: str, size: int, subject: float, baseline: float) -> Row:
    return Row(
        name=name,
        subject="in process",
        baseline="in process",
        size=size,
        subject_mb_s=size / subject / 1e6,
        baseline_mb_s=size / baseline / 1e6,
        ratio=baseline / subject,
        subject_peak_rss_mib=0.0,
        baseline_peak_rss_mib=0.0,
    )


def _tink(plain: bytes) -> tuple[Callable[[int], None] | None, Callable[[int], None] | None]:
    try:
        from tests.test_crypto_format import tink_primitive
    except ImportError:
        print("tink is not installed: its rows are left out")
        return None, None
    primitive = tink_primitive(_KEY, SEGMENT)

    def encrypt(count: int) -> None:
        with primitive.new_encrypting_stream(_Discard(), _AD) as stream:
            for _ in range(count):
                stream.write(plain)

    keep = _Keep()
    with primitive.new_encrypting_stream(keep, _AD) as stream:
        for _ in range(64):
            stream.write(plain)
    ciphertext = keep.kept

    def decrypt(count: int) -> None:
        for _ in range(max(1, count // 64)):
            with primitive.new_decrypting_stream(io.BytesIO(ciphertext), _AD) as stream:
                while stream.read(SEGMENT):
                    pass

    return encrypt, decrypt


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return len(memoryview(data))  # type: ignore[arg-type]


class _Keep(io.BytesIO):
    kept = b""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()
