"""The `nst-batch` command: thin; parses options, calls the library, maps errors to exit codes.

Exit codes: 0 all done; 1 some output failed; 2 bad manifest, weights or device;
3 another run holds the outputs' lock; 130 interrupted (finished outputs are kept).
"""

from __future__ import annotations

import functools
import io
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nst_batch import __version__
from nst_batch.errors import ManifestError, NstBatchError
from nst_batch.events import Event, UnitFinished

if TYPE_CHECKING:
    from nst_batch.manifest import Manifest
    from nst_batch.plan import JobPlan

# Modules that import torch, OpenCV or PyAV are imported by the commands that need them, so that
# `--help`, `--version` and a mistyped command answer at once (about 0.3 s instead of 3 s).

app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Batch neural style transfer (Gatys et al.) over image folders and videos.")
weights_app = typer.Typer(no_args_is_help=True, help="Where the VGG19 / VGG16 weights are; fetch or import them.")
app.add_typer(weights_app, name="weights")

# No markup or emoji codes: names and paths from the manifest are printed as they are ("[/x]" would raise).
out = Console(highlight=False, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, markup=False, emoji=False)
_state = {"debug": False}
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def _errors(func: F) -> F:
    """One place turns an NstBatchError into one line and an exit code (a traceback only with --debug)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NstBatchError as exc:
            if _state["debug"]:
                raise
            err.print(f"error: {_one_line(str(exc))}", style="red", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
    return wrapper  # type: ignore[return-value]


def _one_line(text: str) -> str:
    """A message as one line: a newline or other control character from a name or path is shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _version(value: bool) -> None:
    if value:
        out.print(f"nst-batch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks: of a fatal error, and of every failed "
                               "output after the summary."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not UTF-8 (Python holds its bytes as surrogates) is shown escaped (`\udce9`),
        # never a UnicodeEncodeError in the middle of the night's log.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


SweepOpt = typer.Option([], "--sweep", metavar="KEY=V1,V2", help="Try each value of a setting (or `style`) for every "
                        "job (repeatable: every combination), e.g. --sweep style_weight=2,5,10: one output folder "
                        "per combination and a contact sheet per input.")
SetOpt = typer.Option([], "--set", "-s", metavar="KEY=VALUE",
                      help="Override a setting for every job (repeatable), e.g. --set size=256 "
                      "--set video.iterations=50.")
DeviceOpt = typer.Option(None, "--device", help="Shortcut for --set device=... (auto, cpu, cuda, cuda:N, mps).")
WeightsOpt = typer.Option(None, "--weights", help="Shortcut for --set weights=... (imagenet, random, or a .pth path).")


TargetArg = typer.Argument(None, show_default=False, metavar="[MANIFEST | INPUT]",
                           help="The pipeline manifest (YAML; default ./pipeline.yaml), or an image, a video or "
                           "a folder to stylize with --style (the one-line form).")
StyleOpt = typer.Option([], "--style", metavar="IMAGE", help="The one-line form: the style image (repeat it to "
                        "blend several with equal weights).")
OutputOpt = typer.Option(None, "--output", "-o", help="The one-line form: the output (a folder, an image file, "
                         "or an .mp4 for a video; default: out).")
DEFAULT_MANIFEST = Path("pipeline.yaml")


def _load(target: Optional[Path], sets: list[str], device: Optional[str], weights: Optional[str],
          styles: Optional[list[Path]] = None, output: Optional[Path] = None,
          sweeps: Optional[list[str]] = None) -> Manifest:
    """The manifest TARGET names, or the one the one-line form (an input with --style) stands for."""
    from nst_batch.manifest import load_manifest, one_line_manifest, parse_overrides, parse_sweeps

    items = list(sets)
    if device is not None:
        items.append(f"device={device}")
    if weights is not None:
        items.append(f"weights={weights}")
    overrides = parse_overrides(items)
    swept = parse_sweeps(sweeps or [])
    if target is None:
        if not DEFAULT_MANIFEST.exists():
            raise ManifestError("no manifest given, and no pipeline.yaml here: give one, write one with "
                                "`nst-batch init`, or stylize directly: nst-batch run PHOTO_OR_FOLDER_OR_VIDEO "
                                "--style STYLE -o OUT")
        target = DEFAULT_MANIFEST
    if target.suffix.lower() in (".yaml", ".yml") or (target.is_file() and not styles and not output
                                                       and not _is_media(target)):
        if styles or output:
            raise ManifestError(f"{target}: --style and --output are for the one-line form (nst-batch run "
                                "PHOTO_OR_FOLDER_OR_VIDEO --style STYLE -o OUT); a manifest names its own")
        return load_manifest(target, overrides, swept)
    return one_line_manifest(target, styles or [], output, overrides, swept)


def _is_media(path: Path) -> bool:
    from nst_batch.media.images import is_image_file
    from nst_batch.media.video import is_video_file

    return is_image_file(path) or is_video_file(path)


@app.command()
@_errors
def run(
    manifest: Optional[Path] = TargetArg,
    sets: list[str] = SetOpt,
    sweeps: list[str] = SweepOpt,
    styles: list[Path] = StyleOpt,
    output: Optional[Path] = OutputOpt,
    device: Optional[str] = DeviceOpt,
    weights: Optional[str] = WeightsOpt,
    force: bool = typer.Option(False, "--force", help="Redo every output, even those already finished."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failure."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only notices, failures and the summary."),
    executor: str = typer.Option("local", "--executor", help="local (this process) | ray (every GPU here, "
                                 "or a Ray cluster with --address)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (`auto`, or host:port); "
                                          "default: start a local Ray."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Ray workers: default one per GPU, "
                                          "or 1 without GPUs (each uses its share of the CPUs)."),
    ray_temp_dir: Optional[Path] = typer.Option(None, "--ray-temp-dir", help="Where a local Ray keeps its "
                                                "sockets and logs (default: Ray's, /tmp/ray)."),
) -> None:
    """Stylize every job of MANIFEST, or INPUT with --style; finished outputs are skipped (resume)."""
    from nst_batch.executors import EXECUTORS, make_executor
    from nst_batch.progress import ProgressView, print_summary
    from nst_batch.runner import run as run_jobs

    if executor not in EXECUTORS:
        raise ManifestError(f"--executor: unknown executor '{executor}' ({' | '.join(EXECUTORS)})")
    loaded = _load(manifest, sets, device, weights, styles, output, sweeps)
    from nst_batch.regions import check_regions

    check_regions(loaded.jobs)  # a mask a user got wrong: refused before any work
    stop = _StopFlag()
    traces: list[UnitFinished] = []  # failed units, for --debug
    live = _LiveReport(loaded)

    def emit(event: Event) -> None:
        if isinstance(event, UnitFinished) and event.trace:
            traces.append(event)
        view(event)
        live(event)

    try:
        runner = make_executor(executor, address=address, workers=workers,
                               temp_dir=str(ray_temp_dir.resolve()) if ray_temp_dir else None)
        try:
            with stop.installed(), ProgressView(out, quiet=quiet) as view:
                summary = run_jobs(loaded.jobs, executor=runner, emit=emit,
                                   should_stop=stop, force=force, fail_fast=fail_fast)
        finally:
            runner.close()
    except KeyboardInterrupt:  # a second Ctrl-C: no summary, but still say how to go on
        _say_how_to_resume()
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print_summary(out, summary, base=loaded.path.parent)
    if _state["debug"]:
        for failed in traces:
            err.print(f"traceback of the failure of {failed.job}/{failed.key}:", style="red", markup=False)
            err.out((failed.trace or "").rstrip("\n"), highlight=False)
    _write_report(loaded)
    if summary.interrupted:
        _say_how_to_resume()
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(1)


class _LiveReport:
    """The report written while the run goes: on each output started and finished (at most every few
    seconds), showing what is running now with its latest snapshot; the page reloads itself. The report
    written after the run replaces it. A live report that cannot be written never fails the run."""

    MIN_GAP = 3.0  # s between two rewrites

    def __init__(self, loaded: Manifest) -> None:
        self.jobs = {job.name: job for job in loaded.jobs}
        self.running: dict[tuple[str, str], str] = {}  # (job, key) → kind, in the order they started
        self.last = float("-inf")
        self.dirty = False  # what runs has changed since the page was written

    def __call__(self, event: Event) -> None:
        from nst_batch.events import UnitStarted

        if isinstance(event, UnitStarted):
            self.running[(event.job, event.key)] = event.kind
            self.dirty = True
        elif isinstance(event, UnitFinished) and (event.job, event.key) in self.running:
            del self.running[(event.job, event.key)]
            self.dirty = True
        # Any event (progress comes often) writes a page that is out of date, once the gap has passed.
        if not (self.dirty and self.running) or time.monotonic() - self.last < self.MIN_GAP:
            return
        self.last, self.dirty = time.monotonic(), False
        from nst_batch.report import write_report

        try:
            now = [(self.jobs[job], key, kind) for (job, key), kind in self.running.items()]
            write_report(list(self.jobs.values()), running=now)
        except (NstBatchError, OSError):
            pass


def _say_how_to_resume() -> None:
    err.print(f"interrupted: finished outputs are kept; run `{_command_line()}` again to resume",
              style="yellow", soft_wrap=True)


def _command_line() -> str:
    """This command again: the same options give the same settings hash, so a resume skips what is done
    (without --force, which would redo it)."""
    return shlex.join(["nst-batch", *(arg for arg in sys.argv[1:] if arg != "--force")])


def _write_report(loaded: Manifest) -> None:
    """The HTML report after every run; a report that cannot be made never fails the run."""
    from nst_batch.report import write_report

    from nst_batch.progress import shown_path

    try:
        out.print(f"report: {shown_path(write_report(loaded.jobs), loaded.path.parent)}", soft_wrap=True)
    except (NstBatchError, OSError) as exc:
        err.print(f"warning: no report: {exc}", style="yellow", soft_wrap=True)


class _StopFlag:
    """SIGINT/SIGTERM ask the run to stop after the current iteration; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        err.print("stopping after the current iteration (Ctrl-C again to stop now)", style="yellow")

    def installed(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def scope() -> Any:
            old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
        return scope()


@app.command()
@_errors
def validate(
    manifest: Optional[Path] = TargetArg,
    sets: list[str] = SetOpt,
    sweeps: list[str] = SweepOpt,
    device: Optional[str] = DeviceOpt,
    weights: Optional[str] = WeightsOpt,
    styles: list[Path] = StyleOpt,
    output: Optional[Path] = OutputOpt,
) -> None:
    """Check MANIFEST without running (schema, files decode, layers, device, weights); print the plan."""
    from nst_batch.checks import check_jobs

    loaded = _load(manifest, sets, device, weights, styles, output, sweeps)
    plans, problems = check_jobs(loaded.jobs)
    table = Table(title=f"plan: {manifest or DEFAULT_MANIFEST}")
    for col in ("job", "outputs", "kind", "size", "iterations", "style", "output"):
        table.add_column(col)
    for plan in plans:
        s = plan.job.settings
        kinds = sorted({u.kind for u in plan.units})
        iters = str(s.iterations) if kinds == ["image"] else f"{s.video.first_iterations}/{s.video.iterations} (video)"
        table.add_row(plan.job.name, str(len(plan.units)), "+".join(kinds), str(s.size), iters,
                      ", ".join(f"{p.image.name}x{p.weight:g}" for p in plan.job.styles), str(plan.job.output))
    out.print(table)
    _exit_on_problems(problems, plans)
    out.print("manifest OK")


def _exit_on_problems(problems: list[str], plans: Sequence[JobPlan] = ()) -> None:
    """Print every problem `check_jobs` found, one line each, and exit 2 if there were any; before them, the
    inputs of a folder that cannot be read (warnings: a run fails each alone)."""
    from nst_batch.plan import unreadable_lines

    for line in (line for plan in plans for line in unreadable_lines(plan)):
        err.print(f"warning: {_one_line(line)}", style="yellow", soft_wrap=True)
    for problem in problems:
        err.print(f"error: {_one_line(problem)}", style="red", soft_wrap=True)
    if problems:
        raise typer.Exit(2)


@app.command()
@_errors
def status(
    manifest: Optional[Path] = TargetArg,
    sets: list[str] = SetOpt,
    sweeps: list[str] = SweepOpt,
    device: Optional[str] = DeviceOpt,
    weights: Optional[str] = WeightsOpt,
    styles: list[Path] = StyleOpt,
    output: Optional[Path] = OutputOpt,
) -> None:
    """Show what is done, pending and failed for each job of MANIFEST (give the options `run` was given)."""
    from nst_batch.plan import PlanError
    from nst_batch.runner import done_under_other_settings, job_status

    # --weights matters: it is part of the settings hash, so without it a finished
    # `run --weights random` would show as pending. --device is accepted for symmetry.
    loaded = _load(manifest, sets, device, weights, styles, output, sweeps)
    table = Table(title=f"status: {manifest or DEFAULT_MANIFEST}")
    for col in ("job", "done", "done, other settings", "pending", "failed", "output"):
        table.add_column(col)
    notes = []
    for job in loaded.jobs:
        try:
            st = job_status(job)
            other = done_under_other_settings(job)
        except PlanError as exc:
            table.add_row(job.name, "-", "-", "-", "-", str(exc))
            continue
        pending = [key for key in st["pending"] if key not in other]
        table.add_row(job.name, str(len(st["done"])), str(len(other)), str(len(pending)), str(len(st["failed"])),
                      str(job.output))
        for how in sorted(set(other.values())):
            count = sum(1 for v in other.values() if v == how)
            notes.append(f"{job.name}: {count} output(s) were made with {how}: with those --set values "
                         "`status` counts them as done; `run` without them makes them again")
    out.print(table)
    for note in notes:
        out.print(note, soft_wrap=True)


@app.command()
@_errors
def plan(
    manifest: Optional[Path] = TargetArg,
    sets: list[str] = SetOpt,
    sweeps: list[str] = SweepOpt,
    device: Optional[str] = DeviceOpt,
    styles: list[Path] = StyleOpt,
    output: Optional[Path] = OutputOpt,
) -> None:
    """Print every job's units, working size, iterations and an estimated time on the chosen device."""
    from nst_batch.checks import check_jobs
    from nst_batch.estimate import estimate
    from nst_batch.plan import ignored_text

    loaded = _load(manifest, sets, device, "random", styles, output, sweeps)  # timing: random weights cost the same
    plans, problems = check_jobs(loaded.jobs)
    _exit_on_problems(problems, plans)
    table = Table(title=f"plan: {manifest or DEFAULT_MANIFEST} (estimated by a short calibration on this machine)")
    for col in ("job", "outputs", "size", "iterations each", "iterations in all", "s/iteration", "estimate"):
        table.add_column(col, justify="right" if col != "job" else "left")
    estimates = estimate(plans)
    for plan_, est in zip(plans, estimates):
        table.add_row(est.job, str(est.units), str(plan_.job.settings.size), _iterations_each(plan_),
                      str(est.iterations), f"{est.seconds_per_iteration:.3f}", _duration(est.seconds))
    out.print(table)
    memory = Table(title="memory: each output's plan, as a run would choose it now")
    for col in ("job", "output", "working size", "estimate GiB", "budget GiB", "plan"):
        memory.add_column(col, justify="right" if "GiB" in col else "left")
    for est in estimates:
        for o in est.outputs:
            if isinstance(o.plan, str):  # nothing fits: the run will fail this output at once, saying so
                memory.add_row(est.job, o.key, f"{o.width}x{o.height}", "-", "-", Text(o.plan, style="red"))
            else:
                memory.add_row(est.job, o.key, f"{o.width}x{o.height}", f"{o.plan.estimate / 1024 ** 3:.2f}",
                               f"{o.plan.budget / 1024 ** 3:.2f}", o.plan.name)
    out.print(memory)
    for plan_ in plans:
        if plan_.ignored:
            out.print(f"ignored: {plan_.job.name}: {ignored_text(plan_.ignored)} "
                      "(not images or videos nst-batch reads)", highlight=False, soft_wrap=True)
    out.print(f"total: about {_duration(sum(e.seconds for e in estimates))} on {_devices(plans)}")


def _iterations_each(plan: JobPlan) -> str:
    """The budget of one output: a photo's iterations, or a video's cold / warm frames' (each may stop sooner)."""
    s = plan.job.settings
    kinds = {u.kind for u in plan.units}
    parts = [str(s.iterations)] if "image" in kinds else []
    if "video" in kinds:
        parts.append(f"{s.video.first_iterations} cold / {s.video.iterations} warm a frame")
    return ", ".join(parts) or "-"


def _devices(plans: Sequence[JobPlan]) -> str:
    """The devices the jobs will run on, as resolved now (`auto` said as what it picks: cpu, cuda:0, mps)."""
    from nst_batch.device import resolve_device

    names = []
    for plan_ in plans:
        try:
            name = str(resolve_device(plan_.job.settings.device))
        except NstBatchError:
            name = plan_.job.settings.device
        if name not in names:
            names.append(name)
    return ", ".join(names) or "-"


@app.command()
@_errors
def preview(
    manifest: Optional[Path] = TargetArg,
    sets: list[str] = SetOpt,
    sweeps: list[str] = SweepOpt,
    device: Optional[str] = DeviceOpt,
    weights: Optional[str] = WeightsOpt,
    styles: list[Path] = StyleOpt,
    output: Optional[Path] = OutputOpt,
    size: int = typer.Option(256, "--size", min=16, max=4096, help="The preview's working size, px."),
    images: int = typer.Option(3, "--images", min=1, max=50, help="Pictures of each folder, spread over it."),
    iterations: int = typer.Option(60, "--iterations", min=1, help="At most, per picture (a video's warm frames "
                                   "keep the job's own)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where the preview goes (default: "
                                           "nst-batch-preview/ beside the manifest)."),
) -> None:
    """A few pictures of each job at a small size, in minutes, and the estimate for the whole night.

    Never touches the jobs' outputs or ledgers."""
    from nst_batch.checks import check_jobs
    from nst_batch.estimate import estimate
    from nst_batch.preview import preview as run_preview

    loaded = _load(manifest, sets, device, weights, styles, output, sweeps)
    plans, problems = check_jobs(loaded.jobs)
    _exit_on_problems(problems, plans)
    where = out_dir or loaded.path.parent / "nst-batch-preview"
    started = time.perf_counter()
    shots = run_preview(loaded.jobs, where, size=size, images=images, iterations=iterations,
                        say=lambda line: out.print(line, soft_wrap=True))
    out.print(f"preview: {len(shots)} pictures in {_duration(time.perf_counter() - started)}, written to "
              f"{where} (preview.png, preview.html); the jobs' outputs and ledgers were not touched", soft_wrap=True)
    night = estimate(plans)
    out.print(f"the whole night (nst-batch plan): about {_duration(sum(e.seconds for e in night))} on "
              f"{_devices(plans)}", soft_wrap=True)


def _duration(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


@app.command()
@_errors
def report(manifest: Optional[Path] = TargetArg, sets: list[str] = SetOpt, sweeps: list[str] = SweepOpt,
           device: Optional[str] = DeviceOpt, weights: Optional[str] = WeightsOpt, styles: list[Path] = StyleOpt,
           output: Optional[Path] = OutputOpt) -> None:
    """Rebuild report.html at the output root from the jobs' ledgers (each output with what it was made with)."""
    from nst_batch.report import write_report

    out.print(f"report: {write_report(_load(manifest, sets, device, weights, styles, output, sweeps).jobs)}")


@app.command()
def schema() -> None:
    """Print the manifest's JSON Schema (for editor completion and checks)."""
    import json

    from nst_batch.schema import manifest_schema

    print(json.dumps(manifest_schema(), indent=2))


@app.command()
@_errors
def init(path: Path = typer.Argument(Path("pipeline.yaml"), help="Where to write the starter manifest: a .yaml "
                                     "file, or a folder (pipeline.yaml inside); missing folders are created."),
         input_: Optional[Path] = typer.Option(None, "--input", help="The job's input (an image, a video or a "
                                               "folder): the manifest the one-line `run INPUT --style S` stands for."),
         styles: list[Path] = typer.Option([], "--style", metavar="IMAGE", help="The job's style image "
                                           "(repeat it to blend several with equal weights)."),
         output: Optional[Path] = typer.Option(None, "--output", "-o", help="The job's output (default: out)."),
         force: bool = typer.Option(False, "--force", help="Overwrite a manifest that is already there.")) -> None:
    """Write a commented starter manifest (and its JSON Schema beside it)."""
    import json

    from nst_batch.manifest import one_line_manifest
    from nst_batch.schema import OneJob, manifest_schema, starter_manifest

    if path.is_dir() or (not path.exists() and path.suffix.lower() not in (".yaml", ".yml")):
        path = path / "pipeline.yaml"
    if path.exists() and not force:
        raise ManifestError(f"{path}: already exists; not overwriting it (--force to)")
    job = None
    if input_ is not None or styles or output is not None:
        if input_ is None:
            raise ManifestError("--style and --output describe a job: give its --input too")
        one_line_manifest(input_, styles, output)  # the same checks, and the same words, as `run INPUT --style`
        job = OneJob(input=input_, styles=tuple(styles), output=output or Path("out"))
    schema = path.parent / "nst-batch.schema.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_manifest(job, base=path.parent), encoding="utf-8")
        schema.write_text(json.dumps(manifest_schema(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        where = exc.filename or path
        raise NstBatchError(f"{where}: cannot write the starter manifest: {exc.strerror or exc}") from exc
    out.print(f"wrote {path} and {schema}")


@weights_app.command("info")
@_errors
def weights_info() -> None:
    """Where the ImageNet VGG19 and VGG16 weights are expected, and whether they are there."""
    from nst_batch.weights import imagenet_url, weights_info as info

    found = 0
    for model in ("vgg19", "vgg16"):
        w = info(model)
        out.print(f"imagenet weights for `model: {model}`: {w.path}")
        if not w.exists:
            out.print(f"  missing. Get them with `nst-batch weights fetch --model {model}` (online), or download "
                      f"{imagenet_url(model)} elsewhere and run `nst-batch weights import FILE`.")
            continue
        found += 1
        official = ("torchvision's official IMAGENET1K_V1 file" if w.official
                    else "NOT torchvision's official file (sha256 differs)")
        out.print(f"  present, {w.size / 1e6:.1f} MB, {official}")
    if not found:
        raise typer.Exit(1)


@weights_app.command("fetch")
@_errors
def weights_fetch(model: str = typer.Option("vgg19", "--model", help="vgg19 | vgg16")) -> None:
    """Download torchvision's ImageNet VGG19 (or VGG16) weights into the cache (needs internet)."""
    from nst_batch.weights import IMAGENET_FILES, fetch_imagenet

    if model not in IMAGENET_FILES:
        raise ManifestError(f"--model: must be one of {', '.join(IMAGENET_FILES)}, got {model!r}")
    out.print(f"weights ready: {fetch_imagenet(model)}")


@weights_app.command("import")
@_errors
def weights_import(path: Path = typer.Argument(..., help="A VGG19 or VGG16 state dict (.pth) in torchvision's "
                                                         "format.")) -> None:
    """Check PATH is a VGG19 or VGG16 state dict and install it as that model's `imagenet` weights."""
    from nst_batch.weights import import_weights

    done = import_weights(path)
    out.print(f"installed {path} as {done.path} (`weights: imagenet` with `model: {done.model}`)")
    if not done.official:
        err.print("note: this file's sha256 differs from torchvision's official IMAGENET1K_V1 file; "
                  "it will be used for `weights: imagenet` all the same", style="yellow")
    if done.preprocess == "caffe":
        err.print(f"note: this file looks Caffe-preprocessed ({done.why}); `weights: imagenet` assumes torchvision's "
                  "preprocessing: add `preprocess: caffe` to the manifest, or use the file as `weights: PATH`",
                  style="yellow")


def entry() -> None:
    """Console-script entry point."""
    # `--debug` is an option of the program; a user also types it after the command (`run p.yaml --debug`).
    if "--debug" in sys.argv[2:]:
        sys.argv[1:] = ["--debug", *(arg for arg in sys.argv[1:] if arg != "--debug")]
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted", style="yellow")
        sys.exit(EXIT_INTERRUPTED)
