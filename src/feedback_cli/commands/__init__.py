"""One module per subcommand; each exposes `register(app)`. They parse, validate and call the engine."""
