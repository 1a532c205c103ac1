"""Published tables of tuned scheme parameters, one per classifier, scheme and code.

A table lives at ``outputs/lambdas/<model>_<dataset>_<scheme>_K<K>_N<N>_<points>.json`` (the
scheme by its config name, ``nercc``) and maps each straggler count S to the parameters
chosen for it on the validation split, with how they were found
(split, search space, objective, patterns, inputs, date) and the content hash of the classifier's
checkpoint. Loading checks every field and names the file and the field when something is wrong.

A table tuned with adversarial workers (``adversaries`` above 0) also holds
``params_by_adversaries``: for each S, the parameters chosen for each A (``{"S": {"A": params}}``),
and its ``found_by.adversary`` says how they answered. Its ``params_by_stragglers`` holds, for each
S, the choice at the smallest A tuned (A = 0 when the run had it): what serving, which does not
know A, reads. The field is optional, so every table of format version 1 still loads.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nercc.utils.io import copy_atomic, publish_lock, stage_bytes

__all__ = [
    "ARRANGEMENT_DEFAULTS",
    "ParamTable",
    "arrangement_of",
    "load_table",
    "publish_table",
    "resolve_table",
    "table_document",
    "table_path",
]

FORMAT = "nercc-param-table"
FORMAT_VERSION = 1
#: The fields of a table that describe the code it was tuned for.
CODE_KEYS = ("num_inputs", "num_workers", "points")
#: How the inputs were arranged when the table was tuned (``coding.order``,
#: ``coding.grouping``): lambdas depend on it. A table that records none was tuned with these.
ARRANGEMENT_DEFAULTS = {"order": "none", "grouping": "arrival"}


@dataclass(frozen=True)
class ParamTable:
    """A loaded table: ``by_stragglers`` maps S to ``{parameter: value}``; ``by_adversaries``
    maps S to A to ``{parameter: value}`` for a table tuned per (S, A), and is empty otherwise."""

    path: Path
    scheme: str
    model: str
    dataset: str
    code: dict[str, Any]
    by_stragglers: dict[int, dict[str, float]]
    checkpoint_sha256: str | None = None
    found_by: dict[str, Any] = field(default_factory=dict)
    by_adversaries: dict[int, dict[int, dict[str, float]]] = field(default_factory=dict)

    def params_at(self, num_stragglers: int) -> tuple[dict[str, float], int]:
        """The parameters for S and the tuned S they come from: S itself, or else the nearest
        tuned S (the smaller one on a tie)."""
        nearest = min(self.by_stragglers, key=lambda s: (abs(s - num_stragglers), s))
        return dict(self.by_stragglers[nearest]), nearest

    def params_at_cell(
        self, num_stragglers: int, num_adversaries: int
    ) -> tuple[dict[str, float], tuple[int, int]]:
        """The parameters for S stragglers and A adversarial workers, and the tuned cell they
        come from.

        The tuned S is S itself, or else the nearest tuned S (the smaller one on a tie), as in
        :meth:`params_at`; then, among the A tuned at that S, A itself, or else the nearest (the
        smaller one on a tie). A table without per-A entries answers with its per-S entry and
        A = 0.

        Parameters
        ----------
        num_stragglers, num_adversaries : int
            S and A, each >= 0.

        Returns
        -------
        params : dict of str to float
        cell : (int, int)
            The tuned (S, A) the parameters come from.
        """
        for name, value in (
            ("num_stragglers", num_stragglers),
            ("num_adversaries", num_adversaries),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not self.by_adversaries:
            params, s = self.params_at(num_stragglers)
            return params, (s, 0)
        s = min(self.by_adversaries, key=lambda t: (abs(t - num_stragglers), t))
        at_s = self.by_adversaries[s]
        a = min(at_s, key=lambda t: (abs(t - num_adversaries), t))
        return dict(at_s[a]), (s, a)

    def stale_warning(self, checkpoint: str | Path, sha256: str) -> str | None:
        """The warning line when this table was tuned on another checkpoint than
        ``checkpoint`` (whose content hash is ``sha256``), else None (the same checkpoint, or a
        table that records none). The evaluation and serving print it alike."""
        if self.checkpoint_sha256 in (None, sha256):
            return None
        return (
            f"warning: {self.path} was tuned on another checkpoint than {checkpoint} "
            "(content hash differs): retune with python -m nercc.tune"
        )


def table_path(
    directory: str | Path, model: str, dataset: str, scheme: str, code: Mapping[str, Any]
) -> Path:
    """Return where the table of ``scheme`` for a classifier and code is published.

    Parameters
    ----------
    directory : path
        Where tables are published (``paths.lambdas_dir``).
    model, dataset : str
        The classifier's model and dataset names.
    scheme : str
        The tuned scheme's config name (``nercc``): each scheme has its own table.
    code : mapping
        ``num_inputs``, ``num_workers`` and ``points``, and the arrangement it is tuned for
        (``order``, ``grouping``; :data:`ARRANGEMENT_DEFAULTS` when absent).

    Returns
    -------
    Path
        ``<directory>/<model>_<dataset>_<scheme>_K<K>_N<N>_<points>.json``, with
        ``_<order>_<grouping>`` before ``.json`` when the arrangement is not the default.
    """
    if not isinstance(scheme, str) or not scheme:
        raise ValueError(f"scheme must be a scheme's config name, got {scheme!r}")
    sizes = f"K{code['num_inputs']}_N{code['num_workers']}_{code['points']}"
    arrangement = arrangement_of(code)
    if arrangement != ARRANGEMENT_DEFAULTS:
        sizes += f"_{arrangement['order']}_{arrangement['grouping']}"
    return Path(directory) / f"{model}_{dataset}_{scheme}_{sizes}.json"


def arrangement_of(code: Mapping[str, Any]) -> dict[str, str]:
    """The ``order`` and ``grouping`` a code mapping records (the defaults where absent)."""
    return {key: str(code.get(key) or default) for key, default in ARRANGEMENT_DEFAULTS.items()}


def load_table(path: str | Path) -> ParamTable:
    """Read and check a table; ``ValueError`` naming the file and what is wrong otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON table ({error})") from None

    def fail(what: str) -> ValueError:
        return ValueError(f"{path}: {what}; rebuild it with python -m nercc.tune")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise fail(f"not a parameter table (format must be {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise fail(f"format_version must be {FORMAT_VERSION}, got {data.get('format_version')!r}")
    for key in ("scheme", "model", "dataset"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise fail(f"{key} must be a non-empty string, got {data.get(key)!r}")
    code = data.get("code")
    if not isinstance(code, dict) or any(k not in code for k in CODE_KEYS):
        raise fail(f"code must hold {', '.join(CODE_KEYS)}, got {code!r}")
    for key in ("num_inputs", "num_workers"):
        value = code[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(f"code.{key} must be an integer >= 1, got {value!r}")
    if not isinstance(code["points"], str) or not code["points"]:
        raise fail(f"code.points must be a layout name, got {code['points']!r}")
    for key in ARRANGEMENT_DEFAULTS:
        if key in code and (not isinstance(code[key], str) or not code[key]):
            raise fail(f"code.{key} must be a name, got {code[key]!r}")
    table = data.get("params_by_stragglers")
    if not isinstance(table, dict) or not table:
        raise fail(f"params_by_stragglers must map S to parameters, got {table!r}")
    by_stragglers: dict[int, dict[str, float]] = {}
    names: list[str] | None = None
    for key, params in table.items():
        s = _count(key, "params_by_stragglers", "S", fail)
        names = _check_params(params, f"params_by_stragglers.{key}", "every S", names, fail)
        by_stragglers[s] = {name: float(value) for name, value in params.items()}
    by_adversaries = _load_by_adversaries(data, by_stragglers, names, fail)
    digest = data.get("checkpoint_sha256")
    if digest is not None and not isinstance(digest, str):
        raise fail(f"checkpoint_sha256 must be a string, got {digest!r}")
    found_by = data.get("found_by") or {}
    if not isinstance(found_by, dict):
        raise fail(f"found_by must be a mapping, got {found_by!r}")
    return ParamTable(
        path=path,
        scheme=data["scheme"],
        model=data["model"],
        dataset=data["dataset"],
        code={k: code[k] for k in CODE_KEYS} | arrangement_of(code),
        by_stragglers=dict(sorted(by_stragglers.items())),
        checkpoint_sha256=digest,
        found_by=dict(found_by),
        by_adversaries=by_adversaries,
    )


def _count(key: Any, where: str, what: str, fail: Any) -> int:
    """The integer >= 0 a table's key writes (``"40"``), else ``fail`` naming ``where``."""
    try:
        value = int(key)
    except ValueError:
        raise fail(f"{where}: {what} must be an integer >= 0, got {key!r}") from None
    if value < 0 or str(value) != str(key):
        raise fail(f"{where}: {what} must be an integer >= 0, got {key!r}")
    return value


def _check_params(
    params: Any, where: str, every: str, names: list[str] | None, fail: Any
) -> list[str]:
    """Check one entry (``where``) of a table: names to finite numbers >= 0, the same names as
    the entries before it (``names``; ``every`` words which). Returns its sorted names."""
    if not isinstance(params, dict) or not params:
        raise fail(f"{where} must map names to numbers, got {params!r}")
    if names is not None and sorted(params) != names:
        raise fail(
            f"{where} must set the same parameters as {every} ({', '.join(names)}), "
            f"got {', '.join(sorted(params))}"
        )
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"{where}.{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < 0:
            raise fail(f"{where}.{name} must be finite and >= 0, got {value!r}")
    return sorted(params)


def _load_by_adversaries(
    data: dict[str, Any],
    by_stragglers: dict[int, dict[str, float]],
    names: list[str] | None,
    fail: Any,
) -> dict[int, dict[int, dict[str, float]]]:
    """The optional ``params_by_adversaries`` (``{"S": {"A": params}}``): the S of
    ``params_by_stragglers``, each with at least one A, the parameters of every other entry, and
    at each S the entry of ``params_by_stragglers`` at its smallest A."""
    table = data.get("params_by_adversaries")
    if table is None:
        return {}
    if not isinstance(table, dict) or not table:
        raise fail(f"params_by_adversaries must map S to A to parameters, got {table!r}")
    found: dict[int, dict[int, dict[str, float]]] = {}
    for key, cells in table.items():
        s = _count(key, "params_by_adversaries", "S", fail)
        if not isinstance(cells, dict) or not cells:
            raise fail(f"params_by_adversaries.{key} must map A to parameters, got {cells!r}")
        found[s] = {}
        for a_key, params in cells.items():
            a = _count(a_key, f"params_by_adversaries.{key}", "A", fail)
            where = f"params_by_adversaries.{key}.{a_key}"
            _check_params(params, where, "params_by_stragglers", names, fail)
            found[s][a] = {name: float(value) for name, value in params.items()}
        found[s] = dict(sorted(found[s].items()))
    if sorted(found) != sorted(by_stragglers):
        raise fail(
            f"params_by_adversaries must tune the S of params_by_stragglers "
            f"({', '.join(map(str, sorted(by_stragglers)))}), got "
            f"{', '.join(map(str, sorted(found)))}"
        )
    for s, cells in found.items():
        smallest = min(cells)
        if cells[smallest] != by_stragglers[s]:
            raise fail(
                f"params_by_stragglers.{s} must be the choice at the smallest A tuned "
                f"(params_by_adversaries.{s}.{smallest}: {cells[smallest]}), got {by_stragglers[s]}"
            )
    return dict(sorted(found.items()))


def table_document(content: Mapping[str, Any]) -> dict[str, Any]:
    """A table's file content: its format header followed by ``content``."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **content}


def publish_table(
    content: Mapping[str, Any], directory: str | Path, *, since: float | None = None
) -> tuple[Path, Path | None, dt.datetime | None]:
    """Write a table to its stable path, atomically; an existing table is kept as a backup.

    ``content`` holds ``scheme``, ``model``, ``dataset``, ``code``, ``params_by_stragglers``
    (with ``params_by_adversaries`` for a table tuned per (S, A)) and whatever says how it was
    found. The new table is staged under a name unique to this call,
    fsynced and checked by :func:`load_table`; then, under the folder's lock (``.publish.lock``,
    ``fcntl``), the table there is kept as ``<name>.previous.json`` and the staged file renamed
    over it. Concurrent publishers of one table thus never fail nor mix their contents: the last
    one's table is published whole, and each backup is a whole table published before it.

    Parameters
    ----------
    content : mapping
        The table (see :func:`table_document`).
    directory : path
        Where tables are published.
    since : float, optional
        When the caller's run started (``time.time()``). A table found there that was written
        at or after it was published by another run meanwhile: its write time is returned, so
        the caller can say that it replaced it.

    Returns
    -------
    path, backup, replaced_at
        The published path; the backup's path (None if there was no table before); the write
        time (UTC) of the replaced table when it is later than ``since``, else None.
    """
    path = table_path(
        directory, content["model"], content["dataset"], content["scheme"], content["code"]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(table_document(content), indent=2) + "\n"
    staged = stage_bytes(path, text.encode("utf-8"))
    backup, replaced_at = None, None
    try:
        load_table(staged)
        with publish_lock(path.parent):
            if path.exists():
                written = path.stat().st_mtime
                if since is not None and written >= since:
                    replaced_at = dt.datetime.fromtimestamp(written, dt.timezone.utc)
                backup = path.with_name(f"{path.stem}.previous.json")
                copy_atomic(path, backup)
            os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return path, backup, replaced_at


def resolve_table(
    setting: Any,
    directory: str | Path,
    model: str,
    dataset: str,
    scheme: str,
    code: Mapping[str, Any],
) -> ParamTable | None:
    """The table a scheme asks for: ``published`` (the one of scheme ``scheme`` for this
    classifier and code, :func:`table_path`; None if there is none yet), ``published:<other>``
    (the one published for scheme ``<other>``: a robust NeRCC takes plain NeRCC's lambdas with
    ``published:nercc``), ``none``/null (no table) or a path to a table file."""
    if setting is None or setting == "none":
        return None
    if not isinstance(setting, str) or not setting:
        raise ValueError(
            f"must be published, published:<scheme>, none or a path to a table, got {setting!r}"
        )
    if setting == "published" or setting.startswith("published:"):
        owner = setting.partition(":")[2] or scheme
        path = table_path(directory, model, dataset, owner, code)
        return load_table(path) if path.exists() else None
    return load_table(setting)
