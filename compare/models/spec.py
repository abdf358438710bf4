"""A model spec: which family, and the values of that family's options. A leaf module.

    >>> spec = ModelSpec("mlp", {"hidden": (16, 16), "activation": "relu", "batch_norm": False, "dropout": 0.0})
    >>> spec["hidden"]
    (16, 16)

Specs are made complete (every option of the family filled in, validated) by
`compare.models.make_spec`, never by hand outside tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    family: str = "mlp"  # a name in compare.models.FAMILIES
    options: Mapping[str, Any] = field(default_factory=dict)  # option name (as the argparse dest) -> value

    def __getitem__(self, name: str) -> Any:
        return self.options[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def to_dict(self) -> dict:
        """{"model": family, option: value, ...} with tuples as lists, for JSON reports and checkpoints."""
        return {"model": self.family, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}}
