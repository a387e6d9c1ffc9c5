"""Every study tunelab knows, by name. Add a Space here and the driver, analysis and tests see it."""

from __future__ import annotations

from cli import UsageError
from spaces.base import PROFILES, Profile, Space
from spaces.images import DEGRADATION, MNIST, TEACHERS
from spaces.kd import KD
from spaces.text import EXTRACT, LORA, LORA_FRONT

SPACES: dict[str, Space] = {space.name: space for space in (MNIST, DEGRADATION, TEACHERS, KD, EXTRACT,
                                                                 LORA, LORA_FRONT)}


def get_space(name: str) -> Space:
    if name not in SPACES:
        raise UsageError(f"unknown space '{name}' (known: {', '.join(SPACES)})")
    return SPACES[name]


__all__ = ["PROFILES", "SPACES", "Profile", "Space", "get_space"]
