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

The suite reads ``store.capabilities`` (``persisty_blobs.driver.Capabilities``) and skips, with
the reason, what a store declares it cannot do. It fails a test whose worker thread fails or
hangs, whatever the project's warning filters. The bounded-memory test is marked ``slow``.
Importing this module needs pytest.
"""

from ._arguments import ArgumentTests
from ._concurrency import ConcurrencyTests
from ._content import ContentTests
from ._listing import ListingTests, NamespaceTests
from ._processes import ProcessTests
from ._scanning import ScanTests
from ._seeking import SeekTests
from ._writes import AtomicityTests, CopyTests, FlagTests, PreconditionTests, ValidationTests

__all__ = ["StoreConformance"]


class StoreConformance(
    ContentTests,
    SeekTests,
    ArgumentTests,
    PreconditionTests,
    AtomicityTests,
    ValidationTests,
    CopyTests,
    FlagTests,
    ListingTests,
    ScanTests,
    NamespaceTests,
    ConcurrencyTests,
    ProcessTests,
):
    """Every behaviour of ``DataStore`` that a user relies on, whatever the store."""
