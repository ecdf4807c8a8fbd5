"""physlm: a laboratory for the "Physics of Language Models" experiments.

Synthetic worlds with ground-truth labels and exact judges, one package each behind one interface
(`physlm.worlds`), a small GPT (`physlm.model`), its training loop (`physlm.train`), the shared probe toolkit
(`physlm.probing`) and generation (`physlm.sampling`), driven as one DVC pipeline by the world-agnostic scripts
in `stages/`.
"""

__version__ = "0.1.0"
