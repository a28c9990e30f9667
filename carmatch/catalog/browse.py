"""Browsing the catalog: filter, sort, count and page live images (the Dataset tab's grid).

Every query is SQL over indexed columns with LIMIT/OFFSET, so paging stays fast at 50,000 images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carmatch.bounds import check_filter_text
from carmatch.catalog.connection import CatalogBase
from carmatch.catalog.records import ImageRecord
from carmatch.catalog.schema import ATTRIBUTE_COLUMNS, CAPTION_SOURCES, REVIEW_STATES
from carmatch.errors import InvalidInputError

FAILED = "failed"  # review-state filter: captioning failed and the image has no caption
STATE_FILTERS = (*REVIEW_STATES, FAILED)
SOURCE_NONE = "none"
SOURCE_FILTERS = (*CAPTION_SOURCES, SOURCE_NONE)
# name -> (ORDER BY clause, key expression and direction for "the next one after this")
_SORT_SQL: dict[str, tuple[str, str, str]] = {
    "newest": ("added_at DESC, id DESC", "added_at", "DESC"),
    "oldest": ("added_at ASC, id ASC", "added_at", "ASC"),
    "recently captioned": ("caption_at DESC, id DESC", "COALESCE(caption_at, '')", "DESC"),
    "file name": ("path ASC, id ASC", "path", "ASC"),
}
SORTS = tuple(_SORT_SQL)
DEFAULT_SORT = "newest"
_HAS_FAILURE = "EXISTS (SELECT 1 FROM caption_failures f WHERE f.image_id=images.id)"


@dataclass
class BrowseQuery:
    """What the grid shows: caption words, attribute values, caption source, review state, order."""

    text: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    state: str | None = None
    sort: str = DEFAULT_SORT


def _where(query: BrowseQuery) -> tuple[str, list[Any]]:
    """The SQL WHERE clause (over ``images``) of a query and its parameters; InvalidInputError when unknown."""
    clauses, params = ["deleted_at IS NULL"], []
    text = check_filter_text(query.text, "caption_contains", "The caption filter") or ""
    for word in text.split():
        clauses.append("caption LIKE ? ESCAPE '\\'")
        params.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    for key, value in query.attributes.items():
        if key not in ATTRIBUTE_COLUMNS:
            raise InvalidInputError(f"Unknown attribute {key!r}; use one of {', '.join(ATTRIBUTE_COLUMNS)}")
        if value and value.strip():
            clauses.append(f"attr_{key}=?")
            params.append(value.strip().lower())
    if query.source:
        source = query.source.strip().lower()
        if source == SOURCE_NONE:
            clauses.append("caption_source IS NULL")
        elif source in CAPTION_SOURCES:
            clauses.append("caption_source=?")
            params.append(source)
        else:
            raise InvalidInputError(f"Unknown caption source {query.source!r}; use one of {SOURCE_FILTERS}")
    if query.state:
        state = query.state.strip().lower()
        if state == FAILED:
            clauses.append(f"caption IS NULL AND {_HAS_FAILURE}")
        elif state in REVIEW_STATES:
            clauses.append("review_state=?")
            params.append(state)
        else:
            raise InvalidInputError(f"Unknown review state {query.state!r}; use one of {STATE_FILTERS}")
    return " AND ".join(clauses), params


def _sort(query: BrowseQuery) -> tuple[str, str, str]:
    """ORDER BY clause, key expression and direction of the query's sort; InvalidInputError when unknown."""
    if query.sort not in _SORT_SQL:
        raise InvalidInputError(f"Unknown sort {query.sort!r}; use one of {', '.join(SORTS)}")
    return _SORT_SQL[query.sort]


def _page_ids_sql(query: BrowseQuery) -> tuple[str, list[Any]]:
    """The ids of one page (LIMIT ? OFFSET ? still to bind): served by an index, not a full sort."""
    where, params = _where(query)
    return f"SELECT id FROM images WHERE {where} ORDER BY {_sort(query)[0]} LIMIT ? OFFSET ?", params


class BrowseMixin(CatalogBase):
    """Filtered, sorted and paged reads of the ``images`` table."""

    def count_matching(self, query: BrowseQuery) -> int:
        """How many live images match ``query``."""
        where, params = _where(query)
        _sort(query)  # an unknown sort is refused before any work, as when paging
        return int(self._execute(f"SELECT COUNT(*) FROM images WHERE {where}", params)[0][0])

    def page_records(self, query: BrowseQuery, limit: int, offset: int) -> list[ImageRecord]:
        """Up to ``limit`` matching images after skipping ``offset`` of them, in the query's order."""
        ids_sql, params = _page_ids_sql(query)
        order = _sort(query)[0]
        # ids first through the covering index, then the rows: deep pages stay cheap
        rows = self._execute(f"SELECT * FROM images WHERE id IN ({ids_sql}) ORDER BY {order}", [*params, limit, offset])
        return [ImageRecord.from_row(r) for r in rows]

    def explain_page(self, query: BrowseQuery, limit: int, offset: int) -> str:
        """SQLite's query plan for finding one page's ids (to check that it uses an index)."""
        ids_sql, params = _page_ids_sql(query)
        rows = self._execute(f"EXPLAIN QUERY PLAN {ids_sql}", [*params, limit, offset])
        return " ".join(str(row[3]) for row in rows)

    def matching_ids(self, query: BrowseQuery) -> list[str]:
        """Ids of every live image matching ``query``, in its order."""
        where, params = _where(query)
        return [r[0] for r in self._execute(f"SELECT id FROM images WHERE {where} ORDER BY {_sort(query)[0]}", params)]

    def next_matching(self, query: BrowseQuery, after_id: str | None = None) -> str | None:
        """The first image matching ``query`` after ``after_id`` in its order (wrapping round), or None."""
        where, params = _where(query)
        order, key, direction = _sort(query)
        if after_id:
            current = self._execute(f"SELECT {key} AS k, id FROM images WHERE id=?", (after_id,))
            if current:
                op = "<" if direction == "DESC" else ">"
                rows = self._execute(
                    f"SELECT id FROM images WHERE {where} AND ({key} {op} ? OR ({key} = ? AND id {op} ?))"
                    f" ORDER BY {order} LIMIT 1",
                    [*params, current[0]["k"], current[0]["k"], after_id],
                )
                if rows:
                    return str(rows[0][0])
        rows = self._execute(
            f"SELECT id FROM images WHERE {where} AND id != ? ORDER BY {order} LIMIT 1", [*params, after_id or ""]
        )
        return str(rows[0][0]) if rows else None

    def state_counts(self) -> dict[str, int]:
        """Live images per review state, plus ``failed`` (captioning failed, no caption), uncaptioned, total."""
        counts = {state: 0 for state in STATE_FILTERS}
        for row in self._execute(
            "SELECT review_state, COUNT(*) FROM images WHERE deleted_at IS NULL GROUP BY review_state"
        ):
            counts[row[0]] = int(row[1])
        uncaptioned = "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL AND caption IS NULL"
        counts[FAILED] = int(self._execute(f"{uncaptioned} AND {_HAS_FAILURE}")[0][0])
        counts["uncaptioned"] = int(self._execute(uncaptioned)[0][0])
        counts["total"] = sum(counts[s] for s in REVIEW_STATES)
        return counts

    def source_counts(self) -> dict[str, int]:
        """Live captioned images per caption source (``human``, ``claude-live``, ...), most first."""
        rows = self._execute(
            "SELECT caption_source, COUNT(*) AS n FROM images WHERE deleted_at IS NULL AND caption IS NOT NULL"
            " GROUP BY caption_source ORDER BY n DESC, caption_source"
        )
        return {row[0] or "unknown": int(row[1]) for row in rows}
