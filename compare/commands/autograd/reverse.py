"""`python -m compare autograd` (--mode reverse, the default): one batch of real data, gradients three ways.

The same network (any family whose engine variant can be built: `Family.engine_problem`) from
the same seed, three times:

- hand:    the family's hand-written variant in scratch/ (mlp.py, cnn.py, vit.py, sequence.py, ...), whose
           backward formulas are written out layer by layer
- engine:  its variant on scratch/engine_nn.py, only a forward pass; scratch/engine.py derives the backward
- torch:   its variant in torch_impl/, differentiated by torch.autograd

For each parameter the largest relative error of each pair (hand vs engine, hand vs torch,
engine vs torch), judged with the named tolerance of the dtype (compare/base/agreement.py).
Then the engine's computation graph of the loss, as text and, with --graph, as Graphviz DOT.
"""

from __future__ import annotations

from compare.base import agreement
from compare.base.report import table
from compare.pictures.graph import graph_nodes, graph_text, write_graph
from compare.training.config import Config
from compare.training.learners import build_engine, build_scratch, build_torch, parameter_mismatches
from compare.training.loop import first_batch
from compare.training.verdict import print_summary

PAIRS = (("hand", "engine"), ("hand", "torch"), ("engine", "torch"))  # (actual, expected)


def pair_name(a: str, b: str) -> str:
    return f"{a}_vs_{b}"


def run(config: Config, data) -> dict:
    x, y = first_batch(data.x_train, data.y_train, config.batch_size, config.seed)
    shape = dict(input_size=x.shape[1], num_classes=len(data.classes))
    hand, engine, reference = (build_scratch(config, **shape), build_engine(config, **shape),
                               build_torch(config, **shape))
    mismatched = sorted(set(parameter_mismatches(hand, reference)) | set(parameter_mismatches(engine, reference)))
    print(f"Initial parameters of hand, engine and torch: "
          f"{'bit-identical' if not mismatched else 'DIFFERENT in ' + ', '.join(mismatched)}")

    losses = {"hand": hand.forward_backward(x, y), "torch": reference.forward_backward(x, y)}
    engine.model.zero_grad()
    loss_graph = engine.loss_graph(x, y)  # kept, with its gradients, to print the graph below
    loss_graph.backward()
    losses["engine"] = loss_graph.data
    print(f"Loss on one batch of {len(x)} {config.dataset} images: "
          + ", ".join(f"{k} {v.item():.15g}" for k, v in losses.items()))

    tol = agreement.gradient_tolerance(config.torch_dtype)
    grads = {"hand": hand.named_gradients(), "engine": engine.named_gradients(), "torch": reference.named_gradients()}
    checks = [("loss", {k: v.detach() for k, v in losses.items()})]
    checks += [(name, {k: grads[k][name] for k in grads}) for name in grads["hand"]]
    rows, parameters, failures = [], [], []
    worst = {pair_name(a, b): 0.0 for a, b in PAIRS}
    passed_pairs = {pair_name(a, b): True for a, b in PAIRS}
    for name, tensors in checks:
        results = {pair_name(a, b): agreement.compare(f"{name} ({a} vs {b})", tensors[a], tensors[b], tol)
                   for a, b in PAIRS}
        for key, result in results.items():
            worst[key] = max(worst[key], result.max_rel_error)
            passed_pairs[key] &= result.passed
            if not result.passed:
                failures.append(result.message)
        ok = all(r.passed for r in results.values())
        shape_text = "x".join(map(str, tensors["hand"].shape)) or "scalar"
        rows.append([name, shape_text, *(r.max_rel_error for r in results.values()), ok])
        parameters.append(dict(name=name, shape=list(tensors["hand"].shape), passed=ok,
                               max_rel_error={k: r.max_rel_error for k, r in results.items()}))
    print("\nLargest relative error max|a - e| / max|e| of each pair (a vs e):")
    print(table(["", "shape", "hand vs engine", "hand vs torch", "engine vs torch", "pass"], rows))
    for message in failures:
        print("  " + message)
    print(f"Tolerance: {tol.describe()}")

    nodes = graph_nodes(loss_graph)
    print(f"\nThe engine's computation graph of this loss ({len(nodes)} nodes, each after its inputs; "
          "|grad| is the norm of d loss / d node):")
    print(graph_text(loss_graph))
    graph_report = dict(nodes=len(nodes), dot=None, svg=None)
    if config.extra["graph"]:
        dot_path, svg_path, message = write_graph(loss_graph, config.extra["graph"])
        print(f"Graph written to {dot_path}. {message}")
        graph_report.update(dot=str(dot_path), svg=str(svg_path) if svg_path else None)

    passed = not mismatched and all(passed_pairs.values())
    print(f"\nVerdict: {'PASSED' if passed else 'FAILED'} ("
          + ", ".join(f"{k.replace('_', ' ')} {v:.2e}" for k, v in worst.items()) + ")")
    failed = [k.replace("_", " ") for k, ok in passed_pairs.items() if not ok]
    lines = dict(
        implementations=(f"agree (worst relative error {max(worst.values()):.1e} over the three pairs; tolerance "
                         f"{tol.describe()})") if passed else
        ("disagree: the initial parameters differ" if mismatched else f"disagree ({', '.join(failed)})"),
        training="not trained: one batch",
        next=("python -m compare train --engine autograd trains the engine's network against torch's" if passed else
              "the mismatch lines above name the tensor, the index and both values; the pair that fails without "
              "the others says which side is wrong"))
    print_summary(lines)
    return dict(
        agreement=dict(passed=passed, identical_start=not mismatched, max_rel_error=worst,
                       pairs_passed=passed_pairs, tolerance=tol.rtol, tolerance_rule=tol.describe(),
                       loss={k: v.item() for k, v in losses.items()}, summary=lines),
        parameters=parameters,
        graph=graph_report,
    )

