"""One trainer for every model of the kit.

The protocol is the multi-task one of Zhao et al. (AAAI 2019), which reduces to ordinary training
when there is a single task:

1. each epoch, every task gets its list of batches (reshuffled per epoch, reproducibly);
2. at each step a task is drawn at random (seeded), then that task's next batch;
3. the step minimises ``model.loss(batch, task)``: gradients reach the shared layers and that task's
   head only, and the optimiser skips parameters without a gradient (``zero_grad(set_to_none=True)``),
   so even momentum does not move the other head;
4. after each epoch ``on_epoch_end(model, record)`` may add to the epoch's record (e.g. the parts of a
   loss), then ``dev_eval_fn(model)`` returns a score -- a number, or a dict with the number under
   ``"score"`` and whatever else is worth recording (per-task F1) -- and the best epoch's weights are
   kept and restored at the end (``selection="dev"``). ``selection="train-loss"`` keeps the epoch with
   the lowest training loss instead (E2EMERN's released code does that), ``"last"`` the last epoch.

Under ``torchrun --nproc_per_node N`` (or with ``distributed=True``) the same loop runs on every process:
all draw the same task and build the same batches, each computes the loss of its share of the batch's
sentences, the gradients are summed between the processes before clipping and the step, and rank 0
evaluates on dev, decides and prints (:mod:`mernlib.distributed` says how, and what is exact).

The model only has to expose ``loss(batch, task) -> scalar tensor`` (and be an ``nn.Module``); how a
batch looks is the model's business. Defaults follow the paper: momentum SGD, lr 0.001, momentum 0.9,
20 epochs. ``fit`` reads these from any config object with the same attribute names (e.g.
:class:`mernlib.models.mtl_feedback.MTLConfig`) or from a :class:`TrainConfig`.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from tqdm.auto import tqdm

from .distributed import context as distributed_context


@dataclass
class TrainConfig:
    """Optimisation settings (attribute names shared with the models' configs).

    ``task_sampler``: ``"proportional"`` draws a task with probability proportional to its batches
    left this epoch, so every batch is seen exactly once per epoch (the default); ``"uniform"`` draws
    tasks with equal probability until all are exhausted. ``maximize``: whether a higher dev score is
    better. ``patience``: stop after that many epochs without improvement (``None``: never).
    ``lr_schedule``: ``None`` keeps every learning rate constant (the papers' MTL recipe); ``"linear"``
    warms each rate up from 0 over the first ``warmup`` fraction of all steps, then decays it linearly to
    0 at the last step (BERT's fine-tuning recipe, :func:`linear_schedule`).
    """

    optimizer: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 20
    grad_clip: float | None = 5.0
    seed: int = 13
    task_sampler: str = "proportional"
    maximize: bool = True
    patience: int | None = None
    progress: bool = True
    lr_schedule: str | None = None
    warmup: float = 0.1

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            allowed = "|".join(map(str, LR_SCHEDULES))
            raise ValueError(f"lr_schedule must be one of {allowed}, not {self.lr_schedule!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), not {self.warmup!r}")

    @classmethod
    def from_any(cls, config=None, **overrides) -> TrainConfig:
        """A TrainConfig taking every matching attribute of ``config`` (any object), then ``overrides``."""
        values = {}
        for f in fields(cls):
            if config is not None and hasattr(config, f.name):
                values[f.name] = getattr(config, f.name)
        values.update(overrides)
        return cls(**values)


@dataclass
class FitResult:
    """``history``: one dict per epoch with ``epoch``, ``loss`` (mean per task), ``steps`` (per task),
    ``dev`` (score or None), ``seconds``, ``best`` (whether this epoch became the best so far)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU). Thread count is left alone."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


LR_SCHEDULES = (None, "linear")
"""What :attr:`TrainConfig.lr_schedule` may be."""


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1):
    """Every parameter group's rate times ``step / warm`` for the first ``warm = warmup * total_steps``
    steps, then times ``(total_steps - step) / (total_steps - warm)`` down to 0: large steps only once
    the freshly initialised heads have stopped sending noise into the encoder, small ones at the end so
    that the last epochs refine instead of jumping between dev scores (``scheduler.step()`` after each
    ``optimizer.step()``)."""
    warm = max(1, round(warmup * total_steps)) if warmup else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(
    model_or_params: torch.nn.Module | Iterable[torch.nn.Parameter],
    config=None,
    lr_by_prefix: Mapping[str, float | None] | None = None,
    **overrides,
) -> torch.optim.Optimizer:
    """The optimiser of ``config`` (``optimizer``, ``lr``, ``momentum``, ``weight_decay``; any object with
    :class:`TrainConfig` attribute names) over the trainable parameters.

    ``lr_by_prefix`` gives parameter groups their own learning rate by parameter-name prefix, e.g.
    ``{"encoder.": 1e-4}`` for a pre-trained encoder under task heads at ``config.lr`` (a ``None`` rate
    means ``config.lr``); the first matching prefix wins. Frozen parameters are left out.
    """
    cfg = TrainConfig.from_any(config, **overrides)
    if isinstance(model_or_params, torch.nn.Module):
        named = [(n, p) for n, p in model_or_params.named_parameters() if p.requires_grad]
    else:
        named = [("", p) for p in model_or_params if p.requires_grad]
    prefixes = list(lr_by_prefix or {})
    buckets: dict[str | None, list] = {prefix: [] for prefix in prefixes}
    buckets[None] = []  # the rest, at config.lr
    for name, param in named:
        buckets[next((pre for pre in prefixes if name.startswith(pre)), None)].append(param)
    groups = [
        {"params": params, "lr": (lr_by_prefix or {}).get(prefix) or cfg.lr}
        for prefix, params in buckets.items()
        if params
    ]
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    if not lr_by_prefix:
        groups = groups[0]["params"]  # one plain parameter list, as before groups existed
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be sgd|adam|adamw, not {cfg.optimizer!r}")


TaskData = Sequence | Callable[[torch.Generator], Iterable]


def _epoch_batches(data: TaskData, generator: torch.Generator) -> list:
    return list(data(generator) if callable(data) else data)


def fit(
    model: torch.nn.Module,
    train_data: Mapping[str, TaskData],
    config=None,
    dev_eval_fn: Callable[[torch.nn.Module], float | Mapping] | None = None,
    task_sampler: str | Callable[[dict[str, int], random.Random], str] | None = None,
    optimizer: torch.optim.Optimizer | str | None = None,
    on_epoch_end: Callable[[torch.nn.Module, dict], dict | None] | None = None,
    selection: str | None = None,
    distributed: bool | None = None,
    **overrides,
) -> FitResult:
    """Train ``model`` on ``train_data`` (task -> batches) and return the per-epoch history.

    ``train_data[task]`` is a sequence of batches or a callable ``generator -> batches`` called once
    per epoch (use it to reshuffle, e.g. ``lambda g: model.make_batches(S, T, shuffle=True, generator=g)``).
    ``config`` is any object with :class:`TrainConfig` attribute names; ``overrides`` win over it.
    ``task_sampler`` may also be a function ``(batches_left: {task: n}, rng) -> task``.
    ``dev_eval_fn(model)`` is called after each epoch in eval mode; it returns the score, or a dict
    with the score under ``"score"`` (the whole dict is recorded as ``dev_scores``).
    ``on_epoch_end(model, record)`` runs first; a dict it returns is merged into the epoch's record.
    ``selection``: ``"dev"`` (default with a ``dev_eval_fn``), ``"train-loss"`` (lowest training loss,
    summed over tasks) or ``"last"`` (default without one).
    ``optimizer`` is a ready optimiser, or a name (``"sgd"``, ``"adam"``, ``"adamw"``) overriding the config's.
    ``distributed``: ``None`` (default) trains data-parallel when launched by torchrun with ``WORLD_SIZE``
    > 1, ``True`` requires it, ``False`` never does (:mod:`mernlib.distributed`); on one process nothing
    changes.
    """
    if isinstance(optimizer, str):
        overrides["optimizer"], optimizer = optimizer, None
    cfg = TrainConfig.from_any(config, **overrides)
    if task_sampler is not None and not callable(task_sampler):
        cfg.task_sampler = task_sampler
    sampler = task_sampler if callable(task_sampler) else _SAMPLERS.get(cfg.task_sampler)
    if sampler is None:
        raise ValueError(
            f"task_sampler must be one of {sorted(_SAMPLERS)} or a function, not {cfg.task_sampler!r}"
        )
    selection = selection or ("dev" if dev_eval_fn is not None else "last")
    if selection not in ("dev", "train-loss", "last"):
        raise ValueError(f"selection must be dev|train-loss|last, not {selection!r}")
    if selection == "dev" and dev_eval_fn is None:
        raise ValueError("selection='dev' needs a dev_eval_fn")
    seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)  # task choice
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order
    optimizer = optimizer or make_optimizer(model, cfg)
    ctx = distributed_context(model, distributed)  # None: one process, the plain loop below
    if ctx is not None:
        torch.manual_seed(cfg.seed + ctx.rank)  # dropout: each rank its own masks (rank 0 as one process)
        ctx.broadcast_state(model)  # every rank starts from rank 0's weights
        trainable = [p for p in model.parameters() if p.requires_grad]
    show = cfg.progress and (ctx is None or ctx.main)
    result = FitResult()
    best_state = None
    bad_epochs = 0
    scheduler = None

    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        queues = {task: _epoch_batches(data, generator) for task, data in train_data.items()}
        cursor = dict.fromkeys(queues, 0)
        loss_sum = dict.fromkeys(queues, 0.0)
        steps = dict.fromkeys(queues, 0)
        total = sum(len(q) for q in queues.values())
        if ctx is not None:
            ctx.check_same_batches(queues, epoch)
        if cfg.lr_schedule == "linear" and scheduler is None:  # every epoch has this many batches
            scheduler = linear_schedule(optimizer, total * cfg.epochs, cfg.warmup)
        model.train()
        bar = tqdm(total=total, desc=f"epoch {epoch}/{cfg.epochs}", disable=not show, leave=False)
        for _ in range(total):
            left = {t: len(q) - cursor[t] for t, q in queues.items() if len(q) > cursor[t]}
            task = sampler(left, rng)  # 1. pick a task at random ...
            batch = queues[task][cursor[task]]  # 2. ... then its next batch
            cursor[task] += 1
            optimizer.zero_grad(set_to_none=True)
            if ctx is None:
                loss = model.loss(batch, task)  # 3. shared layers + this task's head
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"epoch {epoch}, task {task}: loss is {loss.item()}")
                loss.backward()
                value = loss.item()
            else:  # this rank's share of the batch; the gradients summed over the ranks
                value = _distributed_step(ctx, model, batch, task, trainable)
                if not math.isfinite(value):
                    raise FloatingPointError(f"epoch {epoch}, task {task}: loss is {value}")
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.grad is not None], cfg.grad_clip
                )
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum[task] += value
            steps[task] += 1
            bar.update(1)
            bar.set_postfix({t: f"{loss_sum[t] / max(steps[t], 1):.3f}" for t in queues})
        bar.close()

        record = {
            "epoch": epoch,
            "loss": {t: loss_sum[t] / steps[t] if steps[t] else math.nan for t in queues},
            "steps": dict(steps),
        }
        if on_epoch_end is not None:
            extra = on_epoch_end(model, record) or {}
            record.update(extra if ctx is None else ctx.mean_record(extra))
        score, scores = None, None
        if dev_eval_fn is not None and (ctx is None or ctx.main):  # 4. model selection on dev
            model.eval()
            with torch.no_grad():
                scores = dev_eval_fn(model)
            model.train()
        if ctx is not None:  # rank 0's numbers decide on every rank
            scores, record["loss"] = ctx.broadcast_object((scores, record["loss"]))
        if dev_eval_fn is not None:
            score = float(scores["score"]) if isinstance(scores, Mapping) else float(scores)
        if selection == "last":  # nothing to select on: the last epoch is the result
            result.best_epoch, improved = epoch, True
        else:
            criterion = score if selection == "dev" else sum(record["loss"].values())
            maximize = cfg.maximize if selection == "dev" else False
            improved = _better(criterion, result.best_score, maximize)
            if improved:
                result.best_epoch, result.best_score = epoch, criterion
                best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0 if improved else bad_epochs + 1
        record.update({"dev": score, "seconds": time.perf_counter() - start, "best": improved})
        if isinstance(scores, Mapping):
            record["dev_scores"] = dict(scores)
        result.history.append(record)
        if show:
            losses = ", ".join(f"{t} {v:.4f}" for t, v in result.history[-1]["loss"].items())
            tqdm.write(f"epoch {epoch}: loss {losses}; dev {score}; {result.history[-1]['seconds']:.1f}s")
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    if ctx is not None:
        ctx.broadcast_state(model)  # the same weights on every rank, whatever happened
    model.eval()
    return result


def _distributed_step(ctx, model, batch, task: str, params: list) -> float:
    """Loss and backward of this rank's share (weighted so that the shares add up to the batch), then
    the gradients and the loss summed over the ranks; returns the batch's loss."""
    share, weight = ctx.shard(model, batch)
    local = 0.0
    if share is not None:
        loss = model.loss(share, task)
        local = loss.item() * weight
        if math.isfinite(local):
            (loss * weight).backward()
    return ctx.reduce(params, local)


def _better(score: float | None, best: float | None, maximize: bool) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    if score is None or math.isnan(score):
        return False
    return score > best if maximize else score < best


def task_sampler(kind: str = "proportional") -> Callable[[dict[str, int], random.Random], str]:
    """The sampler :func:`fit` uses to pick the next task: ``(batches_left, rng) -> task``.

    ``"proportional"``: probability proportional to the task's batches left this epoch (so every batch
    is seen once per epoch, and a large dataset is drawn as often as its size asks); ``"uniform"``: every
    task with batches left equally likely."""
    if kind not in _SAMPLERS:
        raise ValueError(f"task sampler must be one of {sorted(_SAMPLERS)}, not {kind!r}")
    return _SAMPLERS[kind]


def _proportional(left: dict[str, int], rng: random.Random) -> str:
    tasks = sorted(left)
    return rng.choices(tasks, weights=[left[t] for t in tasks])[0]


def _uniform(left: dict[str, int], rng: random.Random) -> str:
    return rng.choice(sorted(left))


_SAMPLERS = {"proportional": _proportional, "uniform": _uniform}
