"""The training loop shared by the toy models (the LMs and the PRM): AdamW with a linear
warm-up then a cosine decay to 10 %, gradient clipping at 1, a loss average logged every
100 steps. Bit-reproducible given the seeds and the thread count."""

from __future__ import annotations

import logging
import math
from typing import Callable

log = logging.getLogger(__name__)


def optimizer(model, lr: float, warmup: int, steps: int):
    """(AdamW, its learning-rate schedule) for ``steps`` steps."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def fit(
    model,
    opt,
    sched,
    steps: int,
    step_loss: Callable[[], object],
    label: str,
    stop_at: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> float | None:
    """Train ``model`` on a ``steps``-step schedule; ``step_loss()`` draws a batch and
    returns its loss. ``stop_at`` ends training early at that step of the same schedule
    (an early-stopped model is reproducible: the first ``stop_at`` steps do not depend on
    when training ends); ``on_step(done, loss_ema)`` is called after every step. Returns
    the exponential average of the loss at the end."""
    import torch

    model.train()
    loss_ema = None
    last = steps if stop_at is None else min(stop_at, steps)
    for step in range(last):
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if step % 100 == 0 or step == last - 1:
            log.info("%s step %d/%d loss %.4f", label, step + 1, last, loss_ema)
        if on_step is not None:
            on_step(step + 1, loss_ema)
    return loss_ema


def machine() -> dict:
    """Where weights were trained. Float results of training depend on the CPU's vector
    instructions (torch picks its kernels by them), so bit-for-bit retraining is only
    promised on the same ``cpu_capability`` and torch version."""
    import platform

    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": model, "torch": torch.__version__}
