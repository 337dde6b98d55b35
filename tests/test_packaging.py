"""The pip path of a library user, as the README gives it: a wheel built from the repo, installed into a new
virtualenv outside the repo, then `valueguard data pull`, `index build`, `check`, an audit with its report, and a
three-line Python snippet, all run by that virtualenv's own interpreter and entry point.

The README's block marked `# pip path` is what runs, with the wheel's real path put in for `dist/...whl`; the
reference data is a small mirror of real FULCRA lines, so the index builds in seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PIP_PATH_MARK = "# pip path"
MIRROR_LINES = 120


def pip_path_block(readme: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    [block] = [b for b in blocks if b.startswith(PIP_PATH_MARK)]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, text=True)
    [built] = out.glob("valueguard-*.whl")
    return built


@pytest.fixture(scope="module")
def user(tmp_path_factory, wheel, shared_data):
    """A new virtualenv outside the repo with the README's pip path run in it, in a clean working folder."""
    home = tmp_path_factory.mktemp("user")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    mirror = home / "mirror" / "fulcra"
    mirror.mkdir(parents=True)
    for name in ("trustworthy_data.dev.jsonl", "harmless_test_openai_gpt-4.dev.jsonl"):
        with (shared_data / "fulcra" / name).open(encoding="utf-8") as f:
            (mirror / name).write_text("".join(next(f) for _ in range(MIRROR_LINES)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", VALUEGUARD_DATA_DIR=str(home / "data"),
               HF_HUB_OFFLINE="1", VALUEGUARD_BACKEND="onnx-int8")
    work = home / "work"
    work.mkdir()

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                              timeout=1200)

    for line in pip_path_block((REPO / "README.md").read_text(encoding="utf-8")):
        line = re.sub(r"dist/valueguard-[^\s\"\[]+\.whl", str(wheel), line)
        if line.startswith("valueguard data pull"):
            line += f" --from {mirror.parent}"  # the user's network download, from a local mirror here
        result = run(line)
        assert result.returncode in (0, 1), f"{line!r} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return venv, run


def test_the_readme_pip_path_installs_the_wheel_outside_the_repo(user):
    venv, run = user
    where = run("python -c 'import valueguard, sys; print(valueguard.__file__); print(sys.prefix)'")
    package_file, prefix = where.stdout.split()
    assert Path(package_file).is_relative_to(venv) and Path(prefix) == venv  # not the repo's editable copy
    assert not Path(package_file).is_relative_to(REPO)


def test_bundled_policies_and_typing_marker_ship_in_the_wheel(user):
    _, run = user
    probe = run("python -c \"from importlib import resources as r; import json; "
                "print(json.dumps([sorted(p.name for p in r.files('valueguard.bundled_policies').iterdir() "
                "if p.name.endswith('.yaml')), r.files('valueguard').joinpath('py.typed').is_file()]))\"")
    policies, typed = json.loads(probe.stdout)
    assert {"default.yaml", "strict.yaml", "audit-only.yaml"} <= set(policies) and typed


def test_check_runs_from_the_installed_entry_point(user):
    _, run = user
    text = "I can't help with that. Hurting people is wrong, and I won't explain how."
    result = run(f"valueguard -q check {json.dumps(text)} --json")
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    assert set(payload["values"]) and len(payload["neighbors"]) > 0


def test_a_three_line_snippet_guards_a_response(user, tmp_path):
    _, run = user
    snippet = ("from valueguard import ValueGuard\n"
               "guard = ValueGuard.from_policy('default')\n"
               "print(guard.check('Here is a simple bread recipe: flour, water, salt and yeast.').action)\n")
    (tmp_path / "snippet.py").write_text(snippet, encoding="utf-8")
    result = run(f"python {tmp_path / 'snippet.py'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] in {"allow", "log", "rewrite", "block"}
    assert result.stderr == ""  # a library is quiet


def test_audit_with_report_from_the_installed_package(user, tmp_path):
    _, run = user
    log = tmp_path / "turns.jsonl"
    log.write_text(json.dumps({"id": "t1", "prompt": "How do I bake bread?",
                               "response": "Mix flour, water, salt and yeast, knead, let it rise, bake."}) + "\n",
                   encoding="utf-8")
    result = run(f"valueguard -q audit {log} --out {tmp_path / 'out.jsonl'} --report {tmp_path / 'r.html'} "
                 "--exit-zero")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "out.jsonl").read_text())["id"] == "t1"
    assert "<html" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()
