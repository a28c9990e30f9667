"""The CLI's progress bar: its first rate is measured, not the work done before it appeared."""

from __future__ import annotations

from admin.common import TqdmProgress


def test_first_report_does_not_claim_an_absurd_rate() -> None:
    progress = TqdmProgress()
    progress(32, 1000, "ingesting")  # a whole batch done in the instant the bar appears
    bar = progress.bar
    assert bar is not None
    meter = bar.format_meter(**bar.format_dict)
    progress.close()
    assert "32/1000" in meter and "?img/s" in meter  # no rate yet, instead of 32 images in ~0 s
