"""The capacity world's presets (physlm/worlds/capacity/presets.py): the showcase's miniature is the presets'
DEMO_*, the suite extends it (a fourth size, a second N, 300 exposures with copies to match), `capacity-grid`
and `capacity-paper` write a params.yaml every stage validates, with the grid's shape, SPEC 6.3's recipe and
steps derived from exposures (never the paper's), their `--help`, and bad options stopping with one line and
leaving the file as it was."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from physlm.config import SCOPE, entry_names, load_stage, read_params
from physlm.presets import main
from physlm.worlds.capacity import presets as cp

ROOT = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def _validate_everything(path: Path) -> None:
    params = read_params(path)
    for stage, scope in SCOPE.items():
        for name in entry_names(params, scope) if scope else [""]:
            load_stage(stage, name, path)


def _capacity(params: dict, scope: str) -> dict:
    return {n: e for n, e in params[scope].items() if e["world"] == "capacity"}


def _tokens_per_paragraph(K: int, C: int, L: int) -> int:
    # counted here from the template: 3 name tokens; per sentence opener, attribute, `is`, C chunks of L tokens,
    # C - 1 commas, the full stop; <bos> and <eos>
    return 3 + K * (1 + 1 + 1 + C * L + (C - 1) + 1) + 2


def test_the_showcase_runs_the_presets_demo() -> None:
    """params.yaml's capacity miniature is presets.py's DEMO_*; the suite only adds (a fourth size, N 3,000, 300
    exposures whose dataset holds 300 writings, the junk-data study), and every suite study measures its int8 / int4
    copies."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["datasets"]["capacity_demo"] == cp.DEMO_DATASET
    assert _capacity(params, "studies") == cp.DEMO_STUDIES
    suite = cp.SUITE
    assert not set(suite["studies"]) & set(params["studies"]) and not set(suite["datasets"]) & set(params["datasets"])
    assert set(suite["studies"]) == {"capacity_d2w8"} | {f"capacity_{d}_d2w{w}" for d in ("n3k", "e300") for w in (8, 16, 32)} | \
        {f"capacity_{d}_d2w16" for d in ("junk", "junk_dom", "junk_rep")}
    demo = cp.DEMO_DATASET
    n3k, e300 = suite["datasets"]["capacity_n3k"], suite["datasets"]["capacity_e300"]
    assert n3k["generate"] == demo["generate"] | {"N": 3000} and n3k["tokenize"] == demo["tokenize"]
    assert e300["generate"] == demo["generate"] and e300["tokenize"] == demo["tokenize"] | {"copies": 300}
    for name, study in suite["studies"].items():
        data = suite["datasets"].get(study["data"]) or params["datasets"][study["data"]]
        assert study["train"]["exposures"] == data["tokenize"]["copies"], name  # every exposure a new writing
        assert study["evaluate"] == {"quantize": ["int8", "int4"]}
        twin = params["studies"].get(f"capacity_d2w{study['model']['width']}")
        if twin:  # the same recipe as the showcase's study of that width, but for the data and exposures
            assert study["model"] == twin["model"]
            assert {k: v for k, v in study["train"].items() if k != "exposures"} == \
                {k: v for k, v in twin["train"].items() if k != "exposures"}


def test_the_suite_has_the_junk_study() -> None:
    """SPEC 6.3's junk mixture on the demo's people: 7/8 junk of N' = every other name of the pools, the same with the
    domain token, and the repetitive-junk control (few junk people); the 16-wide showcase model and recipe at 100
    exposures, so the showcase's capacity_d2w16 is the baseline."""
    demo, suite = cp.DEMO_DATASET, cp.SUITE
    pools = demo["generate"]["pools"]
    n0 = pools["first_names"] * pools["middle_names"] * pools["last_names"]
    want = {"capacity_junk": (n0 - demo["generate"]["N"], False), "capacity_junk_dom": (n0 - demo["generate"]["N"], True),
            "capacity_junk_rep": (10, False)}
    for data, (junk_people, domain_token) in want.items():
        dataset = suite["datasets"][data]
        assert dataset["generate"] == demo["generate"] | {"junk_people": junk_people}
        assert dataset["tokenize"] == demo["tokenize"] | {"junk_fraction": 7 / 8, "domain_token": domain_token}
        study = suite["studies"][f"{data}_d2w16"]
        baseline = cp.DEMO_STUDIES["capacity_d2w16"]
        assert study["data"] == data and study["model"] == baseline["model"] and study["train"] == baseline["train"]
    # N' = 499,000 against 7 x 1,000 x 100 junk paragraphs: each junk person written once or twice
    assert 1 < 7 * demo["generate"]["N"] * demo["tokenize"]["copies"] / want["capacity_junk"][0] < 2


def test_the_suite_validates(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    main(["suite", "--params", str(path)])
    after = yaml.safe_load(path.read_text())
    assert set(cp.SUITE["studies"]) <= set(after["studies"])
    for name in cp.SUITE["studies"]:
        for stage in ("train", "probe", "evaluate"):
            load_stage(stage, name, path)
    assert load_stage("evaluate", "capacity_n3k_d2w32", path).evaluate.quantize == ["int8", "int4"]
    shared = yaml.safe_load(path.read_text())["evaluate"]["capacity"].get("quantize", [])  # the showcase's: params.yaml's
    assert load_stage("evaluate", "capacity_d2w32", path).evaluate.quantize == shared


def test_capacity_grid_writes_the_grid(tmp_path: Path) -> None:
    from physlm.worlds.capacity.train import derived_steps

    path = _copy(tmp_path)
    before = yaml.safe_load(path.read_text())
    main(["capacity-grid", "--params", str(path), "--sizes", "2-4,4-4,1-2", "--N", "20000,60000", "--exposures", "300,1000",
          "--K", "3", "--C", "2", "--D", "50", "--L", "2", "--T", "40"])
    text = path.read_text()
    after = yaml.safe_load(text)
    assert "# physlm parameters" in text  # comments survive
    datasets, studies = _capacity(after, "datasets"), _capacity(after, "studies")
    assert len(datasets) == 2 * 2 and len(studies) == 2 * 2 * 3
    assert not set(datasets) & set(_capacity(before, "datasets"))  # the showcase's capacity entries are replaced
    per = _tokens_per_paragraph(3, 2, 2)
    for name, study in studies.items():
        data = datasets[study["data"]]
        g, t, m, tr = data["generate"], data["tokenize"], study["model"], study["train"]
        assert (g["K"], g["C"], g["D"], g["L"], g["T"]) == (3, 2, 50, 2, 40) and "pools" not in g  # the full pools
        assert t == {"context": 512, "pack": "sentences", "copies": tr["exposures"]}
        assert m["width"] == 64 * m["heads"] and (m["depth"], m["heads"]) in {(2, 4), (4, 4), (1, 2)}
        assert (m["pos"], m["dropout"]) == ("rot", 0.0)
        assert (tr["lr"], tr["weight_decay"], tr["batch_size"], tr["warmup_steps"], tr["decay"], tr["min_lr_ratio"]) == \
            (5.0e-4, 0.01, 192, 1000, "cosine", 0.1)
        assert tr["compile"] is True and 192 % tr["micro_batch_size"] == 0
        # the steps the world's train step will derive, from exposures; checked by hand for one point
        assert tr["steps"] == derived_steps(tr["exposures"], g["N"], per, 192, 512)
        assert name == f"{study['data']}_gpt2_{m['depth']}_{m['heads']}"
    one = studies["p33_biod_N20K_E300_gpt2_2_4"]["train"]
    assert one["steps"] == math.ceil(300 * 20_000 * per / (192 * 512))
    assert after["evaluate"]["capacity"]["quantize"] == ["int8", "int4"]
    for scope in ("datasets", "studies"):  # other worlds untouched
        assert {n: e for n, e in after[scope].items() if e["world"] != "capacity"} == \
            {n: e for n, e in before[scope].items() if e["world"] != "capacity"}
    _validate_everything(path)


def test_capacity_paper_writes_spec_63s_grids(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    main(["capacity-paper", "--params", str(path)])
    after = yaml.safe_load(path.read_text())
    datasets, studies = _capacity(after, "datasets"), _capacity(after, "studies")
    # bioD(K 4, C 4, L 1): 49 tokens per paragraph; the splits up to 2B tokens: N x E x 49 <= 2e9
    assert set(datasets) == {f"p33_biod_N{n}_E1000" for n in ("10K", "20K")} | \
        {f"p33_biod_N{n}_E100" for n in ("50K", "100K", "200K")}
    assert len(studies) == len(datasets) * 4
    assert {(s["model"]["depth"], s["model"]["heads"]) for s in studies.values()} == {(2, 2), (4, 4), (8, 8), (12, 12)}
    assert {(s["train"]["lr"], s["train"]["weight_decay"], s["train"]["batch_size"]) for s in studies.values()} == \
        {(5.0e-4, 0.01, 192)}  # the bioD recipe
    _validate_everything(path)

    path = _copy(tmp_path)
    main(["capacity-paper", "--params", str(path), "--recipe", "table", "--schedules", "100", "--N", "50000,2000000",
          "--sizes", "2-2", "--max-train-tokens", "10000000000"])
    studies = _capacity(yaml.safe_load(path.read_text()), "studies")
    assert set(studies) == {"p33_biod_N50K_E100_gpt2_2_2"} | {f"p33_biod_N2M_E100_gpt2_2_2_lr{r}" for r in ("3e-4", "5e-4", "1e-3")}
    small = studies["p33_biod_N50K_E100_gpt2_2_2"]["train"]
    assert (small["lr"], small["weight_decay"], small["batch_size"], small["micro_batch_size"]) == (1.0e-3, 0.01, 12, 12)
    big = studies["p33_biod_N2M_E100_gpt2_2_2_lr5e-4"]["train"]
    assert (big["lr"], big["weight_decay"], big["batch_size"], big["micro_batch_size"], big["exposures"]) == (5.0e-4, 0.01, 384, 64, 100)
    _validate_everything(path)


def test_the_per_n_table_is_spec_63s() -> None:
    """A few rows read off SPEC 6.3 by hand (the others follow its shorthand: a value left out is the row above's)."""
    t = cp.PAPER_TABLE
    assert t[1000][10_000] == ((1.0e-3,), 0.02, 24) and t[1000][500_000] == ((5.0e-4,), 0.01, 192)
    assert t[1000][10_000_000] == ((3.0e-4,), 0.001, 1536) and t[100][20_000_000] == ((2.0e-4, 3.0e-4, 5.0e-4), 0.002, 1536)
    assert list(t[100]) == [50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000]
    assert all(batch % cp.micro_batch(batch) == 0 for rows in t.values() for _, _, batch in rows.values())


@pytest.mark.parametrize("preset", ["capacity-grid", "capacity-paper"])
def test_help(preset: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "physlm.presets", preset, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and f"`{preset}`" in proc.stdout and "--sizes" in proc.stdout and "--max-train-tokens" in proc.stdout
    assert "SUITE" not in proc.stdout  # one preset's paragraph, not the module's
    if preset == "capacity-paper":
        assert "bioS(N)" in proc.stdout and "bioS_simple" in proc.stdout and "--recipe" in proc.stdout
    else:
        assert "GPT2-l-h" in proc.stdout and "SPEC 11.2 item 1" in proc.stdout
    listing = subprocess.run([sys.executable, "-m", "physlm.presets"], capture_output=True, text=True, cwd=ROOT).stdout
    assert preset in listing


@pytest.mark.parametrize(("args", "message"), [
    (["capacity-paper", "--data", "bioS", "--K", "3"], "error: --K: bioD's knobs; bioS has none"),
    (["capacity-paper", "--data", "bioR"], "error: unknown --data 'bioR'"),
    (["capacity-paper", "--schedules", "500"], "error: unknown schedule(s) 500"),
    (["capacity-paper", "--recipe", "best"], "error: unknown --recipe 'best'"),
    (["capacity-paper", "--N", "30000"], "error: N 30K not in SPEC 6.3's grid"),
    (["capacity-paper", "--N", "10000000"], "error: N 10,000,000 x 1000 exposures x 49 tokens per paragraph"),
    (["capacity-grid", "--N", "50000", "--exposures", "1000"], "error: N 50,000 x 1000 exposures x 49 tokens"),
    (["capacity-grid", "--sizes", "2x4"], "error: --sizes takes depth-heads pairs"),
    (["capacity-grid", "--sizes", ""], "error: no point to write"),
    (["capacity-grid", "--N", "ten"], "error: --N takes comma-separated integers"),
    (["capacity-grid", "--N", "10000", "--exposures", "100"], "error: N 10,000 at 100 exposures and batch 192 gives 499 steps"),
    (["capacity-grid", "--sizes", "2-2,2-2"], "error: p33_biod_N25K_E100_gpt2_2_2 twice"),
    (["capacity-grid", "--K", "20", "--C", "5", "--L", "5"], "error: a paragraph of K 20, C 5, L 5 has"),
    (["capacity-grid", "--batch-size", "0"], "error: --batch-size, --lr must be positive"),
    (["capacity-grid", "--D", "5000", "--T", "1000"], "error: params.yaml: datasets.p33_biod_N25K_E100.generate: Value error, D = 5000 exceeds"),
])
def test_bad_options_change_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    path = _copy(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "physlm.presets", args[0], "--params", str(path), *args[1:]],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert path.read_bytes() == (ROOT / "params.yaml").read_bytes() and not list(tmp_path.glob("*.tmp"))


def test_capacity_grid_writes_each_architecture_variant(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    main(["capacity-grid", "--params", str(path), "--sizes", "1-2", "--N", "20000", "--exposures", "1000",
          "--variants", "gpt2,llama,tied,mlp1of4,mlp0"])
    studies = _capacity(yaml.safe_load(path.read_text()), "studies")
    models = {name.removeprefix("p33_biod_N20K_E1000_").removesuffix("_1_2"): s["model"] for name, s in studies.items()}
    assert set(models) == {"gpt2", "llama", "tied", "mlp1of4", "mlp0"}
    base = models["gpt2"]
    assert base.get("block", "gpt2") == "gpt2" and not base.get("tie_embeddings", False)
    assert models["llama"] == base | {"block": "llama"}
    assert models["tied"] == base | {"tie_embeddings": True}
    assert models["mlp1of4"] == base | {"mlp_ratio": 1} and models["mlp0"] == base | {"mlp_ratio": 0}
    _validate_everything(path)
    from physlm.model import GPT, GPTConfig  # the variants build the models Part 3.3 names

    built = {v: GPT(GPTConfig(vocab_size=40, context=16, **m)) for v, m in models.items()}
    assert built["tied"].head.weight is built["tied"].wte.weight
    assert all(b.mlp is None for b in built["mlp0"].blocks)
    assert built["mlp1of4"].blocks[0].mlp.fc.out_features == m_width(models["gpt2"]) // 4


def m_width(model: dict) -> int:
    return model["mlp_ratio"] * model["width"]


@pytest.mark.parametrize("variants, says", [("gpt3", "unknown variant gpt3"), ("tied,tied", "listed twice")])
def test_capacity_grid_refuses_bad_variants(tmp_path: Path, variants: str, says: str) -> None:
    path = _copy(tmp_path)
    before = path.read_text()
    with pytest.raises(SystemExit, match=says):
        main(["capacity-grid", "--params", str(path), "--sizes", "1-2", "--N", "20000", "--exposures", "1000",
              "--variants", variants])
    assert path.read_text() == before
