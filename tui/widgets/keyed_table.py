"""A DataTable refreshed by row key: changed cells are updated, never the whole table cleared.

Clearing would reset the cursor and scroll position on every poll and make the operator lose
their place; the cursor is positional, so it is re-anchored on the selected key after changes.

A table narrower than its columns hides the columns named in DROP_ORDER, first ones first, until
the rest fit, so what matters most stays on screen instead of behind a horizontal scroll.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Self

from rich.text import Text, TextType
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, Row, RowKey

Cells = tuple[Text, ...]

# Rendering and adding a row costs ~70-100 µs of UI time, so filling 5,000 empty rows (or
# re-rendering them all after a theme change) at once would hold the UI for half a second; more
# rows than this go in steps, one per frame.
ROWS_PER_STEP = 500


class KeyedTable(DataTable[Text]):
    COLUMNS: tuple[tuple[str, str], ...] = ()  # (column key, label)
    KEY_COLUMN = ""  # the column whose text equals the row key; rows are ordered by it
    DROP_ORDER: tuple[str, ...] = ()  # columns hidden first when the table is too narrow for all

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        # Row order caches, see `ordered_rows`; the version moves whenever rows are added, removed
        # or sorted. Set before DataTable's own __init__, which already reads the row order.
        self._order_version = 0
        self._ordered: tuple[tuple[int, int], list[Row]] | None = None
        self._offsets: tuple[tuple[int, int], list[tuple[RowKey, int]]] | None = None
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._cells: dict[str, Cells] = {}
        self._generation = 0  # bumped by every sync; a pending fill step of an older one is dropped
        self.filling = False  # rows are still being added in steps
        # What each row's cells were rendered from, and with which palette: rendering Rich Text
        # for thousands of rows on every poll is what a refresh would spend its time on.
        self._sources: dict[str, Any] = {}
        self._rendered_with: Hashable = None
        self._visible: tuple[int, ...] = tuple(range(len(self.COLUMNS)))
        # Widest cell per column, hidden columns included, to decide what fits.
        self._widths = [len(label) for _key, label in self.COLUMNS]
        self._keys: list[str] = []  # row keys in the order of the last sync
        self._last_sync: tuple[list[tuple[str, Any]], Callable[[Any], Cells], Hashable] | None = None
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    @property
    def visible_columns(self) -> tuple[str, ...]:
        return tuple(self.COLUMNS[i][0] for i in self._visible)

    def on_resize(self, _event: Resize) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        """Hide columns of DROP_ORDER until the rest fit the width; show them again when they do."""
        width = self.scrollable_content_region.width
        if width <= 0 or not self.DROP_ORDER:
            return
        pad = 2 * self.cell_padding
        visible = list(range(len(self.COLUMNS)))
        index = {key: i for i, (key, _label) in enumerate(self.COLUMNS)}
        for key in self.DROP_ORDER:
            if sum(self._widths[i] + pad for i in visible) <= width:
                break
            visible.remove(index[key])
        if tuple(visible) != self._visible:
            self._show_columns(tuple(visible))

    def _show_columns(self, visible: tuple[int, ...]) -> None:
        last = self._last_sync
        selected = self.selected_key
        self._visible = visible
        self.clear(columns=True)
        for i in visible:
            key, label = self.COLUMNS[i]
            self.add_column(label, key=key)
        if last is not None:
            items, render, style = last
            self.sync_sources(items, render, style=style)
            if selected is not None and selected in self._cells:
                self.move_cursor(row=self.get_row_index(selected), animate=False)

    # Textual keys its ordered-rows and line-offset caches on a counter that every update_cell
    # bumps, so after each poll both lists (one entry per row) were rebuilt, several times,
    # while rendering. Rows only move when they are added, removed or sorted: key on that.

    @property
    def ordered_rows(self) -> list[Row]:
        key = (self._order_version, len(self.rows))
        if self._ordered is None or self._ordered[0] != key:
            self._ordered = (key, DataTable.ordered_rows.fget(self))  # type: ignore[attr-defined]
        return self._ordered[1]

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        key = (self._order_version, len(self.rows))
        if self._offsets is None or self._offsets[0] != key:
            self._offsets = (key, [(row.key, y) for row in self.ordered_rows for y in range(row.height)])
        return self._offsets[1]

    def _moved(self) -> None:
        self._order_version += 1

    def add_row(
        self, *cells: Text, height: int | None = 1, key: str | None = None, label: TextType | None = None
    ) -> RowKey:
        self._moved()
        try:
            return super().add_row(*cells, height=height, key=key, label=label)
        finally:
            self._moved()

    def remove_row(self, row_key: RowKey | str) -> None:
        self._moved()
        try:
            super().remove_row(row_key)
        finally:
            self._moved()

    def sort(self, *columns: ColumnKey | str, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> Self:
        self._moved()
        try:
            return super().sort(*columns, key=key, reverse=reverse)
        finally:
            self._moved()

    def clear(self, columns: bool = False) -> Self:
        self._generation += 1  # an unfinished fill must not bring old rows back
        self.filling = False
        self._moved()
        self._cells.clear()
        self._sources.clear()
        self._keys = []
        try:
            return super().clear(columns)
        finally:
            self._moved()

    @property
    def selected_key(self) -> str | None:
        if not self.rows:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    def sync_sources(
        self, items: Sequence[tuple[str, Any]], render: Callable[[Any], Cells], *, style: Hashable = None
    ) -> None:
        """Make the table show one row per `(key, source)`, in that order, touching only what changed.

        Rows whose source (compared with `==`) and `style` are unchanged keep their cells without
        being rendered again. More than ROWS_PER_STEP new or changed rows are rendered over
        several frames, so the UI keeps answering keys meanwhile; a newer sync replaces the rest
        of an unfinished one.
        """
        if style != self._rendered_with:
            self._sources.clear()
            self._rendered_with = style
        self._generation += 1
        listed = list(items)
        self._last_sync = (listed, render, style)
        self._sync_step(listed, render, self._generation)

    def sync(self, rows: Sequence[tuple[str, Cells]]) -> None:
        """`sync_sources` for rows whose cells are already rendered."""
        self.sync_sources(rows, _as_is, style=self._rendered_with)

    def _sync_step(self, items: list[tuple[str, Any]], render: Callable[[Any], Cells], generation: int) -> None:
        if generation != self._generation:
            return
        self.filling = self._apply_rows(items, render, ROWS_PER_STEP)
        if self.filling:
            self.call_after_refresh(self._sync_step, items, render, generation)

    def _apply_rows(self, items: Sequence[tuple[str, Any]], render: Callable[[Any], Cells], budget: int) -> bool:
        """One step of `sync_sources`; True when rows beyond `budget` are left to render for the next step."""
        rank = {key: i for i, (key, _) in enumerate(items)}
        selected = self.selected_key
        keys = [key for key, _ in items]
        reorder = keys != self._keys  # a new sort order, or rows came or went
        self._keys = keys
        for key in [k.value for k in self.rows if k.value not in rank]:
            if key is not None:
                self.remove_row(key)
                self._cells.pop(key, None)
        for key in [k for k in self._sources if k not in rank]:
            del self._sources[key]
        narrowed: set[int] = set()  # columns where a cell as wide as the column got narrower
        resized = False
        left = False
        widths_before = list(self._widths)
        for key, source in items:
            old = self._cells.get(key)
            if old is not None and self._sources.get(key, _MISSING) == source:
                continue
            if budget <= 0:
                left = True  # this row keeps its old cells (or stays out) until the next step
                continue
            budget -= 1
            cells = render(source)
            self._sources[key] = source
            self._cells[key] = cells
            for i, cell in enumerate(cells):
                if cell.cell_len > self._widths[i]:
                    self._widths[i] = cell.cell_len
            if old is None:
                self.add_row(*(cells[i] for i in self._visible), key=key)
                reorder = True
                continue
            for i in self._visible:
                column, before, after = self.COLUMNS[i][0], old[i], cells[i]
                if before == after:
                    continue
                # Not update_width=True: for a narrower cell Textual re-measures the whole
                # column, once per updated cell (seconds for a few hundred changes in 5,000 rows).
                self.update_cell(key, column, after)
                col = self.columns[ColumnKey(column)]
                if after.cell_len > col.content_width:
                    col.content_width = after.cell_len
                    resized = True
                elif before.cell_len >= col.content_width > after.cell_len:
                    narrowed.add(i)
        for i in narrowed:
            col = self.columns[ColumnKey(self.COLUMNS[i][0])]
            width = max((c[i].cell_len for c in self._cells.values()), default=0)
            width = max(width, col.label.cell_len)
            self._widths[i] = width
            if width != col.content_width:
                col.content_width = width
                resized = True
        if self.DROP_ORDER and self._widths != widths_before:
            self.call_after_refresh(self.fit_columns)
        if resized:
            # Textual's own flag for "recompute the scrollable size on idle" (textual pinned exactly).
            self._require_update_dimensions = True
        if reorder and len(self.rows) > 1 and not self._in_order(rank):
            self.sort(self.KEY_COLUMN, key=lambda cell: rank.get(str(cell), len(rank)))
        if selected is not None and selected in self._cells:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)
        return left

    def _in_order(self, rank: dict[str, int]) -> bool:
        # Rows appended in the wanted order (every fill of an empty table) need no sort.
        ranks = [rank.get(row.key.value or "", len(rank)) for row in self.ordered_rows]
        return all(a < b for a, b in itertools.pairwise(ranks))


_MISSING = object()


def _as_is(cells: Cells) -> Cells:
    return cells
