"""On-site triage: NEWS2 and a quantized LiteRT model; the higher band wins (runtime, triage)."""
