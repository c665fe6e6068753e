"""The one 'uncertain' rule of a classifier: where it is stored, how it is read, how it is applied.

A classifier's calibrated rule is two numbers: a ``temperature`` T (probabilities become
softmax(log p / T)) and an ``uncertain_below`` threshold t (the top calibrated probability below t
is reported as ``uncertain``, never forced into a class). It is stored **once**, in the JSON beside
the model (``spec_path_for``):

- in an Android bundle JSON (``"format": "edge-wbc-android-bundle"``): the top-level keys
  ``temperature`` and ``uncertain_threshold`` (what the device reads; the nested ``model_spec``
  does not carry a second copy);
- in a plain ``model.json`` / ``<stem>.json``: ``metrics.temperature`` and ``metrics.uncertain_below``.

A model without a stored rule gets T = 1 and t = ``defaults.UNCERTAIN_BELOW`` (0.5: the top class
must be likelier than all others together). ``edge-wbc classify``, ``count``, ``bench``, ``calibrate``
and ``export-android`` all go through :func:`read_rule` / :func:`write_rule` / :meth:`UncertainRule.apply`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..defaults import TEMPERATURE, UNCERTAIN_BELOW
from ..errors import ModelError

BUNDLE_FORMAT = "edge-wbc-android-bundle"
UNCERTAIN = "uncertain"


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scale probabilities (softmax outputs): softmax(log p / T)."""
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, 1e-4, 1.0)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class UncertainRule:
    temperature: float = TEMPERATURE
    threshold: float = UNCERTAIN_BELOW
    source: str = "default"  # where it was read: "<file>: bundle" / "<file>: metrics" / "default"

    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        return apply_temperature(np.asarray(probs, np.float32), self.temperature)

    def apply(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probabilities (N, C), predicted index per row, -1 where 'uncertain')."""
        q = self.calibrate(np.atleast_2d(probs))
        k = q.argmax(-1)
        k = np.where(q[np.arange(len(q)), k] >= self.threshold, k, -1)
        return q, k

    def label(self, probs: np.ndarray, labels) -> tuple[str, float, np.ndarray]:
        """One image: (label or 'uncertain', calibrated top probability, calibrated probabilities)."""
        q, k = self.apply(probs)
        top = int(q[0].argmax())
        return (labels[int(k[0])] if k[0] >= 0 else UNCERTAIN), float(q[0, top]), q[0]


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: cannot read the model JSON ({e})") from None
    return d if isinstance(d, dict) else {}


def is_bundle(d: dict) -> bool:
    return d.get("format") == BUNDLE_FORMAT


def rule_from_dict(d: dict, name: str = "") -> UncertainRule:
    """The rule stored in a model JSON dict (bundle top level, or a plain spec's metrics)."""
    try:
        if is_bundle(d):
            if "uncertain_threshold" not in d:
                return UncertainRule(source="default")
            return UncertainRule(float(d.get("temperature", TEMPERATURE)), float(d["uncertain_threshold"]),
                                 f"{name}: bundle".lstrip(": "))
        m = d.get("metrics") or {}
        if "uncertain_below" not in m and "temperature" not in m:
            return UncertainRule(source="default")
        return UncertainRule(float(m.get("temperature", TEMPERATURE)), float(m.get("uncertain_below", UNCERTAIN_BELOW)),
                             f"{name}: metrics".lstrip(": "))
    except (TypeError, ValueError) as e:
        raise ModelError(f"{name}: invalid temperature / uncertain threshold ({e})") from None


def read_rule(json_path: str | Path) -> UncertainRule:
    """The calibrated rule of the model whose JSON is ``json_path`` (``spec_path_for(model)``)."""
    p = Path(json_path)
    return rule_from_dict(_read_json(p), p.name)


def write_rule(json_path: str | Path, temperature: float, threshold: float, basis: dict) -> Path:
    """Store the rule in ``json_path``, changing only the rule's own fields, atomically.

    Every other key of the file (a bundle's ``format``, ``sha256``, ``labels_file`` ...) is kept
    as it was. In a bundle the rule goes to the top level (``temperature``, ``uncertain_threshold``,
    ``uncertain_threshold_basis``) and any older copy under ``model_spec.metrics`` is removed; in a
    plain spec it goes to ``metrics``.
    """
    from ..fileio import atomic_write_text

    p = Path(json_path)
    d = _read_json(p)
    if not d:
        raise ModelError(f"{p}: no model JSON to store the calibration in")
    if is_bundle(d):
        d["temperature"] = float(temperature)
        d["uncertain_threshold"] = float(threshold)
        d["uncertain_threshold_basis"] = {"threshold": float(threshold), "temperature": float(temperature), **basis}
        ms = d.get("model_spec")
        if isinstance(ms, dict) and isinstance(ms.get("metrics"), dict):
            for k in ("temperature", "uncertain_below", "uncertain_val"):
                ms["metrics"].pop(k, None)
    else:
        m = dict(d.get("metrics") or {})
        m.update(temperature=float(temperature), uncertain_below=float(threshold), uncertain_val=basis)
        d["metrics"] = m
    atomic_write_text(p, json.dumps(d, indent=2) + "\n")
    return p
