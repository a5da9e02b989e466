"""VGG feature stacks, loaded once per run and shared by its jobs: one copy per device."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import torch

from nst_batch.engine import FeatureExtractor
from nst_batch.settings import Settings
from nst_batch.weights import LoadedVGG, load_features

__all__ = ["ModelCache"]


@dataclass
class ModelCache:
    """VGG feature stacks by (weights, model, preprocess, seed): read once per run, one copy per device."""

    messages: list[str] = field(default_factory=list)  # one line per weights source loaded
    _loaded: dict[tuple[str, str, str, int], LoadedVGG] = field(default_factory=dict)  # as read: on the CPU
    _placed: dict[tuple[tuple[str, str, str, int], torch.device], LoadedVGG] = field(default_factory=dict)

    def extractor(self, settings: Settings, device: torch.device) -> FeatureExtractor:
        key = (settings.weights, settings.model, settings.preprocess,
               settings.seed if settings.weights == "random" else 0)
        if key not in self._loaded:
            loaded = load_features(settings.weights, model=settings.model, preprocess=settings.preprocess,
                                   seed=settings.seed)
            self._loaded[key] = loaded
            self.messages.append(loaded.description)
        if (key, device) not in self._placed:
            # A copy of its own for each device: `Module.to` moves parameters in place, so moving one
            # shared stack would move it under the extractors of every other device's jobs.
            loaded = self._loaded[key]
            self._placed[key, device] = loaded if device.type == "cpu" else dataclasses.replace(
                loaded, features=copy.deepcopy(loaded.features).to(device))
        layers = set(settings.content_layers) | set(settings.style_layers)
        extractor = self._placed[key, device].extractor(layers, pooling=settings.pooling, padding=settings.padding,
                                                        memory_saving=settings.memory_saving)
        extractor.to(device)  # its own preprocessing buffers; the convolutions are there already
        if settings.compile:
            extractor.compile()  # nn.Module.compile: compiles forward in place, stays a FeatureExtractor
        return extractor
