"""Synthetic worlds: data generators with ground-truth labels and exact judges (no torch here)."""
