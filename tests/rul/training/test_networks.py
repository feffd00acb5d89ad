import pytest
import torch

from streamapp.rul.training.networks import DEFAULT_HPARAMS, MODEL_KINDS, build_model, count_params


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize(("batch", "window"), [(1, 30), (7, 30), (3, 5)])
def test_output_shape(kind: str, batch: int, window: int) -> None:
    sized = "window" in DEFAULT_HPARAMS[kind]
    hparams = {**DEFAULT_HPARAMS[kind], "window": window} if sized else None
    model = build_model(kind, 14, hparams).eval()
    out = model(torch.randn(batch, window, 14))
    assert out.shape == (batch,)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_sizes_are_small(kind: str) -> None:
    assert 5_000 < count_params(build_model(kind, 14)) < 100_000


def test_replicas_average_their_outputs() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", 14, {**DEFAULT_HPARAMS["cnn"], "replicas": 3}).eval()
    assert len(model.nets) == 3
    assert count_params(model) == 3 * count_params(build_model("cnn", 14))
    x = torch.randn(4, 30, 14)
    expected = sum(net(x) for net in model.nets) / 3
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert not torch.allclose(model.nets[0](x), expected)


def test_tcn_is_causal() -> None:
    """Changing the last step must not change the features of earlier steps."""
    model = build_model("tcn", 4).eval()
    x = torch.randn(2, 30, 4)
    y = x.clone()
    y[:, -1] += 5.0
    h_x = model.blocks(model.inp(x.transpose(1, 2)))
    h_y = model.blocks(model.inp(y.transpose(1, 2)))
    assert torch.allclose(h_x[:, :, :-1], h_y[:, :, :-1])
    assert not torch.allclose(h_x[:, :, -1], h_y[:, :, -1])


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("transformer", 14)
