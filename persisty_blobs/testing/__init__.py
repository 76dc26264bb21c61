"""The conformance suite every store, and every store wrapped in every layer, runs.

Subclass ``StoreConformance`` in a test module and give it a ``store`` fixture that returns a
new, empty store; pytest then runs the whole suite against it::

    import pytest
    from persisty_blobs.stores import DirectoryStore
    from persisty_blobs.testing import StoreConformance

    class TestDirectoryStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            with DirectoryStore(tmp_path / "store") as store:
                yield store

Set ``content_in_process = True`` on a store that keeps content in the process's memory (it
skips the bounded-memory test). The bounded-memory test is marked ``slow``. Importing this
module needs pytest.
"""

from ._concurrency import ConcurrencyTests
from ._content import ContentTests
from ._listing import ListingTests, NamespaceTests
from ._writes import AtomicityTests, CopyTests, FlagTests, PreconditionTests, ValidationTests

__all__ = ["StoreConformance"]


class StoreConformance(
    ContentTests,
    PreconditionTests,
    AtomicityTests,
    ValidationTests,
    CopyTests,
    FlagTests,
    ListingTests,
    NamespaceTests,
    ConcurrencyTests,
):
    """Every behaviour of ``DataStore`` that a user relies on, whatever the store."""
