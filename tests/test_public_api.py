import subprocess
import sys
from datetime import UTC, datetime

import pytest

import persisty_blobs as pb
from persisty_blobs import errors, stores
from persisty_blobs.registry import require


def test_all_is_sorted_and_complete() -> None:
    assert pb.__all__ == sorted(pb.__all__)
    public = {
        name
        for name, value in vars(pb).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
    }
    lazy = set(pb._LAZY)  # loaded with their dependency when first named
    assert set(pb.__all__) == (public | lazy) - {"annotations", "importlib", "TYPE_CHECKING", "Any"}
    for name in lazy:
        assert getattr(pb, name).__name__ == name
    for module in (errors, stores):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), name


def test_every_error_is_exported_and_derives_from_blob_error() -> None:
    error_classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    for error_class in error_classes:
        assert issubclass(error_class, pb.BlobError)
        assert getattr(pb, error_class.__name__) is error_class
    assert issubclass(pb.NotFound, KeyError)
    for value_error in (pb.InvalidKey, pb.InvalidMetadata, pb.InvalidFlags, pb.InvalidArgument):
        assert issubclass(value_error, ValueError)
    assert issubclass(pb.InvalidArgumentType, TypeError)


def test_stores_after_a_bare_import() -> None:
    # The README writes pb.stores.DirectoryStore after `import persisty_blobs as pb` alone.
    code = (
        "import persisty_blobs as pb;"
        "print(pb.stores.DirectoryStore.__name__, pb.stores.MemoryStore.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["DirectoryStore", "MemoryStore"]
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = pb.no_such_thing


def test_import_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, persisty_blobs, persisty_blobs.stores;"
        "heavy = {'boto3', 'botocore', 'cryptography', 'sqlalchemy', 'sqlcipher3', 'starlette'};"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_error_messages_name_key_and_store() -> None:
    store = pb.open_store("memory://")
    with pytest.raises(pb.NotFound) as caught:
        store.read_bytes("some/key")
    assert str(caught.value) == "no such item (key 'some/key', store 'MemoryStore()')"
    assert caught.value.key == "some/key"
    assert caught.value.store == "MemoryStore()"


def test_os_errors_map_onto_the_tree() -> None:
    mapped = errors.from_os_error(OSError(28, "No space left on device"), key="k", store="s")
    assert isinstance(mapped, pb.QuotaExceeded)
    assert "No space left" in str(mapped)
    assert type(errors.from_os_error(OSError(13, "denied"))) is pb.PermissionDenied
    assert type(errors.from_os_error(OSError(5, "I/O error"))) is pb.BlobError


def test_open_store_schemes() -> None:
    assert isinstance(pb.open_store("memory://"), stores.MemoryStore)
    assert pb.open_store("memory://", chunk_size=4096).chunk_size == 4096
    with pytest.raises(pb.Unsupported, match="no store for the URL scheme 'ftp'"):
        pb.open_store("ftp://example/bucket")


def test_a_missing_optional_dependency_names_its_extra() -> None:
    with pytest.raises(pb.Unsupported, match=r"pip install 'persisty-blobs\[s3\]'"):
        require("a_module_that_is_not_installed", extra="s3")
    assert require("json", extra="none").dumps([]) == "[]"


def test_upload_form_as_json() -> None:
    form = pb.UploadForm(
        url="https://uploads.example/bucket",
        fields={"key": "u/1.png", "policy": "e30="},
        key="u/1.png",
        expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        max_size=1000,
        content_types=["image/png"],
    )
    assert form.method == "POST"
    assert form.file_field == "file"
    assert form.as_json() == {
        "url": "https://uploads.example/bucket",
        "method": "POST",
        "fields": {"key": "u/1.png", "policy": "e30="},
        "file_field": "file",
        "key": "u/1.png",
        "expires_at": "2030-01-02T03:04:05+00:00",
        "max_size": 1000,
        "content_types": ["image/png"],
    }


def test_data_items_are_immutable_values() -> None:
    metadata = {"a": "1"}
    now = datetime.now(UTC)
    item = pb.DataItem(
        key="k", size=1, etag="e", content_type="text/plain", updated_at=now, metadata=metadata
    )
    metadata["a"] = "changed"
    assert item.metadata["a"] == "1"
    with pytest.raises(TypeError):
        item.metadata["b"] = "2"  # type: ignore[index]
    twin = pb.DataItem(
        key="k", size=1, etag="e", content_type="text/plain", updated_at=now, metadata={"a": "1"}
    )
    assert twin == item
    assert len({item, twin}) == 1
