from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.domain.problems import Problem, document_order, to_pointer

parts = st.lists(
    st.one_of(st.text(max_size=8), st.integers(min_value=0, max_value=600)), max_size=6
)


def _unescape(pointer: str) -> list[str]:
    """RFC 6901 decoding, written independently of ``to_pointer``."""
    if pointer == "":
        return []
    assert pointer.startswith("/")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


@given(parts)
def test_pointer_round_trips_through_rfc6901_decoding(path: list[str | int]) -> None:
    assert _unescape(to_pointer(path)) == [str(part) for part in path]


def test_pointer_escapes_tilde_before_slash() -> None:
    assert to_pointer(["a/b", "m~n", "~1"]) == "/a~1b/m~0n/~01"


def test_document_order_puts_list_items_numerically() -> None:
    problems = [Problem(("nodes", 10), "x"), Problem(("nodes", 2), "x"), Problem((), "x")]
    ordered = sorted(problems, key=document_order)
    assert [p.pointer for p in ordered] == ["", "/nodes/2", "/nodes/10"]
