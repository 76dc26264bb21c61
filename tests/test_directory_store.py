from collections.abc import Iterator
from pathlib import Path

import pytest

from persisty_blobs.stores import DirectoryStore
from persisty_blobs.testing import StoreConformance


class TestDirectoryStoreConformance(StoreConformance):
    nested_keys_coexist = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[DirectoryStore]:
        with DirectoryStore(tmp_path / "store") as store:
            yield store
