"""tecsa-demo: the whole system on embedded services; the only package importing hub and cloud."""
