"""Test-only nodes, loaded next to DragKit by the test server (never shipped).

They drive `nodes/host/` the way DragKit's own nodes do, so host tests can check gradients inside
a node, and that patching, failing or being interrupted leaves the user's MODEL untouched.
"""

import hashlib
import importlib
import os
import sys

import torch


def _host():
    """DragKit's host module; ComfyUI registers a pack under its path (custom_nodes/dragkit)."""
    pack = next(name for name in sys.modules if name.endswith(os.sep + "dragkit"))
    return importlib.import_module(pack + ".nodes.host")


class DragKitTestGradient:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "latent": ("LATENT",), "conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "DragKit/testing"

    def run(self, model, latent, conditioning):
        host = _host()
        with host.gradients():
            denoiser = host.ComfyDenoiser(model, for_gradients=True)
            denoiser.load_for_gradients()
            x = denoiser.to_model_latent(latent["samples"]).requires_grad_(True)
            prediction = denoiser.predict(x, 500, conditioning[0][0].clone(), up_features=(0,))
            scalar = prediction.eps.square().mean() + prediction.features[0].mean()
            (gradient,) = torch.autograd.grad(scalar, x)
        report = {"norm": float(gradient.norm()), "finite": bool(torch.isfinite(gradient).all())}
        return {"ui": {"gradient": [report]}}


class DragKitTestPatchedLoop:
    """Gradient steps on the latent with every self-attention replaced and feature taps on."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "latent": ("LATENT",), "conditioning": ("CONDITIONING",),
                             "steps": ("INT", {"default": 3, "min": 1}), "fail_at": ("INT", {"default": -1, "min": -1})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"
    CATEGORY = "DragKit/testing"

    def run(self, model, latent, conditioning, steps, fail_at):
        host = _host()
        progress = host.Progress(steps)
        with host.gradients():
            denoiser = host.ComfyDenoiser(model, for_gradients=True)
            denoiser.load_for_gradients()
            x = denoiser.to_model_latent(latent["samples"]).requires_grad_(True)
            cond = conditioning[0][0].clone()
            # Attention that ignores the keys: a leak into later runs would change their output.
            with denoiser.attention_hook(lambda q, k, v, call: v):
                for step in range(steps):
                    if step == fail_at:
                        raise RuntimeError(f"test failure at step {step}")
                    prediction = denoiser.predict(x, 700, cond, up_features=(0,))
                    scalar = prediction.eps.square().mean() + prediction.features[0].mean()
                    (gradient,) = torch.autograd.grad(scalar, x)
                    x = (x - 0.1 * gradient).detach().requires_grad_(True)
                    progress.update(step + 1, steps)
        return ({"samples": denoiser.from_model_latent(x)},)


class DragKitTestDigest:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "DragKit/testing"

    def run(self, latent):
        samples = latent["samples"].contiguous().cpu()
        digest = hashlib.sha256(samples.numpy().tobytes()).hexdigest()
        return {"ui": {"digest": [digest], "finite": [bool(torch.isfinite(samples).all())]}}


class DragKitTestPoisonLatent:
    """One NaN in a copy of the latent, as a broken model or an overflow would leave it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": ("LATENT",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"
    CATEGORY = "DragKit/testing"

    def run(self, latent):
        samples = latent["samples"].clone()
        samples.view(-1)[0] = float("nan")
        return ({**latent, "samples": samples},)


class DragKitTestInversionReport:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"inversion": ("DRAGKIT_INVERSION",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "DragKit/testing"

    def run(self, inversion):
        core = inversion.inversion
        report = {"timesteps": list(core.timesteps), "trajectory": len(core.trajectory),
                  "latent_shape": list(core.latent.shape), "finite": all(bool(torch.isfinite(x).all()) for x in core.trajectory)}
        return {"ui": {"inversion": [report]}}


class DragKitTestEditReport:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"edit": ("DRAGKIT_EDIT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "DragKit/testing"

    def run(self, edit):
        result = edit.result
        report = {"handles": [list(h) for h in result.handles], "start": [list(h) for h in edit.spec.handles],
                  "targets": [list(t) for t in edit.spec.targets], "steps": len(result.losses),
                  "stop": result.stop_reason, "finite": bool(torch.isfinite(result.latent).all())}
        if edit.spec.mask is not None:  # how much the drag moved the latent inside and outside the editable mask
            change = (result.latent - result.reference_latent).abs().mean(dim=1)[0].float().cpu()
            mask = torch.from_numpy(edit.spec.mask).float()[None, None]
            inside = torch.nn.functional.interpolate(mask, size=change.shape, mode="area")[0, 0] > 0.5
            report["change_inside"] = float(change[inside].mean()) if inside.any() else None
            report["change_outside"] = float(change[~inside].mean()) if (~inside).any() else None
        return {"ui": {"edit": [report]}}


class DragKitTestDevicePeak:
    """Peak device memory since the previous report (then reset), after `value` is computed."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",), "stage": ("STRING", {"default": ""})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "DragKit/testing"

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True  # any upstream type

    def run(self, value, stage):
        try:
            import comfy.memory_management as memory  # ComfyUI with Dynamic VRAM only

            dynamic = bool(getattr(memory, "aimdo_enabled", False))
        except ImportError:
            dynamic = False
        report = {"stage": stage, "cuda": torch.cuda.is_available(), "peak_bytes": 0, "allocated_bytes": 0,
                  "dynamic_vram": dynamic}
        if torch.cuda.is_available():
            report.update(peak_bytes=torch.cuda.max_memory_allocated(), allocated_bytes=torch.cuda.memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        return {"ui": {"peak": [report]}}


class DragKitTestDragReport:
    """A DRAGKIT_DRAG as its schema-v1 JSON, and any strings beside it (e.g. Drag to Points' outputs)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"drag": ("DRAGKIT_DRAG",)},
                "optional": {"handles": ("STRING", {"forceInput": True}), "targets": ("STRING", {"forceInput": True})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "DragKit/testing"

    def run(self, drag, handles=None, targets=None):
        return {"ui": {"drag": [drag.to_dict()], "points": [{"handles": handles, "targets": targets}]}}


NODE_CLASS_MAPPINGS = {
    "DragKitTestDragReport": DragKitTestDragReport,
    "DragKitTestDevicePeak": DragKitTestDevicePeak,
    "DragKitTestEditReport": DragKitTestEditReport,
    "DragKitTestInversionReport": DragKitTestInversionReport,
    "DragKitTestGradient": DragKitTestGradient,
    "DragKitTestPatchedLoop": DragKitTestPatchedLoop,
    "DragKitTestDigest": DragKitTestDigest,
    "DragKitTestPoisonLatent": DragKitTestPoisonLatent,
}
