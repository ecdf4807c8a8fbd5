# %% [markdown]
# # The grammar world (Part 1): a trained study, its metrics, its samples
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/cfg.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT, PHYSLM_REV,
# PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@cfg_demo`, or `dvc pull`); docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from physlm.load import example_args, load_study
from physlm.sampling import generate

args = example_args("cfg_demo")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width)
print("train:", s.metric("train"))
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# Sample a few sentences from `<bos>` alone (the paper's cut0); the world's text is the terminals separated by spaces.

# %%
samples = generate(s.model, [[s.vocab.bos_id]] * 4, max_new_tokens=s.model.cfg.context - 1, temperature=1.0,
                   eos_id=s.vocab.eos_id, seed=0)
for ids in samples:
    body = ids[:-1] if ids[-1] == s.vocab.eos_id else ids
    text = s.decode(body)
    assert s.encode(text) == body  # the text encodes back to the very ids
    print(len(body), "terminals:", text[:80])

# %% [markdown]
# The probes (detail/probe.json): how well a linear probe reads the parse tree from the trained model's hidden
# states, against the random-init control and the encoder-only (MLM) control where the study trained one.

# %%
probe = s.detail["probe"]
models = [m for m in ("trained", "control", "encoder") if m in probe]
tasks = list(probe["trained"])
fig, ax = plt.subplots(figsize=(6, 3.5))
for i, m in enumerate(models):
    ax.bar([t + i / (len(models) + 1) for t in range(len(tasks))], [probe[m][t] for t in tasks],
           width=1 / (len(models) + 1), label=m)
ax.set_xticks([t + (len(models) - 1) / (2 * (len(models) + 1)) for t in range(len(tasks))], tasks)
ax.set_ylabel("probe accuracy")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: parse-tree probes")
ax.legend()
out = Path(args.out) / f"cfg_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
