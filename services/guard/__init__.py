"""Guard service: scans prompts, outputs and retrieved chunks; answers allow / redact / block."""
