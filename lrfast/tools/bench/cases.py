"""What the bench measures: the model layouts (one tensor of growing size, many tensors,
many groups), the optimizers' bytes per element, and issue 14's three CPU targets."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BYTES_PER_ELEMENT", "TITLES", "TARGETS", "Case", "case_of", "curve_cases", "target_cases"]

BYTES_PER_ELEMENT = {"adamw": 28, "sgd": 20}  # NOTE [bandwidth floor] in results.py
TITLES = {"adamw": "AdamW + cosine", "sgd": "SGD(momentum) + cosine"}

# issue 14 item 4: (optimizer, case, target ratio torch fused / lrfast)
TARGETS = (("adamw", "16M over 200 tensors", 1.2), ("sgd", "1 x 16M", 1.0), ("sgd", "100 groups x 10 tensors", 3.0))


@dataclass
class Case:
    """One model layout: tensors of ``shapes`` elements, split evenly into ``groups`` param groups."""

    name: str
    shapes: list[int]
    groups: int = 1

    @property
    def numel(self) -> int:
        return sum(self.shapes)


def case_of(shapes: list[int], groups: int = 1) -> Case:
    """A Case labelled with the elements it really holds (quick runs are labelled with their own sizes).

    >>> case_of([4096] * 1000, groups=100).name
    '100 groups x 10 tensors x 4,096 = 4,096,000'
    """
    t, n = len(shapes), sum(shapes)
    if groups > 1:
        name = f"{groups} groups x {t // groups} tensors x {shapes[0]:,} = {n:,}"
    elif t == 1:
        name = f"1 x {n:,}"
    else:
        name = f"{t:,} x {shapes[0]:,} = {n:,}"
    return Case(name, shapes, groups)


def curve_cases(quick: bool, device: str) -> list[Case]:
    """Single tensors of growing size (the curve: >= 5 sizes, >= 3 with --quick), then many tensors."""
    if device == "cuda":
        sizes = [2**20, 2**22, 2**24] if quick else [2**18, 2**20, 2**22, 2**24, 2**26, 2**28]
        many = [(2000, 2**20)] if quick else [(2000, 2**20), (148, 124_000_000)]
    else:
        sizes = [2**14, 2**17, 2**20] if quick else [2**16, 2**18, 2**20, 2**22, 2**24]
        many = [(2000, 2**20)] if quick else [(200, 2**24), (2000, 2**24), (2000, 2**20)]
    return [case_of([n]) for n in sizes] + [case_of([n // t] * t) for t, n in many]


def target_cases() -> dict[str, Case]:
    """The layouts of :data:`TARGETS`, by the name the targets give them."""
    return {"16M over 200 tensors": case_of([2**24 // 200] * 200), "1 x 16M": case_of([2**24]),
            "100 groups x 10 tensors": case_of([4096] * 1000, groups=100)}
