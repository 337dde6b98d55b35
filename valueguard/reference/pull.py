"""`valueguard data pull`: fill the data directory from a local mirror or from FULCRA's public upstream.

Upstream files are verified by their git blob id, which GitHub publishes for every file, so no other
checksum list has to be trusted. A mirror may hold `.dev` subsets of upstream files (whole lines, upstream
order); those cannot match the upstream blob and are copied as they are, and said so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from valueguard.errors import ValueGuardError

UPSTREAM_REPO = "microsoft/ValueCompass"
UPSTREAM_RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
_OLD = "b330e29c185eb5c24bb053d4c897a4e21d2af73b"
_NEW = "1c1d486fdb6066a7dd95047b4b34be592697d7c2"


@dataclass(frozen=True)
class DataFile:
    """One FULCRA file: where it goes locally, where it is upstream, and the git ids that verify it."""

    local: str  # path under the data directory
    upstream: str  # path in the upstream repository
    commit: str
    blob: str  # git blob id of the whole upstream file

    @property
    def dev_name(self) -> str:
        """The name a mirror gives its held-back subset of this file."""
        return self.local.removesuffix(".jsonl") + ".dev.jsonl"

    @property
    def url(self) -> str:
        return UPSTREAM_RAW.format(repo=UPSTREAM_REPO, commit=self.commit, path=self.upstream)


DATA_FILES: tuple[DataFile, ...] = (
    DataFile("fulcra/trustworthy_data.jsonl", "Value_FULCRA/data/trustworthy_data.jsonl", _OLD,
             "fc30d42d6149ad55bd5f783ab77dd5b78b0b5cef"),
    DataFile("fulcra/data_hybrid.jsonl", "Value_FULCRA/data/data_hybrid.jsonl", _OLD,
             "6001905bdf549c208f755f21b166280465c261e4"),
    DataFile("fulcra/harmless_test_mistral_mistral-large-latest.jsonl",
             "Value_FULCRA/src/value_alignment/harmless_test_mistral_mistral-large-latest.jsonl", _NEW,
             "db78825c1657d1dd0287b82e9c14478ed90f288b"),
    DataFile("fulcra/harmless_test_openai_gpt-35-turbo.jsonl",
             "Value_FULCRA/src/value_alignment/harmless_test_openai_gpt-35-turbo.jsonl", _NEW,
             "1397810e272ab2e0fbed4789b274e4ebb5ca8781"),
    DataFile("fulcra/harmless_test_openai_gpt-4.jsonl",
             "Value_FULCRA/src/value_alignment/harmless_test_openai_gpt-4.jsonl", _NEW,
             "7035b946adc6595008624e947a667a09aed51a03"),
    DataFile("hh-rlhf/helpful_test.jsonl", "Value_FULCRA/data/helpful/test.jsonl", _OLD,
             "2ecef803eba8fa3241245df00437e76334336119"),
    DataFile("saferlhf/test_questions.jsonl", "Value_FULCRA/data/saferlhf/test_questions.jsonl", _OLD,
             "ae412953a5762f2f33b948a1b98595a1bb3407a4"),
    DataFile("saferlhf/train_questions.jsonl", "Value_FULCRA/data/saferlhf/train_questions.jsonl", _OLD,
             "830dd76245c93124bde1a63a887a58797812772d"),
)


class DataPullError(ValueGuardError, RuntimeError):
    """The reference data could not be fetched or did not verify; nothing half-written is left."""


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


@dataclass(frozen=True)
class PulledFile:
    """What `data pull` did with one file (verified, copied, missing) and its size."""

    path: str  # relative to the data directory
    status: str  # "verified", "already verified", "copied subset (not verifiable)", "missing in mirror"
    bytes: int


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".pull-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)


def _already_there(dest: Path, blob: str) -> bool:
    return dest.is_file() and git_blob_id(dest.read_bytes()) == blob


def pull_from_mirror(mirror: str | Path, dest: str | Path) -> list[PulledFile]:
    mirror, dest = Path(mirror), Path(dest)
    if not mirror.is_dir():
        raise DataPullError(f"mirror folder not found: {mirror}")
    pulled = []
    for f in DATA_FILES:
        full, dev = mirror / f.local, mirror / f.dev_name
        if _already_there(dest / f.local, f.blob):
            pulled.append(PulledFile(f.local, "already verified", (dest / f.local).stat().st_size))
        elif full.is_file():
            data = full.read_bytes()
            if git_blob_id(data) != f.blob:
                raise DataPullError(
                    f"{full} does not match upstream {f.upstream}@{f.commit[:8]} "
                    f"(git blob {git_blob_id(data)}, expected {f.blob}): the mirror is damaged or out of date"
                )
            _write_atomic(dest / f.local, data)
            pulled.append(PulledFile(f.local, "verified", len(data)))
        elif dev.is_file():
            target = dest / f.dev_name
            if not (target.is_file() and target.read_bytes() == dev.read_bytes()):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(dev, target)
            pulled.append(PulledFile(f.dev_name, "copied subset (not verifiable)", target.stat().st_size))
        else:
            pulled.append(PulledFile(f.local, "missing in mirror", 0))
    if not any(p.path.startswith("fulcra/") and p.bytes for p in pulled):
        raise DataPullError(f"{mirror} holds no FULCRA file (looked for {DATA_FILES[0].local} and the like)")
    return pulled


def pull_from_upstream(
    dest: str | Path,
    fetch: Callable[[str], bytes] | None = None,
    progress: Callable[[DataFile], None] | None = None,
) -> list[PulledFile]:
    dest = Path(dest)
    fetch = fetch or _fetch
    pulled = []
    for f in DATA_FILES:
        target = dest / f.local
        if _already_there(target, f.blob):
            pulled.append(PulledFile(f.local, "already verified", target.stat().st_size))
            continue
        if progress:
            progress(f)
        data = fetch(f.url)
        got = git_blob_id(data)
        if got != f.blob:
            raise DataPullError(f"{f.url}: git blob {got} does not match the expected {f.blob}; nothing written")
        _write_atomic(target, data)
        pulled.append(PulledFile(f.local, "verified", len(data)))
    return pulled


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise DataPullError(
            f"could not download {url} ({e}). Either run `valueguard data pull` where the network reaches "
            f"GitHub, or copy from a local mirror of the files: `valueguard data pull --from DIR`"
        ) from e
