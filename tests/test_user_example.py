"""The worked examples of docs/checking-your-backward.md: they run, they are tests/user_layers.py and
tests/user_second_order.py verbatim, and a mistake in the first fails with a message that says which tensor and where.

    pytest tests/test_user_example.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import user_layers
import user_layers_mistake
import user_second_order

DOC = Path(__file__).parents[1] / "docs" / "checking-your-backward.md"
EXAMPLES = ("user_layers.py", "user_second_order.py")  # each shown verbatim in the code block after its marker


def documented_code(name: str) -> str:
    after = DOC.read_text().split(f"<!-- tests/{name} -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_docs_show_the_example_file_verbatim(name):
    assert documented_code(name) == (Path(__file__).parent / name).read_text()


def test_the_users_own_tests_pass():
    user_layers.test_layer_norm_backward()
    user_layers.test_silu_backward()
    user_second_order.test_silu_every_derivative()


def test_a_mistake_in_the_users_layer_norm_fails_and_says_where():
    with pytest.raises(AssertionError) as info:
        user_layers_mistake.check_forgot_the_weight()
    message = str(info.value)
    assert message.splitlines()[0].endswith("the gradient is wrong for input")
    assert "dinput vs finite differences: at index" in message and "dinput vs torch.autograd" in message
