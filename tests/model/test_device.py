"""Device names: anything but auto, cpu, cuda[:N] and mps is refused with one line."""
import pytest
import torch

from nested_learning import resolve_device


@pytest.mark.parametrize("name", ["tpu", "TPU", "", "cuda:x", "meta", "cpu\nmore"])
def test_unknown_devices_raise_one_line(name):
    with pytest.raises(ValueError, match="unknown device") as info:
        resolve_device(name)
    assert "\n" not in str(info.value)


def test_known_devices():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            resolve_device("cuda")
