"""The embedded toy world: multi-step left-to-right arithmetic, generated from a seed.

A problem is an expression such as ``3+5*2-4`` evaluated strictly left to right. Its
reference solution performs one operation per step, steps separated by a blank line,
and ends with the answer in ``\\boxed{}``::

    Compute 3+5*2-4 from left to right.

    3+5=8

    8*2=16

    16-4=12

    \\boxed{12}

Every intermediate value stays in [0, 99] so the task is learnable by tiny models, while
two-digit multiplication keeps it hard enough to separate a weak model from a strong one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from gsi.backends.law import STEP_SEPARATOR

OPS = ("+", "-", "*")
MAX_VALUE = 99
PROMPT_TEMPLATE = "Compute {expr} from left to right.\n\n"

_EXPR_RE = re.compile(r"Compute ([0-9+\-*]+) from left to right\.")
_STEP_RE = re.compile(r"^(-?\d+)([+\-*])(\d+)=(-?\d+)$")
_BOX_RE = re.compile(r"^\\boxed\{(-?\d+)\}$")


@dataclass(frozen=True)
class ToyProblem:
    """One arithmetic problem: operands and operators, evaluated left to right."""

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def expr(self) -> str:
        parts = [str(self.operands[0])]
        for op, b in zip(self.ops, self.operands[1:]):
            parts += [op, str(b)]
        return "".join(parts)

    @property
    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(expr=self.expr)

    def values(self) -> list[int]:
        """Running values v_0 .. v_k (v_0 is the first operand)."""
        vals = [self.operands[0]]
        for op, b in zip(self.ops, self.operands[1:]):
            vals.append(apply(vals[-1], op, b))
        return vals

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def solution_steps(self) -> list[str]:
        """The reference steps, each ending with the blank-line separator except the last."""
        vals = self.values()
        steps = [
            f"{vals[i]}{op}{b}={vals[i + 1]}{STEP_SEPARATOR}"
            for i, (op, b) in enumerate(zip(self.ops, self.operands[1:]))
        ]
        return steps + [f"\\boxed{{{vals[-1]}}}"]


def apply(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def problem_key(expr: str) -> int:
    """A stable 64-bit hash of an expression (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(expr.encode()).digest()[:8], "little")


def is_heldout(problem: ToyProblem) -> bool:
    """About 1 in 8 expressions are reserved for evaluation and never used in training."""
    return problem_key(problem.expr) % 8 == 0


def sample_problem(rng: np.random.Generator, min_ops: int = 2, max_ops: int = 3) -> ToyProblem:
    """Draw one problem whose running values all lie in [0, MAX_VALUE]."""
    while True:
        k = int(rng.integers(min_ops, max_ops + 1))
        operands = tuple(int(x) for x in rng.integers(1, 10, size=k + 1))
        ops = tuple(OPS[int(i)] for i in rng.integers(0, len(OPS), size=k))
        problem = ToyProblem(operands, ops)
        if all(0 <= v <= MAX_VALUE for v in problem.values()):
            return problem


def generate_problems(
    count: int, seed: int, heldout: bool, min_ops: int = 2, max_ops: int = 3
) -> list[ToyProblem]:
    """``count`` distinct problems from the held-out (evaluation) or training part."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[ToyProblem] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 200 * count + 10_000:
            raise ValueError(
                f"could not draw {count} distinct toy problems with {min_ops}-{max_ops} "
                "operations; ask for fewer problems"
            )
        p = sample_problem(rng, min_ops, max_ops)
        if is_heldout(p) != heldout or p.expr in seen:
            continue
        seen.add(p.expr)
        out.append(p)
    return out


def parse_prompt(text: str) -> ToyProblem:
    """Recover the problem from its prompt text (the verifier sees only text)."""
    m = _EXPR_RE.search(text)
    if not m:
        raise ValueError(f"not a toy arithmetic prompt: {text[:60]!r}")
    tokens = re.findall(r"\d+|[+\-*]", m.group(1))
    return ToyProblem(tuple(int(t) for t in tokens[0::2]), tuple(tokens[1::2]))


# Reward levels of the programmatic step verifier (a process reward in [0, 1]).
R_CORRECT = 1.0
R_TRUE_BUT_OFF_PATH = 0.25
R_WRONG = 0.0
PREFIX_ERROR_FACTOR = 0.5


def step_is_correct(problem: ToyProblem, index: int, step: str) -> bool:
    """Whether ``step`` is exactly the reference step number ``index`` (0-based)."""
    ref = problem.solution_steps()
    return index < len(ref) and step.strip() == ref[index].strip()


def verify_step(problem: ToyProblem, previous: list[str], step: str) -> float:
    """Process reward of ``previous + [step]``: how good the newest step is.

    1.0 for the correct next step after a correct prefix; 0.25 for a true equation that
    does not follow the problem (wrong operand or operator, or a stale value); 0.0 for a
    false equation, a malformed step, or a wrong or premature boxed answer. After a wrong
    earlier step every score is halved: the partial solution is already wrong.
    """
    index = len(previous)
    prefix_ok = all(step_is_correct(problem, i, s) for i, s in enumerate(previous))
    text = step.strip()
    if step_is_correct(problem, index, step):
        base = R_CORRECT
    else:
        m = _STEP_RE.match(text)
        if m and apply(int(m.group(1)), m.group(2), int(m.group(3))) == int(m.group(4)):
            base = R_TRUE_BUT_OFF_PATH
        else:
            base = R_WRONG
    return base if prefix_ok else base * PREFIX_ERROR_FACTOR
