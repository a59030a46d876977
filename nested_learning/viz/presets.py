"""Text presets of the dashboard, each with the byte positions whose value follows from the context
(``answers``): the recall accuracy of the Compare page is top-1 accuracy on those bytes.

The key-value and distractor presets are samples of the synthetic tasks the models are trained on
(:mod:`nested_learning.training.tasks`), so a trained checkpoint can show recall on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..training.tasks import associative_recall, passkey


@dataclass(frozen=True)
class TextPreset:
    key: str  # stable name used in URLs
    title: str
    text: str
    answers: tuple[int, ...]  # byte positions predictable from the bytes before them

    def describe(self) -> str:
        return f"{self.title} ({len(self.text.encode('utf-8'))} tokens)"


def _repeated_phrase(phrase: str = "the cat sat on the mat. ", times: int = 8) -> TextPreset:
    text = phrase * times
    # From the second copy on, every byte is determined by the first copy.
    return TextPreset("phrase", "Repeated phrase", text, tuple(range(len(phrase), len(text))))


def _facts() -> TextPreset:
    sample = associative_recall(seed=7, n_pairs=12)
    return TextPreset("facts", "Key-value facts", sample.text, sample.answer_positions)


def _distractor() -> TextPreset:
    sample = passkey(seed=3, n_distractors=24)
    return TextPreset("distractor", "Long distractor text", sample.text, sample.answer_positions)


TEXT_PRESETS: dict[str, TextPreset] = {p.key: p for p in (_repeated_phrase(), _facts(), _distractor())}


def recall_accuracy(top1: torch.Tensor, tokens: torch.Tensor, answers: tuple[int, ...]) -> float | None:
    """Share of answer bytes the model predicted (top-1 at the position before). ``None`` without answers.

    ``top1[t]`` is the prediction for token t+1; answers at position 0 or beyond the tokens are skipped."""
    usable = [p for p in answers if 0 < p < len(tokens)]
    if not usable:
        return None
    index = torch.tensor(usable)
    return float((top1[index - 1] == tokens[index]).double().mean())
