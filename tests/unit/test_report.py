"""Plots and tables of run outcomes: files are real PNGs; M = 2 and M = 3 both draw."""

from __future__ import annotations

import pytest

from paretopo.app.report import (
    Checkpoint,
    markdown_table,
    plot_front_over_checkpoints,
    plot_method_fronts,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("m", [2, 3])
def test_front_over_checkpoints_writes_a_png(tmp_path, m):
    cps = [Checkpoint(s, tuple(0.1 * s + 0.05 * k for k in range(m))) for s in range(5)]
    cps.append(Checkpoint(5, tuple([0.9] + [0.0] * (m - 1))))
    names = ["accuracy", "tool_efficiency", "length_efficiency"][:m]
    out = plot_front_over_checkpoints(cps, names, tmp_path / "f.png", ideal=[1.0] * m)
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 5000


def test_front_plot_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError, match="3 objectives, names given for 2"):
        plot_front_over_checkpoints([Checkpoint(0, (1.0, 2.0, 3.0))], ["a", "b"],
                                    tmp_path / "f.png")
    with pytest.raises(ValueError, match="no validation outcomes"):
        plot_front_over_checkpoints([], ["a", "b"], tmp_path / "f.png")


def test_method_fronts_png(tmp_path):
    out = plot_method_fronts({"grpo": [[0.5, 0.2], [0.4, 0.6]], "paretopo": [[0.6, 0.7]]},
                             ["accuracy", "tool_efficiency"], tmp_path / "m.png")
    assert out.read_bytes()[:8] == PNG


def test_markdown_table():
    text = markdown_table(["Method", "EM"], [["grpo", 0.5], ["paretopo", 0.61234]])
    assert text.splitlines() == ["| Method | EM |", "|---|---|", "| grpo | 0.500 |",
                                 "| paretopo | 0.612 |"]
