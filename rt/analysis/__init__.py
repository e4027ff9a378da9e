"""Analyses of a session's runs: one module per use case, each a pure function of Frames."""
