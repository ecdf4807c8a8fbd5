"""The toy world's evaluation: the model is given `<bos> letters =` for `evaluate.toy.examples` held-out test
examples and writes greedily (`physlm.sampling.generate`, temperature 0) up to length + 1 tokens; a copy is
correct when it is exactly the letters followed by `<eos>`. Also the accuracy at each position of the copy,
and with `control` the same for a random-init model of the same shape."""

from __future__ import annotations

import numpy as np
import torch

from physlm.artifacts import load_model, random_model
from physlm.io import Paths
from physlm.sampling import generate
from physlm.tokenize import Vocab
from physlm.worlds import Evaluated, generations_table

from .tokenize import check_vocab, prompt, read_texts, target


def copy_scores(model: torch.nn.Module, texts: list[str], *, batch_size: int, seed: int) -> tuple[dict, list[dict]]:
    """Exact-match accuracy of greedy copies and the share of copies right at each letter position, and the
    generations table's rows (set and index left to the caller)."""
    budget = max(len(t) for t in texts) + 1
    out = generate(model, [prompt(t) for t in texts], max_new_tokens=budget, temperature=0.0, eos_id=Vocab.eos_id,
                   seed=seed, batch_size=batch_size)
    wanted = [target(t) for t in texts]
    positions = [float(np.mean([len(o) > k and o[k] == w[k] for o, w in zip(out, wanted) if k < len(w) - 1]))
                 for k in range(budget - 1)]
    rows = [{"prompt": t, "output": " ".join(map(str, o)), "verdict": o == w, "error": None if o == w else "wrong copy"}
            for t, o, w in zip(texts, out, wanted)]
    return {"accuracy": float(np.mean([o == w for o, w in zip(out, wanted)])), "position_accuracy": positions}, rows


def evaluate(paths: Paths, cfg, device: torch.device) -> Evaluated:
    e = cfg.evaluate
    check_vocab(paths.tokens)
    model = load_model(paths.model, device)
    texts = read_texts(paths.raw / "test.parquet")[: e.examples]
    metrics, rows = {"examples": len(texts)}, []
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if e.control else {})
    for name, net in models.items():
        metrics[name], found = copy_scores(net, texts, batch_size=e.batch_size, seed=cfg.seed)
        rows += [{"set": name, "index": i} | r for i, r in enumerate(found)]
    log = {f"{name}_accuracy": metrics[name]["accuracy"] for name in ("trained", "control") if name in metrics}
    line = f"{len(texts)} copies, exact match: " + ", ".join(f"{k.removesuffix('_accuracy')} {v:.3f}" for k, v in log.items())
    return Evaluated(metrics, log, line, headline=log, generations=generations_table(rows, {}))
