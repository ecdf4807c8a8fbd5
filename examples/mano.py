# %% [markdown]
# # Mano (Part 4.1): modular arithmetic in prefix notation, accuracy by length, a few answers
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/mano.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT, PHYSLM_REV,
# PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@mano_rope`, or `dvc pull`); docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from physlm.load import example_args, load_study
from physlm.sampling import generate
from physlm.worlds.mano.tokenize import read_rows

args = example_args("mano_rope")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width)
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# Three test expressions (raw/test.parquet): the model is given `<bos> <len_l> expression <ans>` and writes the value.

# %%
rows = read_rows(s.fetch(s.paths.raw / "test.parquet"), limit=3)
replies = generate(s.model, [r.prompt for r in rows], max_new_tokens=1, temperature=0.0, eos_id=s.vocab.eos_id, seed=0)
for row, reply in zip(rows, replies):
    assert s.encode(s.decode(row.prompt[1:])) == row.prompt[1:]
    print(s.decode(row.prompt[1:]), "| gold:", row.value, "| model:", s.decode(reply))

# %% [markdown]
# Accuracy by the number of operations, per eval set (detail/evaluate.json), against chance.

# %%
evaluation = s.detail["evaluate"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for eval_set in sorted({r["eval_set"] for r in evaluation["accuracy_by_ops"]}):
    found = sorted((r["ops"], r["greedy"]) for r in evaluation["accuracy_by_ops"] if r["eval_set"] == eval_set)
    ax.plot([o for o, _ in found], [a for _, a in found], "o-", label=eval_set)
ax.axhline(evaluation["chance"], color="gray", linestyle=":", label="chance")
ax.set_xlabel("operations")
ax.set_ylabel("greedy accuracy")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: accuracy by length")
ax.legend()
out = Path(args.out) / f"mano_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
