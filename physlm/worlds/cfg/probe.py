"""The grammar world's probe step: parse-tree probes of the trained model and its controls, and its attention.

Probes (`probes.py`): the per-position linear probe on every layer, and the paper's multi-head probe
(left-looking, position-mixed, linear in the hidden states) on the last layer (or all), each predicting
every token's NT-ancestor and NT-boundary per level on `probe.cfg.sentences` held-out sentences. Models: the
trained decoder, a random-init control (`probe.cfg.control`), and an encoder-only control with the same body
trained here by masked LM on the study's windows (`probe.cfg.encoder.steps` > 0; `physlm.train.train_mlm`).

Writes probe.json (last-layer means, the gaps to the controls, the attention summary) and the tables: probe
(one row per model, layer, target, level) and, with `probe.cfg.attention_sentences` > 0, the attention
analysis (`attention.py`): attention_distance (mass by distance per layer and head), attention_boundary
(NT-end to NT-end statistics) and attention_layers (the summary per layer; probe.json has the best layer's).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from physlm.artifacts import load_model, random_model
from physlm.io import Paths, read_parquet
from physlm.probing import hidden_states
from physlm.tokenize import Vocab
from physlm.train import TrainConfig, load_windows, train_mlm
from physlm.worlds import Probed, pick
from physlm.worlds.cfg.attention import analyze_attention, boundary_rows, cfg_inputs, distance_rows
from physlm.worlds.cfg.attention import summarize as summarize_attention
from physlm.worlds.cfg.probes import cfg_targets, probe_layers, probe_layers_multihead, summarize
from physlm.worlds.cfg.tokenize import cfg_encode

# metrics/<study>/probe.json (what `dvc exp show` lists): last-layer accuracy of the linear probes per model, the
# multi-head probe's, and the NT-ancestor probe at NT ends (SPEC 1.4's headline)
HEADLINE = ({f"{task}_{model}": (model, task) for model in ("trained", "control", "encoder", "trained_multihead")
             for task in ("ancestor", "boundary")} | {"ancestor_at_end_trained": ("trained", "ancestor_at_end")})


def probe(paths: Paths, cfg, device: torch.device) -> Probed:
    p = cfg.probe
    model = load_model(paths.model, device)
    frame = read_parquet(paths.raw / "test.parquet", {"tokens": pl.List(pl.UInt16), "ancestors": pl.List(pl.List(pl.UInt16)),
                                                      "boundaries": pl.List(pl.List(pl.UInt8))}).head(p.sentences)
    windows = [load_windows(paths.tokens, split) for split in ("train", "test")] if p.encoder.steps else []  # read up front
    keep = model.cfg.context - 1  # room for <bos>
    tokens = [np.asarray(t[:keep]) for t in frame["tokens"].to_list()]
    ancestors = [[np.asarray(level[:keep]) for level in sent] for sent in frame["ancestors"].to_list()]
    boundaries = [[np.asarray(level[:keep]) for level in sent] for sent in frame["boundaries"].to_list()]
    sequences = [np.concatenate([[Vocab.bos_id], cfg_encode(t)]) for t in tokens]
    targets = cfg_targets(ancestors, boundaries)
    n_fit = max(1, int(round(len(tokens) * p.train_fraction)))
    train_mask = np.concatenate([np.full(len(t), i < n_fit) for i, t in enumerate(tokens)])
    models = {"trained": model}
    if p.control:
        models["control"] = random_model(model.cfg, cfg.seed + 1, device)
    rows: list[dict] = []
    metrics: dict = {"sentences": len(tokens), "positions": int(train_mask.size), "fit_positions": int(train_mask.sum())}
    step = f"probe {paths.study}:"  # the progress bars' names
    if p.encoder.steps:
        tqdm.write(f"{step} the encoder-only control, {p.encoder.steps} steps of masked LM", file=sys.stderr)
        models["encoder"], metrics["encoder_training"], encoder_seconds = _encoder(model.cfg, p, cfg.seed, paths, windows, device)
    mh = p.multihead
    lengths = [len(t) for t in tokens]
    for name, net in models.items():
        states = _token_states(hidden_states(net, sequences, desc=f"{step} {name} hidden states"), sequences)
        found = probe_layers(states, targets, train_mask, steps=p.steps, lr=p.lr, weight_decay=p.weight_decay, seed=cfg.seed,
                             desc=f"{step} {name} linear probe")
        metrics[name] = summarize(found, last_layer=model.cfg.depth, probe="linear")
        if mh.steps:
            layers = [model.cfg.depth] if mh.layers == "last" else None
            multi = probe_layers_multihead(states, targets, train_mask, lengths, steps=mh.steps, lr=mh.lr, weight_decay=p.weight_decay,
                                           seed=cfg.seed, heads=mh.heads, rank=mh.rank, pos_dim=mh.pos_dim, layers=layers, device=device,
                                           desc=f"{step} {name} multi-head probe")
            metrics[f"{name}_multihead"] = summarize(multi, last_layer=model.cfg.depth, probe="multihead")
            found += multi
        rows += [{"model": name, **r} for r in found]
    for kind in ("", "_multihead"):
        for other in ("control", "encoder"):
            if f"{other}{kind}" in metrics:
                mine, theirs = metrics[f"trained{kind}"], metrics[f"{other}{kind}"]
                metrics[f"gap_{other}{kind}"] = {k: mine[k] - theirs[k] for k in mine}
    tables: dict[str, list[dict]] = {"probe": rows}
    if p.attention_sentences:  # else no attention tables at all
        distance, boundary, summary = _attention(model, tokens[: p.attention_sentences], boundaries[: p.attention_sentences],
                                                 f"{step} attention")
        tables |= {"attention_distance": distance, "attention_boundary": boundary, "attention_layers": summary.pop("layers")}
        metrics["attention"] = summary
    line = f"last layer {metrics['trained']}" + (f", control {metrics['control']}" if p.control else "")
    log = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    if "encoder" in models:
        log["encoder_training"] = metrics["encoder_training"] | {"seconds": encoder_seconds}
    return Probed(metrics, tables, log, line, pick(metrics, HEADLINE))


def _encoder(decoder_cfg, p, seed: int, paths: Paths, windows: list[np.ndarray], device) -> tuple[object, dict, float]:
    """Train the encoder-only control by masked LM on the study's (train, test) windows (resumable checkpoints in
    checkpoints/STUDY-encoder/, removed afterwards): the model, its training summary, and its wall-clock seconds
    (for MLflow only: probe.json holds no timings)."""
    e = p.encoder
    train_cfg = TrainConfig(steps=e.steps, batch_size=e.batch_size, micro_batch_size=e.batch_size, lr=e.lr, min_lr_ratio=0.1,
                            warmup_steps=min(30, e.steps // 10), decay="cosine", seed=seed + 7,
                            eval_every=e.steps, checkpoint_every=max(1, e.steps // 4), log_every=max(1, e.steps // 20))
    ckpt = Path("checkpoints") / f"{paths.study}-encoder"
    result = train_mlm(decoder_cfg, train_cfg, *windows, ckpt, device=device)
    shutil.rmtree(ckpt, ignore_errors=True)
    info = {"steps": e.steps, "final_loss": result.final_loss, "final_val_loss": result.final_val_loss}
    return result.model.eval(), info, result.seconds


def _attention(model, tokens: list[np.ndarray], boundaries: list[list[np.ndarray]], desc: str,
               ) -> tuple[list[dict], list[dict], dict]:
    """Attention by distance and NT-end to NT-end statistics: their rows and the summary (`desc`: the
    progress bars' name)."""
    sequences, labels = cfg_inputs(tokens, boundaries, model.cfg.context)
    analysis = analyze_attention(model, sequences, labels, desc=desc)
    distance, boundary = distance_rows(analysis), boundary_rows(analysis.boundary)
    return distance, boundary, summarize_attention(distance, boundary)


def _token_states(states: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
    """Remove each sequence's first (<bos>) position from the concatenated [L, positions, W] states."""
    starts = np.cumsum([0] + [len(s) for s in sequences[:-1]])
    keep = np.ones(states.shape[1], dtype=bool)
    keep[starts] = False
    return states[:, keep]
