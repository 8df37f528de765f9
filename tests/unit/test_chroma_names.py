from __future__ import annotations

import re

import pytest

from memory.chroma_names import chroma_name, collection_name

# Chroma's rule: 3-512 chars of [a-zA-Z0-9._-], alphanumeric at both ends, no "..".
VALID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


@pytest.mark.parametrize(
    "name",
    [
        "default__episode",
        "a",
        "x_",
        "-",
        "ns-1__note",
        "a.b",
        "a..b",
        "ünï cødé/é",
        "_.._",
        "A" * 200,
    ],
)
def test_names_are_valid_and_reversible(name: str) -> None:
    cname = chroma_name(name)
    assert VALID.match(cname) and ".." not in cname
    assert collection_name(cname) == name


def test_readable_names_stay_readable() -> None:
    assert chroma_name("default__episode") == "evolvent-default__episode"


def test_foreign_and_malformed_names_are_not_ours() -> None:
    assert collection_name("langchain") is None
    assert collection_name("evolvent-a.ZZ") is None
    assert collection_name("evolvent-a.4") is None


def test_empty_and_overlong_names_are_refused() -> None:
    with pytest.raises(ValueError):
        chroma_name("")
    with pytest.raises(ValueError):
        chroma_name("é" * 200)
