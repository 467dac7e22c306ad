"""The publish pipeline: syntax, bandit, threat rules, sandboxed tests, verdicts."""
