"""What a supervised model's outputs mean: role, label map, activation, mask stride.

These dicts go into the manifest's ``outputs`` list, which the runtime reads to turn logits into
decisions without guessing conventions (for instance, some teams label *defect* as 0).
"""

from __future__ import annotations

from .errors import ExportError

ACTIVATIONS = ("softmax", "sigmoid", "none")
OK_NAMES = ("good", "ok", "okay", "normal", "pass", "non-defective")


def parse_labels(text: str | None, option: str = "--labels") -> dict[int, str] | None:
    """``"0=defect,1=good"`` or positional ``"defect,good"`` → {0: "defect", 1: "good"}."""
    if not text:
        return None
    out: dict[int, str] = {}
    for pos, item in enumerate(x.strip() for x in text.split(",")):
        key, sep, name = item.partition("=")
        try:
            idx = int(key) if sep else pos
        except ValueError:
            raise ExportError(f"{option}: {item!r} is not INDEX=NAME (e.g. 0=defect,1=good)") from None
        name = (name if sep else key).strip()
        if not name or idx in out:
            raise ExportError(f"{option}: {item!r} is empty or repeats index {idx}")
        out[idx] = name
    return out


def _check_labels(labels: dict[int, str], expected: list[int], what: str, option: str) -> dict[str, str]:
    if sorted(labels) != expected:
        raise ExportError(f"{what}: the label map has indices {sorted(labels)} but the model needs exactly {expected}",
                          hint=f"pass {option} " + ",".join(f"{i}=NAME" for i in expected))
    return {str(k): labels[k] for k in sorted(labels)}


def class_output(name: str, channels: int, labels: dict[int, str] | None, activation: str,
                 ok_label: str | None = None, option: str = "--labels") -> dict:
    """Spec of a (B, channels) logits output. A single sigmoid logit is P(label 1)."""
    if activation not in ACTIVATIONS:
        raise ExportError(f"activation {activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
    if labels is None:
        raise ExportError(f"{name}: a classifier needs its label map, e.g. {option} 0=defect,1=good",
                          hint="teams differ on whether defect is 0 or 1, so edge-export does not guess")
    binary_sigmoid = activation == "sigmoid" and channels == 1
    expected = [0, 1] if binary_sigmoid else list(range(channels))
    lab = _check_labels(labels, expected, name, option)
    if ok_label is None:
        ok = [k for k, v in lab.items() if v.lower() in OK_NAMES]
        if len(ok) > 1:
            raise ExportError(f"{name}: more than one label looks like OK ({', '.join(lab[k] for k in ok)})",
                              hint="pass --ok-label NAME")
        ok_class = int(ok[0]) if ok else None
        if ok_class is None and len(lab) == 2:
            raise ExportError(f"{name}: which of {', '.join(lab.values())} means a good part?",
                              hint="pass --ok-label NAME")
    else:
        match = [k for k, v in lab.items() if v == ok_label]
        if not match:
            raise ExportError(f"--ok-label {ok_label!r} is not one of the labels ({', '.join(lab.values())})")
        ok_class = int(match[0])
    meaning = ("sigmoid(logit) is the probability of label 1" if binary_sigmoid else
               f"{activation} over the {channels} logits gives one probability per label" if activation != "none"
               else "raw scores; the largest wins")
    return {"name": name, "role": "class", "channels": channels, "activation": activation, "labels": lab,
            "ok_class": ok_class, "meaning": meaning}


def mask_output(name: str, channels: int, labels: dict[int, str] | None, activation: str,
                option: str = "--mask-labels") -> dict:
    """Spec of a (B, channels, H/stride, W/stride) logits output; the stride is filled in at export."""
    if activation not in ("softmax", "sigmoid"):
        raise ExportError(f"mask activation {activation!r} is unknown; choose sigmoid or softmax")
    if labels is None:
        if activation == "softmax":
            labels = {0: "background", **{i: f"defect_{i}" for i in range(1, channels)}}
        else:
            labels = {i: f"defect_{i + 1}" for i in range(channels)}
    lab = _check_labels(labels, list(range(channels)), name, option)
    meaning = ("sigmoid per channel: each pixel may carry several defect classes" if activation == "sigmoid" else
               "softmax over channels: one class per pixel, channel 0 is background")
    return {"name": name, "role": "mask", "channels": channels, "activation": activation, "labels": lab,
            "background_class": 0 if activation == "softmax" else None, "stride": None, "meaning": meaning}
