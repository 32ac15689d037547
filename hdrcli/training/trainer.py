"""The training loop behind ``hdr train``: seeds, optimiser, validation, checkpoints, export.

Runs on CPU or CUDA; under ``torchrun`` (WORLD_SIZE > 1) each process trains a
DistributedDataParallel replica on its own data stream (seed + rank) and rank 0
validates, checkpoints and exports. Nothing is downloaded.
"""

from __future__ import annotations

import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hdrcli.errors import HdrError
from hdrcli.evaluation import score_multi_exposure, score_single_image
from hdrcli.models import create_model, exposure_input, fold_do_convs, get_spec, preferred_layout
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.weights import (
    is_shipped,
    load_state,
    manifest_path,
    mark_stale_exports,
    read_manifest,
    sha256_file,
    state_dict_of,
    update_manifest,
    weights_path,
)
from hdrcli.training.camera import (
    CameraSimulator,
    list_radiance_maps,
    split_maps,
    validation_brackets,
    validation_singles,
)
from hdrcli.training.data import KalantariData, SimulatedData, canonical_sample, is_kalantari_root
from hdrcli.training.objectives import Objective


@dataclass
class TrainConfig:
    backend: str
    size: str = "lite"
    data: str = "../shared/data/radiance"
    steps: int = 2000
    batch: int = 8
    patch: int = 128
    lr: float = 2e-4
    val_every: int = 250
    val_patch: int = 256
    seed: int = 0
    device: str = "auto"
    run_dir: str = "runs"
    resume: str | None = None
    init: str | None = None  # weights (or checkpoint) to start from, with a fresh optimiser and schedule
    reference_ev: tuple[float, float] = (-3.0, 2.0)  # training brackets' reference exposure around auto-exposure
    export: bool = True  # write a weights file (and manifest entry) at the end; False: checkpoint only
    export_path: str | None = None  # where; default RUN_DIR/BACKEND-SIZE/BACKEND-SIZE.pt (never weights/ unasked)
    overwrite: bool = False  # may replace an existing export_path; without export_path: replace weights/BACKEND-SIZE.pt
    val_scenes: int | None = None  # validate on the first N held-out scenes only (default: all 40 / 20)
    max_minutes: float | None = None
    realism: bool = True  # simulated data: phone processing, high ISO, night (REALISM shares); False: plain camera
    previous_commands: list[str] = field(default_factory=list)  # filled from a resumed checkpoint
    previous_hardware: list[str] = field(default_factory=list)  # one entry per earlier segment, when recorded
    initialised_from: dict | None = None  # filled by --init: the starting weights and their manifest record
    command: str = field(default_factory=lambda: " ".join(shlex.quote(a) for a in ["hdr", *sys.argv[1:]]))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HdrError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


class Validator:
    """Scores a model on the held-out simulated set, as bench/quality.py scores backends."""

    PER_MAP = {MULTI_EXPOSURE: 4}  # scenes per held-out map (single-image backends: 2)

    def __init__(self, kind: str, sim: CameraSimulator, device: torch.device, limit: int | None = None) -> None:
        self.kind, self.device = kind, device
        # Brackets are re-encoded once (as hdr fuse does), not at every validation.
        per_map = self.PER_MAP.get(kind, 2)
        samples = (validation_brackets(sim, per_map=per_map) if kind == MULTI_EXPOSURE
                   else validation_singles(sim, per_map=per_map))[:limit]
        self.samples = [canonical_sample(s) for s in samples] if kind == MULTI_EXPOSURE else samples

    @classmethod
    def maps_needed(cls, kind: str, scenes: int | None, available: int) -> int:
        """Held-out maps to load for the first ``scenes`` validation scenes (scenes come map by map)."""
        return available if scenes is None else min(available, math.ceil(scenes / cls.PER_MAP.get(kind, 2)))

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, sample) -> np.ndarray:
        if self.kind == MULTI_EXPOSURE:
            ldr = torch.from_numpy(sample.ldr).permute(0, 3, 1, 2)[None].to(self.device)
            x = exposure_input(ldr, torch.from_numpy(sample.exposures)[None].to(self.device))
            codes = None if sample.recorded is None else torch.from_numpy(
                np.asarray(sample.recorded, np.float32)).permute(0, 3, 1, 2)[None].to(self.device)
            return model(x, codes=codes)[0].permute(1, 2, 0).float().cpu().numpy()
        x = torch.from_numpy(sample.ldr).permute(2, 0, 1)[None].to(self.device)
        return model(x)[0].permute(1, 2, 0).float().cpu().numpy()

    def score(self, model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        score = score_multi_exposure if self.kind == MULTI_EXPOSURE else score_single_image
        result = score({"model": lambda sample: self.predict(model, sample)}, self.samples)["model"]
        model.train()
        return result


def describe_hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def train(cfg: TrainConfig, report: Callable[[dict], None] | None = None) -> dict:
    """Train ``cfg.backend``; returns a summary (final validation scores, files)."""
    rank, world = _distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    spec = get_spec(cfg.backend)
    destination = weights_destination(cfg) if cfg.export and rank == 0 else None  # fail before any work
    model = create_model(cfg.backend, cfg.size).to(device)
    if world == 1:  # DDP's gradient buckets assume the default layout
        model = preferred_layout(model, cfg.backend, device)
    if cfg.init and not cfg.resume:
        _initialise(cfg, model)
    objective = Objective(cfg.backend, model, cfg.steps, pretrained=bool(cfg.init))
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=cfg.backend == "dfgnet")
        objective.model = model
    params = [p for p in model.parameters()] + objective.parameters()
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps)) * 0.95 + 0.05)

    data_path = Path(cfg.data)
    if is_kalantari_root(data_path) and spec.kind == MULTI_EXPOSURE:
        data = KalantariData(data_path, cfg.patch, cfg.seed + rank)
        val_sim = None
        data_note = f"Kalantari-layout scenes under {data_path}"
    else:
        maps = list_radiance_maps(data_path)
        if len(maps) < 2:
            raise HdrError("no radiance maps (.hdr/.exr/.pfm) found", data_path)
        train_maps, val_maps = split_maps(maps)
        # The stack model's targets are its own 2T+1 exposures; others use the default stack.
        steps = getattr(model.module if world > 1 else model, "steps", 2)
        sim = CameraSimulator(train_maps, patch=cfg.patch, stack_evs=tuple(float(e) for e in range(-steps, steps + 1)),
                              reference_ev=tuple(cfg.reference_ev))
        data = SimulatedData(sim, spec.kind, cfg.seed + rank, realism=cfg.realism)
        # --val-scenes N: the first N scenes of the full validation set (same seeds), from the maps they need.
        val_used = val_maps[:Validator.maps_needed(spec.kind, cfg.val_scenes, len(val_maps))]
        val_sim = CameraSimulator(val_used, patch=cfg.val_patch) if rank == 0 else None
        data_note = (f"camera simulation of {len(train_maps)} radiance maps under {data_path}"
                     + (" (realism steps: phone processing, high ISO, night)" if cfg.realism else " (plain camera, no realism steps)")
                     + "; "
                     f"validation: {len(val_maps)} held-out maps ({', '.join(p.name for p in val_maps)})"
                     + (f", first {cfg.val_scenes} scenes (--val-scenes)" if cfg.val_scenes else ""))
    validator = Validator(spec.kind, val_sim, device, cfg.val_scenes) if val_sim is not None else None

    run_dir = Path(cfg.run_dir) / f"{cfg.backend}-{cfg.size}"
    start_step, elapsed_before, history = 0, 0.0, []
    if cfg.resume:
        state = load_state(cfg.resume, map_location=device)
        if not isinstance(state, dict) or not {"model", "optimizer", "schedule", "step"} <= state.keys():
            raise HdrError("not an hdr train checkpoint (RUN_DIR/BACKEND-SIZE/last.pt); to start from weights use --init", cfg.resume)
        try:
            (model.module if world > 1 else model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if objective.gls is not None and "objective" in state:
                objective.gls.load_state_dict(state["objective"])
            data.restore(state["data_rng"])
            torch.set_rng_state(state["torch_rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise HdrError(f"checkpoint does not fit {cfg.backend}-{cfg.size} ({(str(exc).splitlines() or [''])[0][:160]})",
                           cfg.resume) from None
        start_step, elapsed_before, history = state["step"], state["elapsed_s"], state.get("history", [])
        if state.get("config", {}).get("init"):  # a resumed fine-tune: DFGNet's pre-training was done before
            objective.pretrain_steps = 0
            cfg.init, cfg.initialised_from = state["config"]["init"], state.get("initialised_from")
        cfg.previous_commands = state.get("commands", [state.get("config", {}).get("command", "")])
        cfg.previous_hardware = state.get("hardware", [])

    def checkpoint(step: int, elapsed: float) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "last.pt"
        state = {
            "model": (model.module if world > 1 else model).state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(), "data_rng": data.state(), "torch_rng": torch.get_rng_state(),
            "step": step, "elapsed_s": elapsed, "history": history, "config": asdict(cfg),
            "objective": objective.gls.state_dict() if objective.gls is not None else None,
            "commands": [*cfg.previous_commands, cfg.command],
            "hardware": [*cfg.previous_hardware, describe_hardware(device)],
            "initialised_from": cfg.initialised_from,
        }
        torch.save(state, run_dir / "last.pt.tmp")
        os.replace(run_dir / "last.pt.tmp", path)
        return path

    t_start = time.perf_counter()
    model.train()
    step = start_step
    last_scores: dict[str, float] = {}
    while step < cfg.steps:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in data.batch(cfg.batch).items()}
        loss, logs = objective(batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        elapsed = elapsed_before + time.perf_counter() - t_start
        info = {"step": step, "steps": cfg.steps, "loss": float(loss.detach()), **logs, "patches_per_s": step * cfg.batch / max(elapsed, 1e-9),
                "elapsed_s": elapsed}
        out_of_time = cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes
        if rank == 0 and validator is not None and (step % cfg.val_every == 0 or step == cfg.steps or out_of_time):
            last_scores = validator.score(model.module if world > 1 else model)
            history.append({"step": step, "elapsed_s": elapsed, **last_scores})
            info["validation"] = last_scores
            checkpoint(step, elapsed)
        if report is not None and rank == 0:
            report(info)
        if out_of_time:
            break
    elapsed = elapsed_before + time.perf_counter() - t_start
    summary = {"backend": cfg.backend, "size": cfg.size, "steps_done": step, "steps_planned": cfg.steps,
               "wall_time_s": round(elapsed, 1), "validation": last_scores, "data": data_note}
    if rank == 0:
        checkpoint(step, elapsed)
        if destination is not None:
            summary["weights"] = str(export_weights(cfg, model.module if world > 1 else model, summary, device,
                                                    destination))
    if world > 1:
        torch.distributed.destroy_process_group()
    return summary


def _initialise(cfg: TrainConfig, model: torch.nn.Module) -> None:
    """Load ``cfg.init`` (a weights file or a checkpoint) into ``model`` and record its provenance.

    When the file is listed in weights/manifest.json, its training commands and hardware
    become the earlier segments of this run's record, so the manifest keeps the whole history.
    """
    path = Path(cfg.init)
    state = load_state(path)  # weights_only; a shipped file is checked against the manifest first
    try:
        missing, unexpected = model.load_state_dict(state_dict_of(state, path), strict=False)
        # Weights from before the N-frame merge head (ExposureMergeHead) lack only its two
        # parameters and may carry the old 3-frame blend head's: the new head starts at its
        # initialisation and the old one is dropped. Anything else is a wrong file.
        missing = [k for k in missing if not k.startswith("merge_head.")]
        unexpected = [k for k in unexpected if not k.startswith("blend.")]
        if missing or unexpected:
            raise RuntimeError(f"missing {len(missing)} and unexpected {len(unexpected)} parameters, "
                               f"e.g. {(missing + unexpected)[0]}")
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise HdrError(f"cannot initialise {cfg.backend}-{cfg.size} from this file ({str(exc).splitlines()[0]})", path) from None
    origin = {"file": path.name, "sha256": sha256_file(path)}
    # Its record: the manifest beside it (weights/ or a run folder), else the shipped manifest.
    entries = [read_manifest(manifest_path(path.resolve().parent)).get(path.name), read_manifest().get(path.name)]
    entry = next((e for e in entries if isinstance(e, dict) and e.get("sha256") == origin["sha256"]), None)
    if entry is not None:
        origin.update({k: entry.get(k) for k in ("steps", "wall_time_s", "validation")})
        origin["total_steps"] = entry.get("total_steps", entry.get("steps"))
        origin["total_wall_time_s"] = entry.get("total_wall_time_s", entry.get("wall_time_s"))
        cfg.previous_commands = [*entry.get("resumed_from_commands", []), entry["command"]]
        cfg.previous_hardware = entry["hardware"].split("; then ") if entry.get("hardware") else []
    elif isinstance(state, dict) and "commands" in state:  # a checkpoint carries its own history
        cfg.previous_commands = state["commands"]
        cfg.previous_hardware = state.get("hardware", [])
        origin.update({"steps": state.get("step"), "wall_time_s": state.get("elapsed_s"),
                       "total_steps": state.get("step"), "total_wall_time_s": state.get("elapsed_s")})
    cfg.initialised_from = origin


def weights_destination(cfg: TrainConfig) -> Path:
    """Where the trained weights go, checked before training: never over shipped weights unasked.

    ``--export PATH`` writes PATH (an existing file only with ``--overwrite``); ``--overwrite``
    alone replaces weights/BACKEND-SIZE.pt; by default they go to the run folder,
    RUN_DIR/BACKEND-SIZE/BACKEND-SIZE.pt (replaced by the next run there, like last.pt).
    """
    run_dir = Path(cfg.run_dir) / f"{cfg.backend}-{cfg.size}"
    if cfg.export_path:
        path = Path(cfg.export_path)
        if path.suffix != ".pt":
            raise HdrError("--export must name a .pt file", path)
        if path.is_dir():
            raise HdrError("--export path is a folder", path)
        if path.exists() and not cfg.overwrite:
            raise HdrError("weights file exists (use --overwrite to replace it)", path)
        if not path.parent.is_dir():
            raise HdrError("output folder does not exist", path.parent)
        return path
    if cfg.overwrite:
        return weights_path(cfg.backend, cfg.size)
    return run_dir / f"{cfg.backend}-{cfg.size}.pt"


def export_weights(cfg: TrainConfig, model: torch.nn.Module, summary: dict, device: torch.device,
                   path: Path | None = None) -> Path:
    """Write the training-form state dict to ``path`` (default: :func:`weights_destination`) and its
    manifest entry: in the manifest beside it (weights/manifest.json for shipped weights, whose
    earlier entry moves to the entry's ``history`` and whose ONNX exports are marked stale)
    and in the run folder's manifest.json."""
    from hdrcli.io.atomic import atomic_path

    path = path or weights_destination(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # Contiguous tensors: the file does not depend on the layout the model was trained in.
        torch.save({"model": {k: v.contiguous() for k, v in model.state_dict().items()}}, tmp)
    # A resumed model ran on every segment's hardware: name them all, in order.
    segments = [*cfg.previous_hardware, describe_hardware(device)]
    hardware = "; then ".join(h for i, h in enumerate(segments) if i == 0 or h != segments[i - 1])
    complete = summary["steps_done"] >= summary["steps_planned"]
    before = cfg.initialised_from or {}  # a fine-tune adds to its starting weights' training
    entry = {
        "file": path.name,
        "sha256": sha256_file(path),
        "backend": cfg.backend,
        "size": cfg.size,
        "command": cfg.command,
        "resumed_from_commands": cfg.previous_commands,
        "initialised_from": cfg.initialised_from,
        "data": summary["data"],
        "steps": summary["steps_done"],
        "batch": cfg.batch,
        "patch": cfg.patch,
        "wall_time_s": summary["wall_time_s"],
        "total_steps": summary["steps_done"] + (before.get("total_steps") or 0),
        "total_wall_time_s": round(summary["wall_time_s"] + (before.get("total_wall_time_s") or 0), 1),
        "hardware": hardware,
        "validation": summary["validation"],
        "status": "trained as planned" if complete else f"partly trained: {summary['steps_done']} of {summary['steps_planned']} steps",
        "inference_params": sum(p.numel() for p in fold_do_convs(create_model(cfg.backend, cfg.size)).parameters()),
    }
    run_dir = Path(cfg.run_dir) / f"{cfg.backend}-{cfg.size}"
    run_dir.mkdir(parents=True, exist_ok=True)
    manifests = {manifest_path(run_dir).resolve(), manifest_path(path.resolve().parent).resolve()}
    if not is_shipped(path):  # a user-named file elsewhere: recorded in the run folder only
        manifests = {manifest_path(run_dir).resolve()}
    for manifest in sorted(manifests):
        update_manifest({**entry, "path": str(path)} if manifest.parent != path.resolve().parent else entry, manifest)
    if is_shipped(path):
        stale = mark_stale_exports(path.name, entry["sha256"])
        if stale:
            from hdrcli.log import warn

            warn(f"ONNX exports of the old weights are now stale (refused until re-exported): {', '.join(stale)}")
    return path
