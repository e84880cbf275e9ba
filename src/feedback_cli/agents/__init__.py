"""What the agents (writer, critic, planner, question writer, reviser) are asked and answer, and the rubric.

The writer/critic loop that drives them from a stage is `stages/writer_critic_loop.py`."""
