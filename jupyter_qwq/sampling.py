"""Sampling that suits the model: defaults per model family, from the model's own card or config.

A setting left unset (None) takes the family's value; one the user set always wins. Families are
recognised from the served model's name (its last path part).

| family | temperature | top_p | top_k | min_p | greedy | source |
|---|---|---|---|---|---|---|
| QwQ | 0.6 | 0.95 | 40 | 0 | no | Qwen/QwQ-32B card: "Temperature=0.6 and TopP=0.95 instead of Greedy decoding to avoid endless repetitions"; TopK 20-40 |
| Qwen3 (thinking) | 0.6 | 0.95 | 20 | 0 | no | Qwen3 cards, thinking mode: "DO NOT use greedy decoding" |
| DeepSeek-R1 and its distills | 0.6 | 0.95 | 0 | 0 | no | DeepSeek-R1 card: temperature 0.5-0.7, 0.6 recommended, top-p 0.95 |
| Qwen2.5, Qwen2.5-Math, Qwen2.5-Coder | 0.7 | 0.8 | 20 | 0 | yes | the models' generation_config.json |
| any other | 0.7 | 0.95 | 0 | 0.05 | yes | jupyter_qwq's own |

Repetition penalties are never applied (the Qwen2.5 configs carry 1.05-1.1): a penalty on
repeated tokens also penalises the digits a calculation must repeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SAMPLING_SETTINGS = ("temperature", "top_p", "top_k", "min_p")


@dataclass(frozen=True)
class Family:
    name: str
    pattern: str  # searched in the model's name, lower case
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    greedy: bool  # whether greedy decoding suits it (reasoning models repeat themselves)
    source: str


FAMILIES = (
    Family("QwQ", r"qwq", 0.6, 0.95, 40, 0.0, False, "Qwen/QwQ-32B model card"),
    Family("Qwen3", r"qwen3", 0.6, 0.95, 20, 0.0, False, "Qwen3 model cards (thinking mode)"),
    Family("DeepSeek-R1", r"deepseek-r1|r1-distill", 0.6, 0.95, 0, 0.0, False, "DeepSeek-R1 model card"),
    Family("Qwen2.5", r"qwen2\.5", 0.7, 0.8, 20, 0.0, True, "Qwen2.5 generation_config.json"),
)
OTHER = Family("other", r"", 0.7, 0.95, 0, 0.05, True, "jupyter_qwq's defaults")


def family_of(model: str) -> Family:
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    for family in FAMILIES:
        if re.search(family.pattern, name):
            return family
    return OTHER


def resolve(config: Any, model: str) -> tuple[dict[str, Any], Family]:
    """The sampling a solve uses: each setting the user left unset comes from the family."""
    family = family_of(model)
    chosen = {}
    for name in SAMPLING_SETTINGS:
        value = getattr(config, name)
        chosen[name] = getattr(family, name) if value is None else value
    return chosen, family
