"""The embedded toy world: multi-step left-to-right arithmetic, generated from a seed.

A problem is an expression such as ``47+8*6-9`` evaluated strictly left to right. Its
reference solution performs one operation per step, steps separated by a blank line,
and ends with the answer in ``\\boxed{}``::

    Compute 47+8*6-9 from left to right.

    47+8=55

    55*6=330

    330-9=321

    \\boxed{321}

Difficulty has two knobs, the number of operations (``min_ops``..``max_ops``) and
``max_value``, the bound on every running value:

* ``max_value = 999`` (the default world): a two-digit first operand, then one-digit
  operands, running values up to three digits. Products of two- and three-digit numbers
  and carries are where the models differ: the small model (2 layers) rarely gets a
  three-digit product right, the big one (4 layers) usually does, and a good process
  reward tells them apart.
* ``max_value = 99`` (the easy variant tests use): one-digit operands, values below
  100 — both models solve it nearly always.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from gsi.backends.law import STEP_SEPARATOR

OPS = ("+", "-", "*")
MAX_VALUE = 999  # the default world's bound on running values
EASY_MAX_VALUE = 99  # the easy variant: one-digit operands, values below 100
DEFAULT_MIN_OPS, DEFAULT_MAX_OPS = 3, 4
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


def operand_range(op: str | None, max_value: int) -> tuple[int, int]:
    """[low, high) of an operand: the first one (``op`` None), an addend or subtrahend,
    or a factor, in a world whose running values stay in [0, ``max_value``]."""
    if max_value <= EASY_MAX_VALUE:
        return (1, 10)
    if op is None:
        return (10, 100)
    return (2, 10) if op == "*" else (1, 10)


def sample_problem(
    rng: np.random.Generator,
    min_ops: int = DEFAULT_MIN_OPS,
    max_ops: int = DEFAULT_MAX_OPS,
    max_value: int = MAX_VALUE,
) -> ToyProblem:
    """Draw one problem whose running values all lie in [0, ``max_value``]."""
    if max_value < 9:
        raise ValueError(f"max_value={max_value} is too small: it must be >= 9")
    while True:
        k = int(rng.integers(min_ops, max_ops + 1))
        ops = tuple(OPS[int(i)] for i in rng.integers(0, len(OPS), size=k))
        operands = tuple(
            int(rng.integers(*operand_range(op, max_value))) for op in (None, *ops)
        )
        problem = ToyProblem(operands, ops)
        if all(0 <= v <= max_value for v in problem.values()):
            return problem


def generate_problems(
    count: int,
    seed: int,
    heldout: bool,
    min_ops: int = DEFAULT_MIN_OPS,
    max_ops: int = DEFAULT_MAX_OPS,
    max_value: int = MAX_VALUE,
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
                f"operations and values up to {max_value}; ask for fewer problems"
            )
        p = sample_problem(rng, min_ops, max_ops, max_value)
        if is_heldout(p) != heldout or p.expr in seen:
            continue
        seen.add(p.expr)
        out.append(p)
    return out


def easy_training_problem(rng: np.random.Generator) -> ToyProblem:
    """One training problem of the easy variant (2-3 operations, values below 100)."""
    while True:
        p = sample_problem(rng, 2, 3, EASY_MAX_VALUE)
        if not is_heldout(p):
            return p


def training_problem(rng: np.random.Generator) -> ToyProblem:
    """One training problem (never a held-out one) from the training mixture: the
    default world with 1-5 operations three times in four, else the easy variant."""
    while True:
        if rng.random() < 0.75:
            p = sample_problem(rng, 1, 5, MAX_VALUE)
        else:
            p = sample_problem(rng, 1, 4, EASY_MAX_VALUE)
        if not is_heldout(p):
            return p


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
