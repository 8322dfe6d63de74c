"""The header's nesting depth is measured from its bytes (a walk of the decoded objects
costs seconds on a large header): the count agrees with the decoded structure, whatever
brackets, quotes and backslashes its strings hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from amber.format.container import _json_depth

_TEXT = st.text(alphabet=st.sampled_from('ab[]{}"\\/\u00e9\n'), max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=30)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_JSON, st.booleans())
def test_depth_from_bytes_matches_the_decoded_structure(value: Any, ascii_only: bool) -> None:
    for indent in (None, 1):
        raw = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
        assert _json_depth(raw) == _depth(value), raw


def test_escapes_next_to_quotes() -> None:
    assert _json_depth(rb'{"a\\":["\\\"[[", [[]]]}') == 4
    assert _json_depth(rb'{"\\\\":[[[["\\"]]]]}') == 5
    assert _json_depth(b'"[[["') == 0
