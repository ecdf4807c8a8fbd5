"""The capacity world's presets (docs/capacity.md, "Presets").

`capacity-grid` replaces every capacity dataset and study by a grid on bioD(N, K, C, D, L, T): one dataset per
(N, exposures) (`--N`, default 25,000 and 40,000; `--exposures`, default 100 and 1000; the knobs `--K --C --D
--L --T`, default bioD(K 4, C 4, D 1000, L 1, T 1000), the SPEC 11.2 item 4 example, whose diversity term is
zero because T^L = D: choose T^L >> D for it to count), over the full name pools (N0 = 400 x 400 x 1000), with
`tokenize.copies` = the exposures (every exposure a new writing), context 512; and per dataset one study per
model size (`--sizes`, GPT2-l-h as depth-heads, default 2-2,2-4,4-4: l blocks, h heads of 64 dims, rotary,
no dropout), and per architecture variant (`--variants`, default gpt2; also llama: RMSNorm and the gated SiLU
MLP; tied: the head shares the embedding matrix; mlp1of4: GPT2^{1/4}, the MLP a quarter as wide; mlp0: GPT2^0,
no MLP; the study is named `<dataset>_<variant>_<depth>_<heads>`). Every study carries SPEC 6.3's bioD recipe in its own overrides: `train.exposures` (the steps
follow from the data: the world's train step derives them; the preset writes the same derived count as
`train.steps`, and never the paper's step counts, SPEC 11.2 item 1), AdamW (0.9, 0.98), eps 1e-6, wd 0.01
(`--weight-decay`), lr 5e-4 (`--lr`), batch 192 (`--batch-size`; micro-batches of the largest divisor up to
64), 1000 warmup steps (`--warmup`), cosine to 0.1x, bf16 on CUDA, torch.compile. The evaluation measures all
N people, with the random-init control and the int8 / int4 round-to-nearest copies (`quantize`). A point whose
derived steps are fewer than the warmup, or whose materialised train split would exceed `--max-train-tokens`
(default 2B tokens: the world's tokenize builds the split in memory, 16 GB as int64 before temporaries), stops
the preset with one line.

`capacity-paper` writes SPEC 6.3's 1000- and 100-exposure grids. The paper's grids are over bioS(N), whose
templates and sentence order are re-drawn for every exposure: `--data bioS` writes them (datasets
`p33_bios_N<N>_E<E>`: the full pools, pronouns by id parity, word tokens; by default `--split stream`: the studies
train on the streamed split, `train.stream`, E exposure rounds of new writings, and the dataset stores one writing
per person, `tokenize.copies` 1; `--split materialised`: `copies` = E stored writings, each its own draw; bioD and
bioS_simple default to materialised, and take `--split stream` too); `--data bioS_simple` writes bioS^simple(N) (`p33_bios_simple_N<N>_E<E>`:
one fixed entry per person, `copies` 1, so E exposures are E passes); `--data bioD` (the default) writes the same
grids on bioD with the knobs of `capacity-grid` (`--K --C --D --L --T`, bioD's only). Per schedule
(`--schedules`, default 1000,100), the N of SPEC 6.3's table (1000 exposures: 10K, 20K, 50K, 100K, 200K, 500K, 1M,
2M, 5M, 10M; 100: 50K, 100K, 200K, 500K, 1M, 2M, 5M, 10M, 20M) whose materialised train split (N x copies x
tokens per paragraph; copies 1 with the stream) fits `--max-train-tokens` (`--N` picks from them; one that does not fit stops the preset),
times `--sizes` (default 2-2,4-4,8-8,12-12: the paper's exact (l, h) grid is UNVERIFIED, SPEC 11.2 item 6).
`--recipe table` (the default for bioS and bioS_simple) trains each point with the table's per-N weight decay,
batch and learning rates (`PAPER_TABLE`, SPEC 6.3's bioS table; where the SPEC's shorthand leaves a value out it
is the row above's; a row with several learning rates, 2M and up at 100 exposures, writes one study per rate,
suffixed `_lr<rate>`); `--recipe biod` (the default for bioD) SPEC 6.3's bioD recipe (wd 0.01, lr 5e-4, batch
192) for every point. A bioS paragraph's length varies with its templates: the preset counts the mean of
`BIOS_SAMPLE` writings (57.7 word tokens with <bos> and <eos>) for the split's size and the steps it writes;
the train step derives the steps from the split as packed. Everything else as in `capacity-grid`.

`SUITE` (the `suite` preset) extends the showcase's miniature (params.yaml: `capacity_demo`, bioD N 1,000, K 8,
C 1, D 32, L 2, T 64 over 50 x 50 x 200 names; 2-block GPTs 16, 32 and 64 wide, 100 exposures) on CPU, about 8 to
10 minutes of training: a fourth size (`capacity_d2w8`, 8 wide: the only one besides 16 whose P is below half the
data's bits, so capacity-bound), a second N (`capacity_n3k`: 3,000 people, 144 kbit, where the 32-wide model is
capacity-bound too; `capacity_n3k_d2w8/16/32`), and more exposures (`capacity_e300`: the demo people with 300
writings each; `capacity_e300_d2w8/16/32` at 300 exposures against the showcase's 100), and the junk-data study
(SPEC 6.3, P3.3-f) in miniature on the demo's people with the showcase's 16-wide model and recipe at 100
exposures, 7/8 of the train tokens junk: `capacity_junk_d2w16` (junk: N' = 499,000 other people, every name of
the demo's pools no useful person has, so each junk person is written about 1.4 times), `capacity_junk_dom_d2w16`
(the same with the domain token before every useful paragraph) and `capacity_junk_rep_d2w16` (repetitive junk:
N' = 10 people, each written 70,000 times); the showcase's `capacity_d2w16` is their no-junk baseline. Those
three train on 8x the tokens of a showcase study, about 30-45 CPU minutes together. Every suite study also
measures its int8 and int4 round-to-nearest copies.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Sequence
from typing import Any

from physlm.presets import Preset, _update, gpt2, replace_world
from physlm.worlds.capacity.biod import entry_tokens
from physlm.worlds.capacity.biosn import KINDS as BIOS_KINDS

WORLD = "capacity"
CONTEXT = 512
KNOBS = {"K": 4, "C": 4, "D": 1000, "L": 1, "T": 1000}  # SPEC 11.2 item 4's bioD example
BIOD_RECIPE = {"lr": 5.0e-4, "weight_decay": 0.01, "batch_size": 192}  # SPEC 6.3, bioD
TRAIN = {"min_lr_ratio": 0.1, "warmup_steps": 1000, "decay": "cosine", "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6,
         "grad_clip": 1.0, "eval_every": 2000, "eval_batches": 8, "checkpoint_every": 2000, "log_every": 100,
         "compile": True}
MICRO_BATCH = 64  # the largest micro-batch tried: the largest divisor of the batch up to it
MAX_TRAIN_TOKENS = 2_000_000_000  # tokenize builds the train split in memory as int64: 16 GB, and temporaries
DATA = {"biod": "bioD", "bios": "bioS", "bios_simple": "bioS_simple"}  # --data, any case
SPLITS = ("stream", "materialised")  # capacity-paper --split
BIOS_SAMPLE = (200, 5)  # people (the first of seed 0, full pools) and writings each whose mean length stands for bioS's
# params.yaml's probe.capacity / evaluate.capacity (the world's defaults) and what the paper presets change
PROBE = {"people": 500, "attributes": 4, "train_fraction": 0.7, "steps": 200, "lr": 5.0e-2, "batch_size": 64, "control": True}
EVALUATE = {"people": 0, "batch_size": 256, "control": True}
PAPER_EVALUATE = {"people": 0, "batch_size": 1024, "quantize": ["int8", "int4"]}
GRID_SIZES = ((2, 2), (2, 4), (4, 4))
PAPER_SIZES = ((2, 2), (4, 4), (8, 8), (12, 12))

# SPEC 6.3's per-N recipe for bioS(N): {exposures: {N: (learning rates, weight decay, batch)}}; where the SPEC
# leaves a value out, the row above's
PAPER_TABLE: dict[int, dict[int, tuple[tuple[float, ...], float, int]]] = {
    1000: {10_000: ((1.0e-3,), 0.02, 24), 20_000: ((1.0e-3,), 0.02, 48), 50_000: ((1.0e-3,), 0.02, 96),
           100_000: ((1.0e-3,), 0.02, 192), 200_000: ((1.0e-3,), 0.02, 192), 500_000: ((5.0e-4,), 0.01, 192),
           1_000_000: ((5.0e-4,), 0.01, 192), 2_000_000: ((3.0e-4,), 0.005, 1536), 5_000_000: ((3.0e-4,), 0.002, 1536),
           10_000_000: ((3.0e-4,), 0.001, 1536)},
    100: {50_000: ((1.0e-3,), 0.01, 12), 100_000: ((1.0e-3,), 0.01, 24), 200_000: ((1.0e-3,), 0.01, 48),
          500_000: ((5.0e-4,), 0.01, 96), 1_000_000: ((5.0e-4,), 0.01, 192),
          2_000_000: ((3.0e-4, 5.0e-4, 1.0e-3), 0.01, 384), 5_000_000: ((3.0e-4, 5.0e-4, 1.0e-3), 0.01, 768),
          10_000_000: ((2.0e-4, 3.0e-4, 5.0e-4), 0.01, 1024), 20_000_000: ((2.0e-4, 3.0e-4, 5.0e-4), 0.002, 1536)},
}


# Part 3.3's architecture variations (its Results 4-5), each a model option of physlm.model: a variant's name is
# part of the study's name, its keys override the GPT2-l-h model (gpt2(depth, heads)).
VARIANTS = {
    "gpt2": {},  # the paper's GPT2: rotary, untied head, MLP 4 x width
    "llama": {"block": "llama"},  # RMSNorm, gated SiLU MLP (8/3 x width, the same parameter count)
    "tied": {"tie_embeddings": True},  # the head shares the embedding matrix
    "mlp1of4": {"mlp_ratio": 1},  # GPT2^{1/4}: the MLP a quarter as wide
    "mlp0": {"mlp_ratio": 0},  # GPT2^0: attention-only blocks, no MLP
}


def _variants(names: Sequence[str]) -> list[str]:
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise _fail(f"unknown variant {', '.join(unknown) or '(none given)'}: choose from {', '.join(VARIANTS)}")
    if len(set(names)) != len(names):
        raise _fail(f"a variant is listed twice: {', '.join(names)}")
    return list(names)


def count(n: int) -> str:
    """10000 -> 10K, 2000000 -> 2M, 2500 -> 2500 (names)."""
    for unit, suffix in ((1_000_000, "M"), (1000, "K")):
        if n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def paragraph_tokens(K: int, C: int, L: int) -> int:
    """Tokens of one paragraph in the train split, with its <bos> and <eos> (tokenize's `entry_tokens`)."""
    return entry_tokens(K, C, L) + 2


@functools.cache
def bios_paragraph_tokens(data: str) -> float:
    """The mean tokens (word units, with <bos> and <eos>) of a bioS / bioS_simple paragraph over the full pools:
    writings 0 .. BIOS_SAMPLE[1]-1 of the first BIOS_SAMPLE[0] people of seed 0 (bioS_simple: their one entry)."""
    from physlm.worlds.capacity import biosn

    spec = biosn.Spec(N=BIOS_SAMPLE[0], simple=data == "bioS_simple")
    vocab = biosn.vocabulary(spec.pools, "words")
    lengths = [len(vocab.encode(biosn.writing(spec, p, w).text)) + 2 for p in biosn.people(spec) for w in range(BIOS_SAMPLE[1])]
    return sum(lengths) / len(lengths)


def tokens_per_paragraph(data: str, knobs: dict | None) -> float:
    """A paragraph's tokens with <bos> and <eos>: bioD's from its knobs, bioS's measured (`bios_paragraph_tokens`)."""
    return paragraph_tokens(knobs["K"], knobs["C"], knobs["L"]) if data == "bioD" else bios_paragraph_tokens(data)


def steps_for(exposures: int, N: int, per: float, batch_size: int) -> int:
    """The steps the world's train step will derive: ceil(E x N x tokens per paragraph `per` / (batch x context))."""
    return max(1, math.ceil(exposures * N * per / (batch_size * CONTEXT)))


def dataset(data: str, N: int, E: int, knobs: dict | None, stream: bool = False) -> tuple[str, dict]:
    """(name, params) of the grid's dataset of N people at E exposures: bioD and bioS hold E writings of each person,
    bioS_simple its one entry once; with `stream` every kind stores one writing (the studies stream the rest)."""
    tokenize = {"context": CONTEXT, "pack": "sentences", "copies": 1 if stream or data == "bioS_simple" else E}
    if data == "bioD":
        return f"p33_biod_N{count(N)}_E{E}", {"world": WORLD, "generate": {"N": N, **knobs, "workers": 0}, "tokenize": tokenize}
    return (f"p33_{data.lower()}_N{count(N)}_E{E}",
            {"world": WORLD, "generate": {"data": data, "N": N, "pronouns": "parity", "workers": 0},
             "tokenize": tokenize | {"units": "words"}})


def micro_batch(batch_size: int) -> int:
    return max(d for d in range(1, MICRO_BATCH + 1) if batch_size % d == 0)


def _flow(items: list) -> list:
    """A list params.yaml writes on one line ([int8, int4])."""
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _fail(message: str) -> SystemExit:
    return SystemExit(f"error: {message}")


def write_grid(params: Any, points: Sequence[tuple[int, int, Sequence[tuple[str, dict]]]], sizes: Sequence[tuple[int, int]],
               knobs: dict | None, *, data: str = "bioD", warmup: int = 1000, max_train_tokens: int = MAX_TRAIN_TOKENS,
               variants: Sequence[str] = ("gpt2",), stream: bool = False) -> list[str]:
    """Replace the capacity datasets and studies by one dataset per point (N, exposures) and one study per point,
    recipe (suffix, {lr, weight_decay, batch_size}), variant (VARIANTS) and size (depth, heads); returns the
    study names. `data`: bioD (with its `knobs`), bioS or bioS_simple (`knobs` None); `stream`: the studies train on
    the streamed split (`train.stream`, exposure rounds), the datasets store one writing of each person. Every point
    is checked first, so a bad one changes nothing."""
    variants = _variants(variants)
    if not points or not sizes:
        raise _fail("no point to write: give at least one N, one exposure count and one size")
    if any(d < 1 or h < 1 for d, h in sizes):
        raise _fail(f"sizes must be positive depth-heads pairs, got {', '.join(f'{d}-{h}' for d, h in sizes)}")
    per = tokens_per_paragraph(data, knobs)
    if data == "bioD" and per > CONTEXT + 1:
        raise _fail(f"a paragraph of K {knobs['K']}, C {knobs['C']}, L {knobs['L']} has {per} tokens with <bos> and <eos>,"
                    f" more than a {CONTEXT}-token window holds")
    for N, E, recipes in points:
        if N < 1 or E < 1:
            raise _fail(f"N and exposures must be positive, got N {N}, exposures {E}")
        copies = dataset(data, N, E, knobs, stream)[1]["tokenize"]["copies"]
        if N * copies * per > max_train_tokens:
            raise _fail(f"N {N:,} x {copies} {'exposures' if copies == E else 'writings'} x {per:g} tokens per paragraph ="
                        f" {round(N * copies * per):,} train tokens, over --max-train-tokens {max_train_tokens:,} (the split is"
                        " materialised: docs/capacity.md)")
        for _, recipe in recipes:
            steps = steps_for(E, N, per, recipe["batch_size"])
            if steps < warmup:
                raise _fail(f"N {N:,} at {E} exposures and batch {recipe['batch_size']} gives {steps} steps, fewer than"
                            f" the {warmup} warmup steps: use a larger N, more exposures or a smaller --warmup")
    params["probe"].setdefault(WORLD, dict(PROBE))
    params["evaluate"].setdefault(WORLD, dict(EVALUATE))
    _update(params["evaluate"][WORLD], PAPER_EVALUATE | {"quantize": _flow(PAPER_EVALUATE["quantize"])})
    replace_world(params, WORLD)
    names = []
    for N, E, recipes in points:
        name_of_data, params["datasets"][name_of_data] = dataset(data, N, E, knobs, stream)
        for suffix, recipe in recipes:
            train = {**TRAIN, **recipe, "warmup_steps": warmup, "micro_batch_size": micro_batch(recipe["batch_size"]),
                     "exposures": E, "steps": steps_for(E, N, per, recipe["batch_size"])} | ({"stream": True} if stream else {})
            for variant in variants:
                for depth, heads in sizes:
                    name = f"{name_of_data}_{variant}_{depth}_{heads}{suffix}"
                    if name in names:
                        raise _fail(f"{name} twice: an N, exposure count or size is listed twice")
                    params["studies"][name] = {"world": WORLD, "data": name_of_data, "model": gpt2(depth, heads) | VARIANTS[variant],
                                               "train": dict(train), "probe": {}, "evaluate": {}}
                    names.append(name)
    return names


def capacity_grid(params: Any, *, sizes: Sequence[tuple[int, int]] = GRID_SIZES, ns: Sequence[int] = (25_000, 40_000),
                  exposures: Sequence[int] = (100, 1000), knobs: dict | None = None, lr: float = BIOD_RECIPE["lr"],
                  weight_decay: float = BIOD_RECIPE["weight_decay"], batch_size: int = BIOD_RECIPE["batch_size"],
                  warmup: int = 1000, max_train_tokens: int = MAX_TRAIN_TOKENS, variants: Sequence[str] = ("gpt2",)) -> list[str]:
    """N x exposures datasets, each with a study per variant and size, all on one recipe (module docstring)."""
    recipe = {"lr": lr, "weight_decay": weight_decay, "batch_size": batch_size}
    return write_grid(params, [(N, E, [("", recipe)]) for N in ns for E in exposures], sizes, knobs or dict(KNOBS),
                      warmup=warmup, max_train_tokens=max_train_tokens, variants=variants)


def _rate(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-")  # 3e-4


def capacity_paper(params: Any, *, data: str = "bioD", schedules: Sequence[int] = (1000, 100), ns: Sequence[int] | None = None,
                   sizes: Sequence[tuple[int, int]] = PAPER_SIZES, recipe: str | None = None, knobs: dict | None = None,
                   warmup: int = 1000, max_train_tokens: int = MAX_TRAIN_TOKENS, variants: Sequence[str] = ("gpt2",),
                   split: str | None = None) -> list[str]:
    """SPEC 6.3's exposure grids on bioD, bioS or bioS_simple (module docstring); `recipe` None: the data's default
    (biod for bioD, table for bioS kinds); `knobs`: bioD's (None: KNOBS); `split` None: the data's default (stream
    for bioS, materialised otherwise)."""
    if data.lower() not in DATA:
        raise _fail(f"unknown --data {data!r}; known: {', '.join(DATA.values())}")
    data = DATA[data.lower()]
    if data in BIOS_KINDS and knobs:
        raise _fail(f"--{', --'.join(knobs)}: bioD's knobs; {data} has none")
    recipe = recipe or ("biod" if data == "bioD" else "table")
    split = split or ("stream" if data == "bioS" else "materialised")
    if split not in SPLITS:
        raise _fail(f"unknown --split {split!r}; known: {', '.join(SPLITS)}")
    stream = split == "stream"
    if recipe not in ("biod", "table"):
        raise _fail(f"unknown --recipe {recipe!r}; known: biod, table")
    bad = [str(E) for E in schedules if E not in PAPER_TABLE]
    if bad or not schedules:
        raise _fail(f"unknown schedule(s) {', '.join(bad) or '(none given)'}; known: {', '.join(map(str, PAPER_TABLE))}")
    knobs = dict(KNOBS) | (knobs or {}) if data == "bioD" else None
    per = tokens_per_paragraph(data, knobs)
    points = []
    for E in schedules:
        table = PAPER_TABLE[E]
        copies = 1 if stream or data == "bioS_simple" else E
        if ns is None:
            chosen = [N for N in table if N * copies * per <= max_train_tokens]
        else:
            chosen = [N for N in ns if N in table]
            if not chosen:
                continue
        for N in chosen:
            rates, wd, batch = table[N]
            if recipe == "biod":
                recipes = [("", dict(BIOD_RECIPE))]
            else:
                recipes = [(f"_lr{_rate(lr)}" if len(rates) > 1 else "", {"lr": lr, "weight_decay": wd, "batch_size": batch})
                           for lr in rates]
            points.append((N, E, recipes))
    if ns is not None:
        unknown = [count(N) for N in ns if not any(N in PAPER_TABLE[E] for E in schedules)]
        if unknown:
            known = "; ".join(f"{E} exposures: {', '.join(count(N) for N in PAPER_TABLE[E])}" for E in schedules)
            raise _fail(f"N {', '.join(unknown)} not in SPEC 6.3's grid ({known}); capacity-grid takes any N")
    return write_grid(params, points, sizes, knobs, data=data, warmup=warmup, max_train_tokens=max_train_tokens,
                      variants=variants, stream=stream)


# ---------------------------------------------------------------------------------------------------- options


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _fail(f"{option} takes comma-separated integers, got {text!r}") from None
    return values


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        parts = item.split("-")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise _fail(f"--sizes takes depth-heads pairs such as 2-4,4-4 (GPT2-l-h), got {item!r}")
        out.append((int(parts[0]), int(parts[1])))
    return out


def _knobs(args: argparse.Namespace) -> dict:
    """The bioD knobs given on the command line (those left out: not in the dict)."""
    return {k: getattr(args, k) for k in KNOBS if getattr(args, k) is not None}


def _common(parser: argparse.ArgumentParser, sizes: Sequence[tuple[int, int]]) -> None:
    parser.add_argument("--sizes", default=",".join(f"{d}-{h}" for d, h in sizes),
                        help="GPT2-l-h model sizes as depth-heads (width 64 x heads), comma-separated")
    for knob, value in KNOBS.items():
        parser.add_argument(f"--{knob}", type=int, default=None, help=f"bioD's {knob} (default {value})")
    parser.add_argument("--warmup", type=int, default=1000, help="warmup steps (SPEC 6.3: 1K)")
    parser.add_argument("--max-train-tokens", type=int, default=MAX_TRAIN_TOKENS,
                        help="refuse a dataset whose materialised train split (N x exposures x paragraph) is larger")
    parser.add_argument("--variants", default="gpt2", help=f"architecture variants, comma-separated, each a study per size:"
                        f" {', '.join(VARIANTS)} (default gpt2)")


def _grid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--N", default="25000,40000", help="people per dataset, comma-separated")
    parser.add_argument("--exposures", default="100,1000", help="exposures (= tokenize.copies), comma-separated")
    _common(parser, GRID_SIZES)
    parser.add_argument("--lr", type=float, default=BIOD_RECIPE["lr"])
    parser.add_argument("--weight-decay", type=float, default=BIOD_RECIPE["weight_decay"])
    parser.add_argument("--batch-size", type=int, default=BIOD_RECIPE["batch_size"])


def _paper_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="bioD", help="bioD, bioS (templates and order re-drawn for every writing) or"
                        " bioS_simple (one fixed entry per person)")
    parser.add_argument("--schedules", default="1000,100", help="exposure schedules of SPEC 6.3 (1000, 100)")
    parser.add_argument("--N", default="", help="N of the table to write (default: every N whose split fits)")
    parser.add_argument("--recipe", default=None, help="table: SPEC 6.3's per-N bioS table (the default for bioS kinds);"
                        " biod: SPEC 6.3's bioD recipe (the default for bioD)")
    parser.add_argument("--split", default=None, help="stream: train.stream, exposure rounds, one stored writing per"
                        " person (the default for bioS); materialised: tokenize.copies = exposures (the default for"
                        " bioD and bioS_simple)")
    _common(parser, PAPER_SIZES)


def _apply_grid(params: Any, args: argparse.Namespace) -> list[str]:
    if args.batch_size < 1 or args.lr <= 0 or args.weight_decay < 0:
        raise _fail(f"--batch-size, --lr must be positive and --weight-decay not negative (got {args.batch_size}, {args.lr},"
                    f" {args.weight_decay})")
    return capacity_grid(params, sizes=_sizes(args.sizes), ns=_ints(args.N, "--N"), exposures=_ints(args.exposures, "--exposures"),
                         knobs=dict(KNOBS) | _knobs(args), lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
                         warmup=args.warmup, max_train_tokens=args.max_train_tokens, variants=args.variants.split(","))


def _apply_paper(params: Any, args: argparse.Namespace) -> list[str]:
    return capacity_paper(params, data=args.data, schedules=_ints(args.schedules, "--schedules"),
                          ns=_ints(args.N, "--N") or None, sizes=_sizes(args.sizes), recipe=args.recipe,
                          knobs=_knobs(args) or None, warmup=args.warmup, max_train_tokens=args.max_train_tokens,
                          variants=args.variants.split(","), split=args.split)


def _block(name: str) -> str:
    """The module docstring's paragraph(s) about `name` (a preset's --help)."""
    text = __doc__.split(f"\n\n`{name}`", 1)[1]
    return f"`{name}`" + text.split("\n\n`", 1)[0]


PRESETS = {
    "capacity-grid": Preset("Part 3.3 on bioD: model sizes x N x exposures, SPEC 6.3's bioD recipe (wd .01, lr 5e-4, batch 192)",
                            _block("capacity-grid"), _apply_grid, _grid_options),
    "capacity-paper": Preset("Part 3.3: SPEC 6.3's 1000- and 100-exposure grids on bioD, bioS(N) or bioS^simple(N)",
                             _block("capacity-paper"), _apply_paper, _paper_options),
}


# ------------------------------------------------------------------------------------------------ the showcase

# The showcase's capacity miniature, as params.yaml writes it (tests/test_capacity_presets.py checks the two agree):
# bioD N 1,000, K 8, C 1, D 32, L 2, T 64 over 50 x 50 x 200 names, 100 writings each; 2-block GPTs 16, 32 and 64
# wide at 100 exposures, lr per size.
DEMO_DATASET = {"world": WORLD, "generate": {"N": 1000, "K": 8, "C": 1, "D": 32, "L": 2, "T": 64,
                                             "pools": {"first_names": 50, "middle_names": 50, "last_names": 200}, "workers": 0},
                "tokenize": {"context": 128, "pack": "sentences", "copies": 100}}
DEMO_SIZES = {16: (1, 2.0e-2), 32: (2, 1.0e-2), 64: (2, 1.0e-2)}  # width -> (heads, lr)


def demo_study(width: int, heads: int, lr: float, data: str = "capacity_demo", exposures: int = 100,
               evaluate: dict | None = None) -> dict:
    """A 2-block study of the showcase's recipe: batch 32 of 128-token windows, wd 0.01, 30 warmup steps."""
    return {"world": WORLD, "data": data, "model": {"depth": 2, "width": width, "heads": heads},
            "train": {"exposures": exposures, "batch_size": 32, "micro_batch_size": 32, "lr": lr, "weight_decay": 0.01,
                      "warmup_steps": 30, "eval_every": 500, "log_every": 50},
            "probe": {}, "evaluate": dict(evaluate or {})}


DEMO_STUDIES = {f"capacity_d2w{w}": demo_study(w, h, lr) for w, (h, lr) in DEMO_SIZES.items()}

SUITE_N = 3000
SUITE_EXPOSURES = 300
SUITE_SIZES = {8: (1, 2.0e-2), 16: DEMO_SIZES[16], 32: DEMO_SIZES[32]}  # width -> (heads, lr); 8 wide: the fourth size
QUANTIZED = {"quantize": ["int8", "int4"]}


# The junk-data study's miniature (SPEC 6.3, P3.3-f): 7/8 of the train tokens junk, on the demo's people
JUNK_FRACTION = 0.875
JUNK_WIDTH = 16  # the showcase's smallest model, capacity-bound on the demo data: its baseline is capacity_d2w16
JUNK_PEOPLE = 499_000  # every name of the demo's 50 x 50 x 200 pools that no useful person has (N0 - N)
# the repetitive-junk control: the paper's N' = 1K is 0.1-2% of its N (50K-1M at 100 exposures); 1% of the demo's
# 1,000 people, each written 70,000 times
REPETITIVE_JUNK_PEOPLE = 10


def junk_dataset(junk_people: int, domain_token: bool) -> dict:
    """The demo dataset with `junk_people` junk people making 7/8 of the train tokens, and the domain token or not."""
    demo = DEMO_DATASET
    return {"world": WORLD, "generate": {**demo["generate"], "junk_people": junk_people},
            "tokenize": {**demo["tokenize"], "junk_fraction": JUNK_FRACTION, "domain_token": domain_token}}


def _suite() -> dict:
    """A fourth size on the demo data, a second N and 300 exposures (each with 8-, 16- and 32-wide models), and
    the junk-data study on the demo people (junk, junk with the domain token, repetitive junk; 16 wide), all
    measured with their int8 / int4 copies too (module docstring)."""
    demo = DEMO_DATASET
    datasets = {
        "capacity_n3k": {"world": WORLD, "generate": {**demo["generate"], "N": SUITE_N}, "tokenize": dict(demo["tokenize"])},
        "capacity_e300": {"world": WORLD, "generate": dict(demo["generate"]),
                          "tokenize": {**demo["tokenize"], "copies": SUITE_EXPOSURES}},
        "capacity_junk": junk_dataset(JUNK_PEOPLE, False),
        "capacity_junk_dom": junk_dataset(JUNK_PEOPLE, True),
        "capacity_junk_rep": junk_dataset(REPETITIVE_JUNK_PEOPLE, False),
    }
    heads, lr = SUITE_SIZES[8]
    studies = {"capacity_d2w8": demo_study(8, heads, lr, evaluate=QUANTIZED)}
    for width, (heads, lr) in SUITE_SIZES.items():
        studies[f"capacity_n3k_d2w{width}"] = demo_study(width, heads, lr, data="capacity_n3k", evaluate=QUANTIZED)
        studies[f"capacity_e300_d2w{width}"] = demo_study(width, heads, lr, data="capacity_e300", exposures=SUITE_EXPOSURES,
                                                          evaluate=QUANTIZED)
    heads, lr = SUITE_SIZES[JUNK_WIDTH]
    for data in ("capacity_junk", "capacity_junk_dom", "capacity_junk_rep"):
        studies[f"{data}_d2w{JUNK_WIDTH}"] = demo_study(JUNK_WIDTH, heads, lr, data=data, evaluate=QUANTIZED)
    return {"datasets": datasets, "studies": studies}


SUITE = _suite()
