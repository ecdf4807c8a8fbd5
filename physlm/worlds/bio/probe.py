"""The biography world's probe step: P-probing and Q-probing (SPEC 4.3, `pqprobe.py`) of the model before QA
finetuning (models/<study>/pretrained when the study finetunes, else the model) and of a random-init control,
fit on `probe.bio.people` P_train people and scored on as many P_test people, at the residual stream after
each block of `probe.bio.layers`. The table probe holds every (model, probe, task, position / offset)
accuracy with its majority baseline, probe.json the flat summary (`pqprobe.summary`; a layer other than the
last is tagged `L<layer>_`)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from physlm.artifacts import load_model, random_model
from physlm.errors import ParamsError
from physlm.io import Paths, read_parquet
from physlm.text import TextVocab
from physlm.worlds import Probed
from physlm.worlds.bio import pqprobe
from physlm.bios.people import ATTRIBUTES

def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    source = paths.model / "pretrained" if (paths.model / "pretrained").is_dir() else paths.model
    model = load_model(source, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    people = read_parquet(paths.raw / "people.parquet", {"id": pl.Int64, "full_name": pl.String, **dict.fromkeys(ATTRIBUTES, pl.String)})
    spans = {f"{a}_{e}": pl.Int32 for a in ATTRIBUTES for e in ("start", "end")}  # each attribute's place in the text
    bios = read_parquet(paths.raw / "bios.parquet", {"person": pl.Int64, "entry": pl.Int32, "text": pl.String, **spans})
    qa = read_parquet(paths.raw / "qa.parquet", {"person": pl.Int64, "split": pl.String})
    split = {s: qa.filter(pl.col("split") == s)["person"].unique(maintain_order=True).to_list()[: p.people]
             for s in ("P_train", "P_test")}
    data = {s: pqprobe.bio_inputs(people, bios, vocab, persons) for s, persons in split.items()}
    tasks = data["P_train"].tasks
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    layers = [model.cfg.depth if layer == -1 else layer for layer in p.layers]
    if not all(0 <= layer <= model.cfg.depth for layer in layers):
        raise ParamsError(f"probe.bio.layers: {p.layers} must lie in 0..{model.cfg.depth} (or -1, the last block)")
    rows, summary = [], {}
    common = {"lr": p.lr, "weight_decay": p.weight_decay, "seed": cfg.seed}
    for name, m in models.items():
        for layer in layers:
            results = []
            step = f"probe {paths.study}: {name} layer {layer}"  # the progress bars' names
            if p.p_steps:
                results.append(pqprobe.run_pprobe(m, tasks, data["P_train"].biographies, data["P_test"].biographies,
                                                  steps=p.p_steps, rank=p.p_rank, layer=layer, desc=f"{step} P-probe", **common))
            if p.q_steps:
                results.append(pqprobe.run_qprobe(m, tasks, data["P_train"].queries, data["P_test"].queries,
                                                  steps=p.q_steps, rank=p.q_rank, layer=layer, desc=f"{step} Q-probe", **common))
            tag = "" if layer == m.cfg.depth else f"L{layer}_"  # the last layer's keys carry no tag
            for result in results:
                rows += [{"model": name, **r} for r in pqprobe.rows(result)]
                summary |= {f"{result.probe}_{name}_{tag}{k}": v for k, v in pqprobe.summary(result).items()}
    line = f"({source}) {len(rows)} rows; " + ", ".join(
        f"{k} {v:.3f}" for k, v in summary.items() if k.startswith("Q_") and k.endswith("_whole"))
    return Probed(summary, {"probe": rows}, summary, line, headline(rows))


def headline(rows: list[dict]) -> dict[str, float]:
    """metrics/<study>/probe.json (what `dvc exp show` lists), as the report's table: per model, the mean over the
    tasks, at the last probed layer, of P-probing at offsets -1 and 0 (before the attribute preceding it, right
    before the attribute) and of Q-probing."""
    if not rows:
        return {}
    last = max(r["layer"] for r in rows)
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for name, kind, axis, index in (("P_offset-1", "P", "offset", -1), ("P_offset0", "P", "offset", 0), ("Q", "Q", "end", 0)):
            found = [r["accuracy"] for r in rows if r["model"] == model and r["layer"] == last and r["probe"] == kind
                     and r["axis"] == axis and r["index"] == index]
            if found:
                out[f"{name}_{model}"] = float(np.mean(found))
    return out
