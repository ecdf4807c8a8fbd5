"""Shared test helpers: one-thread torch for tiny models, and tiny versions of the demo params (the grammar
world's, the iGSM and biography studies', and all worlds together for the DVC pipeline test)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"depth": 1, "width": 32, "heads": 2},
    "train": {"steps": 12, "batch_size": 8, "micro_batch_size": 8, "eval_every": 6, "checkpoint_every": 6,
              "log_every": 3, "warmup_steps": 2, "eval_batches": 1},
    "probe": {"cfg": {"sentences": 30, "steps": 20, "attention_sentences": 10, "multihead": {"steps": 10, "heads": 4, "rank": 4}}},
    "evaluate": {"cfg": {"samples": 8, "prefix_samples": 8, "prefix": 10, "control_samples": 4, "batch_size": 8,
                          "kl_sentences": 4, "robust": {"sentences": 6}}},
}


def cpu_vendor() -> str:
    """The CPU's vendor string (GenuineIntel, AuthenticAMD, ...): float results of the same code differ in the last
    bits between vendors (BLAS picks other kernels), so bit-for-bit golden values are recorded per vendor."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("vendor_id")), "unknown")


def golden(per_vendor: dict):
    """This machine's golden values; the test skips on a vendor none were recorded on."""
    vendor = cpu_vendor()
    if vendor not in per_vendor:
        pytest.skip(f"no golden values recorded on a {vendor} CPU (recorded: {', '.join(per_vendor)})")
    return per_vendor[vendor]


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and it avoids oversubscribing a busy CI core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_params() -> dict:
    """The repo's params.yaml shrunk: the cfg_demo dataset with a few hundred sentences, and two studies on it
    (cfg_demo and the suite's cfg_uni variant), one-block models, a dozen steps."""
    from physlm.config import merge
    from physlm.worlds.cfg.presets import SUITE

    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["datasets"] = {"cfg_demo": params["datasets"]["cfg_demo"]}
    data = params["datasets"]["cfg_demo"]
    data["generate"].update(train_sentences=300, test_sentences=60)
    data["tokenize"]["context"] = 160
    params["studies"] = {"cfg_demo": params["studies"]["cfg_demo"], "cfg_uni": copy.deepcopy(SUITE["studies"]["cfg_uni"])}
    params["studies"]["cfg_uni"]["data"] = "cfg_demo"
    params["studies"]["cfg_uni"]["train"] = {}
    params["studies"]["cfg_uni"]["evaluate"] = {}
    params["studies"]["cfg_demo"]["probe"] = {"encoder": {"steps": 4, "batch_size": 8}}
    return params


# The tiny iGSM and biography studies (tests/test_igsm_stages.py, tests/test_bio_stages.py, tests/test_pipeline.py).
TINY_STUDY_MODEL = {"depth": 1, "width": 32, "heads": 2}
BIO_POOLS = {"first_names": 20, "middle_names": 20, "last_names": 20, "cities": 10, "universities": 10, "majors": 10,
             "employers": 10}
STUDY_TRAIN = {"steps": 6, "batch_size": 4, "micro_batch_size": 2, "eval_every": 3, "checkpoint_every": 3, "log_every": 3,
               "warmup_steps": 1, "eval_batches": 1}
BIO_FINETUNE = {"steps": 4, "lr": 1.0e-3, "weight_decay": 0.01, "batch_size": 4}


def tiny_igsm_params(**generate) -> dict:
    """The repo's params.yaml with only the igsm_demo dataset (120 training problems) and study (a one-block
    model, 6 steps, a few probe and eval problems); `generate` overrides the dataset's generate keys."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    data = params["datasets"]["igsm_demo"]
    data["generate"].update({"train_problems": 120, "eval_problems": 12, "workers": 1} | generate)
    data["tokenize"]["context"] = 256
    params["datasets"] = {"igsm_demo": data}
    study = params["studies"]["igsm_demo"]
    study.update(model=dict(TINY_STUDY_MODEL), train=dict(STUDY_TRAIN),
                 probe={"properties": ["nece", "can_next"], "train_problems": 8, "test_problems": 4, "picks": 3, "steps": 3,
                        "batch_size": 8},
                 evaluate={"problems": 3, "beams": [1, 2], "batch_size": 4})
    params["studies"] = {"igsm_demo": study}
    return params


def tiny_bio_params(**generate) -> dict:
    """The biography regimes at a tiny scale: datasets bio_tiny (24 people) and bio_celeb (12 celebrities more),
    studies bio_ft (pretrain + full finetune), bio_lora, bio_mix (mixed training) and bio_celebrity; `generate`
    overrides bio_tiny's generate keys."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    data = params["datasets"]["bio_single"]
    data["generate"].update({"people": 24, "pools": dict(BIO_POOLS)} | generate)
    data["tokenize"]["context"] = 64
    celeb = {**data, "generate": {**data["generate"], "variant": "permute", "celebrities": 12}}
    params["datasets"] = {"bio_tiny": data, "bio_celeb": celeb}
    base = {"world": "bio", "data": "bio_tiny", "model": dict(TINY_STUDY_MODEL),
            "probe": {"people": 6, "p_steps": 3, "q_steps": 3}, "evaluate": {"people": 4, "beams": [1, 2], "batch_size": 8}}
    params["studies"] = {
        "bio_ft": {**base, "train": {**STUDY_TRAIN, "finetune": BIO_FINETUNE}},
        "bio_lora": {**base, "train": {**STUDY_TRAIN, "finetune": {**BIO_FINETUNE, "lora": {"rank_qv": 2, "rank_emb": 4, "alpha": 4.0}}}},
        "bio_mix": {**base, "train": {**STUDY_TRAIN, "mix": 0.5}, "probe": {"p_steps": 0, "q_steps": 3, "people": 6, "layers": [0, -1]}},
        "bio_celebrity": {**base, "data": "bio_celeb", "train": {**STUDY_TRAIN, "finetune": BIO_FINETUNE}},
    }
    return params


def tiny_every_world() -> dict:
    """Every world at a tiny scale in one params.yaml, for the DVC pipeline (tests/test_pipeline.py): tiny_params'
    grammar dataset with cfg_demo and cfg_uni (its train.steps and evaluate.samples set to the shared values, so
    `dvc exp run -S studies.cfg_uni.train.steps=...` has a key to set: DVC's -S adds no new key without a `+`),
    tiny_igsm_params' igsm_demo (its probe and evaluate in one process), and tiny_bio_params' bio_tiny dataset
    with the finetuned bio_ft study, tiny_playground_params' Depo, Mano and Brevo studies, and a capacity (bioD)
    study whose steps follow from its exposures. All but the grammar studies set model.depth themselves; the
    grammar studies take the shared default."""
    params = tiny_params()
    params["studies"]["cfg_uni"]["train"] = {"steps": TINY["train"]["steps"]}
    params["studies"]["cfg_uni"]["evaluate"] = {"samples": TINY["evaluate"]["cfg"]["samples"]}
    params["studies"]["cfg_uni"]["probe"] = {"control": False, "multihead": {"steps": 0}}  # the suite's, at the tiny sizes
    igsm = tiny_igsm_params()
    for stage in ("probe", "evaluate"):  # one process: at this size, starting a second one costs more than it saves
        igsm["studies"]["igsm_demo"][stage]["workers"] = 1
    bio = tiny_bio_params()
    params["datasets"] |= {"igsm_demo": igsm["datasets"]["igsm_demo"], "bio_tiny": bio["datasets"]["bio_tiny"]}
    params["studies"] |= {"igsm_demo": igsm["studies"]["igsm_demo"], "bio_ft": bio["studies"]["bio_ft"]}
    playground = tiny_playground_params()
    params["datasets"] |= playground["datasets"]
    params["studies"] |= playground["studies"]
    params["datasets"]["capacity_tiny"] = {"world": "capacity", "generate": dict(CAPACITY_GENERATE),
                                           "tokenize": {"context": 64, "pack": "sentences", "copies": 3}}
    params["studies"]["capacity_tiny"] = {"world": "capacity", "data": "capacity_tiny", "model": dict(TINY_STUDY_MODEL),
                                          "train": {**STUDY_TRAIN, "exposures": 3},  # 9 steps, derived from exposures
                                          "probe": {"people": 40, "attributes": 2, "train_fraction": 0.5, "steps": 10,
                                                    "batch_size": 16},
                                          "evaluate": {"people": 0, "batch_size": 16}}
    return params


CAPACITY_GENERATE = {"N": 40, "K": 2, "C": 2, "D": 4, "L": 1, "T": 8,
                     "pools": {"first_names": 10, "middle_names": 10, "last_names": 10}, "workers": 1}


def tiny_playground_params() -> dict:
    """Part 4.1's playground worlds at a tiny scale, one dataset and study each (depo_tiny, mano_tiny,
    brevo_tiny): one-block models of their own (the studies set model.depth), 6 steps, a few probe and eval
    instances; the worlds' probe and evaluate defaults stay params.yaml's."""
    model, train = dict(TINY_STUDY_MODEL), dict(STUDY_TRAIN)
    datasets = {
        "depo_tiny": {"world": "depo", "generate": {"variant": "depo1", "N": 8, "K": 4, "vocab": 6, "train_instances": 300,
                                                     "test_instances": 20, "workers": 1},
                      "tokenize": {"context": 128, "pack": "sentences", "loss": "answers"}},
        "mano_tiny": {"world": "mano", "generate": {"max_ops": 3, "train_examples": 600, "test_examples": 60,
                                                     "length_examples": 10, "workers": 1},
                      "tokenize": {"context": 64, "pack": "sentences"}},
        "brevo_tiny": {"world": "brevo", "generate": {"N": 10, "names": "tokens", "train_examples": 400, "test_examples": 120,
                                                       "size_examples": 4, "workers": 1},
                       "tokenize": {"context": 128, "pack": "sentences"}},
    }
    probe = {"depo": {"instances": 12, "train_fraction": 0.5, "steps": 20, "batch_size": 4},
             "mano": {"examples": 40, "train_fraction": 0.5, "steps": 20, "batch_size": 16},
             "brevo": {"examples": 24, "train_fraction": 0.5, "steps": 10, "batch_size": 8}}
    evaluate = {"depo": {"instances": 10, "batch_size": 16}, "mano": {"examples": 30, "length_examples": 5, "batch_size": 16},
                "brevo": {"examples": 10, "size_examples": 3, "batch_size": 8}}
    studies = {name: {"world": d["world"], "data": name, "model": dict(model), "train": dict(train),
                      "probe": probe[d["world"]], "evaluate": evaluate[d["world"]]} for name, d in datasets.items()}
    return {"datasets": datasets, "studies": studies}
