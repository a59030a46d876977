"""ByteTokenizer: UTF-8 bytes as tokens, so any text works offline with a 256-entry vocabulary."""
from __future__ import annotations

import torch


class ByteTokenizer:
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return list(text.encode("utf-8", errors="replace"))

    def encode_tensor(self, text: str, device=None) -> torch.Tensor:
        """[1, T] long tensor, ready for the model."""
        return torch.tensor([self.encode(text)], dtype=torch.long, device=device)

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.flatten().tolist()
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    @staticmethod
    def token_label(token_id: int) -> str:
        """A short printable label for one byte: the character if printable ASCII, else an escape."""
        token_id = int(token_id)
        if 32 <= token_id < 127:
            return chr(token_id)
        return {10: "\\n", 9: "\\t", 13: "\\r"}.get(token_id, f"\\x{token_id:02x}")
