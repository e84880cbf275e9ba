"""The five stages. Each module defines one `Stage` subclass and registers it in `registry`."""
