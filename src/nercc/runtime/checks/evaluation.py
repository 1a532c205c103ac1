"""The coded evaluation's config (nercc.eval, and the evaluations of nercc.tune), with a memory
estimate."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from nercc.data.sources import SYNTHETIC_DEFAULTS
from nercc.runtime.checks.adversaries import check_adversaries
from nercc.runtime.checks.common import (
    check_arrangement,
    check_data,
    check_loggers,
    check_seed,
    check_trainer,
    check_writable,
)
from nercc.runtime.checks.readers import boolean, choice, get, integer, integer_list
from nercc.runtime.checks.schemes import _count_encoders, check_schemes, check_straggler_node
from nercc.utils.errors import ConfigError


def check_eval(cfg: DictConfig) -> None:
    """Check an evaluation config (``nercc.eval`` and the evaluations of ``nercc.tune``).

    Types and ranges of ``coding``, ``stragglers``, ``adversaries``, ``eval``, the scheme,
    straggler and adversary nodes and the optimised metric; N >= K and integer S <= N - 1; the
    straggler model's parameters against the S list; A <= N - S; equal cost for the baselines
    (every scheme on the same number of workers); the logger's needs; the output folder (not the
    cache's: one that cannot be written turns itself off); the memory the coded batches would need.
    """
    check_seed(cfg)
    _, size, classes = check_data(cfg)
    channels = int(cfg.data.channels)
    k = integer(cfg, "coding.num_inputs", 1)
    n = integer(cfg, "coding.num_workers", k, low_text=f"coding.num_inputs K={k}")
    assert k is not None and n is not None
    choice(cfg, "eval.split", ("test", "val"))
    check_arrangement(cfg)
    batch = integer(cfg, "eval.batch_size", k, low_text=f"K={k}")
    patterns = integer(cfg, "eval.num_patterns", 1)
    integer(cfg, "eval.chunk_size", 1)
    limit = integer(cfg, "eval.limit", 1, optional=True, default=None)
    boolean(cfg, "eval.cache", default=True)
    boolean(cfg, "eval.reconstruction", default=False)
    integer(cfg, "eval.auto_images", 1, default=500)
    workers = check_schemes(cfg, k)
    stragglers = integer_list(cfg, "stragglers", 0, min(workers) - 1, f"N - 1 = {min(workers) - 1}")
    check_straggler_node(cfg, stragglers)
    if "adversaries" in cfg or "adversary" in cfg:
        check_adversaries(cfg, stragglers, min(workers))
    metric = get(cfg, "optimized_metric", None)
    if metric is not None and not isinstance(metric, str):
        raise ConfigError("optimized_metric", "must be null or coded/<scheme>/<metric>", metric)
    check_writable("paths.output_dir", get(cfg, "paths.output_dir"))
    check_loggers(cfg)
    check_trainer(cfg, training=False)
    # paths.cache_dir is not checked: the cache is a speed-up, and one that cannot be written
    # (full, read-only, not a folder) turns itself off for the run with one warning.
    images = min(v for v in (batch, limit, _split_size(cfg)) if v is not None)
    terms = coded_memory_terms(
        k,
        max(workers),
        images,
        patterns,  # type: ignore[arg-type]
        channels * size * size,
        classes,
        encoders=_count_encoders(cfg),
        decoders=len(cfg.scheme),
    )
    need, available = sum(terms.values()), available_memory_bytes()
    if available is not None and need > available:
        key = max(terms, key=terms.__getitem__)
        raise ConfigError(
            key,
            f"K={k}, N={max(workers)}, {images} images per batch and {patterns} pattern(s) per "
            f"group need about {need / 2**30:.1f} GiB (encoder, coded batch, outputs and "
            f"decoders; {key} weighs most), more than the {available / 2**30:.1f} GiB available",
            get(cfg, key),
        )


def _split_size(cfg: DictConfig) -> int | None:
    """Images in the evaluated split where the config tells (the validation split, synthetic
    data); None where only the data knows."""
    if cfg.eval.split == "val":
        return int(cfg.data.val_size)
    if cfg.data.name == "synthetic":
        return int(get(cfg, "data.synthetic.num_test", SYNTHETIC_DEFAULTS["num_test"]))
    return None


def coded_memory_terms(
    num_inputs: int, num_workers: int, batch_size: int, num_patterns: int, image_elements: int,
    num_classes: int, encoders: int = 1, decoders: int = 1,
) -> dict[str, int]:  # fmt: skip
    """Bytes a coded evaluation holds at once for one batch, roughly, by the setting that drives
    each part.

    ``coding.num_workers``: the encoder (N x K, float64, five copies while it is built: the peak
    measured for NeRCC and BACC at K=100..200, N=10,000..20,000). ``eval.batch_size``: per
    distinct encoder the coded images of the G groups (G N images, float32). ``eval.num_patterns``:
    per encoder the outputs repeated for the T patterns of each group (G T N classes, float32),
    and per decoding scheme the decoder matrices of the G T patterns (K x N, float64, and their
    float32 operand), with the estimates. G = ceil(batch / K).
    """
    groups = -(-batch_size // num_inputs)
    patterns = groups * num_patterns
    return {
        "coding.num_workers": 5 * 8 * num_workers * num_inputs,
        "eval.batch_size": 4 * encoders * groups * num_workers * image_elements,
        "eval.num_patterns": 4 * encoders * patterns * num_workers * num_classes
        + (8 + 4) * decoders * patterns * num_inputs * num_workers
        + 4 * patterns * num_inputs * num_classes * encoders,
    }


def coded_memory_bytes(*args: Any, **kwargs: Any) -> int:
    """The sum of :func:`coded_memory_terms`."""
    return sum(coded_memory_terms(*args, **kwargs).values())


def available_memory_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (Linux); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
