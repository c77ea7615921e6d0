import pytest
import torch

from bgclean.models import build_model


@pytest.mark.parametrize("arch", ["u2net.small", "u2net.full"])
def test_u2net_shapes_and_range_at_tiny_size(arch):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    with torch.inference_mode():
        y = model(torch.randn(2, 3, 64, 48))
    assert y.shape == (2, 1, 64, 48)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("u2net.huge")
