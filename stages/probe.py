"""probe@STUDY: linear parse-tree probes on every layer of the trained model and of a random-init control.

Writes metrics/STUDY/probe.json (last-layer means and the gap to the control) and metrics/STUDY/probe.csv
(one row per model, layer, target, level).
"""

import numpy as np
import torch

from physlm.artifacts import load_model, random_model
from physlm.cli import Paths, run_stage
from physlm.config import ProbeStage
from physlm.device import pick_device
from physlm.io import read_parquet, write_csv, write_json
from physlm.probe import cfg_targets, hidden_states, probe_layers, summarize
from physlm.tokenize import Vocab, cfg_encode
from physlm.tracking import start_run


def main(paths: Paths, cfg: ProbeStage) -> None:
    p = cfg.probe
    device = pick_device()
    model = load_model(paths.model, device)
    frame = read_parquet(paths.raw / "test.parquet", ["tokens", "ancestors", "boundaries"]).head(p.sentences)
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
    with start_run(paths.study, "probe", cfg.model_dump(), device=str(device)) as run:
        for name, net in models.items():
            states = _token_states(hidden_states(net, sequences), sequences)
            found = probe_layers(states, targets, train_mask, steps=p.steps, lr=p.lr, weight_decay=p.weight_decay, seed=cfg.seed)
            rows += [{"model": name, **r} for r in found]
            metrics[name] = summarize(found, last_layer=model.cfg.depth)
        if "control" in metrics:
            metrics["gap"] = {k: metrics["trained"][k] - metrics["control"][k] for k in metrics["trained"]}
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, dict)})
        write_csv(paths.metrics / "probe.csv", rows)
        write_json(paths.metrics / "probe.json", metrics)
    print(f"probe@{paths.study}: last layer {metrics['trained']}" + (f", control {metrics['control']}" if p.control else ""))


def _token_states(states: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
    """Remove each sequence's first (<bos>) position from the concatenated [L, positions, W] states."""
    starts = np.cumsum([0] + [len(s) for s in sequences[:-1]])
    keep = np.ones(states.shape[1], dtype=bool)
    keep[starts] = False
    return states[:, keep]


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    run_stage("probe", main)
