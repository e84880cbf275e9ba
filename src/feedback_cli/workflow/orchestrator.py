"""The orchestrator: creates or resumes a run folder and drives its stages in order.

For each unfinished stage it builds a StageContext, awaits `stage.run`, records the result in RunState
and saves the checkpoint atomically (stages also save after every paid item). Resume re-enters the same
loop at the first unfinished stage, and inside it at the first unfinished item.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feedback_cli import __version__
from feedback_cli.config import Settings
from feedback_cli.errors import BudgetError, FbloopError, Interrupted, StageFailed
from feedback_cli.files import atomic_copy, sha256_file
from feedback_cli.runstate.events import EventBus
from feedback_cli.runstate.ledger import CostLedger
from feedback_cli.runstate.models import Artifact, ReviewDecision, RunOptions, RunState, StageRecord, utcnow
from feedback_cli.runstate.runfolder import RunFolder, new_named_run_dir, new_run_dir
from feedback_cli.stages.base import StageContext
from feedback_cli.stages.registry import get as get_stage
from feedback_cli.stages.services import Services
from feedback_cli.stages.video_join import assemble_picks, describe, forget_final_video
from feedback_cli.workflow import checkpoint
from feedback_cli.workflow.plan import stages_for
from feedback_cli.workflow.report import write_reports
from feedback_cli.workflow.review import Candidate, Reviewer, ReviewRequest


class RunStopped(FbloopError):
    """The person chose to stop at a review; the run can be resumed."""

    exit_code = 0


async def _on_daemon_thread(ask: Callable[[ReviewRequest], ReviewDecision], request: ReviewRequest) -> ReviewDecision:
    """Run a blocking review question on a daemon thread. Unlike `asyncio.to_thread`, a run stopped while the
    question waits (SIGTERM, SIGHUP) does not wait for an answer that will never come before it exits."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[ReviewDecision] = loop.create_future()

    def settle(value: ReviewDecision | None, error: BaseException | None) -> None:
        if answer.done():  # the run was stopped meanwhile
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        value: ReviewDecision | None = None
        error: BaseException | None = None
        try:
            value = ask(request)
        except BaseException as exc:  # handed to the awaiting task, which raises it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run has already stopped
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name="fbloop-review", daemon=True).start()
    return await answer


def copy_input(folder: RunFolder, source: Path, name: str, kind: str) -> Artifact:
    target = f"input/{name}{source.suffix.lower()}"
    path = folder.path(target)
    atomic_copy(source, path, kind)
    return Artifact(path=target, sha256=sha256_file(path), bytes=path.stat().st_size, kind=kind)  # type: ignore[arg-type]


def create_run(
    options: RunOptions,
    settings: Settings,
    *,
    output_dir: Path,
    runs_root: Path | None = None,
    run_dir: Path | None = None,
    **inputs: Any,
) -> tuple[RunFolder, RunState]:
    """Make a new run folder with copies of its inputs and a first checkpoint (see `_fill_new_run`). Its id is
    unique among the runs under `runs_root` (the output folder: workflow runs and `fbloop stage` runs),
    default `output_dir`.

    `run_dir`: the exact (new) folder to use instead of a timestamped one under output_dir (a batch row)."""
    if run_dir is not None:
        root = new_named_run_dir(run_dir)
    else:
        from feedback_cli.workflow.locate import run_dirs

        root = new_run_dir(output_dir, taken={p.name for p in run_dirs(runs_root or output_dir)})
    try:
        return _fill_new_run(root, options, settings, **inputs)
    except BaseException:
        # no first checkpoint, nothing to resume: a half-made folder (the disk filled up, a copy failed)
        # would only show up as a broken run; it is ours alone, made a moment ago by an exclusive mkdir
        shutil.rmtree(root, ignore_errors=True)
        raise


def _fill_new_run(
    root: Path,
    options: RunOptions,
    settings: Settings,
    *,
    source_prompt: str = "",
    prompt_image: Path | None = None,
    input_image: Path | None = None,
    stages: tuple[str, ...] | None = None,
    kind: str = "workflow",
    providers: dict[str, str] | None = None,
    scorers: dict[str, list[str]] | None = None,
    prepare: Callable[[RunFolder, RunState], None] | None = None,
) -> tuple[RunFolder, RunState]:
    """Copy the inputs into the new run folder `root` and write its first checkpoint."""
    folder = RunFolder(root, settings.secrets())
    state = RunState(
        fbloop_version=__version__,
        run_id=root.name,
        kind=kind,
        options=options,  # type: ignore[arg-type]
        providers=providers or {},
        scorers=scorers or {},
        settings=settings.public_dict(),
        source_prompt=source_prompt,
    )
    if prompt_image is not None:
        # keep the file's own name: offline, the description is derived from it
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", prompt_image.stem)[:80] or "prompt_image"
        artifact = copy_input(folder, prompt_image, stem, "image")
        state.inputs.append(artifact)
        state.prompt_image = artifact.path
    if input_image is not None:
        artifact = copy_input(folder, input_image, "input_image", "image")
        state.inputs.append(artifact)
        state.input_image = artifact.path
    if source_prompt:
        state.inputs.append(folder.write_text("input/prompt.txt", source_prompt + "\n"))
    for name in stages or stages_for(options.workflow):
        cls = get_stage(name)
        state.stages.append(StageRecord(name=cls.name, number=cls.number, folder=cls.folder()))
    if prepare is not None:  # e.g. `fbloop stage` copying the files it starts from into input/
        prepare(folder, state)
    checkpoint.save(folder, state)
    return folder, state


class Orchestrator:
    def __init__(
        self,
        folder: RunFolder,
        state: RunState,
        services: Services,
        events: EventBus,
        reviewer: Reviewer | None = None,
    ) -> None:
        self.folder = folder
        self.state = state
        self.services = services
        self.events = events
        self.reviewer = reviewer
        self.ledger = CostLedger(
            state, state.options.max_cost if state.options.max_cost is not None else services.settings.max_cost
        )
        self._stage_clock: tuple[StageRecord, float, float] | None = None
        events.redactor = folder.redactor  # the run's secrets, whoever created the bus
        events.subscribe(self._log)
        for line in self.ledger.settle_calls_in_flight():  # requests a dead process never saw answered
            self.emit("notice", line)

    def _log(self, event: object) -> None:
        from feedback_cli.runstate.events import Event

        assert isinstance(event, Event)
        stage = f"[{event.stage}] " if event.stage else ""
        self.folder.append_log(f"{event.at} {event.kind:<16} {stage}{event.message}")

    def emit(self, kind: str, message: str = "", stage: str | None = None, **data: object) -> None:
        event = self.events.emit(kind, message, stage=stage, **data)  # type: ignore[arg-type]
        self.state.events.append(event.model_dump(mode="json"))

    async def save(self) -> None:
        """Checkpoint now (also keeps the running stage's wall time current)."""
        if self._stage_clock is not None:
            record, base, started = self._stage_clock
            record.wall_time_s = round(base + time.perf_counter() - started, 3)
        self.state.updated_at = utcnow()
        checkpoint.save(self.folder, self.state)

    async def _finish_reports(self) -> None:
        await self.save()
        write_reports(self.folder, self.state)

    async def run(self, resumed: bool = False) -> RunState:
        state = self.state
        if resumed:
            self.emit("run_resumed", f"resuming run {state.run_id}", run_dir=str(self.folder.root))
        else:
            self.emit(
                "run_started",
                f"run {state.run_id}",
                run_dir=str(self.folder.root),
                workflow=state.options.workflow.value,
                backend=state.options.backend.value,
            )
        state.status = "running"
        state.error = None
        try:
            for record in state.stages:
                if record.status == "skipped":
                    continue
                if record.status == "completed":
                    if record.awaiting_review:
                        await self._review(record)
                    continue
                await self._run_stage(record)
            state.status = "completed"
            self.emit("run_finished", "run completed", total_cost_usd=state.total_cost)
        except BudgetError as exc:
            state.status = "budget_exceeded"
            state.error = exc.line()
            self.emit("run_interrupted", exc.line())
            raise
        except RunStopped:
            state.status = "stopped"
            raise
        except (asyncio.CancelledError, KeyboardInterrupt, Interrupted):  # Interrupted: Ctrl-C at a review
            state.status = "interrupted"
            for record in state.stages:
                if record.status == "running":
                    record.status = "interrupted"
            self.emit("run_interrupted", "interrupted; checkpoint saved")
            raise Interrupted("interrupted") from None
        except FbloopError as exc:
            state.status = "failed"
            state.error = exc.line()
            raise
        finally:
            self._stage_clock = None
            try:
                await asyncio.shield(self._finish_reports())
            finally:  # also when the disk refuses the last save: clients and workers are closed
                await self.services.aclose()
        return state

    async def _run_stage(self, record: StageRecord, human_feedback: str | None = None) -> None:
        stage = get_stage(record.name)()
        reason = stage.skip_reason(self.state)
        if reason is not None and human_feedback is None:
            record.status = "skipped"
            record.skip_reason = reason
            self.emit("stage_skipped", reason, stage=record.name, number=record.number, title=stage.title)
            await self.save()
            return
        record.status = "running"
        record.started_at = record.started_at or utcnow()
        record.attempts += 1
        record.error = None
        self.emit(
            "stage_started",
            stage.title,
            stage=record.name,
            number=record.number,
            title=stage.title,
            attempt=record.attempts,
        )
        self._stage_clock = (record, record.wall_time_s, time.perf_counter())
        await self.save()
        ctx = StageContext(
            state=self.state,
            record=record,
            folder=self.folder,
            services=self.services,
            events=self.events,
            ledger=self.ledger,
            checkpoint=self.save,
            human_feedback=human_feedback,
        )

        def notice(message: str) -> None:
            record.notes.append(message)
            ctx.emit("notice", message)

        self.services.notice_sink = notice
        try:
            await stage.run(ctx)
        except BudgetError:
            record.status = "interrupted"
            raise
        except FbloopError as exc:
            record.status = "failed"
            record.error = exc.line()
            self.emit("stage_failed", exc.line(), stage=record.name)
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a stage bug must still leave an auditable, resumable folder
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            self.emit("stage_failed", record.error, stage=record.name)
            raise StageFailed(f"stage {record.name} failed: {record.error}") from exc
        await self.save()
        self._stage_clock = None
        record.status = "completed"
        record.finished_at = utcnow()
        if self.reviewer is not None and stage.review is not None:
            record.awaiting_review = True
        self.emit(
            "stage_finished",
            stage.title,
            stage=record.name,
            number=record.number,
            title=stage.title,
            cost_usd=record.cost_usd,
            wall_time_s=record.wall_time_s,
            scores=record.scores,
        )
        await self.save()
        write_reports(self.folder, self.state)
        if record.awaiting_review:
            await self._review(record)

    def review_request(self, record: StageRecord) -> ReviewRequest:
        stage = get_stage(record.name)
        latest_round = max((i.extra.round_no for i in record.items), default=1)
        # every round's candidates: the pick is made across rounds, and the person may prefer an earlier one
        items = list(record.items)
        latest = [i for i in items if i.extra.round_no == latest_round]
        rank_rule = self.services.settings.selection == "rank"  # overall is a mean rank: lower is better

        def order(c: Candidate) -> tuple[str, bool, bool, float, str]:
            missing = c.overall is None
            value = (c.overall or 0.0) if rank_rule else -(c.overall or 0.0)
            return (c.group, c.status != "succeeded", missing, value, c.key)

        candidates = sorted(
            (
                Candidate(
                    key=i.key,
                    path=i.artifact.path if i.artifact else None,
                    absolute_path=str(self.folder.path(i.artifact.path)) if i.artifact else None,
                    status=i.status,
                    overall=i.overall,
                    scores={e.scorer: round(e.normalized, 2) for e in i.scores},
                    cost_usd=i.cost_usd,
                    latency_s=i.latency_s,
                    error=i.error,
                    group=i.extra.group,
                    round=i.extra.round_no,
                )
                for i in items
            ),
            key=order,
        )
        # picks are keyed by the candidates' own group ("" for images, "all" or "clip_NN" for videos)
        picks: dict[str, str] = {}
        chosen = stage.picked_keys(record)
        for item in items:
            if item.key in chosen:
                picks[item.extra.group] = item.key
        feedback = [r.feedback for r in self.state.reviews if r.stage == record.name and r.feedback]
        request = ReviewRequest(
            stage=record.name,
            title=stage.title,
            kind=stage.review or "",
            candidates=candidates,
            picks=picks,
            prompt=stage.review_prompt(record, latest),
            can_pick=stage.can_pick,
            # regenerating must make something new from the feedback: only a stage that uses `human_feedback`
            # offers it
            can_regenerate=stage.accepts_feedback,
            extra={
                "round": latest_round,
                "selection": self.services.settings.selection,
                "feedback": feedback[-1] if feedback and latest_round > 1 else None,
            },
        )
        # shown on the terminal: model output (the prompt) and provider errors may hold a secret
        return ReviewRequest.model_validate(self.folder.redactor.scrub(request.model_dump()))

    async def _review(self, record: StageRecord) -> None:
        assert self.reviewer is not None
        while True:
            request = self.review_request(record)
            self.emit("review", f"review of {record.name}", stage=record.name)
            try:
                decision: ReviewDecision = await _on_daemon_thread(self.reviewer.review, request)
            except asyncio.CancelledError:
                # Ctrl-C or a stop signal reached the run while the review is on screen: end its question
                # too (an optional `cancel` of the reviewer), so the terminal is given back in order
                cancel = getattr(self.reviewer, "cancel", None)
                if cancel is not None:
                    cancel()
                raise
            decision.stage = record.name
            self.state.reviews.append(decision)
            self.emit(
                "review",
                f"{decision.action}{' ' + decision.choice if decision.choice else ''}",
                stage=record.name,
                action=decision.action,
                choice=decision.choice,
                feedback=decision.feedback,
            )
            if decision.action == "stop":
                await self.save()
                raise RunStopped(f"stopped at the review of {record.name}")
            if decision.action == "regenerate":
                record.awaiting_review = False
                await self.save()
                await self._run_stage(record, human_feedback=decision.feedback or "")
                return  # _run_stage reviews the new result itself
            if decision.action == "pick" and decision.choice:
                before = list(record.outputs.get("best_videos") or [])
                self._apply_pick(record, decision.choice)
                if "final_video" in record.outputs and record.outputs.get("best_videos") != before:
                    # the storyboard's joined film follows the human pick (unrecorded while it is rewritten)
                    forget_final_video(record)
                    await self.save()
                    assembly = await asyncio.to_thread(assemble_picks, self.folder, record)
                    self.emit("final_video", describe(assembly), stage=record.name, path=assembly.path)
            record.awaiting_review = False
            await self.save()
            write_reports(self.folder, self.state)
            return

    def _apply_pick(self, record: StageRecord, key: str) -> None:
        item = next((i for i in record.items if i.key == key and i.artifact is not None), None)
        if item is None or item.artifact is None:
            return
        # the stage records the pick in its outputs and keeps its summary scores those of its picks
        get_stage(record.name).apply_pick(record, item)
        record.notes.append(f"human pick: {key}")
