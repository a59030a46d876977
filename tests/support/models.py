"""Models for the tests that need one to misbehave, and the ablation that removes every memory."""
import torch

from nested_learning import Ablation
from tests.conftest import tiny_model

MEMORY_OFF = Ablation(memory=False, cms=False)  # neither the memory nor the CMS: only attention and the FFN remain


def diverging_model():
    """Byte "z" embeds to infinity: the first "z" turns layer 0 non-finite (the output head is untied
    first, so the other bytes' predictions stay finite)."""
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.weight = torch.nn.Parameter(model.embed.weight.detach().clone())
        model.embed.weight[ord("z")] = float("inf")
    return model


def exploding_output_model():
    """Every memory and state finite, the output not: a huge but finite final norm weight (issue 17 item 5)."""
    model = tiny_model()
    with torch.no_grad():
        model.final_norm.weight.fill_(3e38)
    return model
