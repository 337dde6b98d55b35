"""ReferenceSet: the labelled records an index is built from, with where each came from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from valueguard.reference.readers import read_reference
from valueguard.reference.record import ReadReport, ReferenceRecord


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ReferenceFile:
    """One reference file read into a ReferenceSet: its name, hash, format and record count."""

    name: str
    sha256: str
    format: str
    records: int


@dataclass
class ReferenceSet:
    """Labelled reference records (deduplicated) with the files they came from and the reports of reading them."""

    records: list[ReferenceRecord]
    files: list[ReferenceFile] = field(default_factory=list)
    reports: list[ReadReport] = field(default_factory=list)
    duplicates: int = 0

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> ReferenceSet:
        """Read every file; a (prompt, response) pair seen twice is kept once (data_hybrid.jsonl repeats
        trustworthy_data.jsonl upstream) and counted in `duplicates`."""
        if not paths:
            raise ValueError("no reference files given")
        records: list[ReferenceRecord] = []
        files, reports, seen, duplicates = [], [], set(), 0
        for p in paths:
            report = ReadReport(str(p))
            for rec in read_reference(p, report):
                key = (rec.prompt, rec.response, rec.label_kind)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                records.append(rec)
            reports.append(report)
            files.append(ReferenceFile(Path(p).name, sha256_file(p), report.format, report.records))
        return cls(records, files, reports, duplicates)

    @classmethod
    def from_records(cls, records: Iterable[ReferenceRecord]) -> ReferenceSet:
        return cls(list(records))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ReferenceRecord]:
        return iter(self.records)

    def value_matrix(self) -> np.ndarray:
        """rows × 10 float32, in the basic-value order."""
        return np.stack([r.values.to_array() for r in self.records]).astype(np.float32)


def fulcra_files(data_dir: str | Path) -> list[Path]:
    """Every FULCRA reference file present under DATA_DIR/fulcra: the default reference set."""
    folder = Path(data_dir) / "fulcra"
    return sorted(p for p in folder.glob("*.jsonl") if p.is_file()) if folder.is_dir() else []
