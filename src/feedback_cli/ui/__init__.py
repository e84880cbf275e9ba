"""Rendering: Rich for progress, tables and the summary; Questionary for reviews. Only commands use it."""
