"""The understanding eval set: FAQ sets with questions to ask about them, validated on load.

One JSON file per FAQ set under `sets/` (see `FaqSet`). Every item names the FAQ it expects
(`expect`, a FAQ id of its set) or `null` when no FAQ answers it (near-misses and uncovered
questions), and carries its half (`split`: `tune` or `test`), fixed in the file so the split
never moves when items are added.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.languages import supported_codes
from common.metadata import Faq

__all__ = [
    "SETS_DIR",
    "DatasetError",
    "EvalFaq",
    "FaqSet",
    "Item",
    "Kind",
    "Split",
    "load_sets",
]

SETS_DIR = Path(__file__).resolve().parent / "sets"
_ID = r"^[a-z0-9][a-z0-9-]*$"


class DatasetError(ValueError):
    """A set file that is not valid (names the file and the problem)."""


class Kind(StrEnum):
    PARAPHRASE = "paraphrase"  # a covered FAQ in other words
    NEAR_MISS = "near_miss"  # the topic of a FAQ, a fact none of them gives
    UNCOVERED = "uncovered"  # nothing to do with any FAQ


class Split(StrEnum):
    TUNE = "tune"
    TEST = "test"


class EvalFaq(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)

    def to_faq(self) -> Faq:
        return Faq(question=self.question, answer=self.answer)


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    kind: Kind
    text: str = Field(min_length=1)
    language: str  # the language the question is written in (may differ from the session's)
    expect: str | None
    split: Split

    @property
    def covered(self) -> bool:
        return self.expect is not None


class FaqSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    domain: str = Field(min_length=1)
    language: str  # the session language (metadata `language`) and the FAQs' language
    faqs: tuple[EvalFaq, ...] = Field(min_length=1)
    items: tuple[Item, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        codes = set(supported_codes())
        for code in (self.language, *(i.language for i in self.items)):
            if code not in codes:
                raise ValueError(f"unsupported language {code!r}")
        faq_ids = [f.id for f in self.faqs]
        if len(set(faq_ids)) != len(faq_ids):
            raise ValueError("duplicate FAQ id")
        item_ids = [i.id for i in self.items]
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("duplicate item id")
        for item in self.items:
            if (item.kind is Kind.PARAPHRASE) != item.covered:
                raise ValueError(f"{item.id}: paraphrases expect a FAQ, other kinds expect null")
            if item.expect is not None and item.expect not in faq_ids:
                raise ValueError(f"{item.id}: expects unknown FAQ {item.expect!r}")
        return self

    @cached_property
    def common_faqs(self) -> list[Faq]:
        """The FAQs as the product carries them (session metadata `faqs`)."""
        return [f.to_faq() for f in self.faqs]

    def faq(self, faq_id: str) -> EvalFaq:
        return next(f for f in self.faqs if f.id == faq_id)


def load_sets(directory: Path = SETS_DIR) -> list[FaqSet]:
    """Every `*.json` set in `directory`, by file name; `DatasetError` names the first bad one."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DatasetError(f"no FAQ sets (*.json) in {directory}")
    sets: list[FaqSet] = []
    for path in files:
        try:
            sets.append(FaqSet.model_validate_json(path.read_bytes()))
        except ValidationError as exc:
            raise DatasetError(f"{path.name}: {exc}") from None
        except OSError as exc:
            raise DatasetError(f"{path.name}: cannot read: {exc}") from None
    ids = [s.id for s in sets]
    if len(set(ids)) != len(ids):
        raise DatasetError("two set files share an id")
    return sets
