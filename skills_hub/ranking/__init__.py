"""Ranking maths: Wilson lower bound on decayed outcome counts, quality of a skill."""
