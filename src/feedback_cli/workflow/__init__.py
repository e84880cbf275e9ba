"""The engine: plan, orchestrator, checkpoint, trace and summary, batch (the run state, cost ledger and events
it works on are in `runstate`).

Nothing in here imports Typer, Rich or Questionary; the UI subscribes to events.
"""
