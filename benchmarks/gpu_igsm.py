"""A prepared GPU run for the iGSM world (issue 4): one call of the device machine, time-boxed phases.

The CPU demo's open question is whether `can_next` becomes readable by the V-probe once the model is much
better trained (on the 2-core CPU it stays at the random-init control; README "The iGSM demo"). This script
answers it on one GPU, and measures what iGSM-med trains at there:

- phase `demo`: the igsm_demo world (the dataset's generate settings, problems streamed fresh on the fly, or
  materialised with --no-stream), the igsm_demo study's model and recipe (Canon-AC, doc mask, lr; --depth,
  --width, --heads resize the model), but --batch windows a step for as many steps as fit --train-s
  seconds (measured by a short calibration run of the same shapes first); then the pipeline's evaluate
  stage and a long probe stage (nece, can_next, known by default; trained vs random-init control).
- phase `med`: the igsm-med preset (`physlm.worlds.igsm.presets.igsm_paper`: GPT2-12-12, rotary, bf16, torch.compile,
  batch 512 x 768), problems streamed, as many steps as fit --med-train-s; tokens/s, MFU and the validation
  loss, then greedy accuracy on --med-eval problems per eval set.

Every stage runs as `dvc repro` runs it (`python -m stages.<stage> NAME`, in a scratch directory holding a
params.yaml written from this repo's), with tracking off (PHYSLM_TRACKING=0: the device has no MLflow).
Each phase writes `<phase>.json` (settings, stage times, the metrics that matter) and its stages' logs
under --out as soon as they exist, so a run stopped by the call's time limit still returns what it made.

On the device (one H200, 15 minutes of device time per session, 10 per call). The machine's Python has
torch but not polars or pydantic; fetch their wheels here once (`bash benchmarks/gpu_wheels.sh` writes
.whl/, which `.git/info/exclude` must ignore), then run, carrying `.whl`:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu_igsm.py --phases demo --out $OUT

(estimated, not yet measured: about 8 minutes with the defaults, so timeout_s 600), then `--phases med` in a
second call (about 6 minutes). On a CPU, `--smoke` runs both phases at toy sizes in about a minute and a
half (tests/test_gpu_igsm.py).
Record what it measured in benchmarks/RESULTS.md with the date, the machine, the commit and the command.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[gpu_igsm {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class StageFailed(RuntimeError):
    """A stage exited non-zero; the message ends with its log's tail."""


class Runner:
    """Runs stages in a scratch directory (params.yaml there; data/, models/, metrics/ beside it)."""

    def __init__(self, work: Path, out: Path):
        self.work, self.out = work, out
        work.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PHYSLM_TRACKING="0", PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])))

    def params(self, params: dict) -> None:
        (self.work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def stage(self, stage: str, name: str, logname: str) -> float:
        """Run stage@name; its output goes to OUT/<logname>.log. Returns the seconds it took; raises with the
        log's tail when it fails."""
        path = self.out / f"{logname}.log"
        log(f"{stage}@{name} (log {path.name})")
        start = time.perf_counter()
        with path.open("w") as f:
            proc = subprocess.run([sys.executable, "-m", f"stages.{stage}", name], cwd=self.work, env=self.env,
                                  stdout=f, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
        if proc.returncode:
            tail = path.read_text(errors="replace").splitlines()[-15:]
            raise StageFailed(f"{stage}@{name} failed (exit {proc.returncode}):\n" + "\n".join(tail))
        return seconds

    def metrics(self, study: str, stage: str) -> dict:
        """A stage's full results (metrics/<study>/detail/<stage>.json) and its timings (logs/<study>/<stage>.json:
        seconds, tokens_per_s, mfu, ...; the git-tracked metrics hold no wall-clock times)."""
        found = json.loads((self.work / "metrics" / study / "detail" / f"{stage}.json").read_text())
        timings = self.work / "logs" / study / f"{stage}.json"
        return found | (json.loads(timings.read_text()) if timings.exists() else {})


def steps_for(seconds: float, tokens_per_s: float, tokens_per_step: int, lo: int, hi: int) -> int:
    """Updates that fit `seconds` at the calibrated rate, within [lo, hi]."""
    return int(min(hi, max(lo, seconds * tokens_per_s / tokens_per_step)))


def base_params() -> tuple[dict, dict]:
    """This repo's params.yaml with no datasets or studies, and its datasets and studies as they are."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    repo = {"datasets": params["datasets"], "studies": params["studies"]}
    params["datasets"], params["studies"] = {}, {}
    return params, repo


def calibrate(run: Runner, params: dict, data: str, study: dict, steps: int, record: dict) -> float:
    """tokens/s of `study`'s shapes on this device, from a short run of the train stage."""
    calib = copy.deepcopy(study)
    calib["train"].update(steps=steps, warmup_steps=min(steps, calib["train"].get("warmup_steps", 30)),
                          eval_every=steps, checkpoint_every=steps, log_every=max(1, steps // 10))
    params["studies"] = {"calib": calib}
    run.params(params)
    try:
        record["stage_s"]["train_calibration"] = run.stage("train", "calib", f"{data}_calibration")
    except StageFailed as err:
        if not calib["train"].get("compile"):
            raise
        # one shot at a device: rather than lose the phase, train without torch.compile and say so
        log(f"calibration failed with torch.compile; again without it\n{err}")
        record["compile_failed"] = str(err)
        study["train"]["compile"] = calib["train"]["compile"] = False
        run.params(params)
        record["stage_s"]["train_calibration"] = run.stage("train", "calib", f"{data}_calibration_nocompile")
    rate = run.metrics("calib", "train")["tokens_per_s"]
    record["calibration_tokens_per_s"] = rate
    return rate


def summary(run: Runner, study: str, record: dict, probed: bool) -> None:
    train = run.metrics(study, "train")
    record["train"] = {k: train.get(k) for k in ("device", "params", "seconds", "tokens_per_s", "mfu", "data_wait",
                                                  "tokens_seen", "final_loss", "final_val_loss")}
    ev = run.metrics(study, "evaluate")
    sets = [s for s in ("test", "opmax", "ood", "reask", "control") if s in ev]
    record["evaluate"] = {s: {d: {k: v for k, v in r.items() if k in ("accuracy", "answer_accuracy", "n")}
                              for d, r in ev[s].items()} for s in sets}
    record["accuracy_by_op"] = ev.get("accuracy_by_op")
    tf = ev.get("teacher_forced", {}).get("test")
    if tf:
        record["teacher_forced_test"] = {"next_param": tf["next_param"], "valid_chance": tf["valid_chance"],
                                         "parts": {k: v["accuracy"] for k, v in tf["parts"].items()}}
    if probed:
        record["probe"] = run.metrics(study, "probe")


def phase_demo(run: Runner, args: argparse.Namespace, record: dict) -> None:
    params, repo = base_params()
    data = copy.deepcopy(repo["datasets"]["igsm_demo"])
    data["generate"].update(train_problems=args.problems, eval_problems=args.eval_problems)
    study = copy.deepcopy(repo["studies"]["igsm_demo"])
    study.update(data="gpu_demo", probe={}, evaluate={})
    study["model"] = {**study.get("model", {}), **{k: v for k, v in (("depth", args.depth), ("width", args.width),
                                                                     ("heads", args.heads)) if v}}
    study["train"].update(batch_size=args.batch, micro_batch_size=args.batch, stream=args.stream,
                          compile=args.compile, eval_every=10**9, checkpoint_every=10**9)
    params["datasets"] = {"gpu_demo": data}
    params["probe"]["igsm"].update(properties=args.properties, train_problems=args.probe_problems,
                                   test_problems=args.probe_test, steps=args.probe_steps,
                                   batch_size=args.probe_batch, lr=args.probe_lr)
    params["evaluate"]["igsm"].update(problems=args.eval_problems, batch_size=args.eval_batch,
                                      beams=args.eval_beams)
    record.update(settings=vars(args) | {"dataset": data, "study": study})
    run.params(params)
    for stage in ("generate", "tokenize"):
        record["stage_s"][stage] = run.stage(stage, "gpu_demo", f"demo_{stage}")
    rate = calibrate(run, params, "demo", study, args.calib_steps, record)
    context = data["tokenize"]["context"]
    steps = steps_for(args.train_s, rate, args.batch * context, args.calib_steps, args.max_steps)
    study["train"].update(steps=steps, warmup_steps=min(steps, params["train"]["warmup_steps"]))
    record["steps"] = steps
    log(f"demo: {rate:,.0f} tokens/s calibrated -> {record['steps']} steps of {args.batch} x {context}")
    params["studies"] = {"gpu_demo": study}
    run.params(params)
    write(run, "demo", record)
    for stage in ("train", "evaluate", "probe"):
        record["stage_s"][stage] = run.stage(stage, "gpu_demo", f"demo_{stage}")
        if stage == "train":
            write(run, "demo", record | {"train": run.metrics("gpu_demo", "train")})
    summary(run, "gpu_demo", record, probed=True)


def phase_med(run: Runner, args: argparse.Namespace, record: dict) -> None:
    from physlm.worlds.igsm.presets import igsm_paper  # needs ruamel only for its command line, not for this function

    params, _ = base_params()
    (name,) = igsm_paper(params, level="med", fmts=("pq",), train_problems=args.med_problems)
    data_name = params["studies"][name]["data"]
    params["datasets"][data_name]["generate"]["eval_problems"] = args.med_eval
    params["evaluate"]["igsm"].update(problems=args.med_eval, beams=[1], batch_size=args.eval_batch,
                                      control=False)
    study = params["studies"][name]
    study["train"].update(stream=args.stream, eval_every=10**9, checkpoint_every=10**9, log_every=10,
                          batch_size=args.med_batch, micro_batch_size=args.med_micro, compile=args.compile)
    if args.smoke:
        study["model"].update(depth=2, width=64, heads=2)
    record.update(settings=vars(args) | {"dataset": params["datasets"][data_name], "study": study})
    run.params(params)
    for stage in ("generate", "tokenize"):
        record["stage_s"][stage] = run.stage(stage, data_name, f"med_{stage}")
    rate = calibrate(run, params, "med", study, args.calib_steps, record)
    context = params["datasets"][data_name]["tokenize"]["context"]
    steps = steps_for(args.med_train_s, rate, args.med_batch * context, args.calib_steps, args.max_steps)
    # the preset's 1,000 warmup steps are for 100k updates; keep the same share of a short run
    study["train"].update(steps=steps, warmup_steps=max(1, steps // 100))
    record["steps"] = steps
    log(f"med: {rate:,.0f} tokens/s calibrated -> {steps} steps of {args.med_batch} x {context}")
    params["studies"] = {name: study}
    run.params(params)
    write(run, "med", record)
    for stage in ("train", "evaluate"):
        record["stage_s"][stage] = run.stage(stage, name, f"med_{stage}")
    summary(run, name, record, probed=False)


def write(run: Runner, phase: str, record: dict) -> None:
    (run.out / f"{phase}.json").write_text(json.dumps(record, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="where the phases' JSON and logs go ($OUT on the device)")
    p.add_argument("--work", type=Path, default=Path("/tmp/physlm_gpu"), help="scratch directory for the stages")
    p.add_argument("--phases", default="demo,med", help="comma-separated: demo, med")
    p.add_argument("--smoke", action="store_true", help="toy sizes, for a CPU check of the script itself")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="generate training problems on the fly (train.stream; the paper's fresh data)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="torch.compile (CUDA only)")
    p.add_argument("--calib-steps", type=int, default=40, help="updates of the calibration run")
    p.add_argument("--max-steps", type=int, default=200_000)
    g = p.add_argument_group("demo phase")
    g.add_argument("--problems", type=int, default=20_000,
                   help="materialised training problems (the stream ignores them)")
    g.add_argument("--batch", type=int, default=256, help="windows of 256 tokens per update (CPU demo: 16)")
    g.add_argument("--train-s", type=float, default=180.0, help="seconds of training after calibration")
    g.add_argument("--depth", type=int, default=0, help="blocks of the model (0: the demo's)")
    g.add_argument("--width", type=int, default=0, help="residual width (0: the demo's)")
    g.add_argument("--heads", type=int, default=0, help="attention heads (0: the demo's)")
    g.add_argument("--properties", type=lambda s: s.split(","), default=["nece", "can_next", "known"])
    g.add_argument("--probe-problems", type=int, default=4000)
    g.add_argument("--probe-test", type=int, default=500)
    g.add_argument("--probe-steps", type=int, default=1000)
    g.add_argument("--probe-batch", type=int, default=128)
    g.add_argument("--probe-lr", type=float, default=2.0e-3)
    g.add_argument("--eval-problems", type=int, default=500, help="problems per eval set")
    g.add_argument("--eval-batch", type=int, default=256)
    g.add_argument("--eval-beams", type=lambda s: [int(b) for b in s.split(",")], default=[1, 4],
                   help="1 = greedy, k = beam search with k beams")
    g = p.add_argument_group("med phase")
    g.add_argument("--med-problems", type=int, default=20_000,
                   help="materialised training problems (the stream ignores them)")
    g.add_argument("--med-batch", type=int, default=512)
    g.add_argument("--med-micro", type=int, default=64)
    g.add_argument("--med-train-s", type=float, default=240.0)
    g.add_argument("--med-eval", type=int, default=200)
    if p.parse_args(argv).smoke:  # toy defaults; options given explicitly still win
        p.set_defaults(problems=1500, batch=4, train_s=5.0, calib_steps=3, max_steps=8, probe_problems=20,
                       probe_test=10, probe_steps=4, probe_batch=8, eval_problems=10, eval_batch=8, eval_beams=[1],
                       med_problems=300, med_batch=2, med_micro=1, med_train_s=5.0, med_eval=4,
                       properties=["nece", "can_next"])
    args = p.parse_args(argv)
    phases = args.phases.split(",")
    bad = [ph for ph in phases if ph not in ("demo", "med")]
    if bad:
        p.error(f"unknown phase {', '.join(bad)}; phases: demo, med")
    run = Runner(args.work, args.out)
    failed = []
    for ph in phases:
        start, record = time.perf_counter(), {"phase": ph, "stage_s": {}}
        try:
            (phase_demo if ph == "demo" else phase_med)(run, args, record)
        except StageFailed as err:  # keep what the phase measured, say why it stopped, go on to the next phase
            log(str(err))
            failed.append(ph)
            record["error"] = str(err)
        record["seconds"] = time.perf_counter() - start
        write(run, ph, record)
        status = "FAILED" if "error" in record else "done"
        log(f"{ph} {status} in {record['seconds']:.0f} s -> {run.out / (ph + '.json')}")
    if failed:
        raise SystemExit(f"error: phase {', '.join(failed)} failed (see {args.out})")


if __name__ == "__main__":
    main()
