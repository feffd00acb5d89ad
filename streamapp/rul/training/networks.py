"""The RUL networks: each maps a (batch, window, features) tensor to (batch,) RUL / cap.

Sizes are small on purpose (tens of thousands of parameters): C-MAPSS has ~20k training
windows, bigger nets overfit, and a worker predicts on 1-2 CPU threads.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

MODEL_KINDS = ("lstm", "gru", "tcn", "cnn", "attn")


class RecurrentRUL(nn.Module):
    """Stacked LSTM or GRU; the last step's hidden state feeds a small MLP head."""

    def __init__(
        self, kind: str, n_features: int, hidden: int = 48, layers: int = 2, dropout: float = 0.3
    ) -> None:
        super().__init__()
        cell = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = cell(n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden, 32), nn.ReLU(), nn.Linear(32, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :]).squeeze(-1)


class CausalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai et al. 2018)."""

    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv1 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.act = nn.ReLU()

    def _causal(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        # Left padding only: the output at step t never sees steps after t.
        return conv(nn.functional.pad(x, (self.pad, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(self.act(self._causal(self.conv1, x)))
        y = self.drop(self.act(self._causal(self.conv2, y)))
        return self.act(x + y)


class TCNRUL(nn.Module):
    """Temporal convolutional network; dilations 1, 2, 4, 8 give a 61-step receptive field."""

    def __init__(
        self,
        n_features: int,
        channels: int = 32,
        kernel: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_features, channels, 1)
        self.blocks = nn.Sequential(*(CausalBlock(channels, kernel, d, dropout) for d in dilations))
        self.head = nn.Sequential(nn.Linear(channels, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.inp(x.transpose(1, 2)))
        return self.head(h[:, :, -1]).squeeze(-1)


def _same(kernel: int) -> nn.Module:
    """Zero padding that keeps the length ('same'; an even kernel pads one more on the right)."""
    return nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)


class ConvRUL(nn.Module):
    """1D CNN over the whole window (DCNN, Li et al. 2018): tanh convolutions, flatten, FC.

    Unlike the TCN, which reads the last step, the flattened map keeps every position, so the
    head sees where in the window a trend starts.
    """

    def __init__(
        self,
        n_features: int,
        window: int = 30,
        channels: int = 10,
        layers: int = 4,
        kernel: int = 10,
        hidden: int = 100,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        for i in range(layers):
            convs += [_same(kernel), nn.Conv1d(channels if i else n_features, channels, kernel)]
            convs.append(nn.Tanh())
        convs += [_same(3), nn.Conv1d(channels, 1, 3), nn.Tanh()]
        self.convs = nn.Sequential(*convs)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(window, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x.transpose(1, 2))).squeeze(-1)


class AttentionRUL(nn.Module):
    """A small transformer encoder over the window (after DAST and STAR): every step
    attends to every other, so a trend that starts anywhere in the window is read
    directly instead of through a recurrence. Learned position embeddings; the mean over
    the steps feeds the head.
    """

    def __init__(
        self,
        n_features: int,
        window: int = 30,
        dim: int = 32,
        heads: int = 4,
        layers: int = 2,
        feedforward: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(n_features, dim)
        self.position = nn.Parameter(torch.zeros(1, window, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.inp(x) + self.position)
        return self.head(h.mean(dim=1)).squeeze(-1)


class Averaged(nn.Module):
    """Mean output of replicas of one architecture (the cross-fitted fold models)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(dim=0)


DEFAULT_HPARAMS: dict[str, dict[str, Any]] = {
    "lstm": {"hidden": 48, "layers": 2, "dropout": 0.3},
    "gru": {"hidden": 48, "layers": 2, "dropout": 0.3},
    "tcn": {"channels": 32, "kernel": 3, "dilations": [1, 2, 4, 8], "dropout": 0.2},
    "cnn": {"window": 30, "channels": 10, "layers": 4, "kernel": 10, "hidden": 100, "dropout": 0.5},
    "attn": {"window": 30, "dim": 32, "heads": 4, "layers": 2, "feedforward": 64, "dropout": 0.1},
}


def build_model(kind: str, n_features: int, hparams: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a network by name; hparams are stored in the manifest to rebuild it."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    params = dict(DEFAULT_HPARAMS[kind] if hparams is None else hparams)
    replicas = int(params.pop("replicas", 1))
    if replicas > 1:
        return Averaged([build_model(kind, n_features, params) for _ in range(replicas)])
    if kind in ("lstm", "gru"):
        return RecurrentRUL(kind, n_features, **params)
    if kind == "cnn":
        return ConvRUL(n_features, **params)
    if kind == "attn":
        return AttentionRUL(n_features, **params)
    params["dilations"] = tuple(params["dilations"])
    return TCNRUL(n_features, **params)


def count_params(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
