"""GPU paths that no CPU run would reach, with the device faked where a real one is missing.

- The precision's cuDNN flags (TF32, benchmark: process-wide, set only on CUDA) hold in the backward
  pass and in `memory_saving`'s recomputation, not only in the forward: the CPU stands in
  for CUDA where `engine/precision.py` decides whether to set them, and hooks record the
  flags while the real optimiser runs. bf16 autocast runs for real on the CPU.
- The model cache keeps one copy of VGG per device (`meta` stands in for a second device).
- Out of memory on MPS and a failed CPU allocation earn the same one safer retry as CUDA's,
  through the real runner and local executor, in batches and in a Ray worker's report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from conftest import sample_photo, write_manifest, write_rgb
from nst_batch.engine import FeatureExtractor, LossWeights, NonFiniteLoss, OptimizeConfig, style_grams, stylize
from nst_batch.engine import precision as precision_module
from nst_batch.events import Event
from nst_batch.work import attempts
from nst_batch.work import image as local
from nst_batch.executors.local import LocalExecutor
from nst_batch.ledger import Ledger
from nst_batch.manifest import load_manifest, parse_overrides
from nst_batch.models import ModelCache
from nst_batch.plan import state_dir
from nst_batch.runner import run
from nst_batch.settings import Job, Settings
from nst_batch.weights import load_features

STYLE = ("relu1_1", "relu2_1")
CONTENT = ("relu2_1",)
Flags = tuple[bool, bool, bool]  # (cuda.matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark)
DEFAULTS: Flags = (False, True, False)  # PyTorch's own, which the backward used to run with


def _flags() -> Flags:
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)


def _set_flags(flags: Flags) -> None:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = flags


@pytest.fixture()
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CPU stands in for CUDA where the precision flags are set; PyTorch's defaults around it."""
    monkeypatch.setattr(precision_module, "_has_cuda_flags", lambda device: True)
    saved = _flags()
    _set_flags(DEFAULTS)
    yield
    _set_flags(saved)


# --- precision in the backward and the recomputation ----------------------------------------------


def _watch(extractor: FeatureExtractor, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Flags, torch.dtype]]:
    """(what, phase, flags, dtype) at every convolution run and every feature's gradient.

    phase is "backward" inside `Tensor.backward`: a convolution run there is `memory_saving`'s
    recomputation; a feature's gradient is always computed there.
    """
    records: list[tuple[str, str, Flags, torch.dtype]] = []
    phase = ["forward"]
    real_backward = torch.Tensor.backward

    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        phase[0] = "backward"
        try:
            real_backward(self, *args, **kwargs)
        finally:
            phase[0] = "forward"

    def on_conv(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        records.append(("conv", phase[0], _flags(), output.dtype))  # bfloat16: under autocast

    def on_features(module: nn.Module, inputs: Any, output: dict[str, torch.Tensor]) -> None:
        for feature in output.values():
            if feature.requires_grad:
                feature.register_hook(lambda grad: records.append(("grad", phase[0], _flags(), grad.dtype)))

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    for module in extractor.layers:
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(on_conv)
    extractor.register_forward_hook(on_features)
    return records


@pytest.mark.parametrize(("mode", "flags", "conv_dtype"), [
    ("fp32", (False, False, True), torch.float32),
    ("tf32", (False, True, True), torch.float32),  # TF32 convolutions; the matmuls (Grams) stay fp32
    ("bf16", (False, False, True), torch.bfloat16),
])
def test_precision_holds_in_the_backward_and_the_recomputation(
        fake_cuda: None, monkeypatch: pytest.MonkeyPatch, mode: str, flags: Flags, conv_dtype: torch.dtype) -> None:
    extractor = FeatureExtractor(load_features("random", seed=0).features, {*STYLE, *CONTENT}, memory_saving=True)
    gen = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 24, 24, generator=gen), torch.rand(1, 3, 24, 24, generator=gen)
    grams = style_grams(extractor, [(style, 1.0)], STYLE, precision=mode)
    records = _watch(extractor, monkeypatch)
    stylize(extractor=extractor, content=content, grams=grams, init=content,
            weights=LossWeights(content=1.0, style=10.0, tv=0.0, style_layers={n: 0.5 for n in STYLE},
                                content_layers=CONTENT),
            config=OptimizeConfig(iterations=2, precision=mode))
    seen = {(what, phase) for what, phase, _, _ in records}
    assert seen == {("conv", "forward"), ("conv", "backward"), ("grad", "backward")}  # recomputed, and backward
    wrong = [r for r in records if r[2] != flags]
    assert not wrong, f"{len(wrong)} of {len(records)} ran with other flags, e.g. {wrong[0]}"
    assert {dtype for what, _, _, dtype in records if what == "conv"} == {conv_dtype}  # forward and recomputation
    assert {dtype for what, _, _, dtype in records if what == "grad"} == {torch.float32}  # Grams, losses: fp32
    assert _flags() == DEFAULTS  # given back afterwards


# --- one copy of VGG per device --------------------------------------------------------------------


def test_the_model_cache_keeps_one_copy_per_device() -> None:
    """Moving a job's extractor to its device must not move another device's: `Module.to` works in place."""
    cache = ModelCache()
    s = Settings(weights="random", device="cpu", content_layers=CONTENT, style_layers=STYLE)
    cpu, other = torch.device("cpu"), torch.device("meta")  # meta: a second device that needs no hardware
    on_cpu = cache.extractor(s, cpu)
    on_other = cache.extractor(s, other)
    assert on_other.layers[0].weight.device == other and on_other.mean.device == other
    assert on_cpu.layers[0].weight.device == cpu and on_cpu.layers[0] is not on_other.layers[0]
    assert on_cpu(torch.rand(1, 3, 16, 16))["relu2_1"].shape == (1, 128, 8, 8)  # the CPU job still runs
    assert cache.extractor(s, cpu).layers[0] is on_cpu.layers[0]  # each device's copy is kept, read once
    assert cache.extractor(s, other).layers[0] is on_other.layers[0] and len(cache.messages) == 1


# --- out of memory on any device: one safer retry ------------------------------------------------

MPS_OOM = ("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.20 GB, max allowed: "
           "18.13 GB). Tried to allocate 256.00 MB on private pool.")
CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
           "to allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)")  # torch 2.14's own words


@pytest.mark.parametrize(("exc", "out_of_memory"), [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError(MPS_OOM), True),
    (RuntimeError(CPU_OOM), True),
    (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 64 bytes."), True),  # Windows
    (MemoryError(), True),
    (NonFiniteLoss("loss became nan at iteration 3"), False),
])
def test_out_of_memory_on_every_device_is_a_retryable_fault(exc: BaseException, out_of_memory: bool) -> None:
    assert attempts.fault_of(exc) == attempts.Fault(out_of_memory, f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("exc", [RuntimeError("CUDA error: an illegal memory access was encountered"),
                                 RuntimeError("mat1 and mat2 shapes cannot be multiplied"), ValueError(MPS_OOM)])
def test_other_errors_are_not_retried(exc: BaseException) -> None:
    assert attempts.fault_of(exc) is None


def _jobs(root: Path, *overrides: str) -> tuple[Job, ...]:
    photo = sample_photo("astronaut.jpg", 40)  # square: both photos share a working size (one batch)
    write_rgb(root / "photos" / "a.png", photo)
    write_rgb(root / "photos" / "b.png", np.ascontiguousarray(photo[:, ::-1]))
    write_rgb(root / "styles" / "s.png", sample_photo("coffee.jpg", 40))  # any picture will do as a style
    manifest = write_manifest(root / "p.yaml", "version: 1\njobs:\n"
                              "  - {name: photos, input: photos, style: styles/s.png, output: out}\n")
    return load_manifest(manifest, parse_overrides([
        "size=32", "iterations=2", "tolerance=0", "scales=[1.0]", "style_layers=[conv1_1, conv2_1]",
        "content_layers=[conv2_1]", "weights=random", "device=cpu", *overrides])).jobs


def _run(jobs: tuple[Job, ...]) -> tuple[int, int, dict[str, dict[str, Any]]]:
    events: list[Event] = []
    summary = run(jobs, executor=LocalExecutor(), emit=events.append, should_stop=lambda: False)
    return summary.jobs[0].done, summary.jobs[0].failed, Ledger(state_dir(jobs[0])).records


@pytest.mark.parametrize("exc", [RuntimeError(MPS_OOM), RuntimeError(CPU_OOM), MemoryError()],
                         ids=["mps", "cpu-allocator", "MemoryError"])
def test_out_of_memory_anywhere_earns_one_retry_in_less_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       exc: BaseException) -> None:
    real = local.stylize_image_file
    calls: list[tuple[str, float]] = []

    def stylize_once_out_of_memory(ctx: Any, src: Path, dst: Path, **kwargs: Any) -> Any:
        calls.append((src.name, ctx.job.memory_share))
        if calls == [("a.png", 1.0)]:
            raise exc
        return real(ctx, src, dst, **kwargs)

    monkeypatch.setattr(local, "stylize_image_file", stylize_once_out_of_memory)
    done, failed, records = _run(_jobs(tmp_path))
    assert (done, failed) == (2, 0), records
    assert calls == [("a.png", 1.0), ("a.png", 0.5), ("b.png", 1.0)]  # once more, in half the memory; b untouched
    assert records["a.png"]["metrics"]["retried"] == f"{type(exc).__name__}: {exc}"
    assert "retried" not in records["b.png"]["metrics"]


def test_a_batch_out_of_memory_on_mps_is_split_into_single_images(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    singles: list[str] = []
    real = local.stylize_image_file

    def batch_out_of_memory(ctx: Any, contents: list[Any], **kwargs: Any) -> Any:
        batches.append(len(contents))
        raise RuntimeError(MPS_OOM)

    def single(ctx: Any, src: Path, dst: Path, **kwargs: Any) -> Any:
        singles.append(src.name)
        return real(ctx, src, dst, **kwargs)

    monkeypatch.setattr(local, "stylize_batch", batch_out_of_memory)
    monkeypatch.setattr(local, "stylize_image_file", single)
    done, failed, records = _run(_jobs(tmp_path, "batch_size=2"))
    assert (done, failed) == (2, 0), records
    assert batches == [2] and singles == ["a.png", "b.png"]


def test_a_ray_worker_reports_mps_out_of_memory_as_retryable() -> None:
    def out_of_memory() -> None:
        raise RuntimeError(MPS_OOM)

    from nst_batch.work.tasks import Failed, answer_of

    answer = answer_of(out_of_memory, keep_error=False)  # what a Ray worker answers (_Worker.run)
    assert isinstance(answer, Failed) and answer.error is None  # plain data: it crosses to the driver
    assert (answer.message, answer.fault) == (f"RuntimeError: {MPS_OOM}", attempts.Fault(True, answer.message))
