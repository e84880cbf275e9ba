"""Scorers: image scorers return one raw value per image, video scorers one per video per dimension.

Heavy scorers (torch) are registered by import path and imported only when chosen, so the CLI starts fast.
"""
