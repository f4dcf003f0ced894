"""The package's public surface, and the shape of the code behind it."""

from __future__ import annotations

import json
import subprocess
import sys

import jupyter_qwq

PUBLIC = ["QwqError", "Session", "Solve", "Solving", "Vote", "__version__", "async_solve",
          "export_file", "export_session", "extract_answer", "last_session", "load_ipython_extension", "solve",
          "unload_ipython_extension", "vote"]


def test_the_public_names_are_the_documented_ones_and_all_resolve():
    assert sorted(jupyter_qwq.__all__) == sorted(PUBLIC)
    assert all(getattr(jupyter_qwq, name) is not None for name in PUBLIC)
    assert sorted(dir(jupyter_qwq)) == sorted(PUBLIC)


def loaded_after(statement: str) -> list[str]:
    """The jupyter_qwq modules (and a few heavy libraries) a fresh Python has after `statement`."""
    probe = (f"import sys, json\n{statement}\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('jupyter_qwq') or "
             "m in ('httpx', 'IPython', 'ipywidgets', 'jupyter_client', 'sympy'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_importing_the_package_loads_nothing_heavy():
    # `%load_ext` and `import jupyter_qwq` stay fast: the rest loads on first use
    assert loaded_after("import jupyter_qwq") == ["jupyter_qwq", "jupyter_qwq._version"]


def test_the_record_imports_no_view():
    loaded = loaded_after("import jupyter_qwq.session")
    assert not [m for m in loaded if m.startswith("jupyter_qwq.views")]
    assert "ipywidgets" not in loaded
