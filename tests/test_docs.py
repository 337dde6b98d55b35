"""Every fenced code block in README.md and docs/*.md runs, so the docs cannot drift from the code.

The convention, by the fence's language:
- python: a page's blocks run top to bottom in one namespace (a block sees what the blocks above it defined),
  in a working directory of the page's own, with a default index: VALUEGUARD_DATA_DIR is a temp folder whose
  `index/` is the session test index, so `ValueGuard.from_policy("default")` and `ValueEstimator.default()` work.
- bash: the block runs in bash (`set -euo pipefail`) in a fresh temp folder, with the venv's bin first on PATH, a
  data directory like the python blocks' and $SHARED_DATA set to the reference mirror. Every `valueguard ...`
  command must exit 0 or 1 (1 = flagged); a `make TARGET` line is checked with `make -n TARGET` from the repo
  root (the target exists; nothing is built). The block whose first line is `# pip path` is the README's pip
  install, run by tests/test_packaging.py in a fresh virtualenv: here it is only found, exactly once.
- yaml: a block with a `rules:` key is a policy and must load with `Policy.from_yaml`; any other must parse.
- text: sample output and synopses (`valueguard audit INPUT... [--policy P]` is not a command): not run.
Any other fence language, or none, fails: nothing escapes the convention.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from valueguard.policy.model import Policy

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "yaml", "text")
PIP_PATH = "# pip path"
FENCE = re.compile(r"^(\s*)```(.*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    number: int        # 0-based, in page order
    language: str
    line: int          # 1-based line of the opening fence
    code: str

    @property
    def id(self) -> str:
        """The test id: page and block number (0-based, counting every fence on the page)."""
        return f"{self.page.relative_to(REPO)}-block{self.number}"

    @property
    def name(self) -> str:
        return f"{self.id} (line {self.line})"


def blocks_of(page: Path) -> list[Block]:
    """The page's fenced blocks. An unclosed fence is an error, so a block cannot swallow the rest of a page."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, language = m.group(1), m.group(2).strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{page.relative_to(REPO)}:{i + 1}: a code fence that is never closed")
        code = "\n".join(line.removeprefix(indent) for line in lines[i + 1:end]) + "\n"
        found.append(Block(page, len(found), language, i + 1, code))
        i = end + 1
    return found


BLOCKS = [b for page in PAGES for b in blocks_of(page)]


def by_language(*languages: str) -> list:
    """The blocks this file runs: the pip path is tests/test_packaging.py's (found exactly once, below)."""
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.language in languages and not is_pip_path(b)]


def is_pip_path(block: Block) -> bool:
    return block.language == "bash" and block.code.splitlines()[0].strip() == PIP_PATH


# ------------------------------------------------------------------------------------------------ environment


@pytest.fixture(scope="module")
def docs_data_dir(tmp_path_factory: pytest.TempPathFactory, index_dir: Path) -> Path:
    """A data directory whose default index is the session test index (600 real FULCRA rows)."""
    directory = tmp_path_factory.mktemp("docs-data")
    (directory / "index").symlink_to(index_dir, target_is_directory=True)
    return directory


@pytest.fixture()
def docs_env(monkeypatch: pytest.MonkeyPatch, docs_data_dir: Path, shared_data: Path) -> dict[str, str]:
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(docs_data_dir))
    monkeypatch.setenv("SHARED_DATA", str(shared_data))
    return dict(os.environ)


# ------------------------------------------------------------------------------------------------ the convention


def test_every_block_follows_the_convention():
    wrong = [f"{b.name}: ```{b.language}" for b in BLOCKS if b.language not in LANGUAGES]
    assert not wrong, f"code blocks must be one of {', '.join(LANGUAGES)} (tests/test_docs.py):\n" + "\n".join(wrong)


def test_the_pages_and_their_blocks_are_found():
    """A parser that found nothing would pass every test below."""
    assert len(PAGES) >= 8 and len(blocks_of(REPO / "README.md")) >= 5
    assert {"python", "bash", "yaml", "text"} <= {b.language for b in BLOCKS}


def test_readme_has_exactly_one_pip_path_block_and_the_two_commands():
    pip = [b for b in BLOCKS if is_pip_path(b)]
    assert [b.page for b in pip] == [REPO / "README.md"], [b.name for b in pip]
    steps = [line.split()[:3] for line in pip[0].code.splitlines()[1:] if line.strip()]
    assert steps[0] == ["pip", "install", "torch==2.13.0"]
    assert steps[1][:2] == ["pip", "install"] and "[langchain]" in steps[1][2]
    assert steps[2:4] == [["valueguard", "data", "pull"], ["valueguard", "index", "build"]]
    assert len(steps) == 5 and "check" in steps[4][:3] and steps[4][0] == "valueguard"   # then one check
    readme = [b.code for b in BLOCKS if b.page.name == "README.md" and b.language == "bash"]
    assert any(re.search(r"^make demo\b", c, re.M) and re.search(r"^make test\b", c, re.M) for c in readme)


def test_readme_front_page_is_short():
    assert (REPO / "README.md").stat().st_size <= 10 * 1024


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES[1:] if f"(docs/{p.name}" not in readme]
    assert not missing, missing


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to hyphens."""
    prose = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)   # not code lines
    headings = re.findall(r"^#+ (.+)$", prose, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_relative_links_images_and_anchors_resolve():
    broken = []
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            path = page.parent / target if target else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
                broken.append(f"{page.relative_to(REPO)}: {target}#{anchor}")
    assert not broken, broken


# ------------------------------------------------------------------------------------------------ python

_namespaces: dict[Path, dict] = {}
_workdirs: dict[Path, Path] = {}    # the page's own working directory, where its blocks write files
_ran: dict[Path, int] = {}          # how many python blocks of the page ran, in order
_failed: dict[Path, str] = {}


def _python_blocks(page: Path) -> list[Block]:
    return [b for b in BLOCKS if b.page == page and b.language == "python"]


@pytest.mark.parametrize("block", by_language("python"))
def test_python_block_runs(block: Block, docs_env, tmp_path_factory, monkeypatch):
    """Runs the page's blocks up to this one (those before it first, if a -k selection skipped them)."""
    page_blocks = _python_blocks(block.page)
    if block.page not in _namespaces:
        _namespaces[block.page] = {"__name__": f"docs_{block.page.stem.replace('-', '_')}"}
        _workdirs[block.page] = tmp_path_factory.mktemp(f"docs-{block.page.stem}")
        _ran[block.page] = 0
    namespace = _namespaces[block.page]
    monkeypatch.chdir(_workdirs[block.page])
    while _ran[block.page] <= page_blocks.index(block):
        current = page_blocks[_ran[block.page]]
        _ran[block.page] += 1
        if block.page in _failed:
            pytest.fail(f"an earlier block of the page failed: {_failed[block.page]}", pytrace=False)
        try:
            exec(compile(current.code, current.name, "exec"), namespace)
        except BaseException:
            _failed[block.page] = current.name
            raise


# ------------------------------------------------------------------------------------------------ bash

# valueguard and make as the convention runs them: a command's exit code above 1 (or a failed dry run) ends the
# block with a message naming it; `exit` in a function ends the script.
BASH_PRELUDE = r"""
set -euo pipefail
valueguard() {
  local rc=0
  echo "valueguard $*" >>"$DOCS_RAN"
  command valueguard "$@" || rc=$?
  if [ "$rc" -gt 1 ]; then echo "docs: 'valueguard $*' exited $rc" >&2; exit 97; fi
}
make() {
  echo "make $*" >>"$DOCS_RAN"
  command make --no-print-directory -C "$DOCS_REPO" -n "$@" >/dev/null \
    || { echo "docs: 'make -n $*' failed: no such target?" >&2; exit 98; }
}
"""


def bash_env(docs_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    env = dict(docs_env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)  # this tree's code
    env["VALUEGUARD_DATA_DIR"] = str(data_dir)
    env["DOCS_REPO"] = str(REPO)
    env["DOCS_RAN"] = str(data_dir.parent / "commands-ran.txt")      # one line per command the prelude ran
    return env


def commands_in(code: str) -> int:
    """The block's valueguard and make command lines (a heredoc's body is data, not commands)."""
    n, heredoc_end = 0, None
    for line in code.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        if m := re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line):
            heredoc_end = m.group(1)
        n += bool(re.match(r"\s*(valueguard|make)\s", line))
    return n


@pytest.mark.parametrize("block", by_language("bash"))
def test_bash_block_runs(block: Block, docs_env, docs_data_dir, tmp_path):
    # Its own data directory: a block may pull data into it. The index is the session's, read-only here.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "index").symlink_to((docs_data_dir / "index").resolve(), target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(["bash", "-c", BASH_PRELUDE + block.code], cwd=work, env=bash_env(docs_env, data_dir),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"{block.name} failed ({proc.returncode}):\n{block.code}\n"
                                  f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    log = tmp_path / "commands-ran.txt"
    ran = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert len(ran) == commands_in(block.code) > 0, f"{block.name}: ran {ran}"


def test_bash_convention_catches_a_failing_command(docs_env, docs_data_dir, tmp_path):
    """The prelude is what makes a wrong command fail: an error (exit 2) and a missing make target must fail, an
    audit that flags (exit 1) must not."""
    env = bash_env(docs_env, tmp_path)

    def run(code: str) -> int:
        return subprocess.run(["bash", "-c", BASH_PRELUDE + code], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120).returncode

    assert run("valueguard check --no-such-option 'text'\n") == 97    # click's usage error: exit 2
    assert run("make no-such-target\n") == 98
    assert run("make demo\nvalueguard --help\n") == 0
    assert run("false\necho never\n") == 1                         # set -e: any other failing line fails it


# ------------------------------------------------------------------------------------------------ yaml


@pytest.mark.parametrize("block", by_language("yaml"))
def test_yaml_block_loads(block: Block):
    data = yaml.safe_load(block.code)
    if isinstance(data, dict) and "rules" in data:
        policy = Policy.from_yaml(block.code, block.name)
        assert [r.id for r in policy.rules] == [r["id"] for r in data["rules"]]
        if re.search(r"This is `policies/default\.yaml`", _text_before(block)):
            assert policy == Policy.load("default"), "the annotated copy differs from policies/default.yaml"


def _text_before(block: Block) -> str:
    """The paragraph just above a block, where a page says what the block is."""
    lines = block.page.read_text(encoding="utf-8").splitlines()[:block.line - 1]
    return "\n".join(lines[-3:])
