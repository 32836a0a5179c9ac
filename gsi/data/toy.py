"""The embedded toy world's evaluation problems as a data set."""

from __future__ import annotations

from gsi.types import Problem


class ToyArithmetic:
    """The embedded toy world's evaluation problems (held out from training)."""

    def __init__(
        self,
        name: str = "toy_arith",
        num_problems: int = 500,
        seed: int = 1234,
        min_ops: int = 3,
        max_ops: int = 4,
        max_value: int = 999,
        grader: str = "exact_number",
    ) -> None:
        self.name = name
        self.num_problems = num_problems
        self.seed = seed
        self.min_ops = min_ops
        self.max_ops = max_ops
        self.max_value = max_value
        self.grader = grader

    def load(self) -> list[Problem]:
        from gsi.toy.task import generate_problems

        problems = generate_problems(
            self.num_problems, self.seed, True, self.min_ops, self.max_ops, self.max_value
        )
        return [
            Problem(
                id=f"{self.name}-{self.seed}-{i:05d}",
                prompt=p.prompt,
                answer=str(p.answer),
                question=p.prompt,  # what the reward model reads
            )
            for i, p in enumerate(problems)
        ]
