"""Answer extraction and grading (the toy world's exact numeric match for now)."""

from __future__ import annotations

from typing import Callable


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text``, braces balanced; None if absent."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def exact_number(predicted: str | None, reference: str) -> bool:
    """Numeric equality of two plain numbers (``"012"`` equals ``"12"``)."""
    if predicted is None:
        return False
    try:
        return float(predicted) == float(reference)
    except ValueError:
        return predicted.strip() == reference.strip()


GRADERS: dict[str, Callable[[str | None, str], bool]] = {"exact_number": exact_number}


def get_grader(name: str) -> Callable[[str | None, str], bool]:
    try:
        return GRADERS[name]
    except KeyError:
        raise ValueError(f"dataset.grader={name!r} is not a grader; choose from {sorted(GRADERS)}") from None
