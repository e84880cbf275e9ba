"""Which stages each workflow mode runs, in order: the stages that declare the workflow (`Stage.workflows`),
in their declared order."""

from __future__ import annotations

from feedback_cli.stages.registry import for_workflow
from feedback_cli.workflow.models import Workflow


def stages_for(workflow: Workflow) -> tuple[str, ...]:
    return for_workflow(Workflow(workflow).value)
