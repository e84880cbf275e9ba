"""The two-agent loop (writer, critic, rubric) and the VideoDirectorGPT-style planner."""
