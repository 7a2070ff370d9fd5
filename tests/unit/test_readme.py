"""The README's code runs as written (the quickstart and the testing example)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_quickstart_app_schedules_and_runs(tmp_path: Path) -> None:
    app = next(b for b in blocks() if "# app.py" in b)
    (tmp_path / "app.py").write_text(app)
    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'jobs.db'}"}
    out = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "report for sales" in out.stdout  # the job's cadence: runs now
    assert "completed=1" in out.stdout
    again = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr  # re-running does not trip over the existing job


def test_testing_example_passes() -> None:
    example = next(b for b in blocks() if "Sandbox(" in b)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    test = namespace["test_report_runs_at_nine_new_york_time"]
    assert callable(test)
    test()
