"""The engine: plan, orchestrator, run state and checkpoint, trace and summary, cost ledger, events.

Nothing in here imports Typer, Rich or Questionary; the UI subscribes to events.
"""
