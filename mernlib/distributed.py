"""Training past one machine: :func:`mernlib.train.fit` under ``torchrun --nproc_per_node N``.

Launched by torchrun (``WORLD_SIZE`` > 1 in the environment) or with ``fit(..., distributed=True)``, the
trainer runs the same loop on every process (a *rank*) and splits each step's batch between them:

* **One process group**, initialised once (:func:`context`): ``nccl`` when the model is on a GPU, ``gloo``
  otherwise (CPU), from torchrun's ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``.
* **Same steps everywhere.** Every rank seeds the task draw and the batch order with ``config.seed``,
  so all draw the same task and build the same batches at every step (checked each epoch: ranks whose
  batches differ stop with an error instead of waiting on each other). Only the global torch stream
  (dropout) is seeded ``seed + rank``, so the ranks do not drop the same units.
* **Each rank its share of the batch** (:func:`shard`): rank ``r`` takes sentences ``r, r + N, ...`` of
  the step's batch (the batch is length-bucketed, so the shares are balanced) and weights its loss by
  its share of the batch's loss -- ``n_r / n`` for a loss averaged over sentences, ``1`` for a sum -- so
  the shares add up to the one-process loss, and their gradients to its gradient.
* **Gradients summed by hand** (:meth:`Context.reduce`) after ``backward``, not by
  ``DistributedDataParallel``: the kit's models are trained through ``model.loss(batch, task)``, not
  ``forward`` (DDP would need a wrapper module and ``find_unused_parameters=True``, i.e. a walk of the
  autograd graph at every step, because a multi-task step reaches one head only), and the trainer's
  rule that a parameter without a gradient is not stepped (``zero_grad(set_to_none=True)``: momentum
  does not move the heads of the other tasks) is kept exactly: a parameter gets a gradient when it has
  one on some rank, and stays ``None`` when it has one nowhere. The sums travel in buckets of at most
  :data:`BUCKET_ELEMENTS` values; the step's loss travels with the flags, in float64.
* **Rank 0 decides.** The dev evaluation runs on rank 0 only and its score is broadcast, so every rank
  takes the same selection and early-stopping decisions; at the end rank 0's weights are broadcast, so
  the model is the same on every rank. Progress bars and prints are rank 0's.

What is exact and what is not: with dropout 0, ``N`` processes compute the one-process losses and
gradients up to float rounding (the sums are taken in another order) for the MTL tagger (its
``loss_reduction``, sum or mean, is read from its config) and for HST with its default CRF type head.
E2EMERN averages its three loss parts over tokens and (sentence, entity) pairs rather than sentences, and
HST's ``type_head="softmax"`` averages its type loss over tokens: there the shares are weighted by
sentences, which matches one process only when the shares hold equal numbers of tokens and pairs.
With dropout the masks differ from one process's (each rank draws its own), as with any data-parallel
training. A model with another batch type gives itself a ``shard_batch(batch, rank, world_size) ->
(shard or None, weight)`` method.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import torch

TIMEOUT_MINUTES = 60
"""How long a rank waits for the others (e.g. while rank 0 evaluates on dev) before the job fails."""

BUCKET_ELEMENTS = 1 << 24
"""Gradient values per all-reduce (64 MB of float32): few collectives, bounded extra memory."""


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be a whole number, not {os.environ['WORLD_SIZE']!r}") from None


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def is_main_process() -> bool:
    """Whether this process is rank 0 (the one that prints and should write files)."""
    return rank() == 0


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def context(model: torch.nn.Module, distributed: bool | None = None) -> Context | None:
    """The process group's :class:`Context` for ``fit`` (the group is initialised on first use), or
    ``None`` for ordinary one-process training.

    ``distributed=None``: distributed when launched by torchrun with ``WORLD_SIZE`` > 1 (or when a
    process group of more than one is already initialised); ``True``: required (an error when this
    process is alone); ``False``: never (every rank trains on its own)."""
    if distributed is False:
        return None
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch builds without the package
        dist = None
    available = dist is not None and dist.is_available()
    initialised = available and dist.is_initialized()
    size = dist.get_world_size() if initialised else env_world_size()
    if size <= 1:
        if distributed:
            raise ValueError(
                "distributed=True, but this process is alone: launch it with "
                "torchrun --nproc_per_node N (N > 1), or initialise a torch.distributed process group first"
            )
        return None
    if not available:
        raise RuntimeError(f"WORLD_SIZE={size}, but this torch build has no torch.distributed")
    device = _model_device(model)
    if not initialised:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=TIMEOUT_MINUTES))
        atexit.register(_destroy)
    return Context(dist.get_rank(), dist.get_world_size(), device)


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class Context:
    """What the trainer needs from the process group: who this rank is, and the collectives it uses."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, model, batch) -> tuple[object | None, float]:
        """This rank's share of ``batch`` and the weight of its loss (:func:`shard`)."""
        return shard(model, batch, self.rank, self.world_size)

    def broadcast_state(self, model: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank, in place."""
        import torch.distributed as dist

        seen = set()
        for tensor in model.state_dict().values():
            if not isinstance(tensor, torch.Tensor) or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            with torch.no_grad():
                if tensor.is_contiguous():
                    dist.broadcast(tensor, 0)
                else:
                    buffer = tensor.contiguous()
                    dist.broadcast(buffer, 0)
                    tensor.copy_(buffer)

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (anything picklable) on every rank."""
        import torch.distributed as dist

        box = [obj if self.main else None]
        dist.broadcast_object_list(box, 0, device=self._object_device())
        return box[0]

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def _object_device(self):
        return self.device if self.device.type == "cuda" else None

    def check_same_batches(self, queues: Mapping[str, Sequence], epoch: int) -> None:
        """Stop with an error when the ranks did not build the same batches (a batch builder that ignores
        the generator it is given): they would otherwise wait on each other, or train on other data."""
        mine = {task: [len(batch) for batch in queue] for task, queue in queues.items()}
        everyone = self.gather_objects(mine)
        if any(other != mine for other in everyone):
            raise RuntimeError(
                f"epoch {epoch}: the ranks built different batches (batch sizes per task: rank 0 "
                f"{_brief(everyone[0])}, rank {self.rank} {_brief(mine)}); every task's batches must come "
                "from the generator fit passes (seeded with config.seed on every rank)"
            )

    def reduce(self, params: Sequence[torch.nn.Parameter], loss: float) -> float:
        """Sum the ranks' gradients of ``params`` (each rank's loss already weighted by its share) and
        return the summed loss. A parameter with a gradient on no rank keeps ``grad = None``."""
        import torch.distributed as dist

        flags = torch.tensor(
            [0.0 if p.grad is None else 1.0 for p in params] + [loss], dtype=torch.float64, device=self.device
        )
        dist.all_reduce(flags)
        used = [p for p, flag in zip(params, flags[:-1].tolist(), strict=True) if flag > 0]
        bucket: list[torch.nn.Parameter] = []
        size = 0
        for p in used:
            if bucket and (
                size + p.numel() > BUCKET_ELEMENTS
                or (p.device, p.dtype) != (bucket[0].device, bucket[0].dtype)
            ):
                _reduce_bucket(bucket)
                bucket, size = [], 0
            bucket.append(p)
            size += p.numel()
        if bucket:
            _reduce_bucket(bucket)
        return float(flags[-1])

    def mean_record(self, record: Mapping) -> dict:
        """``record`` (from ``on_epoch_end``) with every number averaged over the ranks (e.g. the mean
        loss parts each rank saw on its shares); anything else is rank 0's."""
        everyone = self.gather_objects(dict(record))
        return _mean_leaves(everyone)


def _reduce_bucket(params: list[torch.nn.Parameter]) -> None:
    import torch.distributed as dist

    grads = [_dense(p.grad) if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p)  # views of the summed bucket: no second copy
        offset += n


def _dense(grad: torch.Tensor) -> torch.Tensor:
    return grad.to_dense() if grad.is_sparse else grad


def _mean_leaves(values: list):
    first = values[0]
    if isinstance(first, Mapping) and all(
        isinstance(v, Mapping) and v.keys() == first.keys() for v in values
    ):
        return {k: _mean_leaves([v[k] for v in values]) for k in first}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sum(values) / len(values)
    return first


def _brief(sizes: Mapping[str, list[int]]) -> str:
    return ", ".join(f"{task}: {len(s)} batches" + (f" {s[:4]}..." if s else "") for task, s in sizes.items())


# --------------------------------------------------------------------------------------------------
# Shares of a batch
# --------------------------------------------------------------------------------------------------


def shard(model, batch, rank: int, world_size: int) -> tuple[object | None, float]:
    """Rank ``rank``'s share of ``batch`` -- sentences ``rank, rank + world_size, ...`` -- and the weight
    of its loss, such that the weighted losses of all shares add up to the loss of ``batch``.

    ``model.shard_batch(batch, rank, world_size)`` decides when the model has it; otherwise the kit's
    batch types are known here (:data:`SHARDERS`). An empty share (a batch smaller than the world) is
    ``(None, 0.0)``: that rank contributes no loss and no gradient to the step."""
    if hasattr(model, "shard_batch"):
        return model.shard_batch(batch, rank, world_size)
    kind = f"{type(batch).__module__}.{type(batch).__qualname__}"
    sharder = SHARDERS.get(kind)
    if sharder is None:
        raise TypeError(
            f"fit cannot split a batch of type {kind} between processes: give the model a method "
            "shard_batch(batch, rank, world_size) -> (share or None, weight of its loss)"
        )
    n = len(batch)
    keep = list(range(rank, n, world_size))
    if not keep:
        return None, 0.0
    return sharder(model, batch, keep)


def _mean_weight(batch, keep: list[int]) -> float:
    return len(keep) / len(batch)


def _rows(tensor: torch.Tensor | None, keep: list[int]) -> torch.Tensor | None:
    return None if tensor is None else tensor[torch.tensor(keep, dtype=torch.long, device=tensor.device)]


def _shard_tagger_batch(model, batch, keep: list[int]):
    """:class:`mernlib.vocab.Batch` (the MTL tagger): rows of every tensor, padding kept (the same
    ``T`` and word width as the whole batch, so each sentence is computed exactly as in one process).
    The loss is summed or averaged over sentences as ``model.config.loss_reduction`` says."""
    reduction = getattr(getattr(model, "config", None), "loss_reduction", "mean")
    share = replace(
        batch,
        words=_rows(batch.words, keep),
        mask=_rows(batch.mask, keep),
        lengths=_rows(batch.lengths, keep),
        chars=_rows(batch.chars, keep),
        tags={task: _rows(t, keep) for task, t in batch.tags.items()},
        index=None if batch.index is None else [batch.index[i] for i in keep],
    )
    return share, 1.0 if reduction == "sum" else _mean_weight(batch, keep)


def _shard_word_batch(pieces, keep: list[int]):
    """:class:`mernlib.encoders.WordBatch`: the transformer rows (windows) of the kept sentences, and
    their gathers re-pointed at the new rows (the window length ``L`` is kept)."""
    L = pieces.input_ids.size(1)
    first, rows = 0, []
    starts = []
    for wins in pieces.windows:
        starts.append(first)
        first += len(wins)
    for b in keep:
        rows.extend(range(starts[b], starts[b] + len(pieces.windows[b])))
    new_row = torch.full((pieces.input_ids.size(0),), 0, dtype=torch.long)
    new_row[torch.tensor(rows, dtype=torch.long)] = torch.arange(len(rows))
    index = _rows(pieces.piece_index, keep)
    moved = new_row.to(index.device)[index // L] * L + index % L
    piece_mask = _rows(pieces.piece_mask, keep)
    return replace(
        pieces,
        input_ids=_rows(pieces.input_ids, rows),
        attention_mask=_rows(pieces.attention_mask, rows),
        token_type_ids=_rows(pieces.token_type_ids, rows),
        piece_index=torch.where(piece_mask, moved, torch.zeros_like(moved)),
        piece_mask=piece_mask,
        word_index=_rows(pieces.word_index, keep),
        word_mask=_rows(pieces.word_mask, keep),
        windows=[pieces.windows[b] for b in keep],
    )


def _shard_hst_batch(model, batch, keep: list[int]):
    """:class:`mernlib.models.hst.HSTBatch`: CRF losses averaged over sentences (exact with the default
    CRF type head; a softmax type head averages over tokens, weighted here by sentences)."""
    share = replace(
        batch,
        pieces=_shard_word_batch(batch.pieces, keep),
        mask=_rows(batch.mask, keep),
        tags=_rows(batch.tags, keep),
        type_tags=_rows(batch.type_tags, keep),
        index=[batch.index[i] for i in keep],
    )
    return share, _mean_weight(batch, keep)


def _shard_e2e_batch(model, batch, keep: list[int]):
    """:class:`mernlib.models.e2emern.E2EBatch`: the kept sentences with all their samples (re-indexed).
    Its loss parts are averaged over tokens and pairs; the share is weighted by sentences."""
    local = {old: new for new, old in enumerate(keep)}
    samples = [replace(s, sentence=local[s.sentence]) for s in batch.samples if s.sentence in local]
    return replace(batch, sentences=[batch.sentences[i] for i in keep], samples=samples), _mean_weight(
        batch, keep
    )


SHARDERS: dict[str, Callable] = {
    "mernlib.vocab.Batch": _shard_tagger_batch,
    "mernlib.models.hst.HSTBatch": _shard_hst_batch,
    "mernlib.models.e2emern.E2EBatch": _shard_e2e_batch,
}
"""Batch type (module.qualname) -> ``(model, batch, kept positions) -> (share, weight)``."""


__all__ = [
    "BUCKET_ELEMENTS",
    "SHARDERS",
    "TIMEOUT_MINUTES",
    "Context",
    "context",
    "env_world_size",
    "is_main_process",
    "rank",
    "shard",
]
