"""Ids are time-ordered, and ``id_floor`` turns a time into the id range of what came after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from campaignflow.store.ids import id_floor, new_id

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Up to the last millisecond a datetime can hold (the 48-bit field reaches further).
MILLIS = st.integers(
    min_value=0, max_value=(datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
)


@given(made=MILLIS, floor=MILLIS)
def test_an_id_is_at_or_above_the_floor_exactly_when_made_at_or_after_it(
    made: int, floor: int
) -> None:
    moment = EPOCH + timedelta(milliseconds=floor)
    assert (new_id(made) >= id_floor(moment)) == (made >= floor)


@given(millis=MILLIS)
def test_a_floor_is_an_id_of_that_millisecond_with_no_randomness(millis: int) -> None:
    floor = id_floor(EPOCH + timedelta(milliseconds=millis))
    assert len(floor) == 26
    assert floor[:10] == new_id(millis)[:10]
    assert floor[10:] == "0" * 16
