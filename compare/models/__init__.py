"""The model registry: `--model NAME` picks a family, and the family builds every variant from one spec.

    >>> from compare.models import FAMILIES, make_spec, build
    >>> spec = make_spec("mlp", hidden=(16, 16))        # the lesson's 784-16-16-10 network
    >>> model = build(spec, "scratch", input_size=784, num_classes=10)   # or "torch", "engine"

A family (one file in this folder) declares the options it reads, their defaults, and how to
build its hand-written (scratch), torch and engine variants, which share parameter names and
shapes, so state copies across. Nothing outside this folder knows a family by name: the loop,
the verdict, the tables and the plots ask the family.

Adding a family: write `compare/models/NAME.py` with a `FAMILY = Family(...)` and add it to
`FAMILIES` below.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping

from compare.base.errors import UsageError
from compare.models import cnn, lstm, mlp, vit
from compare.models.family import IMPLEMENTATIONS, Family, ModelOption, SplitPair, TrainingDefaults
from compare.models.spec import ModelSpec

FAMILIES: dict[str, Family] = {family.name: family for family in (mlp.FAMILY, cnn.FAMILY, vit.FAMILY, lstm.FAMILY)}
DEFAULT_FAMILY = "mlp"

__all__ = ["FAMILIES", "IMPLEMENTATIONS", "Family", "ModelOption", "ModelSpec", "SplitPair", "TrainingDefaults",
           "add_model_options", "build", "family_of", "make_spec", "parse_spec", "spec_from_args", "spec_text"]


def family_of(spec_or_name: ModelSpec | str) -> Family:
    name = spec_or_name if isinstance(spec_or_name, str) else spec_or_name.family
    if name not in FAMILIES:
        raise UsageError(f"unknown model family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def all_options() -> dict[str, ModelOption]:
    """Every family's options, once each (families may share one, such as --activation)."""
    options: dict[str, ModelOption] = {}
    for family in FAMILIES.values():
        for option in family.options:
            if options.setdefault(option.dest, option) is not option:
                raise RuntimeError(f"two different options are named {option.dest!r}; a shared option must be "
                                   "one ModelOption object (compare/models/family.py)")
    return options


def users_of(option: ModelOption) -> list[str]:
    return [name for name, family in FAMILIES.items() if option in family.options]


def add_model_options(parser: argparse.ArgumentParser, base: ModelSpec | None = None) -> None:
    """--model and every family's options; each option's help says which families read it and its defaults.

    `base`: a command's own default model (family and option values), shown and used instead of the
    family's defaults (the playground's network is 2-16-16-2 tanh)."""
    default = base.family if base else DEFAULT_FAMILY
    group = parser.add_argument_group(
        "model", "the network: --model picks a family; the options below apply to the families named in their help")
    group.add_argument("--model", choices=list(FAMILIES), default=default,
                       help="; ".join(f"{f.name}: {f.summary}" for f in FAMILIES.values()) + f" (default: {default})")
    for option in all_options().values():
        families = users_of(option)
        defaults = ", ".join(f"{name}: {option.show(_defaults(name, base)[option.dest])}" for name in families)
        option.add_to(group, f"[{', '.join(families)}] {option.help} (default: {defaults})")


def _defaults(family: str, base: ModelSpec | None) -> Mapping[str, object]:
    return base.options if base is not None and base.family == family else FAMILIES[family].defaults


def make_spec(family: str = DEFAULT_FAMILY, **values: object) -> ModelSpec:
    """A complete spec: the family's defaults, overridden by `values`, then checked by the family."""
    fam = family_of(family)
    unknown = sorted(set(values) - set(fam.defaults))
    if unknown:
        raise UsageError(f"--model {fam.name} has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(fam.defaults)}")
    spec = ModelSpec(fam.name, {**fam.defaults, **values})
    fam.check(spec)
    return spec


def spec_from_args(args: argparse.Namespace, base: ModelSpec | None = None) -> ModelSpec:
    """The spec of the parsed command line (over `base`, a command's own defaults, when it is of the same
    family). An option given for another family is refused, not ignored."""
    family = family_of(args.model)
    given = dict(_defaults(family.name, base))
    for dest, option in all_options().items():
        value = getattr(args, dest)
        if value is None:
            continue
        if dest not in family.defaults:
            raise UsageError(f"{option.flag} is an option of --model {' or '.join(users_of(option))}, "
                             f"not of --model {family.name}")
        given[dest] = value
    return make_spec(family.name, **given)


def parse_spec(text: str) -> ModelSpec:
    """'mlp' (the family's defaults) or 'mlp:hidden=512,512/activation=tanh': a spec from one word, for
    options that take several models (bench --models). Values are read by the options' own types."""
    name, _, rest = text.partition(":")
    family = family_of(name)
    options = {o.dest: o for o in family.options}
    values: dict[str, object] = {}
    for item in filter(None, rest.split("/")):
        key, equals, raw = item.partition("=")
        dest = key.strip().replace("-", "_")
        if not equals or dest not in options:
            raise UsageError(f"{text!r}: expected NAME:OPTION=VALUE/..., with options of --model {name}: "
                             f"{', '.join(o.dest.replace('_', '-') for o in family.options)}")
        option = options[dest]
        kwargs = option.kwargs
        try:
            if kwargs.get("action") is argparse.BooleanOptionalAction:
                if raw.lower() not in ("true", "false", "on", "off"):
                    raise ValueError(f"expected true or false, got {raw!r}")
                values[dest] = raw.lower() in ("true", "on")
            else:
                values[dest] = kwargs.get("type", str)(raw)
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise UsageError(f"{text!r}: {option.flag}: {error}") from None
        if "choices" in kwargs and values[dest] not in kwargs["choices"]:
            raise UsageError(f"{text!r}: {option.flag} must be one of {', '.join(map(str, kwargs['choices']))}")
    return make_spec(family.name, **values)


def spec_text(spec: ModelSpec) -> str:
    """The inverse of parse_spec, listing the options that differ from the family's defaults."""
    family = family_of(spec)
    changed = [f"{k}={family_option_text(v)}" for k, v in spec.options.items() if family.defaults.get(k) != v]
    return spec.family + (":" + "/".join(changed) if changed else "")


def family_option_text(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value).lower()


def build(spec: ModelSpec, impl: str, input_size: int, num_classes: int) -> object:
    """The `impl` variant ("scratch", "torch" or "engine") of the model, in float32 on the CPU.

    Call `torch.manual_seed(seed)` first: from one seed every variant starts bit-identical.
    `input_size` is the number of values per example as the data holds them (784 for a flattened
    28x28 image); the family reshapes to what it needs (`Family.input_shape`).
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {impl!r}; choose one of {', '.join(IMPLEMENTATIONS)}")
    family = family_of(spec)
    if impl == "engine":
        problem = family.engine_problem(spec)
        if problem:
            raise UsageError(problem)
    try:
        return family.build(spec, impl, input_size, num_classes)
    except (RuntimeError, MemoryError) as error:
        if "memory" not in str(error).lower() and not isinstance(error, MemoryError):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(error))
        cause = f"one of its tensors alone needs {int(asked.group(1)) / 2**30:.1f} GiB" if asked else "out of memory"
        raise UsageError(f"not enough memory to build the {family.describe(spec, input_size, num_classes)} network "
                         f"({cause}); choose smaller sizes") from None


