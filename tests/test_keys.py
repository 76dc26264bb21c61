import pytest
from hypothesis import given
from hypothesis import strategies as st

from persisty_blobs import Flag, InvalidFlags, InvalidKey, InvalidMetadata
from persisty_blobs.keys import (
    guess_content_type,
    validate_flags,
    validate_key,
    validate_metadata,
    validate_namespace,
)
from persisty_blobs.stores.directory._names import RESERVED, decode_name, encode_segment

segment_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="/\\\x7f"), min_size=1
).filter(lambda text: text not in (".", "..") and all(ord(char) > 0x1F for char in text))


@given(st.lists(segment_text, min_size=1, max_size=6))
def test_keys_made_of_valid_segments_are_valid(segments: list[str]) -> None:
    key = "/".join(segments)
    if len(key.encode()) <= 1024:
        assert validate_key(key) == key


@given(st.text(st.sampled_from("./aé\\"), max_size=12))
def test_a_key_is_refused_exactly_when_a_segment_is_empty_dot_or_dot_dot(key: str) -> None:
    refused = "\\" in key or any(segment in ("", ".", "..") for segment in key.split("/"))
    try:
        validate_key(key)
    except InvalidKey:
        assert refused
    else:
        assert not refused


def test_a_key_is_measured_in_utf8_bytes() -> None:
    assert validate_key("é" * 512) == "é" * 512
    for too_long in ("é" * 513, "x" * 1025):
        with pytest.raises(InvalidKey, match="1 to 1024 UTF-8 bytes"):
            validate_key(too_long)
    with pytest.raises(InvalidKey, match="UTF-8"):
        validate_key("a\ud800")


@given(segment_text)
def test_disk_names_round_trip_and_never_collide_with_the_stores_files(segment: str) -> None:
    for candidate in (segment, RESERVED + segment, RESERVED):
        name = encode_segment(candidate)
        assert decode_name(name) == candidate
    assert decode_name(RESERVED) is None
    assert decode_name(RESERVED + ".tmp-1-abc") is None


def test_metadata_keys_are_lowercased() -> None:
    assert validate_metadata({"Owner": "Ada", "X-Id": "1"}) == {"owner": "Ada", "x-id": "1"}
    assert validate_metadata(None) == {}
    with pytest.raises(InvalidMetadata, match="equal lowercased"):
        validate_metadata({"A": "1", "a": "2"})
    with pytest.raises(InvalidMetadata, match="UTF-8"):
        validate_metadata({"a": "\ud800"})
    assert validate_metadata({"k": "x" * 2047}) == {"k": "x" * 2047}
    with pytest.raises(InvalidMetadata, match="2048"):
        validate_metadata({"k": "x" * 2048})


def test_namespace_names_are_single_segments() -> None:
    assert validate_namespace("") == ""
    assert validate_namespace("user-1") == "user-1"
    with pytest.raises(InvalidKey):
        validate_namespace("a/b")


def test_flags_accept_members_and_values_only() -> None:
    assert validate_flags(["pending", Flag.FAILED]) == {Flag.PENDING, Flag.FAILED}
    with pytest.raises(InvalidFlags, match="one of: pending, processing, processed, failed"):
        validate_flags(["done"])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a/b/readme.md", "text/markdown"),
        ("photo.JPG", "image/jpeg"),
        ("archive.tar.gz", "application/x-tar"),
        ("dir.with.dots/noext", "application/octet-stream"),
        ("clip.mkv", "video/x-matroska"),
    ],
)
def test_guessed_content_types(key: str, expected: str) -> None:
    assert guess_content_type(key) == expected
