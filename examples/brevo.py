# %% [markdown]
# # Brevo (Part 4.1): the vertices a query depends on, the depth probe by layer, one answer
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/brevo.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT, PHYSLM_REV,
# PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@brevo_rope`, or `dvc pull`); docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from physlm.load import example_args, load_study
from physlm.sampling import generate
from physlm.worlds.brevo.frames import read_instances, read_layout

args = example_args("brevo_rope")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width)
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# A test graph (raw/test.parquet), prompted up to `<ans>`; the model lists the vertices the query depends on.

# %%
layout = read_layout(s.fetch(s.paths.raw / "brevo.json").parent)
instance = read_instances(s.fetch(s.paths.raw / "test.parquet"), layout, limit=1)[0]
prompt = layout.prompt(instance)
new = min(layout.answer_length(instance) + 4, s.model.cfg.context + 1 - len(prompt))
reply = generate(s.model, [prompt], max_new_tokens=new, temperature=0.0, eos_id=s.vocab.eos_id, seed=0)[0]
print(s.decode(prompt[1:]))
print("gold:", instance.answer, "| model:", s.decode(reply), "| read back:", layout.read_answer(reply, instance))

# %% [markdown]
# The linear probe of the query's depth at `<ans>`, by layer: trained model against the random-init control.

# %%
probe = s.detail["probe"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ("trained", "control"):
    if name in probe:
        ax.plot(range(len(probe[name]["by_layer"])), probe[name]["by_layer"], "o-", label=name)
ax.axhline(probe["majority"], color="gray", linestyle=":", label="majority")
ax.set_xlabel("layer (0 = embedding)")
ax.set_ylabel("depth probe accuracy")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: where the depth is read")
ax.legend()
out = Path(args.out) / f"brevo_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
