"""The iGSM world's probe step: the V-probes of SPEC 2.4 (`vprobe.py`) on the trained model and a random-init
control: one probe per property, trained on problems of the training split and scored on held-out templates.
Writes probe.json (`vprobe.summarize`: accuracy per property and model, on positives and negatives, and the
majority baselines) and the table probe (one row per property and model)."""

from __future__ import annotations

import torch

from physlm.artifacts import load_model, random_model
from physlm.io import Paths
from physlm.parallel import resolve_workers
from physlm.text import TextVocab
from physlm.worlds import Probed
from physlm.worlds.igsm.frames import load_problems
from physlm.worlds.igsm.vprobe import VProbeConfig, run_vprobes

def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    model = load_model(paths.model, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    train = load_problems(paths.raw / "train.parquet", p.train_problems)
    test = load_problems(paths.raw / "test.parquet", p.test_problems)
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    settings = VProbeConfig(properties=tuple(p.properties), picks=p.picks, rank=p.rank, steps=p.steps, batch_size=p.batch_size,
                            lr=p.lr, weight_decay=p.weight_decay, workers=resolve_workers(p.workers))
    rows, summary = run_vprobes(models, train, test, vocab, settings, cfg.seed, desc=f"probe {paths.study}: vprobe")
    line = ", ".join(f"{r['property']}/{r['model']} {r['accuracy']:.3f} (majority {r['majority']:.3f})" for r in rows)
    # metrics/<study>/probe.json (what `dvc exp show` lists): each property's accuracy, trained and control
    headline = {f"{r['property']}_{r['model']}": r["accuracy"] for r in rows}
    return Probed(summary, {"probe": rows}, summary, line, headline)
