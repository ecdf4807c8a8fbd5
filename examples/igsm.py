# %% [markdown]
# # iGSM (Part 2.1): a trained study, its accuracy per eval set, a greedy solution
#
# A py:percent notebook (Jupytext and VS Code open it as one); also a script:
# `python examples/igsm.py [STUDY] [--root DIR] [--rev REV] [--out DIR]` (or PHYSLM_STUDY, PHYSLM_ROOT, PHYSLM_REV,
# PHYSLM_FIGURES). The study must be trained (`dvc repro evaluate@igsm_demo`, or `dvc pull`); docs/loading.md.

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from physlm.load import example_args, load_study
from physlm.sampling import generate
from physlm.worlds.igsm.text import igsm_prompt, parse_generation

args = example_args("igsm_demo")
s = load_study(args.study, root=args.root, rev=args.rev)
print(s.name, "on", s.dataset, "|", s.model.cfg.depth, "blocks of width", s.model.cfg.width)
print("evaluate:", s.metric("evaluate"))

# %% [markdown]
# A held-out problem the evaluation scored (detail/evaluate.json keeps a few), solved greedily. The word-level
# tokenizer writes the text back exactly: decode(encode(prompt)) == prompt.

# %%
problem = s.detail["evaluate"]["samples"]["test/greedy"][0]["problem"]
prompt = igsm_prompt(problem)
ids = [s.vocab.bos_id, *s.encode(prompt)]
assert s.decode(ids[1:]) == prompt
new = min(80, s.model.cfg.context + 1 - len(ids))
out_ids = generate(s.model, [ids], max_new_tokens=new, temperature=0.0, eos_id=s.vocab.eos_id, seed=0)[0]
solution, answer = parse_generation(s.decode([i for i in out_ids if i != s.vocab.eos_id]))
print(prompt[:200], "...")
print("solution:", solution[:200], "| answer:", answer)

# %% [markdown]
# Full-solution accuracy per eval set and decoding (detail/evaluate.json).

# %%
evaluation = s.detail["evaluate"]
sets = [e for e in ("test", "opmax", "ood", "reask") if e in evaluation]
decodings = list(evaluation[sets[0]])
fig, ax = plt.subplots(figsize=(6, 3.5))
width = 1 / (len(decodings) + 1)
for i, d in enumerate(decodings):
    ax.bar([k + i * width for k in range(len(sets))], [evaluation[e][d]["accuracy"] for e in sets], width=width, label=d)
ax.set_xticks([k + (len(decodings) - 1) * width / 2 for k in range(len(sets))], sets)
ax.set_ylabel("full-solution accuracy")
ax.set_ylim(0, 1)
ax.set_title(f"{s.name}: accuracy per eval set")
ax.legend()
out = Path(args.out) / f"igsm_{s.name}.png"
fig.savefig(out, dpi=100, bbox_inches="tight")
print("figure:", out)
