"""Large frames get a smaller window instead of running out of memory: the plan, and a run that
follows it to the end."""

from __future__ import annotations

import subprocess
import sys

import cv2
import pytest

from bgclean.pipeline import memory


def test_ordinary_frames_keep_the_configured_window():
    fit = memory.plan(432, 240, 16, 30, budget=4e9)
    assert (fit.window, fit.history) == (16, 30)
    assert not fit.lowered_from(16, 30)


@pytest.mark.parametrize("budget_gb", [8, 4, 2, 1.5])
def test_4k_frames_fit_the_budget_window_first(budget_gb):
    fit = memory.plan(3840, 2160, 16, 30, budget=budget_gb * 1e9)
    assert fit.estimate <= budget_gb * 1e9
    assert fit.lowered_from(16, 30)
    if fit.history < 30:  # history gives way only once the window is at its floor
        assert fit.window <= memory.MIN_WINDOW
    # the largest window that fits: one frame more would not
    if fit.window < 16 and fit.history == 30:
        assert memory.estimate_bytes(3840, 2160, fit.window + 1, 30) > budget_gb * 1e9


def test_a_budget_below_the_fixed_part_still_runs_at_the_smallest():
    fit = memory.plan(3840, 2160, 16, 30, budget=0.5e9)
    assert (fit.window, fit.history) == (1, 0)


def test_no_budget_known_keeps_the_configuration():
    assert memory.plan(3840, 2160, 16, 30, budget=None).window == 16


def test_the_default_budget_is_a_share_of_the_free_memory():
    free = memory.available_bytes()
    assert free is not None and free > 0
    assert memory.budget_bytes(0) == pytest.approx(free * memory.SHARE_OF_AVAILABLE, rel=0.2)
    assert memory.budget_bytes(3) == 3e9


def test_a_run_under_a_tight_ceiling_says_so_and_writes_every_frame(tmp_path, schoolgirls_frames):
    frames, masks = schoolgirls_frames  # 432x240: the fixed part plus 10 frames fit in 0.5 GB
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "bgclean", str(frames), "-o", str(out),
                          "--masks", str(masks), "--memory", "0.5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "holding 10 frames at once (history 30) instead of 16 (history 30)" in run.stderr
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [p.name for p in sorted(frames.iterdir())]
    assert cv2.imread(str(written[-1])).shape == (240, 432, 3)
