"""Real parts, built once per session: the real MiniLM model, real FAISS, the real FULCRA files.

The session index holds ~600 rows drawn from prompt groups of folds 1-3; fold 0 (~1,250 rows, no prompt in
common with the index) is the held-out set the estimator and `audit` tests run on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.folds import group_folds
from valueguard.estimation.readout.knn import KnnReadOut
from valueguard.estimation.value_index import ValueIndex
from valueguard.reference import ReferenceSet, fulcra_files

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# `isolated` tests run in a child process (native code that may crash); pytester tests that plugin.
pytest_plugins = ["tests.isolation", "pytester"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
INDEX_ROWS_PER_KIND = 300


# The fast tier (`make test-fast`, `-m "not model"`) leaves out every test that loads a model: those using one of
# these fixtures, and the modules that make an embedder or an LLM themselves.
MODEL_FIXTURES = {"embedder", "index_dir", "estimator", "heldout_estimates", "knn_estimator", "knn_heldout_estimates",
                  "smollm2_db", "guard"}
MODEL_MODULES = {"tests/embedders/test_embedding.py", "tests/embedders/test_onnx_runtime.py", "tests/test_docs.py",
                 "tests/estimation/readout/test_pair.py", "tests/test_packaging.py", "tests/server/test_e2e_llama.py", "tests/integrations/test_smollm2.py"}


def pytest_configure(config: pytest.Config) -> None:
    if not (SHARED_DATA / "fulcra").is_dir():
        raise pytest.UsageError(f"the reference data mirror is missing: expected {SHARED_DATA}/fulcra")
    config.addinivalue_line("markers", "model: loads an embedding model or an LLM (left out by `make test-fast`)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.fspath)).relative_to(REPO).as_posix()
        if module in MODEL_MODULES or MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session", autouse=True)
def query_backend(tmp_path_factory: pytest.TempPathFactory):
    """The suite's fixtures and thresholds were measured with fp32 torch queries, so the session runs on the
    torch backend; the default onnx-int8 backend is tested on its own (embedders/test_embedding.py, embedders/test_onnx_runtime.py,
    cli/test_cli_backend.py, which unset this). ONNX exports are cached once for the session, whatever data
    directory a test sets."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VALUEGUARD_BACKEND", "torch")
    mp.setenv("VALUEGUARD_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
    yield "torch"
    mp.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def reference_full() -> ReferenceSet:
    return ReferenceSet.from_files(fulcra_files(SHARED_DATA))


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def split(reference_full: ReferenceSet) -> tuple[ReferenceSet, ReferenceSet]:
    """(index rows, held-out rows), grouped by prompt so no held-out prompt is in the index."""
    folds = group_folds([r.prompt for r in reference_full], 4, seed=7)
    rng = np.random.default_rng(7)
    chosen = []
    for kind in ("annotated", "model"):
        pool = [i for i, r in enumerate(reference_full.records) if folds[i] != 0 and r.label_kind == kind]
        chosen += sorted(rng.choice(pool, INDEX_ROWS_PER_KIND, replace=False).tolist())
    index_rows = ReferenceSet([reference_full.records[i] for i in chosen])
    heldout = ReferenceSet([r for i, r in enumerate(reference_full.records) if folds[i] == 0])
    return index_rows, heldout


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory, split, embedder) -> Path:
    directory = tmp_path_factory.mktemp("index")
    ValueIndex.build(split[0], embedder).save(directory)
    return directory


@pytest.fixture(scope="session")
def estimator(index_dir: Path, embedder) -> ValueEstimator:
    return ValueEstimator.from_index(index_dir, embedder=embedder)


@pytest.fixture(scope="session")
def heldout_estimates(estimator: ValueEstimator, split):
    heldout = split[1]
    return estimator.estimate_batch([r.response for r in heldout], [r.prompt for r in heldout])


@pytest.fixture(scope="session")
def knn_estimator(index_dir: Path, embedder) -> ValueEstimator:
    """The same index read out by plain kNN (its value model set aside): the baseline the model must beat."""
    index = ValueIndex.load(index_dir, model=embedder.model_id)
    return ValueEstimator(ValueIndex(index.store, KnnReadOut()), embedder)


@pytest.fixture(scope="session")
def knn_heldout_estimates(knn_estimator: ValueEstimator, split):
    heldout = split[1]
    return knn_estimator.estimate_batch([r.response for r in heldout], [r.prompt for r in heldout])
