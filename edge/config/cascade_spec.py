"""A cascade's configuration (edge/cascade/ runs it): TOML → frozen :class:`CascadeSpec`, every problem as ``key.path: message``.

The minimal form (scripts rely on it)::

    [[stage]]
    name = "gate"
    inspector = "insp"       # a PaDiM inspector; or model = "BUNDLE" for a classifier
    [[stage]]
    name = "seg"
    model = "seg-bundle"
    when = "suspicious"      # run only when the previous stage's score >= gate
    gate = 0.7               # on the previous stage's normalised score (1.0 = its threshold)

Also: ``vote = "any" | "all"`` at the top when every stage always runs (NG when any / all stages
say NG), and ``precision`` per stage. Relative paths resolve against the TOML file's folder.
The same stage tables may sit inline in a station config under ``[[cascade.stage]]``
(see :class:`edge.config.sections.CascadeSection`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .schema import Problems, build, setting
from ..errors import ConfigError

# choosing a gate (`eval --cascade`): the share of a line's parts the second stage may see, and the
# share of good parts on the line it is judged on when --good-share does not say
SHARE_BUDGET = 0.30
LINE_GOOD_SHARE = 0.9

WHEN = ("always", "suspicious")


@dataclass(frozen=True)
class StageSpec:
    name: str = setting(doc="Name of the stage in records and reports (unique in the cascade).")
    inspector: str | None = setting(None, "A PaDiM inspector directory (from `edge-inspect fit`).")
    model: str | None = setting(None, "A classifier, segmenter or multitask bundle (from `edge-export`).")
    when: Literal["always", "suspicious"] | None = setting(
        None, "always: every image; suspicious: only when the previous stage's score >= gate "
              "(default: suspicious when a gate is given, else always).")
    gate: float | None = setting(None, "Score of the previous stage (1.0 = its threshold) from which this stage "
                                       "runs; default 1.0 with when = 'suspicious'.", min=0, min_exclusive=True)
    precision: Literal["fp32", "fp16", "int8"] | None = setting(
        None, "Model variant this stage runs; default the one it was fitted or exported with.")

    @property
    def path(self) -> str:
        return self.inspector if self.inspector is not None else self.model  # type: ignore[return-value]

    @property
    def runs_when(self) -> str:
        return self.when or ("suspicious" if self.gate is not None else "always")

    @property
    def gate_value(self) -> float:
        return 1.0 if self.gate is None else self.gate

    def problems(self):
        out = []
        if not self.name.strip():
            out.append(("name", "must not be empty"))
        if (self.inspector is None) == (self.model is None):
            out.append(("inspector", "give exactly one of inspector = \"DIR\" (PaDiM) or model = \"BUNDLE\""))
        if self.when == "always" and self.gate is not None:
            out.append(("gate", "only applies with when = 'suspicious'"))
        return out


@dataclass(frozen=True)
class CascadeSpec:
    stage: list[StageSpec] = setting(factory=list, doc="The stages, in order: [[stage]] tables.")
    vote: Literal["any", "all"] | None = setting(
        None, "Unset: the last stage that ran decides. any / all: every stage runs and the part is NG when "
              "any / all of them say NG.")

    def problems(self):
        out = []
        if len(self.stage) < 2:
            out.append(("stage", f"a cascade chains two or more [[stage]] tables, this has {len(self.stage)}; "
                                 "for one model use --inspector or --model"))
        seen: dict[str, int] = {}
        for i, s in enumerate(self.stage):
            if s.name in seen:
                out.append((f"stage[{i}].name", f"{s.name!r} is already the name of stage[{seen[s.name]}]"))
            seen.setdefault(s.name, i)
        if self.stage and (self.stage[0].when == "suspicious" or self.stage[0].gate is not None):
            out.append(("stage[0].when", "the first stage sees every image: it takes no when/gate"))
        if self.vote is not None:
            gated = [i for i, s in enumerate(self.stage) if i and s.runs_when != "always"]
            if gated:
                out.append((f"stage[{gated[0]}].when", f"vote = {self.vote!r} needs every stage to run "
                                                      "(when = 'always', no gate)"))
        return out

    def resolved(self, base: str | os.PathLike) -> "CascadeSpec":
        """The same spec with relative stage paths made absolute against ``base``."""
        def fix(p: str | None) -> str | None:
            return None if p is None else str(Path(base) / Path(p).expanduser())
        return dataclasses.replace(self, stage=[dataclasses.replace(s, inspector=fix(s.inspector), model=fix(s.model))
                                                for s in self.stage])


def spec_problems(data: dict, path: str = "") -> tuple[CascadeSpec | None, list[str]]:
    """Build a spec from parsed TOML; (spec or None, every problem as ``key.path: message``)."""
    problems = Problems()
    spec = build(CascadeSpec, data, path, problems)
    return (None if not isinstance(spec, CascadeSpec) else spec), problems.items


def load_spec(path: str | os.PathLike) -> CascadeSpec:
    """Read a cascade TOML file; stage paths come back resolved against its folder."""
    from . import read_toml

    p = Path(path)
    spec, problems = spec_problems(read_toml(p))
    if problems or spec is None:
        n = len(problems)
        raise ConfigError(f"{p}: {n} problem{'s' if n != 1 else ''}\n  " + "\n  ".join(problems),
                          hint="a cascade file is [[stage]] tables with name, inspector or model, and for later "
                               "stages when = \"suspicious\" and gate = 0.7; see `edge-inspect score --help`")
    return spec.resolved(p.parent)
