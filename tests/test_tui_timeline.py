"""Timeline bucketing: who led and who held the tag, one cell per time bucket."""

from __future__ import annotations

from tagjoin.tui.leader_history import Cell, History, Sample, buckets, sample_of
from tests.console_doubles import TAG_KEY, instance, member, snapshot

B, N, L, T, U, X = Cell.BOTH, Cell.NONE, Cell.LEADER, Cell.TAG, Cell.UNKNOWN, Cell.BEFORE


def s(at: float, leader: str | None, *holders: str) -> Sample:
    return Sample(at, leader, frozenset(holders))


def test_one_row_per_node_that_led_or_held_the_tag() -> None:
    # A bucket shows the state at its end: samples at 1, 11, 21 change it from the 0-5, 10-15, 20-25 buckets.
    samples = [s(1, "a", "a"), s(11, "b", "a"), s(21, "b", "b")]
    rows = buckets(samples, now=30, width=6, bucket=5, max_gap=15)
    assert [(r.name, r.cells) for r in rows] == [
        ("a", (B, B, T, T, N, N)),
        ("b", (N, N, L, L, B, B)),
    ]


def test_before_the_first_sample_and_gaps_in_refreshes() -> None:
    samples = [s(11, "a", "a"), s(12, "a", "a")]
    (row,) = buckets(samples, now=40, width=8, bucket=5, max_gap=10)
    # Nothing seen before 10; covered until 20; from 25 on the last sample is more than 10s old.
    assert row.cells == (X, X, B, B, U, U, U, U)


def test_no_samples_no_rows() -> None:
    assert buckets([], now=10, width=5, bucket=1, max_gap=3) == []


def test_history_keeps_one_sample_before_the_window() -> None:
    h = History(keep=10)
    for t in range(0, 30, 2):
        h.add(s(t, "a", "a"))
    assert h.samples[0].at == 16 and h.samples[-1].at == 28


def test_sample_of_names_tag_holders_by_node_or_instance() -> None:
    snap = snapshot(
        0,
        "10.0.1.1",
        [member("node-1", "10.0.1.1")],
        [instance("i-1", "10.0.1.1", tags={TAG_KEY: "3"}), instance("i-9", "10.0.9.9", tags={TAG_KEY: "2"})],
    )
    assert snap.view is not None
    assert sample_of(5, snap.view) == s(5, "node-1", "node-1", "i-9")


def test_finished_buckets_do_not_change_as_time_passes() -> None:
    samples = [s(1, "a", "a"), s(11, "b", "a"), s(13, "b", "b")]
    earlier = buckets(samples, now=22, width=5, bucket=5, max_gap=15)
    later = buckets(samples, now=24, width=5, bucket=5, max_gap=15)
    # Buckets end on multiples of 5 (the last one is cut at `now`): 2 s later, same picture.
    assert [(r.name, r.cells) for r in earlier] == [(r.name, r.cells) for r in later]
    assert [(r.name, r.cells) for r in earlier] == [("a", (B, B, N, N, N)), ("b", (N, N, B, B, B))]


def test_timeline_names_are_not_cut_to_a_shared_prefix() -> None:
    from tagjoin.tui.style import Palette
    from tagjoin.tui.widgets.timeline_strip import timeline_text

    samples = [s(1, "ip-10-0-1-10", "ip-10-0-1-10"), s(6, "ip-10-0-1-100", "ip-10-0-1-100")]
    text = timeline_text(samples, now=10, width=40, bucket=5, max_gap=15, palette=Palette()).plain
    assert [line.split(" ")[0] for line in text.splitlines()] == ["ip-10-0-1-10", "ip-10-0-1-100"]
