"""Training-step budgets: what one optimiser step keeps, as plain data and arithmetic.

``training:`` in a budgets entry (or ``check(..., training=True)``) asks for three more
metrics per module and group: ``backward_flops`` (measured in
:mod:`pytest_actbudget.measure.training`), ``train_flops`` (forward + backward) and
``train_bytes`` (parameters + gradients + optimizer state + ``saved_bytes``). This
module holds the settings and the byte arithmetic; it imports neither torch nor yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DTYPE_BYTES",
    "OPTIMIZER_STATES",
    "TRAINING_KEYS",
    "TRAINING_METRICS",
    "TrainingSpec",
    "train_bytes",
]

#: The metrics a training step adds to every module, group and total.
TRAINING_METRICS: tuple[str, ...] = ("backward_flops", "train_flops", "train_bytes")

#: Optimizer state per trainable parameter, in multiples of its element count:
#: SGD keeps nothing, SGD with momentum one buffer, Adam/AdamW two moments.
OPTIMIZER_STATES: Mapping[str, int] = {"sgd": 0, "sgd_momentum": 1, "adam": 2, "adamw": 2}

#: Bytes per element of the dtypes ``grad_dtype`` and ``state_dtype`` may name.
DTYPE_BYTES: Mapping[str, int] = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}

#: The keys of a ``training:`` mapping (in an entry or under ``defaults``).
TRAINING_KEYS: tuple[str, ...] = ("optimizer", "grad_dtype", "state_dtype")


@dataclass(frozen=True)
class TrainingSpec:
    """How a training step is costed. ``grad_dtype`` None: each gradient has its
    parameter's dtype (what autograd produces); optimizer state defaults to float32
    (what torch.optim keeps for float32 parameters, and master copies for the rest)."""

    optimizer: str = "sgd"
    grad_dtype: str | None = None
    state_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZER_STATES:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZER_STATES)}"
            )
        for name in (self.grad_dtype, self.state_dtype):
            if name is not None and name not in DTYPE_BYTES:
                raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(DTYPE_BYTES)}")

    @property
    def state_per_element(self) -> int:
        """Optimizer-state bytes kept per trainable parameter element."""
        return OPTIMIZER_STATES[self.optimizer] * DTYPE_BYTES[self.state_dtype]

    def grad_bytes(self, elements: int, param_element_size: int) -> int:
        """Bytes of the gradient of a trainable parameter of ``elements`` elements."""
        size = DTYPE_BYTES[self.grad_dtype] if self.grad_dtype else param_element_size
        return elements * size

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "grad_dtype": self.grad_dtype,
            "state_dtype": self.state_dtype,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSpec:
        return cls(
            optimizer=data.get("optimizer", "sgd"),
            grad_dtype=data.get("grad_dtype"),
            state_dtype=data.get("state_dtype", "float32"),
        )


def train_bytes(
    spec: TrainingSpec,
    parameters: Mapping[int, tuple[int, int, bool]],
    saved_bytes: int,
) -> int:
    """Peak bytes of one training step of a module: every parameter, the gradient and
    optimizer state of every trainable one, and what autograd saved in its forward.

    ``parameters`` maps a parameter's identity to (elements, bytes per element,
    requires_grad), so a tied parameter counts once.
    """
    total = saved_bytes
    for elements, element_size, trainable in parameters.values():
        total += elements * element_size
        if trainable:
            total += spec.grad_bytes(elements, element_size) + elements * spec.state_per_element
    return total
