"""A DataTable refreshed by row key: changed cells are updated, never the whole table cleared.

Clearing would reset the cursor and scroll position on every poll and make the operator lose
their place; the cursor is positional, so it is re-anchored on the selected key after changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

Cells = tuple[Text, ...]


class KeyedTable(DataTable[Text]):
    COLUMNS: tuple[tuple[str, str], ...] = ()  # (column key, label)
    KEY_COLUMN = ""  # the column whose text equals the row key; rows are ordered by it

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._cells: dict[str, Cells] = {}
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_key(self) -> str | None:
        if not self.rows:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    def sync(self, rows: Sequence[tuple[str, Cells]]) -> None:
        """Make the table show exactly `rows`, in that order, touching only what changed."""
        wanted = dict(rows)
        rank = {key: i for i, (key, _) in enumerate(rows)}
        selected = self.selected_key
        reorder = False
        for key in [k.value for k in self.rows if k.value not in wanted]:
            if key is not None:
                self.remove_row(key)
                self._cells.pop(key, None)
        for key, cells in rows:
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                reorder = True
            elif old != cells:
                for (column, _), before, after in zip(self.COLUMNS, old, cells, strict=True):
                    if before != after:
                        self.update_cell(key, column, after, update_width=True)
            self._cells[key] = cells
        if reorder and len(rows) > 1:
            self.sort(self.KEY_COLUMN, key=lambda cell: rank.get(str(cell), len(rank)))
        if selected is not None and selected in wanted:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)
