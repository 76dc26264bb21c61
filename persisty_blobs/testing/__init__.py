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
hangs, whatever the project's warning filters. The bounded-memory test is marked ``slow``; it
puts and reads 128 MiB in a child process whose RSS may grow by ``rss_budget`` (64 MiB; a
subclass whose store uploads parts concurrently sets more).
``StoreConformance`` needs pytest, loaded when first named: ``persisty_blobs.testing.moto``
works without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._suite import StoreConformance

__all__ = ["StoreConformance"]


def __getattr__(name: str) -> Any:
    if name != "StoreConformance":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        suite = importlib.import_module("._suite", __name__)
    except ModuleNotFoundError as error:
        from ..errors import Unsupported

        raise Unsupported(
            f"the conformance suite needs {error.name}: pip install pytest"
        ) from error
    return suite.StoreConformance
