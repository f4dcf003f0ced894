"""The JupyterLab extension's record reader, unit-tested in TypeScript under Node (no browser).

Runs `jlpm test` in labextension/ (tsc, then Node's built-in test runner on labextension/test/)
and checks that every test ran and passed, and that the extension reads the schema version
jupyter_qwq writes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jupyter_qwq.session import SCHEMA_VERSION

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"
EXPECTED_TESTS = 30


@pytest.mark.timeout(360)
def test_typescript_unit_tests_pass():
    jlpm = shutil.which("jlpm")
    assert jlpm, "jlpm (from jupyterlab) must be on PATH"
    result = subprocess.run(
        [jlpm, "test"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=300, check=False
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Node's TAP reporter ("# pass 15") or its spec reporter ("ℹ pass 15")
    summary = r"^(?:#|ℹ) (tests|pass|fail|skipped|todo|cancelled) (\d+)$"
    counts = dict(re.findall(summary, output, re.MULTILINE))
    assert counts == {
        "tests": str(EXPECTED_TESTS),
        "pass": str(EXPECTED_TESTS),
        "fail": "0",
        "skipped": "0",
        "todo": "0",
        "cancelled": "0",
    }, output


def test_extension_reads_the_schema_version_python_writes():
    source = (LABEXTENSION / "src" / "record.ts").read_text()
    declared = re.search(r"^export const SCHEMA_VERSION = (\d+);$", source, re.MULTILINE)
    assert declared and int(declared.group(1)) == SCHEMA_VERSION
