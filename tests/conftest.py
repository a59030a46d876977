import os

# Every test runs with the shape contracts checked (nested_learning/ops/shape_check.py): read once, when the
# package is first imported, so it is set before that import.
os.environ["NESTED_LEARNING_CHECK_SHAPES"] = "1"

import pytest
import torch

from nested_learning import HopeConfig, HopeTransformer

torch.set_num_threads(2)

# A tiny model with every mechanism on: attention with persistent tokens, self-modifying memory with
# momentum-free DGD and two memory heads, a four-level CMS, FFN. Chunk 8 so short sequences cross several
# chunk boundaries.
TINY = dict(d_model=32, n_heads=2, memory_heads=2, n_layers=2, projection_hidden=8, cms_hidden=16, memory_chunk_size=8,
            cms_periods=(1, 2, 4, 8), n_persistent_tokens=2, ffn_mult=2)


def tiny_model(preset: str = "hope", seed: int = 0, dtype=torch.float32, **overrides) -> HopeTransformer:
    torch.manual_seed(seed)
    config = HopeConfig.preset(preset, **{**TINY, **overrides})
    return HopeTransformer(config).to(dtype).eval()


@pytest.fixture
def model():
    return tiny_model()


def random_tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


WORDS = ("the a of memory model reads learns writes token window state key value passage text again later "
         "first second small large every some river stone garden light north quiet open").split()


def write_prose(folder, n_documents: int = 24, n_words: int = 400, seed: int = 0):
    """A folder of generated English-like documents (held-out prose for the validation tests)."""
    import random
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_documents):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                     for _ in range(n_words // 8)]
        (folder / f"doc{i:02d}.txt").write_text(" ".join(sentences))
    return folder


@pytest.fixture(scope="session")
def prose(tmp_path_factory):
    from nested_learning.validation.prose import HeldoutProse
    return HeldoutProse([str(write_prose(tmp_path_factory.mktemp("prose")))], heldout_fraction=0.5, min_bytes=4000)
