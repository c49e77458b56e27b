"""Stage 4 — probes: CoT faithfulness, diversity and format collapse, drift, shortcuts."""
