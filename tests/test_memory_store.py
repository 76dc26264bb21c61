from collections.abc import Iterator

import pytest

from persisty_blobs.stores import MemoryStore
from persisty_blobs.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    content_in_process = True

    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        with MemoryStore() as store:
            yield store
