"""What the zoo's model families share: the encoder sizes and the synthetic scenes' classes.

Its own module so that the zoo and the model families it lists (``models.rig_model``) both import
it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Classes of vitdeploy's synthetic driving scenes; the default class set of detection/mask models.
DRIVING_CLASSES = ("car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light")


@dataclass(frozen=True)
class EncoderSize:
    embed_dim: int
    depth: int
    num_heads: int
    decoder_heads: int
    decoder_layers: int


ENCODER_SIZES: dict[str, EncoderSize] = {
    "test": EncoderSize(embed_dim=64, depth=2, num_heads=2, decoder_heads=2, decoder_layers=2),
    "tiny": EncoderSize(embed_dim=192, depth=12, num_heads=3, decoder_heads=6, decoder_layers=3),
    "small": EncoderSize(embed_dim=384, depth=12, num_heads=6, decoder_heads=8, decoder_layers=6),
    "base": EncoderSize(embed_dim=768, depth=12, num_heads=12, decoder_heads=8, decoder_layers=6),
    "large": EncoderSize(embed_dim=1024, depth=24, num_heads=16, decoder_heads=8, decoder_layers=6),
}
