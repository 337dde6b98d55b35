"""Reference data: labelled (prompt, response, value vector) records and where they come from."""

from valueguard.reference.dataset import ReferenceFile, ReferenceSet, fulcra_files, sha256_file
from valueguard.reference.readers import parse_label, read_reference
from valueguard.reference.record import ReadReport, ReferenceRecord, write_canonical

__all__ = [
    "ReadReport",
    "ReferenceFile",
    "ReferenceRecord",
    "ReferenceSet",
    "fulcra_files",
    "parse_label",
    "read_reference",
    "sha256_file",
    "write_canonical",
]
