"""physlm: a laboratory for the "Physics of Language Models" experiments.

Synthetic worlds with ground-truth labels and exact judges (`physlm.worlds`), a small GPT (`physlm.model`),
its training loop (`physlm.train`), probes (`physlm.probe`) and evaluation (`physlm.worlds.cfg.generation`), driven as one
DVC pipeline by the thin scripts in `stages/`.
"""

__version__ = "0.1.0"
