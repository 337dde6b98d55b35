"""The local LLM (SmolLM2 through `llm` and llama-cpp-python), run where a native crash cannot take the caller down.

llama.cpp is native code: built with native CPU detection on a machine whose CPU advertises AMX, it dies with
SIGILL where the hypervisor withholds the AMX tile state. A crash like that ends the whole Python process, so the
preflight makes one short generation in a child process and turns a death by signal into a clear message with the
rebuild command. `python -m valueguard.integrations.local_llm` runs it (`make setup` does, after the install).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

MODEL_ID = "SmolLM2"
# The portable build: no native detection, so no instruction the build machine merely advertises.
PORTABLE_CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF -DGGML_AVX=ON "
                       "-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF "
                       "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF")
REBUILD_COMMAND = (f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-cache-dir '
                   "--no-binary llama-cpp-python --no-deps llama-cpp-python")

_GENERATE = """
import sys, llm
model = llm.get_model(sys.argv[1])
sys.stdout.write(model.prompt(sys.argv[2], system=sys.argv[3] or None).text())
"""


class LocalLLMCrashed(RuntimeError):
    """The local model's process died (a native crash) or failed; the message says how to rebuild it."""


@dataclass(frozen=True)
class ChildResult:
    """What a child process left: its exit code (negative: the signal that killed it) and its output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def signal_name(self) -> str | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


def run_child(args: list[str], *, timeout: float, env: dict[str, str] | None = None) -> ChildResult:
    """Runs `python ARGS...` in a fresh process (never a fork: torch and OpenMP threads do not survive one)."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return ChildResult(proc.returncode, proc.stdout, proc.stderr)


def crash_message(what: str, result: ChildResult) -> str:
    """One clear sentence for a child that did not finish, with the rebuild command where it was a native crash."""
    tail = result.stderr.strip().splitlines()[-3:]
    detail = f" Last output: {' | '.join(tail)}" if tail else ""
    if result.signal_name:
        hint = ""
        if result.signal_name == "SIGILL":
            hint = (" llama-cpp-python was built with instructions this CPU or hypervisor does not allow (often AMX "
                    "under a VM). Rebuild it portably:\n    " + REBUILD_COMMAND)
        return f"{what} died with {result.signal_name}.{hint}{detail}"
    return f"{what} failed with exit code {result.returncode}.{detail}"


def generate(prompt: str, *, system: str | None = None, model: str = MODEL_ID, timeout: float = 300) -> str:
    """One generation by the local model in a child process; a crash raises LocalLLMCrashed, never kills us."""
    result = run_child(["-c", _GENERATE, model, prompt, system or ""], timeout=timeout)
    if result.returncode != 0:
        raise LocalLLMCrashed(crash_message(f"the local model {model!r}", result))
    return result.stdout


def preflight(*, model: str = MODEL_ID, timeout: float = 300) -> str:
    """A short generation in a child process: the text, or LocalLLMCrashed saying why and how to rebuild."""
    return generate("Say hello in one short sentence.", model=model, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:]) == ["--cmake-args"]:  # for the Makefile's portable build
        print(PORTABLE_CMAKE_ARGS)
        return 0
    try:
        text = preflight()
    except LocalLLMCrashed as e:
        print(f"local LLM preflight failed: {e}", file=sys.stderr)
        return 1
    print(f"local LLM preflight: {MODEL_ID} answered {len(text)} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
