"""Patches to skills: apply edits, proposals, gate, canary."""
