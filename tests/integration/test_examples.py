"""The example notebooks, executed as a new user would run them, where this machine can."""

from __future__ import annotations

import shlex
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_qwq.config import make_config
from jupyter_qwq.notebook.magics import solve_parser
from jupyter_qwq.session import MIME_TYPE

from vllm_stand_in import vllm_install

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_notebook(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def records(nb) -> list[dict]:
    return [o["data"][MIME_TYPE] for c in nb.cells for o in c.get("outputs", []) if MIME_TYPE in o.get("data", {})]


def stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream")


def test_examples_are_stored_clean_and_valid():
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"


@pytest.mark.llamacpp
@pytest.mark.timeout(1200)
def test_quickstart_runs_on_the_embedded_default(tmp_path):
    nb = run_notebook("quickstart.ipynb", tmp_path)
    (record,) = records(nb)
    assert record["engine"]["kind"] == "llamacpp" and len(record["branches"]) == 3
    assert "answer:" in stdout(nb.cells[4])
    assert "engine  llamacpp" in stdout(nb.cells[5])


@pytest.mark.llamacpp
@pytest.mark.timeout(1200)
def test_explore_branches_runs_and_compares_branches(tmp_path):
    nb = run_notebook("explore-branches.ipynb", tmp_path)
    solved = records(nb)
    assert len(solved) == 2 and all(len(r["branches"]) == 3 for r in solved)
    assert all(r["config"]["max_tokens"] == 350 and r["config"]["rounds"] == 1 for r in solved)
    tables = [o["data"]["text/html"] for o in nb.cells[5].outputs if "text/html" in o.get("data", {})]
    assert len(tables) == 2 and all("<th>branch</th>" in t for t in tables)
    assert stdout(nb.cells[7]).startswith("\\frac{1}{2} [('\\\\frac{1}{2}', 3), ('2', 1)]")


def test_the_gpu_example_configures_a_valid_vllm_launch(monkeypatch, tmp_path):
    """No GPU here: check what the notebook asks for is valid, and the vLLM command it builds
    with a GPU build of vLLM (a stand-in that only tells its version)."""
    from jupyter_qwq.engines.runtime import new_server

    nb = nbformat.read(EXAMPLES / "gpu-vllm.ipynb", as_version=4)
    settings = {}
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if line.startswith("%config Solve.") and "os.environ" not in line:
                name, value = line.removeprefix("%config Solve.").split("=", 1)
                settings[name.strip()] = eval(value)  # the notebook's own literals
            if line.startswith("%%solve"):
                solve_parser().parse_args(shlex.split(line.removeprefix("%%solve")))
    assert settings.pop("vllm_command") == "/opt/vllm/bin/vllm"  # the notebook's example path
    config = make_config(None, **settings, vllm_command=vllm_install(tmp_path, "0.11.2", monkeypatch))
    assert (config.engine, config.model, config.max_tokens) == ("vllm", "Qwen/QwQ-32B", 32768)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")  # as on an 8-GPU box
    command = new_server("vllm", config).command()
    assert command[:3] == [config.vllm_command, "serve", "Qwen/QwQ-32B"]
    joined = " ".join(command)
    assert "--tensor-parallel-size 8" in joined and "--host 127.0.0.1" in joined
    assert "--reasoning-parser deepseek_r1" in joined and "--max-model-len 40960" in joined


@pytest.mark.llamacpp
@pytest.mark.timeout(1200)
def test_export_example_exports_the_solve_it_just_ran(tmp_path):
    nb = run_notebook("export.ipynb", tmp_path)
    (record,) = records(nb)
    assert record["engine"]["kind"] == "llamacpp"
    roles = stdout(nb.cells[4])
    assert "'problem'" in roles and "'provenance'" in roles
    exported = nbformat.read(tmp_path / "sum-of-odds.solved.ipynb", as_version=4)
    nbformat.validate(exported)
    assert "export.ipynb" in stdout(nb.cells[6])  # the unsaved copy says what to do, or exports
