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

    def describe(self, schedule: "Schedule | None" = None) -> str:
        """Class and flags (the sampler's, then the schedule's), for the `scheduler` column."""
        flags = {**self.flags, **(schedule.flags if schedule else {})}
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(flags.items()))
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
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    Sampler("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}),
    Sampler("DPM++ 3M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", needs="torchsde"),
    Sampler("PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
    Sampler("DEIS", "DEISMultistepScheduler"),
    Sampler("DDPM", "DDPMScheduler"),
)
# AUTOMATIC1111 samplers diffusers has no scheduler for, with the reason (README, "Samplers and schedules").
NOT_EXPRESSIBLE = {
    "DPM++ 2S a": "diffusers' single-step DPM-Solver has no ancestral (noise-adding) variant",
    "DPM fast": "k-diffusion's fixed-order DPM-Solver with its own step-size rule; no diffusers scheduler",
    "DPM adaptive": "adaptive step size: the number of UNet calls is not set by steps; no diffusers scheduler",
    "Restart": "the Restart sampler's back-and-forth noise schedule has no diffusers scheduler",
    "DDIM CFG++": "CFG++ changes the guidance update inside the step; diffusers' schedulers take guided noise",
    "Euler a CFG++": "CFG++ changes the guidance update inside the step; diffusers' schedulers take guided noise",
}
_BY_ALIAS = {s.alias: s for s in SAMPLERS}


def valid_sampler_names() -> list[str]:
    return [s.alias for s in SAMPLERS]


def _look_up(key: str, what: str, name, by_alias: dict, entries):
    """An entry by alias (`euler_a`) or AUTOMATIC1111 name (`Euler a`), or a ValueError listing the choices."""
    found = by_alias.get(alias_of(str(name)))
    if found is None:
        choices = ", ".join(f"{alias_of(e.name)} ({e.name!r})" for e in entries)
        raise ValueError(f"{key}={name!r} is not a known {what}; valid: {choices}")
    return found


def get_sampler(name: str) -> Sampler:
    """Look a sampler up by alias (`euler_a`) or AUTOMATIC1111 name (`Euler a`)."""
    return _look_up("sampler", "sampler", name, _BY_ALIAS, SAMPLERS)


@dataclass(frozen=True)
class Schedule:
    name: str                      # the AUTOMATIC1111 "Schedule type"
    flags: dict = field(default_factory=dict)   # scheduler arguments that give it
    needs: str | None = None


# "Automatic" is each sampler's own default: the flags its entry in SAMPLERS carries.
SCHEDULES: tuple[Schedule, ...] = (
    Schedule("Automatic"),
    Schedule("Uniform", {"timestep_spacing": "linspace"}),
    Schedule("Karras", {"use_karras_sigmas": True}),
    Schedule("Exponential", {"use_exponential_sigmas": True}),
    Schedule("Beta", {"use_beta_sigmas": True}, needs="scipy"),
    Schedule("SGM Uniform", {"timestep_spacing": "trailing"}),
)
SCHEDULE_NOT_EXPRESSIBLE = {
    "Polyexponential": "no diffusers scheduler flag gives k-diffusion's polyexponential sigmas",
    "KL Optimal": "no diffusers scheduler flag gives the KL-optimal sigmas",
    "Align Your Steps": "needs per-model tabulated timesteps passed to the pipeline, not a scheduler flag",
    "Simple": "ComfyUI's 'simple' picks every n-th training sigma; no diffusers timestep spacing matches it",
    "Normal": "A1111's 'normal' spacing differs from diffusers' linspace/leading/trailing at the ends",
    "DDIM": "A1111's DDIM schedule offsets discrete timesteps differently from diffusers' 'leading'",
}
SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
_SCHEDULES_BY_ALIAS = {alias_of(s.name): s for s in SCHEDULES}


def get_schedule(name: str) -> Schedule:
    """Look a schedule type up by alias (`sgm_uniform`) or AUTOMATIC1111 name (`SGM Uniform`)."""
    return _look_up("schedule", "schedule type", name, _SCHEDULES_BY_ALIAS, SCHEDULES)


def _init_parameters(class_name: str) -> set[str]:
    import inspect

    import diffusers

    return set(inspect.signature(getattr(diffusers, class_name).__init__).parameters)


def check_schedule(sampler: Sampler, schedule: Schedule) -> None:
    """A ValueError when `sampler` cannot run with `schedule` (its scheduler lacks the flag, or the sampler's
    own name already fixes a sigma schedule)."""
    if schedule.name == "Automatic":
        return
    fixed = [f for f in SIGMA_FLAGS if sampler.flags.get(f)]
    if fixed and any(f in schedule.flags for f in SIGMA_FLAGS):
        base = sampler.name.rsplit(" ", 1)[0]
        raise ValueError(f"schedule={alias_of(schedule.name)!r} with sampler={sampler.alias!r}: that sampler's "
                         f"name already sets the Karras schedule; valid: sampler={alias_of(base)!r} with "
                         f"schedule={alias_of(schedule.name)!r}")
    missing = [f for f in schedule.flags if f not in _init_parameters(sampler.scheduler)]
    if missing:
        valid = [alias_of(s.name) for s in SCHEDULES
                 if all(f in _init_parameters(sampler.scheduler) for f in s.flags)]
        raise ValueError(f"schedule={alias_of(schedule.name)!r} is not available with sampler={sampler.alias!r} "
                         f"({sampler.scheduler} has no {', '.join(missing)}); valid with it: {', '.join(valid)}")


def step_parameters(sampler: Sampler) -> set[str]:
    """The keyword arguments its scheduler's `step` takes (eta, s_churn, ...)."""
    import inspect

    import diffusers

    return set(inspect.signature(getattr(diffusers, sampler.scheduler).step).parameters)


def build_scheduler(sampler: Sampler, base_config, seeds: list[int] | None = None,
                    schedule: Schedule | None = None):
    """A fresh scheduler for one batch, from the model's scheduler config plus the sampler's flags.

    DPMSolverSDEScheduler draws its Brownian noise from `noise_sampler_seed`, not from the
    generator, so it gets the batch's seeds (one tree per image) to stay reproducible.
    """
    import diffusers

    cls = getattr(diffusers, sampler.scheduler)
    flags = {**sampler.flags, **(schedule.flags if schedule else {})}
    if sampler.scheduler == "DPMSolverSDEScheduler" and seeds is not None:
        flags["noise_sampler_seed"] = list(seeds)
    return cls.from_config(base_config, **flags)


# Axes passed to the scheduler's `step` (config key = step argument); each acts only where `step` takes it.
STEP_ARGUMENTS = ("eta", "s_churn", "s_tmin", "s_tmax", "s_noise")


def check_sampler_settings(sampler: Sampler, schedule: Schedule, step_settings: tuple) -> None:
    """A ValueError when the schedule or a step argument (eta, s_churn, ...) cannot act with `sampler`."""
    check_schedule(sampler, schedule)
    taken = step_parameters(sampler)
    for key, value in step_settings:
        if key not in taken:
            valid = [s.alias for s in SAMPLERS if key in step_parameters(s)]
            raise ValueError(f"{key}={value!r} does nothing with sampler={sampler.alias!r} ({sampler.scheduler}.step "
                             f"takes no {key}); valid with: {', '.join(valid) or 'no sampler'}")
