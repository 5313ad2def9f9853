"""Temporal-aware VAE decoder (VidRD, "Reuse and Diffuse", section 4.4).

`TemporalAutoencoderKL` is a diffusers `AutoencoderKL` with one extra config key,
`add_temp_conv` (bool, default False). When it is true, every ResNet of every decoder up
block is followed by a temporal convolution module:

    decoder.up_blocks.{i}.temp_convs.{k}.convs.{n}

where `convs` is a sequence of three groups
    [GroupNorm(norm_num_groups, C, eps=1e-5), SiLU, Dropout, Conv3d(C, C, (3,1,1), padding (1,0,0))]
so the parameters sit at n = 0, 4, 8 (GroupNorm weight/bias) and n = 3, 7, 11 (Conv3d weight
[C, C, 3, 1, 1] and bias [C]). The module computes, on a (B, C, F, H, W) view of the frames,

    out = x + convs(x)

(GroupNorm statistics are taken over C/groups x F x H x W jointly). The last Conv3d (n = 11)
is zero-initialised at construction, so a fresh module is the identity. This follows the
layout of the VidRD authors' released TemporalAutoencoderKL (which used an nn.ModuleList
named `convs`, GroupNorm default eps, Dropout 0.1 and skipped the module for one-frame input).
The mid block has no temporal convs; the encoder is untouched.

Decoding takes the latents of F frames at once: z is (B*F, C, h, w), frames of one clip
adjacent (clip-major), plus `num_frames`. `decode(z, num_frames, temporal=False)` skips the
temporal modules, which equals a plain frame-wise AutoencoderKL decode.

Saving with `save_pretrained` writes the diffusers layout: config.json with
`"add_temp_conv": true` and `"_class_name": "AutoencoderKL"` (so that a stock diffusers
`DiffusionPipeline.from_pretrained` still loads the folder, as a plain AutoencoderKL that
ignores the temporal tensors), and all tensors, temp convs included, in
diffusion_pytorch_model.safetensors. `TemporalAutoencoderKL.from_pretrained(dir)` loads it back.
"""

from __future__ import annotations

import json
import os

import torch
import torch.nn as nn
from diffusers import AutoencoderKL
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput

__all__ = ["TemporalConvBlock", "TemporalAutoencoderKL"]


class TemporalConvBlock(nn.Module):
    """Residual temporal conv: x + convs(x) on (B, C, F, H, W)."""

    def __init__(self, channels: int, norm_num_groups: int, num_layers: int = 3, dropout: float = 0.1,
                 eps: float = 1e-5):
        super().__init__()
        layers = []
        for _ in range(num_layers):
            layers += [
                nn.GroupNorm(norm_num_groups, channels, eps=eps),
                nn.SiLU(),
                nn.Dropout(dropout),
                nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)),
            ]
        self.convs = nn.Sequential(*layers)
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, F, H, W). One-frame input: identity (as in the authors' code).
        if x.shape[2] <= 1:
            return x
        return x + self.convs(x)


def _frames_to_video(h: torch.Tensor, num_frames: int) -> torch.Tensor:
    bf, c, hh, ww = h.shape
    if bf % num_frames != 0:
        raise ValueError(f"batch of {bf} frames is not a multiple of num_frames={num_frames}")
    return h.reshape(bf // num_frames, num_frames, c, hh, ww).permute(0, 2, 1, 3, 4)


def _video_to_frames(v: torch.Tensor) -> torch.Tensor:
    b, c, f, hh, ww = v.shape
    return v.permute(0, 2, 1, 3, 4).reshape(b * f, c, hh, ww)


class TemporalAutoencoderKL(AutoencoderKL):
    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str] = ("DownEncoderBlock2D",),
        up_block_types: tuple[str] = ("UpDecoderBlock2D",),
        block_out_channels: tuple[int] = (64,),
        layers_per_block: int = 1,
        act_fn: str = "silu",
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        sample_size: int = 32,
        scaling_factor: float = 0.18215,
        shift_factor: float | None = None,
        latents_mean: tuple[float] | None = None,
        latents_std: tuple[float] | None = None,
        force_upcast: bool = True,
        use_quant_conv: bool = True,
        use_post_quant_conv: bool = True,
        mid_block_add_attention: bool = True,
        add_temp_conv: bool = False,
    ):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            act_fn=act_fn,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            sample_size=sample_size,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
            latents_mean=latents_mean,
            latents_std=latents_std,
            force_upcast=force_upcast,
            use_quant_conv=use_quant_conv,
            use_post_quant_conv=use_post_quant_conv,
            mid_block_add_attention=mid_block_add_attention,
        )
        if add_temp_conv:
            for up_block in self.decoder.up_blocks:
                channels = up_block.resnets[0].out_channels
                up_block.temp_convs = nn.ModuleList(
                    [TemporalConvBlock(channels, norm_num_groups) for _ in up_block.resnets]
                )

    # ------------------------------------------------------------------ helpers
    @property
    def has_temp_convs(self) -> bool:
        return bool(self.config.get("add_temp_conv", False))

    def temporal_parameters(self):
        """Parameters of the temporal conv modules only (the trainable part in VidRD)."""
        for up_block in self.decoder.up_blocks:
            if hasattr(up_block, "temp_convs"):
                yield from up_block.temp_convs.parameters()

    def freeze_all_but_temporal(self):
        self.requires_grad_(False)
        for p in self.temporal_parameters():
            p.requires_grad_(True)

    @classmethod
    def from_autoencoder_kl(cls, vae: AutoencoderKL, add_temp_conv: bool = True) -> "TemporalAutoencoderKL":
        """Wrap a plain AutoencoderKL: same weights, fresh (identity) temporal convs."""
        cfg = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
        cfg["add_temp_conv"] = add_temp_conv
        model = cls(**cfg)
        missing, unexpected = model.load_state_dict(vae.state_dict(), strict=False)
        if unexpected or any(".temp_convs." not in k for k in missing):
            raise RuntimeError(f"weight mismatch: missing={missing} unexpected={unexpected}")
        return model.to(dtype=next(vae.parameters()).dtype)

    # ------------------------------------------------------------------ decoding
    def _run_decoder(self, z: torch.Tensor, num_frames: int, temporal: bool) -> torch.Tensor:
        dec = self.decoder
        h = dec.conv_in(z)
        h = dec.mid_block(h, None)
        for up_block in dec.up_blocks:
            temp_convs = getattr(up_block, "temp_convs", None) if temporal else None
            for k, resnet in enumerate(up_block.resnets):
                h = resnet(h, temb=None)
                if temp_convs is not None:
                    h = _video_to_frames(temp_convs[k](_frames_to_video(h, num_frames)))
            if up_block.upsamplers is not None:
                for upsampler in up_block.upsamplers:
                    h = upsampler(h)
        h = dec.conv_norm_out(h)
        h = dec.conv_act(h)
        return dec.conv_out(h)

    def decode(self, z: torch.Tensor, num_frames: int | None = None, temporal: bool = True,
               return_dict: bool = True, generator=None):
        """Decode latents z (B*F, C, h, w) -> (B*F, out_channels, H, W).

        z must already be divided by scaling_factor. `num_frames` = F; None means that the
        whole batch is one clip (this is what diffusers' pipelines get when they call
        `vae.decode(latents)` with batch size 1). temporal=False skips the temporal convs.
        """
        if z.dim() != 4:
            raise ValueError(f"decode expects (B*F, C, h, w), got {tuple(z.shape)}")
        if num_frames is None:
            num_frames = z.shape[0]
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        dec = self._run_decoder(z, num_frames, temporal and self.has_temp_convs)
        if not return_dict:
            return (dec,)
        return DecoderOutput(sample=dec)

    def decode_video(self, latents: torch.Tensor, temporal: bool = True) -> torch.Tensor:
        """latents (B, C, F, h, w), already divided by scaling_factor -> video (B, 3, F, H, W)."""
        b, c, f, h, w = latents.shape
        frames = _video_to_frames(latents)
        out = self.decode(frames, num_frames=f, temporal=temporal).sample
        return _frames_to_video(out, f)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator: torch.Generator | None = None, num_frames: int | None = None):
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        dec = self.decode(z, num_frames=num_frames).sample
        if not return_dict:
            return (dec,)
        return DecoderOutput(sample=dec)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        path = os.path.join(save_directory, "config.json")
        with open(path) as fh:
            cfg = json.load(fh)
        cfg["_class_name"] = "AutoencoderKL"
        cfg.pop("_name_or_path", None)  # where it was loaded from on the training machine: meaningless elsewhere
        if not cfg.get("add_temp_conv", False):
            cfg.pop("add_temp_conv", None)  # a plain VAE stays a plain AutoencoderKL config
        with open(path, "w") as fh:
            json.dump(cfg, fh, indent=2, sort_keys=True)
            fh.write("\n")
