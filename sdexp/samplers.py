"""AUTOMATIC1111 sampler names and the diffusers scheduler each one maps to.

Every scheduler is built from the model's own scheduler config (betas, timestep spacing,
prediction type) with the flags listed here on top, as diffusers' own docs recommend.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampler:
    name: str                      # the AUTOMATIC1111 name, shown in grids and image metadata
    scheduler: str                 # diffusers scheduler class
    flags: dict = field(default_factory=dict)
    unet_calls_per_step: int = 1   # Heun and DPM2 evaluate the UNet twice per step
    needs: str | None = None       # optional dependency the scheduler imports

    @property
    def alias(self) -> str:
        return alias_of(self.name)

    def describe(self) -> str:
        """Class and flags, for the `scheduler` column."""
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.flags.items()))
        return f"{self.scheduler}({args})"


def alias_of(name: str) -> str:
    """'DPM++ 2M Karras' -> 'dpmpp_2m_karras'; aliases are what config keys may use."""
    return name.strip().lower().replace("++", "pp").replace("-", "_").replace(" ", "_")


SAMPLERS: tuple[Sampler, ...] = (
    Sampler("Euler", "EulerDiscreteScheduler"),
    Sampler("Euler a", "EulerAncestralDiscreteScheduler"),
    Sampler("DDIM", "DDIMScheduler"),
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler"),
    Sampler("DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    Sampler("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler",
            {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}),
    Sampler("DPM++ SDE Karras", "DPMSolverSDEScheduler", {"use_karras_sigmas": True}, needs="torchsde"),
    Sampler("UniPC", "UniPCMultistepScheduler"),
    Sampler("LMS", "LMSDiscreteScheduler", needs="scipy"),
    Sampler("Heun", "HeunDiscreteScheduler", unet_calls_per_step=2),
    Sampler("DPM2", "KDPM2DiscreteScheduler", unet_calls_per_step=2),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", unet_calls_per_step=2),
    Sampler("LCM", "LCMScheduler"),
)
_BY_ALIAS = {s.alias: s for s in SAMPLERS}


def valid_sampler_names() -> list[str]:
    return [s.alias for s in SAMPLERS]


def get_sampler(name: str) -> Sampler:
    """Look a sampler up by alias (`euler_a`) or AUTOMATIC1111 name (`Euler a`)."""
    sampler = _BY_ALIAS.get(alias_of(str(name)))
    if sampler is None:
        choices = ", ".join(f"{s.alias} ({s.name!r})" for s in SAMPLERS)
        raise ValueError(f"sampler={name!r} is not a known sampler; valid: {choices}")
    return sampler


def build_scheduler(sampler: Sampler, base_config, seeds: list[int] | None = None):
    """A fresh scheduler for one batch, from the model's scheduler config plus the sampler's flags.

    DPMSolverSDEScheduler draws its Brownian noise from `noise_sampler_seed`, not from the
    generator, so it gets the batch's seeds (one tree per image) to stay reproducible.
    """
    import diffusers

    cls = getattr(diffusers, sampler.scheduler)
    flags = dict(sampler.flags)
    if sampler.scheduler == "DPMSolverSDEScheduler" and seeds is not None:
        flags["noise_sampler_seed"] = list(seeds)
    return cls.from_config(base_config, **flags)
