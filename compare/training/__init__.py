"""The comparison machinery: both implementations trained in one loop, and the verdict on whether they agree.

config.py: the settings of one run (Config); learners.py: one interface over scratch, the engine and torch;
optimizers.py: the optimizer and schedule a Config names, the same class on both sides; loop.py: the one
training loop and the one evaluation loop; resync.py: re-synchronized checks (both put in one state, one step
compared); verdict.py: what a run says (agree or not, how the trajectories went); state.py: a learner's whole
training state in a form both sides take; checkpoint.py: both trained models saved and loaded; diagnostics.py:
is training healthy; metrics.py: accuracy, confusion, precision and recall.
"""
