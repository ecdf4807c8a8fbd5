# %% [markdown]
# # Biographies (Part 3.1): a finetuned study, its QA accuracy per attribute, one answer
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/bio.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT, PHYSLM_REV,
# PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@bio_single`, or `dvc pull`); docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from physlm.load import example_args, load_study
from physlm.sampling import generate
from physlm.bios.text import qa_prompt

args = example_args("bio_single")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width)
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# A question about a P_train person (raw/qa.parquet of the study's dataset), answered greedily by the finetuned model.

# %%
qa = pl.read_parquet(s.fetch(s.paths.raw / "qa.parquet")).filter(pl.col("split") == "P_train")
question, answer = qa["question"][0], qa["answer"][0]
ids = [s.vocab.bos_id, *s.encode(qa_prompt(question))]
new = min(12, s.model.cfg.context + 1 - len(ids))
reply = generate(s.model, [ids], max_new_tokens=new, temperature=0.0, eos_id=s.vocab.eos_id, seed=0)[0]
print(question, "| gold:", answer, "| model:", s.decode([i for i in reply if i != s.vocab.eos_id]))

# %% [markdown]
# Exact-match QA accuracy per attribute, on the people seen in QA finetuning (P_train) and the others (P_test).

# %%
evaluation = s.detail["evaluate"]
splits = [p for p in ("P_train", "P_test") if p in evaluation]
attributes = list(evaluation[splits[0]]["greedy"]["by_attribute"])
fig, ax = plt.subplots(figsize=(7, 3.5))
for i, split in enumerate(splits):
    by = evaluation[split]["greedy"]["by_attribute"]
    ax.bar([k + i / 3 for k in range(len(attributes))], [by[a]["accuracy"] for a in attributes], width=1 / 3, label=split)
ax.set_xticks([k + 1 / 6 for k in range(len(attributes))], attributes, rotation=30)
ax.set_ylabel("QA accuracy (greedy)")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: knowledge extraction per attribute")
ax.legend()
out = Path(args.out) / f"bio_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
