# %% [markdown]
# # Knowledge capacity (Part 3.3): stored bits, the attribute probe by layer, one recalled attribute
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/capacity.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT,
# PHYSLM_REV, PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@capacity_d2w32`, or `dvc pull`);
# docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from physlm.load import example_args, load_study
from physlm.sampling import generate

args = example_args("capacity_d2w32")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width,
      "|", s.model.num_params(), "parameters")
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# A person's paragraph (raw/people.parquet) up to its first attribute's `is`: the model recalls the value.

# %%
words = pl.read_parquet(s.fetch(s.paths.raw / "people.parquet"))["text"][0].split()
cut = words.index("is") + 1
ids = [s.vocab.bos_id, *s.encode(" ".join(words[:cut]))]
gold = words[cut : words.index(".", cut) + 1]
reply = generate(s.model, [ids], max_new_tokens=len(gold), temperature=0.0, eos_id=s.vocab.eos_id, seed=0)[0]
print(" ".join(words[:cut]), "| gold:", " ".join(gold), "| model:", s.decode(reply))

# %% [markdown]
# The linear probe of each attribute's first chunk at the name's last token, by layer, against chance.

# %%
probe = s.detail["probe"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ("trained", "control"):
    if name in probe:
        ax.plot(range(len(probe[name]["by_layer"])), probe[name]["by_layer"], "o-", label=name)
ax.axhline(probe["chance"], color="gray", linestyle=":", label="chance")
ax.set_xlabel("layer (0 = embedding)")
ax.set_ylabel("attribute probe accuracy")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: attributes read from the name")
ax.legend()
out = Path(args.out) / f"capacity_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
