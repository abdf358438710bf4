"""compare/base/report.py: the one table writer (plain and markdown) every command prints with."""

from __future__ import annotations

import pytest

from compare.base.report import table


def test_markdown_table_pads_columns_under_a_rule() -> None:
    text = table(["model", "batch"], [["784-16-16-10", 32], ["784-8-10", 512]], style="markdown")
    assert text.splitlines() == [
        "| model        | batch |",
        "| ------------ | ----- |",
        "| 784-16-16-10 | 32    |",
        "| 784-8-10     | 512   |",
    ]


def test_plain_table_right_aligns_numbers() -> None:
    assert table(["name", "n"], [["a", 5], ["bb", 12]]).splitlines() == ["name   n", "----  --", "a      5", "bb    12"]


def test_unknown_style_names_the_choices() -> None:
    with pytest.raises(ValueError, match="plain, markdown"):
        table(["a"], [[1]], style="html")
