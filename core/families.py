"""Per model family, the numbers the methods read off the UNet: which decoder stage a method's
features come from, which self-attention layers the samplers share, the VAE's scale. A method names
the role of what it needs ("motion" features, the "decoder" sharing layers); the family row says
where that is. Adding a family (SDXL) is a row here and the host's gate.

Indices follow core/denoiser.py: `up_blocks[i]` decoder stages, self-attention layers in execution
order over the whole UNet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFamily:
    name: str
    taps: dict[str, tuple[int, ...]]  # feature role → up_blocks indices
    sharing_layers: tuple[int, int]  # first and last self-attention layer the samplers share (MasaCtrl's 10–15)
    latent_scale: int = 8  # image pixels per latent pixel

    def tap(self, role: str) -> tuple[int, ...]:
        try:
            return self.taps[role]
        except KeyError:
            raise ValueError(f"the {self.name} family has no {role!r} feature tap ({', '.join(self.taps)})") from None

    def block(self, role: str) -> int:
        """The one decoder stage of a single-stage role."""
        (index,) = self.tap(role)
        return index

    @property
    def sharing_range(self) -> range:
        first, last = self.sharing_layers
        return range(first, last + 1)


# SD 1.x / 2.x: 4 decoder stages, 16 self-attentions (0–5 encoder, 6 middle, 7–15 decoder).
SD1 = ModelFamily(
    name="SD 1.x / 2.x",
    taps={
        "motion": (2,),  # up_blocks[2]: DragDiffusion's unet_feature_idx 3, as GoodDrag, DragNeXt, AdaptiveDrag
        "easydrag": (1, 2),  # EasyDrag's up_blocks[1] + [2] at image size
        "dift": (1,),  # DIFT's up_ft_index 1 (the Mean Distance metric)
    },
    sharing_layers=(10, 15),  # up_blocks[2] and [3]
)

DEFAULT_FAMILY = SD1  # the family every shipped workflow and default is written for
