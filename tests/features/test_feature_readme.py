"""The README's Features example runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_features_example_runs(tmp_path: Path) -> None:
    (example,) = [
        b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL) if "# features.py" in b
    ]
    (tmp_path / "features.py").write_text(example)
    for _ in range(2):  # a second run finds the job already created
        out = subprocess.run([sys.executable, "features.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("completed [('find_event', <EventStatus.COMPLETED: 'completed'>, None)")
        assert "('send_reminder', <EventStatus.COMPLETED: 'completed'>, 'job_" in out.stdout
    # the CLI imports it (--app) without running the example's own feature run: one run, the command's
    ductape = Path(sys.executable).parent / "ductape"
    args = ["feature", "run", "event_reminder", "--app", "features:ductape", "--env", "dev"]
    given = '{"event_id": "ev-2", "email": "ada@example.com", "date": "2026-05-02"}'
    out = subprocess.run(
        [str(ductape), *args, "--product-tag", "events-app", "--input", given, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["status"] == "completed" and run["input"]["event_id"] == "ev-2"
    listed = subprocess.run(
        [str(ductape), "feature", "runs", "--app", "features:ductape", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sorted(r["input"]["event_id"] for r in json.loads(listed.stdout)) == ["ev-1", "ev-1", "ev-2"]
