"""The five stages. Each stage module defines one `Stage` subclass and registers it in `registry`; beside
them, what stages share: the stage context (`base`) and its services, agent calls, the writer/critic loop,
the clip join."""
