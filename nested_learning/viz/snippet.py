"""A short Python program that reproduces the current Explore view with the library: the same model,
text and switches, and the numbers behind the figures at the scrubbed token. No Streamlit here."""
from __future__ import annotations

from .models import FALLBACK_SEED, ModelChoice


def model_line(choice: ModelChoice) -> str:
    if choice.kind == "shipped":
        return f'model = load_checkpoint("assets/{choice.name}")  # from a checkout of the repository'
    if choice.kind == "upload":
        return f"model = load_checkpoint({choice.name!r})  # your uploaded file"
    return f"model = HopeTransformer.from_preset({choice.name!r}, seed={FALLBACK_SEED}).eval()"


def reproduce(choice: ModelChoice, text: str, off: list[str], layer: int, head: int, token: int,
              memory_tokens_before: int = 0, matrix: str = "memory") -> str:
    """The program, as text. ``memory_tokens_before``: tokens the session's memory had read before this
    run (not reproduced: the snippet starts from a fresh memory, and says so). ``matrix``: the matrix shown
    (a 2-layer memory's "hidden_memory" is its W2)."""
    lines = ["from nested_learning import Ablation, HopeTransformer, load_checkpoint",
             "from nested_learning.recording import record", "", model_line(choice),
             f"text = {text!r}",
             f"recording, state = record(model, text, ablation=Ablation.from_names({list(off)!r}))"]
    if memory_tokens_before:
        lines.append(f"# The dashboard's memory had read {memory_tokens_before} tokens before this run; this starts fresh.")
    lines += ["", f"t, layer, head = {token}, {layer}, {head}",
              "print(recording.summary())                     # tokens, mean loss, bits per byte, mean surprise",
              "print(recording.token_frame().iloc[t])          # the token, its loss and the top predictions",
              "rows = recording.per_token()                    # every memory stream, one row per token, layer, head",
              "print(rows[(rows.token_index == t) & (rows.layer == layer) & (rows.head == head)])"]
    if "memory" not in off and matrix == "hidden_memory":
        lines.append('W2_t = recording.memory_matrix(layer, head, t, "hidden_memory")  # the heatmap (W1: "memory")')
    elif "memory" not in off:
        lines.append("M_t = recording.memory_matrix(layer, head, t)  # the heatmap; M_t - M_(t-1) with t - 1")
    return "\n".join(lines) + "\n"
