"""On-site triage: NEWS2 and, to come, a quantized model; the higher band wins."""
