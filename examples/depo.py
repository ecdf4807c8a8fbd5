# %% [markdown]
# # Depo (Part 4.1): k-hop reasoning, accuracy by hop, one answer
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/depo.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT, PHYSLM_REV,
# PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@depo_rope`, or `dvc pull`); docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from physlm.load import example_args, load_study
from physlm.sampling import generate

args = example_args("depo_rope")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width)
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# A test instance (raw/test.parquet: the edges, then `<query_k> word <ans> answer` queries), cut after its first
# `<ans>`; the model writes the answer word greedily.

# %%
text = pl.read_parquet(s.fetch(s.paths.raw / "test.parquet"))["text"][0].split()
cut = text.index("<ans>") + 1
ids = [s.vocab.bos_id, *s.encode(" ".join(text[:cut]))]
reply = generate(s.model, [ids], max_new_tokens=4, temperature=0.0, eos_id=s.vocab.eos_id, seed=0)[0]
print("query:", " ".join(text[cut - 3 : cut]), "| gold:", text[cut], "| model:", s.decode(reply))

# %% [markdown]
# Greedy and teacher-forced accuracy by hop count k, trained model against the random-init control.

# %%
evaluation = s.detail["evaluate"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ("trained", "control"):
    if name in evaluation:
        hops = sorted(evaluation[name]["by_k"], key=int)
        ax.plot([int(k) for k in hops], [evaluation[name]["by_k"][k]["tf_accuracy"] for k in hops], "o-",
                label=f"{name}, teacher-forced")
        ax.plot([int(k) for k in hops], [evaluation[name]["by_k"][k]["accuracy"] for k in hops], "s--",
                label=f"{name}, greedy")
ax.set_xlabel("hops k")
ax.set_ylabel("accuracy")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: accuracy by hop")
ax.legend()
out = Path(args.out) / f"depo_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
