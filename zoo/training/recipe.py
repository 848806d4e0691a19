"""A training recipe: hyper-parameters, augmentation settings, learning-rate schedules and the
mixed-precision policy. Backend-agnostic (no TensorFlow), shared by the tf.distribute loop
(:mod:`zoo.train`) and the ``model.fit`` path for any Keras backend (:mod:`zoo.fit`).
"""

import contextlib
import dataclasses
from typing import Optional, Sequence

import keras

from zoo.data.augment import AugmentConfig


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of a run (defaults: the official ABN CIFAR recipe, shortened, cosine)."""

    epochs: int = 30
    batch_size: int = 128  # global batch, split across replicas
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" or "step"
    milestones: Sequence[int] = (150, 225)  # epochs, for "step"
    gamma: float = 0.1  # "step" factor
    warmup_epochs: float = 0.0  # linear warm-up, for "cosine"
    label_smoothing: float = 0.0
    loss_kwargs: dict = dataclasses.field(default_factory=dict)  # e.g. {"attention_loss_weight": 1}, {"sigma": 0.55}
    objective: Optional[str] = None  # a registered objective ("sharpen_focus"); None: the architecture's, "none"
    loss_schedules: dict = dataclasses.field(default_factory=dict)  # kwarg -> {"start", "end", "epochs"}
    mixed_precision: Optional[str] = None  # None / "float32", "bfloat16", "float16", or "auto" (resolve_precision)
    seed: int = 0
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    checkpoint_dir: Optional[str] = None
    checkpoint_every: int = 500  # steps
    keep_checkpoints: int = 3
    log_dir: Optional[str] = None  # TensorBoard
    log_every: int = 50  # steps
    eval_batch_size: int = 500
    progress: bool = True
    max_steps: Optional[int] = None  # stop after this many optimizer steps (tests, benchmarks)
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism()
    keep_best: bool = False  # keep the epoch with the best validation accuracy (needs validation data)
    jit_compile: Optional[bool] = None  # XLA train step; None: the engine's default (loop: off; fit: Keras' "auto")

    def to_json(self):
        return {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in vars(self).items()}


def run_summary(config: TrainConfig, step, steps_per_epoch, objective="none", **histories):
    """What a saved model records of its training, for either engine (weight cards count epochs
    from ``step / steps_per_epoch``): the recipe, the objective trained (resolved: the
    architecture's default named), the step reached, and the engine's history."""
    return {**histories, "train_config": config.to_json(), "objective": objective, "step": int(step),
            "steps_per_epoch": steps_per_epoch}


def learning_rate_schedule(config: TrainConfig, steps_per_epoch):
    """The learning rate as a Keras schedule over optimizer steps."""
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else config.lr,
            decay_steps=max(1, total - warmup),
            warmup_target=config.lr if warmup else None,
            warmup_steps=warmup,
        )
    if config.schedule == "step":
        boundaries = [int(m * steps_per_epoch) for m in config.milestones]
        values = [config.lr * config.gamma**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"schedule must be 'cosine' or 'step', got {config.schedule!r}")


PRECISIONS = ("auto", "float32", "bfloat16", "float16")
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # CPUs that compute in bfloat16 natively (x86 /proc/cpuinfo)


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (Linux; an empty set where they cannot be read)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(choice, flags=None, gpu=None):
    """The compute precision a run uses: None (float32), ``"bfloat16"`` or ``"float16"``.

    ``"auto"`` picks bfloat16 where it is fast, on a GPU or a CPU with AVX512_BF16 / AMX
    (:data:`BFLOAT16_CPU_FLAGS`), and float32 elsewhere: without that hardware bfloat16 is
    emulated and trains several times slower than float32. An explicit ``"bfloat16"`` on such a
    CPU is kept, with a warning."""
    if choice in (None, "float32"):
        return None
    if choice not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {PRECISIONS} (or None: float32), got {choice!r}")
    if choice == "float16":
        return choice
    flags = cpu_flags() if flags is None else set(flags)
    if gpu is None:
        from zoo.kernels import has_gpu

        gpu = has_gpu()
    fast = bool(flags & set(BFLOAT16_CPU_FLAGS)) or gpu
    if choice == "auto":
        return "bfloat16" if fast else None
    if not fast:
        import warnings

        warnings.warn("bfloat16 on a CPU without AVX512_BF16 / AMX and no GPU is emulated and trains several times "
                      "slower than float32: use --mixed-precision auto (float32 here)", stacklevel=2)
    return choice


@contextlib.contextmanager
def dtype_policy(mixed_precision):
    """Build layers under ``mixed_<precision>`` (a resolved precision: None, "float32",
    "bfloat16", "float16") and restore the global policy afterwards."""
    previous = keras.config.dtype_policy()
    if mixed_precision and mixed_precision != "float32":
        if mixed_precision not in ("bfloat16", "float16"):
            raise ValueError(f"mixed_precision must be 'bfloat16' or 'float16' here (resolve 'auto' first with "
                             f"resolve_precision), got {mixed_precision!r}")
        keras.config.set_dtype_policy(f"mixed_{mixed_precision}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
