"""The pure side of the event log's partitions: UTC months, bounds read back from the catalog,
which months to create and which partitions have expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.store.partitions import (
    Partition,
    add_months,
    create_sql,
    expired,
    month_start,
    months_to_create,
    parse_bound,
    partition_name,
)


def utc(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def monthly(first: datetime, count: int) -> list[Partition]:
    return [
        Partition(
            partition_name(add_months(first, n)), add_months(first, n), add_months(first, n + 1)
        )
        for n in range(count)
    ]


LEGACY = Partition("events_p_legacy", None, utc(2026, 12))
DEFAULT = Partition("events_default", None, None, default=True)


def test_a_month_starts_in_utc_whatever_the_offset_of_the_instant() -> None:
    # 00:30 on 1 December in Berlin is still November in UTC.
    berlin = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert month_start(berlin) == utc(2026, 11)
    assert add_months(utc(2026, 11), 2) == utc(2027, 1)
    assert add_months(utc(2027, 1), -1) == utc(2026, 12)
    assert partition_name(utc(2027, 1)) == "events_p202701"


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2900, 1, 1)))
def test_each_instant_falls_in_exactly_its_month(naive: datetime) -> None:
    instant = naive.replace(tzinfo=UTC)
    start = month_start(instant)
    assert start <= instant < add_months(start, 1)
    assert (start.day, start.hour, start.minute) == (1, 0, 0)


def test_bounds_are_read_back_as_the_catalog_renders_them() -> None:
    assert parse_bound("events_default", "DEFAULT") == DEFAULT
    legacy = parse_bound(
        "events_p_legacy", "FOR VALUES FROM (MINVALUE) TO ('2026-12-01 00:00:00+00')"
    )
    assert legacy == LEGACY
    month = parse_bound(
        "events_p202612",
        "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')",
    )
    assert (month.lower, month.upper) == (utc(2026, 12), utc(2027, 1))
    with pytest.raises(ValueError, match="range partition"):
        parse_bound("odd", "FOR VALUES IN ('a')")


def test_months_ahead_are_created_once_and_never_overlap_the_legacy_partition() -> None:
    existing = [LEGACY, *monthly(utc(2026, 12), 3), DEFAULT]
    now = utc(2026, 11, 29)

    assert months_to_create(existing, now, 3) == []  # what the migration made
    assert months_to_create(existing, utc(2027, 1, 15), 3) == [utc(2027, 3), utc(2027, 4)]


def test_a_gap_since_the_newest_partition_is_filled() -> None:
    existing = [LEGACY, *monthly(utc(2026, 12), 3), DEFAULT]
    later = months_to_create(existing, utc(2027, 5, 2), 1)
    assert later == [utc(2027, 3), utc(2027, 4), utc(2027, 5), utc(2027, 6)]


def test_only_partitions_wholly_before_the_cutoff_expire_and_never_default() -> None:
    existing = [DEFAULT, *monthly(utc(2026, 12), 3), LEGACY]

    assert [p.name for p in expired(existing, utc(2027, 1))] == [
        "events_p_legacy",
        "events_p202612",
    ]  # oldest first; December ends exactly at the cutoff
    assert [p.name for p in expired(existing, utc(2027, 1) - timedelta(microseconds=1))] == [
        "events_p_legacy"
    ]
    assert DEFAULT not in expired(existing, utc(2999, 1))


def test_the_create_statement_names_the_month_and_its_utc_bounds() -> None:
    assert create_sql(utc(2027, 12)) == (
        'CREATE TABLE "events_p202712" PARTITION OF events '
        "FOR VALUES FROM ('2027-12-01T00:00:00+00:00') TO ('2028-01-01T00:00:00+00:00')"
    )
