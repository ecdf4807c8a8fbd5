"""probe@STUDY: parse-tree probes of the trained model and its controls, and its attention analysis.

Probes (physlm/probe.py): the per-position linear probe on every layer, and the paper's multi-head probe
(left-looking, position-mixed, linear in the hidden states) on the last layer (or all). Models: the trained
decoder, a random-init control (`probe.cfg.control`), and an encoder-only control with the same body trained
here by masked LM on the study's windows (`probe.cfg.encoder.steps` > 0; physlm/mlm.py).

Writes metrics/STUDY/probe.json (last-layer means and the gap to the control), metrics/STUDY/probe.csv
(one row per model, layer, target, level), and, with `probe.cfg.attention_sentences` > 0,
metrics/STUDY/attention.json (summary), attention_distance.csv (mass by distance per layer and head) and
attention_boundary.csv (NT-end to NT-end statistics; physlm/worlds/cfg/attention.py).

iGSM studies: the V-probes of SPEC 2.4 (physlm/worlds/igsm/vprobe.py) on the trained model and a random-init control:
one probe per property, trained on problems of the training split and scored on held-out templates; the
attention outputs are written empty (the attention analysis is the grammar world's).

Biography studies: P-probing and Q-probing (SPEC 4.3, physlm/worlds/bio/pqprobe.py) of the model before QA finetuning
(models/STUDY/pretrained when the study finetunes, else the model) and of a random-init control, fit on
`probe.bio.people` P_train people and scored on as many P_test people; probe.csv holds every (model, probe,
task, position / offset) accuracy with its majority baseline, probe.json the flat summary.
"""

import shutil
from pathlib import Path

import numpy as np
import torch

from physlm.worlds.cfg.attention import analyze_attention, boundary_rows, cfg_inputs, distance_rows
from physlm.worlds.cfg.attention import summarize as summarize_attention
from physlm.artifacts import load_model, random_model
from physlm.cli import Paths, run_stage
from physlm.config import ProbeStage
from physlm.device import pick_device
from physlm.errors import ParamsError
from physlm.io import read_parquet, write_csv, write_json
from physlm.mlm import train_mlm
from physlm.parallel import resolve_workers
from physlm.probe import cfg_targets, hidden_states, probe_layers, probe_layers_multihead, summarize
from physlm.train import TrainConfig
from stages.train import load_windows
from physlm.tokenize import Vocab, cfg_encode
from physlm.tracking import start_run


def main(paths: Paths, cfg: ProbeStage) -> None:
    if cfg.world == "igsm":
        return main_igsm(paths, cfg)
    if cfg.world == "bio":
        return main_bio(paths, cfg)
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
        if p.encoder.steps:
            models["encoder"], metrics["encoder_training"] = _encoder(model.cfg, p, cfg.seed, paths, device)
        mh = p.multihead
        lengths = [len(t) for t in tokens]
        for name, net in models.items():
            states = _token_states(hidden_states(net, sequences), sequences)
            found = probe_layers(states, targets, train_mask, steps=p.steps, lr=p.lr, weight_decay=p.weight_decay, seed=cfg.seed)
            metrics[name] = summarize(found, last_layer=model.cfg.depth, probe="linear")
            if mh.steps:
                layers = [model.cfg.depth] if mh.layers == "last" else None
                multi = probe_layers_multihead(states, targets, train_mask, lengths, steps=mh.steps, lr=mh.lr, weight_decay=p.weight_decay,
                                               seed=cfg.seed, heads=mh.heads, rank=mh.rank, pos_dim=mh.pos_dim, layers=layers, device=device)
                metrics[f"{name}_multihead"] = summarize(multi, last_layer=model.cfg.depth, probe="multihead")
                found += multi
            rows += [{"model": name, **r} for r in found]
        for probe in ("", "_multihead"):
            for other in ("control", "encoder"):
                if f"{other}{probe}" in metrics:
                    mine, theirs = metrics[f"trained{probe}"], metrics[f"{other}{probe}"]
                    metrics[f"gap_{other}{probe}"] = {k: mine[k] - theirs[k] for k in mine}
        if p.attention_sentences:
            attention = _attention(model, tokens[: p.attention_sentences], boundaries[: p.attention_sentences], paths)
            metrics["attention"] = {k: v for k, v in attention.items() if k == "distance_share" or k.startswith("lift")}
        else:
            _no_attention(paths)
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, dict)})
        write_csv(paths.metrics / "probe.csv", rows)
        write_json(paths.metrics / "probe.json", metrics)
    print(f"probe@{paths.study}: last layer {metrics['trained']}" + (f", control {metrics['control']}" if p.control else ""))


def _no_attention(paths: Paths, why: str = "probe.cfg.attention_sentences is 0") -> None:
    """The declared attention outputs, empty."""
    write_csv(paths.metrics / "attention_distance.csv", [])
    write_csv(paths.metrics / "attention_boundary.csv", [])
    write_json(paths.metrics / "attention.json", {"disabled": True, "why": why})


def main_igsm(paths: Paths, cfg: ProbeStage) -> None:
    from physlm.generate import load_igsm_problems
    from physlm.text import TextVocab
    from physlm.worlds.igsm.vprobe import VProbeConfig, run_vprobes

    p = cfg.probe
    device = pick_device()
    model = load_model(paths.model, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    train = load_igsm_problems(paths.raw / "train.parquet", p.train_problems)
    test = load_igsm_problems(paths.raw / "test.parquet", p.test_problems)
    models = {"trained": model} | ({"control": random_model(model.cfg, cfg.seed + 1, device)} if p.control else {})
    settings = VProbeConfig(properties=tuple(p.properties), picks=p.picks, rank=p.rank, steps=p.steps, batch_size=p.batch_size,
                            lr=p.lr, weight_decay=p.weight_decay, workers=resolve_workers(p.workers))
    with start_run(paths.study, "probe", cfg.model_dump(), device=str(device)) as run:
        rows, summary = run_vprobes(models, train, test, vocab, settings, cfg.seed)
        run.log_metrics(summary)
        write_csv(paths.metrics / "probe.csv", rows)
        write_json(paths.metrics / "probe.json", summary)
        _no_attention(paths, "the attention analysis is the grammar world's")
    print(f"probe@{paths.study}: " + ", ".join(f"{r['property']}/{r['model']} {r['accuracy']:.3f} (majority {r['majority']:.3f})"
                                              for r in rows))


def main_bio(paths: Paths, cfg: ProbeStage) -> None:
    import polars as pl

    from physlm.worlds.bio import pqprobe
    from physlm.text import TextVocab
    from physlm.worlds.bio.people import ATTRIBUTES

    p = cfg.probe
    device = pick_device()
    source = paths.model / "pretrained" if (paths.model / "pretrained").is_dir() else paths.model
    model = load_model(source, device)
    vocab = TextVocab.load(paths.tokens / "tokenizer.json")
    people = read_parquet(paths.raw / "people.parquet", ["id", "full_name", *ATTRIBUTES])
    bios = read_parquet(paths.raw / "bios.parquet", ["person", "entry", "text", *(f"{a}_{e}" for a in ATTRIBUTES for e in ("start", "end"))])
    qa = read_parquet(paths.raw / "qa.parquet", ["person", "split"])
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
    with start_run(paths.study, "probe", cfg.model_dump(), device=str(device)) as run:
        for name, m in models.items():
            for layer in layers:
                results = []
                if p.p_steps:
                    results.append(pqprobe.run_pprobe(m, tasks, data["P_train"].biographies, data["P_test"].biographies,
                                                      steps=p.p_steps, rank=p.p_rank, layer=layer, **common))
                if p.q_steps:
                    results.append(pqprobe.run_qprobe(m, tasks, data["P_train"].queries, data["P_test"].queries,
                                                      steps=p.q_steps, rank=p.q_rank, layer=layer, **common))
                tag = "" if layer == m.cfg.depth else f"L{layer}_"  # the last layer's keys carry no tag
                for result in results:
                    rows += [{"model": name, **r} for r in pqprobe.rows(result)]
                    summary |= {f"{result.probe}_{name}_{tag}{k}": v for k, v in pqprobe.summary(result).items()}
        run.log_metrics(summary)
        write_csv(paths.metrics / "probe.csv", rows)
        write_json(paths.metrics / "probe.json", summary)
        _no_attention(paths, "the attention analysis is the grammar world's")
    print(f"probe@{paths.study} ({source}): {len(rows)} rows; " + ", ".join(
        f"{k} {v:.3f}" for k, v in summary.items() if k.startswith("Q_") and k.endswith("_whole")))


def _encoder(decoder_cfg, p, seed: int, paths: Paths, device) -> tuple[object, dict]:
    """Train the encoder-only control by masked LM on the study's training windows (resumable checkpoints in
    checkpoints/STUDY-encoder/, removed afterwards)."""
    e = p.encoder
    train_cfg = TrainConfig(steps=e.steps, batch_size=e.batch_size, micro_batch_size=e.batch_size, lr=e.lr, min_lr_ratio=0.1,
                            warmup_steps=min(30, e.steps // 10), decay="cosine", seed=seed + 7,
                            eval_every=e.steps, checkpoint_every=max(1, e.steps // 4), log_every=max(1, e.steps // 20))
    ckpt = Path("checkpoints") / f"{paths.study}-encoder"
    result = train_mlm(decoder_cfg, train_cfg, load_windows(paths, "train"), load_windows(paths, "test"), ckpt, device=device)
    shutil.rmtree(ckpt, ignore_errors=True)
    info = {"steps": e.steps, "final_loss": result.final_loss, "final_val_loss": result.final_val_loss, "seconds": result.seconds}
    return result.model.eval(), info


def _attention(model, tokens: list[np.ndarray], boundaries: list[list[np.ndarray]], paths: Paths) -> dict:
    """Attention by distance and NT-end to NT-end statistics; writes the CSVs and JSON, returns the summary."""
    sequences, labels = cfg_inputs(tokens, boundaries, model.cfg.context)
    analysis = analyze_attention(model, sequences, labels)
    distance, boundary = distance_rows(analysis), boundary_rows(analysis.boundary)
    summary = summarize_attention(distance, boundary)
    write_csv(paths.metrics / "attention_distance.csv", distance)
    write_csv(paths.metrics / "attention_boundary.csv", boundary)
    write_json(paths.metrics / "attention.json", summary)
    return summary


def _token_states(states: np.ndarray, sequences: list[np.ndarray]) -> np.ndarray:
    """Remove each sequence's first (<bos>) position from the concatenated [L, positions, W] states."""
    starts = np.cumsum([0] + [len(s) for s in sequences[:-1]])
    keep = np.ones(states.shape[1], dtype=bool)
    keep[starts] = False
    return states[:, keep]


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    run_stage("probe", main)
