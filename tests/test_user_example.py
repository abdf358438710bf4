"""The worked example of docs/checking-your-backward.md: it runs, it is tests/user_layers.py verbatim, and a
mistake in it fails with a message that says which tensor and where.

    pytest tests/test_user_example.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import user_layers
import user_layers_mistake

DOC = Path(__file__).parents[1] / "docs" / "checking-your-backward.md"
EXAMPLE = Path(__file__).parent / "user_layers.py"
MARKER = "<!-- tests/user_layers.py -->"  # the docs' code block right after this line is the example file


def documented_code() -> str:
    after = DOC.read_text().split(MARKER, 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_docs_show_the_example_file_verbatim():
    assert documented_code() == EXAMPLE.read_text()


def test_the_users_own_tests_pass():
    user_layers.test_layer_norm_backward()
    user_layers.test_silu_backward()


def test_a_mistake_in_the_users_layer_norm_fails_and_says_where():
    with pytest.raises(AssertionError) as info:
        user_layers_mistake.check_forgot_the_weight()
    message = str(info.value)
    assert message.splitlines()[0].endswith("the gradient is wrong for input")
    assert "dinput vs finite differences: at index" in message and "dinput vs torch.autograd" in message
