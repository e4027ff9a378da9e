"""Compiled hot path of rusty-telemetry (Cython): batch decode, the SPSC ring, feed merge.

Imports nothing of ``rt``; ``rt`` wraps these behind documented Python names.
"""
