"""``StoreConformance``: every behaviour a user relies on, as one pytest class."""

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
