"""A short soak run: one daemon replies to several wake-to-reply cycles in a row."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import AUDIO_DIR, PROJECT_DIR

pytestmark = pytest.mark.models

CYCLES = 6
SOAK_TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    """Run `python -m assistant.soak` once; return the finished process and its JSON report."""
    folder = tmp_path_factory.mktemp("soak")
    report_path = folder / "report.json"
    # Module-scoped, so conftest's per-test isolation does not apply yet: drop
    # the caller's ASSISTANT_ variables here.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("ASSISTANT_") or name == "ASSISTANT_CACHE_DIR"}
    process = subprocess.run(
        [sys.executable, "-m", "assistant.soak", "--cycles", str(CYCLES), "--warm-up", "2",
         "--report", str(report_path), "--work-dir", str(folder), "--audio-dir", str(AUDIO_DIR)],
        capture_output=True, text=True, timeout=SOAK_TIMEOUT_SECONDS, cwd=PROJECT_DIR, env=env,
    )
    assert report_path.is_file(), process.stderr[-3000:]
    return process, json.loads(report_path.read_text())


def test_soak_exits_0(soak):
    process, _ = soak
    assert process.returncode == 0, process.stdout + process.stderr[-3000:]
    assert process.stdout.strip().endswith("OK")


def test_soak_has_no_error_event(soak):
    _, report = soak
    assert report["errors"] == 0, report["error_messages"]


def test_soak_replies_to_every_cycle(soak):
    _, report = soak
    assert report["wakes"] == CYCLES
    assert report["replies"] == CYCLES
    assert report["cycles_completed"] == CYCLES
    assert report["cycles_without_reply"] == []


def test_soak_reports_memory_growth(soak):
    _, report = soak
    assert len(report["rss_mb"]) == CYCLES
    assert report["rss_after_warm_up_mb"] == report["rss_mb"][1]
    assert report["rss_end_mb"] == report["rss_mb"][-1]
    assert isinstance(report["rss_growth_percent"], float)
    assert report["peak_rss_mb"] >= max(report["rss_mb"])


def test_soak_fails_without_recordings(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "assistant.soak", "--cycles", "1", "--audio-dir", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_DIR,
    )
    assert process.returncode == 1
    assert "audio file not found" in process.stderr
    assert "--audio-dir" in process.stderr
