"""Exports of recordings to other tools' formats."""
