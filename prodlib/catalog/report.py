"""What a catalog reader read, kept, skipped and repaired (:class:`ReadReport`), and its result; notebook 01."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["CatalogError", "CatalogResult", "ReadReport"]

_MAX_EXAMPLES = 3
_SNIPPET = 80


class CatalogError(ValueError):
    """A catalog that cannot be read at all (unknown format, missing path, missing columns)."""


@dataclass
class ReadReport:
    """What a reader read, kept, skipped (reason -> count, ``kept + sum(skipped) == records_read``) and repaired
    inside records (``cleaned``), with up to three short examples per reason; explained in notebook 01."""

    source: str
    records_read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    cleaned: Counter = field(default_factory=Counter)
    damage: str = ""
    """Where a damaged file stopped the read and how much of it could not be read (empty when none)."""

    def skip(self, reason: str, example: Any = None) -> None:
        """Count one skipped record under ``reason`` (keeping a short example)."""
        self.skipped[reason] += 1
        self._example(reason, example)

    def fix(self, reason: str, example: Any = None, n: int = 1) -> None:
        """Count ``n`` repairs of kind ``reason`` made inside a record."""
        self.cleaned[reason] += n
        self._example(reason, example)

    def add(self, other: ReadReport) -> None:
        """Add what ``other`` counted (the report of one line, made in a 2014 worker process)."""
        self.records_read += other.records_read
        self.skipped.update(other.skipped)
        self.cleaned.update(other.cleaned)
        for reason, examples in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine += examples[: _MAX_EXAMPLES - len(mine)]
        self.notes += other.notes
        self.damage = self.damage or other.damage

    def _example(self, reason: str, example: Any) -> None:
        if example is not None and len(mine := self.examples.setdefault(reason, [])) < _MAX_EXAMPLES:
            text = " ".join((example if isinstance(example, str) else repr(example)).split())
            mine.append(text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…")

    @property
    def n_skipped(self) -> int:
        """The number of records skipped, for every reason."""
        return int(sum(self.skipped.values()))

    @property
    def consistent(self) -> bool:
        """``kept + skipped == records_read`` (always true for a finished read)."""
        return self.kept + self.n_skipped == self.records_read

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for ``dataset_stats.json`` and manifests)."""
        return {"source": self.source, "records_read": self.records_read, "kept": self.kept,
                "skipped": dict(self.skipped.most_common()), "cleaned": dict(self.cleaned.most_common()),
                "duplicates": self.duplicates, "examples": {k: list(v) for k, v in self.examples.items()},
                "notes": list(self.notes), "damage": self.damage}

    def to_frame(self) -> pd.DataFrame:
        """One row per reason: ``kind`` (skipped/cleaned), ``reason``, ``count``, ``example``."""
        rows = [(kind, r, n, (self.examples.get(r) or [""])[0])
                for kind, counts in (("skipped", self.skipped), ("cleaned", self.cleaned))
                for r, n in counts.most_common()]
        return pd.DataFrame(rows, columns=["kind", "reason", "count", "example"])

    def __str__(self) -> str:
        skipped = ", ".join(f"{n:,} {r}" for r, n in self.skipped.most_common()) or "none"
        text = f"{self.source}: read {self.records_read:,} records, kept {self.kept:,}; skipped {skipped}"
        if self.cleaned:
            text += "; repaired " + ", ".join(f"{r} ({n:,})" for r, n in self.cleaned.most_common())
        return " ".join([text + ".", *(n if n.endswith(".") else n + "." for n in self.notes)])


@dataclass
class CatalogResult:
    """A catalog table (the contract in ``prodlib.catalog.CATALOG_COLUMNS``) and the report of its reading."""

    table: pd.DataFrame
    report: ReadReport

    def __iter__(self) -> Iterator[Any]:  # allows ``table, report = read_x(...)``
        return iter((self.table, self.report))
