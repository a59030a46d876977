import pytest
import torch

from nested_learning import HopeConfig, HopeTransformer

torch.set_num_threads(2)

# A tiny model with every mechanism on: attention with persistent tokens, self-modifying memory with
# momentum-free DGD, a four-level CMS, FFN. Chunk 8 so short sequences cross several chunk boundaries.
TINY = dict(d_model=32, n_heads=2, n_layers=2, projection_hidden=8, cms_hidden=16, memory_chunk_size=8,
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
