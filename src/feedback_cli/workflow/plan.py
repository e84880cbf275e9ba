"""Which stages each workflow mode runs, in order: the stages that declare the workflow (`Stage.workflows`),
in their declared order."""

from __future__ import annotations

from feedback_cli.runstate.models import Workflow
from feedback_cli.stages.registry import for_workflow


def stages_for(workflow: Workflow) -> tuple[str, ...]:
    return for_workflow(Workflow(workflow).value)
