"""Mutants of the optimizers: each a small subclass of a correct scratch optimizer whose `step` has ONE
realistic bug, with its line in MUTANTS."""

from __future__ import annotations

import scratch
from compare.checking.mutants.subjects import ADAM, ADAMW, SGD_MOMENTUM, SGD_NESTEROV, Mutant


class AdamWithoutBiasCorrection(scratch.Adam):
    """m and v used as they are, not divided by 1 - beta^t: the first steps are ~3x too large."""

    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        for p, dp, m, v in zip(self.params, self.grads, self.exp_avgs, self.exp_avg_sqs, strict=True):
            g = dp.add(p, alpha=self.weight_decay) if self.weight_decay else dp
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-self.lr)


class AdamWDecayAfterUpdate(scratch.AdamW):
    """the weights shrunk by (1 - lr wd) after the Adam step instead of before it: the decay scales the update too."""

    def step(self) -> None:
        decay, self.weight_decay = self.weight_decay, 0.0
        super().step()
        self.weight_decay = decay
        for p in self.params:
            p.mul_(1 - self.lr * decay)


class SGDWeightDecayAfterMomentum(scratch.SGD):
    """wd * p added to the step after the momentum buffer instead of to the gradient before it."""

    def step(self) -> None:
        for i, (p, dp) in enumerate(zip(self.params, self.grads, strict=True)):
            b = self.momentum_buffers[i]
            if b is None:
                b = self.momentum_buffers[i] = dp.clone()
            else:
                b.mul_(self.momentum).add_(dp, alpha=1 - self.dampening)
            p.add_(b.add(p, alpha=self.weight_decay), alpha=-self.lr)


class SGDNesterovWithoutLookahead(scratch.SGD):
    """Nesterov's step taken along the momentum buffer alone (g <- b), not g + mu * b: classic momentum."""

    def step(self) -> None:
        self.nesterov = False
        try:
            super().step()
        finally:
            self.nesterov = True


MUTANTS = [
    Mutant("adam-without-bias-correction", ADAM, AdamWithoutBiasCorrection),
    Mutant("adamw-decay-after-update", ADAMW, AdamWDecayAfterUpdate),
    Mutant("sgd-weight-decay-after-momentum", SGD_MOMENTUM, SGDWeightDecayAfterMomentum),
    Mutant("sgd-nesterov-without-lookahead", SGD_NESTEROV, SGDNesterovWithoutLookahead),
]
