"""The offline backend: deterministic from prompt and seed, no network, no keys, cost 0.

Everything it makes is labelled offline: model names start with `offline-`, images carry a visible
`fbloop offline` stamp and a PNG text chunk, videos carry the stamp in every frame.
"""
