import pytest

from valueguard.reference import pull
from valueguard.reference.pull import DATA_FILES, DataPullError, git_blob_id, pull_from_mirror, pull_from_upstream


def test_git_blob_id_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_pull_from_mirror_verifies_full_files_and_copies_subsets(shared_data, tmp_path):
    pulled = {p.path: p.status for p in pull_from_mirror(shared_data, tmp_path)}
    assert pulled["hh-rlhf/helpful_test.jsonl"] == "verified"  # byte-for-byte upstream: blob id checked
    assert pulled["fulcra/trustworthy_data.dev.jsonl"] == "copied subset (not verifiable)"
    assert pulled["fulcra/data_hybrid.jsonl"] == "missing in mirror"
    assert (tmp_path / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl").read_bytes() == (
        shared_data / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl").read_bytes()
    again = {p.path: p.status for p in pull_from_mirror(shared_data, tmp_path)}
    assert again["hh-rlhf/helpful_test.jsonl"] == "already verified"


def test_a_damaged_mirror_file_is_refused(shared_data, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "hh-rlhf").mkdir(parents=True)
    (mirror / "fulcra").mkdir()
    (mirror / "fulcra" / "trustworthy_data.dev.jsonl").write_bytes(b"{}\n")
    (mirror / "hh-rlhf" / "helpful_test.jsonl").write_bytes(b"not the upstream file\n")
    with pytest.raises(DataPullError, match="does not match upstream Value_FULCRA/data/helpful/test.jsonl"):
        pull_from_mirror(mirror, tmp_path / "dest")


def test_upstream_pull_verifies_each_download(shared_data, tmp_path):
    # The network is replaced by the mirror's bytes; verification is the real code.
    by_url = {f.url: (shared_data / f.local) for f in DATA_FILES}

    def fetch(url):
        path = by_url[url]
        return path.read_bytes() if path.is_file() else b"truncated download"

    with pytest.raises(DataPullError, match="git blob .* does not match the expected fc30d42d"):
        pull_from_upstream(tmp_path, fetch=fetch)
    assert not (tmp_path / "fulcra" / "trustworthy_data.jsonl").exists()  # nothing unverified is written


def test_offline_with_no_mirror_names_both_ways_out(tmp_path, monkeypatch):
    # A closed port on this machine: the real downloader fails at once, as it does with no network.
    monkeypatch.setattr(pull, "UPSTREAM_RAW", "http://127.0.0.1:9/{repo}/{commit}/{path}")
    with pytest.raises(DataPullError, match=r"could not download .*valueguard data pull --from DIR"):
        pull_from_upstream(tmp_path)
