"""The state of a run that every layer from the stages up shares: the run state models (what the
checkpoint holds), events, the cost ledger and the run folder. Below the stages and above the agents,
providers and scorers; nothing in here imports the engine, the stages or the UI."""
