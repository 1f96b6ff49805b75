"""The drag optimiser nodes, one per method (core/methods' recipes give their ids), and what every
drag node does around its method's `optimise`."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from comfy_api.v0_0_2 import io, ui

from ..core import masks
from ..core.drag import DragSpec, DragSpecError
from ..core.methods import adaptivedrag, dragdiffusion, dragnext, easydrag, gooddrag
from . import host
from .checks import CheckedNode, InputError, checked, require_finite
from .previews import drag_points, image_tensor, picture_of, region_overlay
from .values import (DragKitEdit, DragKitInversion, DragType, EditType, InversionType, Sam2ModelType, check_edit_inputs,
                     drag_image, handle_report, inversion_conditioning_input)

PREVIEW_EVERY = 3  # gradient steps between previews of the moving handles
MEASURES_KEY = "dragkit_measures"  # the executed message's key with the drag's figures (tests and tools read it)


def run_drag(optimise, settings, model, conditioning, inversion: DragKitInversion, drag: DragSpec) -> io.NodeOutput:
    """What every drag node does around its method's `optimise`: model, progress, previews, cancel."""
    check_edit_inputs(model, inversion, drag)
    with host.gradients():
        denoiser = host.loaded_denoiser(model, for_gradients=True)
        cond = inversion.context(conditioning).to(denoiser.device)
        core_inversion = inversion.inversion
        background = denoiser.preview(core_inversion.source).convert("RGB").resize((drag.width, drag.height))

        def picture(handles, regions=None):
            shown = background if regions is None else region_overlay(background, regions)
            return drag_points(shown, handles, drag.targets, drag.handles)

        progress = host.Progress(1)  # the method reports its own total with every step

        def on_step(iteration: int, total: int, handles, regions=None) -> None:
            show = iteration % PREVIEW_EVERY == 0 or iteration == total
            progress.update(iteration, total, picture(handles, regions) if show else None)

        try:
            result = optimise(denoiser, core_inversion, drag, cond, settings, on_step)
        except DragSpecError as exc:  # a drag the method cannot run (e.g. a DragNeXt region off its grid)
            raise InputError(f"drag: {exc}") from None
    require_finite(result.latent, f"the dragged latent (after {len(result.losses)} gradient steps)")
    final = image_tensor(picture(result.handles))
    return io.NodeOutput(DragKitEdit(result, inversion, drag), ui={
        "dragkit_preview": ui.PreviewImage(final).as_dict()["images"], "text": [_summary(result)],
        "dragkit_handles": handle_report(drag, result.handles), MEASURES_KEY: [_measures(result)]})


def _measures(result) -> dict:
    """The drag's figures as data: steps, why it stopped, the losses, DragNeXt's region errors."""
    return {"steps": len(result.losses), "stop_reason": result.stop_reason, "losses": list(result.losses),
            "region_errors": [{"pair": e.pair, "before": e.before, "after": e.after} for e in result.region_errors]}


def _summary(result) -> str:
    handles = ", ".join(f"({x:.0f}, {y:.0f})" for x, y in result.handles)
    errors = "".join(f"; pair {e.pair} region error before {e.before:.4g}; pair {e.pair} region error after {e.after:.4g}"
                     for e in result.region_errors)
    return f"{len(result.losses)} gradient steps, stopped: {result.stop_reason}; final handles {handles}{errors}"


def _common_inputs() -> list:
    return [
        io.Model.Input("model", tooltip="The LoRA-finetuned model (the same as the inversion's)."),
        InversionType.Input("inversion"),
        DragType.Input("drag"),
        inversion_conditioning_input(),
    ]


class DragKitDragDiffusion(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = dragdiffusion.DragDiffusionSettings()
        return io.Schema(
            node_id=dragdiffusion.RECIPE.node_id,
            display_name="DragKit Drag (DragDiffusion)",
            category="DragKit",
            description="DragDiffusion: motion supervision and point tracking on the inverted latent at one timestep.",
            inputs=[
                *_common_inputs(),
                io.Combo.Input("loss_scale", options=["code", "paper"], default="code",
                               tooltip="code: channel mean per position (official code); paper: channel sum (640× larger)."),
                io.Int.Input("max_iterations", default=d.max_iterations, min=1, max=10000),
                io.Float.Input("learning_rate", default=d.learning_rate, min=1e-5, max=1.0, step=0.001),
                io.Float.Input("mask_weight", default=d.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip="λ: how strongly the region outside the mask is kept."),
                io.Int.Input("patch_radius", default=d.patch_radius, min=0, max=32, tooltip="r1 in feature pixels (half image size)."),
                io.Int.Input("track_radius", default=d.track_radius, min=1, max=64, tooltip="r2 in feature pixels."),
                io.Int.Input("feature_block", default=d.feature_block, min=0, max=3, tooltip="Decoder stage up_blocks[i] whose features are supervised."),
            ],
            outputs=[EditType.Output(display_name="edit")],
        )

    @classmethod
    def validate_inputs(cls, loss_scale, learning_rate, mask_weight) -> bool | str:
        return cls.refusal(loss_scale=loss_scale, learning_rate=learning_rate, mask_weight=mask_weight)

    @classmethod
    @checked
    def execute(cls, model, inversion, drag, loss_scale, max_iterations, learning_rate, mask_weight,
                patch_radius, track_radius, feature_block, conditioning=None) -> io.NodeOutput:
        base = dragdiffusion.DragDiffusionSettings.paper() if loss_scale == "paper" else dragdiffusion.DragDiffusionSettings()
        settings = replace(base, max_iterations=max_iterations, learning_rate=learning_rate, mask_weight=mask_weight,
                           patch_radius=patch_radius, track_radius=track_radius, feature_block=feature_block)
        return run_drag(dragdiffusion.optimise, settings, model, conditioning, inversion, drag)


GOODDRAG_MODES = {"code (UI)": gooddrag.GoodDragSettings(), "benchmark": gooddrag.GoodDragSettings.benchmark(),
                  "paper": gooddrag.GoodDragSettings.paper()}


class DragKitGoodDrag(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = gooddrag.GoodDragSettings()
        return io.Schema(
            node_id=gooddrag.RECIPE.node_id,
            display_name="DragKit Drag (GoodDrag)",
            category="DragKit",
            description=(
                "GoodDrag: alternating drag and denoising over the first timesteps, with the "
                "information-preserving motion supervision. 'mode' sets the switches that are not inputs "
                "(step clamping, feature size, loss scale, re-tracking, early stop) as the official UI, the "
                "benchmark script or the paper has them; the numbers are used as given (benchmark: "
                "mask_weight 0.1; paper: feature_block 3)."
            ),
            inputs=[
                *_common_inputs(),
                io.Combo.Input("mode", options=list(GOODDRAG_MODES), default="code (UI)"),
                io.Int.Input("drag_timesteps", default=d.drag_timesteps, min=1, max=50),
                io.Int.Input("tracks_per_timestep", default=d.tracks_per_timestep, min=1, max=100),
                io.Int.Input("steps_per_track", default=d.steps_per_track, min=1, max=20),
                io.Float.Input("learning_rate", default=d.learning_rate, min=1e-5, max=1.0, step=0.001),
                io.Float.Input("mask_weight", default=d.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip="λ: how strongly the region outside the mask is kept (benchmark: 0.1)."),
                io.Int.Input("feature_block", default=d.feature_block, min=0, max=3,
                             tooltip="Decoder stage up_blocks[i] whose features are supervised (paper: 3)."),
            ],
            outputs=[EditType.Output(display_name="edit")],
        )

    @classmethod
    def validate_inputs(cls, mode, learning_rate, mask_weight) -> bool | str:
        return cls.refusal(mode=mode, learning_rate=learning_rate, mask_weight=mask_weight)

    @classmethod
    @checked
    def execute(cls, model, inversion, drag, mode, drag_timesteps, tracks_per_timestep, steps_per_track,
                learning_rate, mask_weight, feature_block, conditioning=None) -> io.NodeOutput:
        settings = replace(GOODDRAG_MODES[mode], drag_timesteps=drag_timesteps, tracks_per_timestep=tracks_per_timestep,
                           steps_per_track=steps_per_track, learning_rate=learning_rate, mask_weight=mask_weight,
                           feature_block=feature_block)
        return run_drag(gooddrag.optimise, settings, model, conditioning, inversion, drag)


EASYDRAG_MODES = {"code": easydrag.EasyDragSettings(), "paper": easydrag.EasyDragSettings.paper()}


class DragKitEasyDrag(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = easydrag.EasyDragSettings()
        return io.Schema(
            node_id=easydrag.RECIPE.node_id,
            display_name="DragKit Drag (EasyDrag)",
            category="DragKit",
            description=(
                "EasyDrag: no LoRA and no mask needed (connect the checkpoint's MODEL and an inversion at "
                "strength 0.7). Features of up_blocks[1]+[2] at image size; each handle is pulled toward its "
                "ORIGINAL feature through the next point K pixels along the line, jumps there only when that "
                "point looks more like it, and the editable region is derived from the gradient whenever a "
                "handle moves (a painted mask replaces it). 'code' (default) follows the official program's "
                "constants: snap to the target within 18 px, handles on target weigh 0.1, the unedited latent's "
                "decoder keys/values during optimisation; 'paper' snaps within K, weighs every handle 1 and "
                "runs without that branch. Unlike the released code (its issue #4: handles that never move), "
                "the latent is optimised in float32 with the UNet in its own dtype and no fp16 autocast. "
                "Sample with DragKit Reference-Guided Sampler."
            ),
            inputs=[
                *_common_inputs(),
                io.Combo.Input("mode", options=list(EASYDRAG_MODES), default="code"),
                io.Int.Input("max_iterations", default=d.max_iterations, min=1, max=1000),
                io.Float.Input("learning_rate", default=d.learning_rate, min=1e-5, max=1.0, step=0.001),
                io.Float.Input("step", default=d.step, min=1.0, max=256.0, step=1.0,
                               tooltip="K: image pixels from the handle to the point it is pulled toward."),
                io.Float.Input("mask_weight", default=d.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip="λ: how strongly features outside the editable region are kept."),
            ],
            outputs=[EditType.Output(display_name="edit")],
        )

    @classmethod
    def validate_inputs(cls, mode, learning_rate, step, mask_weight) -> bool | str:
        return cls.refusal(mode=mode, learning_rate=learning_rate, step=step, mask_weight=mask_weight)

    @classmethod
    @checked
    def execute(cls, model, inversion, drag, mode, max_iterations, learning_rate, step, mask_weight,
                conditioning=None) -> io.NodeOutput:
        base = EASYDRAG_MODES[mode]
        # the paper snaps at K itself: keep that when K changes
        snap = step if mode == "paper" else base.snap_distance
        settings = replace(base, max_iterations=max_iterations, learning_rate=learning_rate, step=step,
                           snap_distance=snap, mask_weight=mask_weight)
        return run_drag(easydrag.optimise, settings, model, conditioning, inversion, drag)


class DragKitAdaptiveDrag(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = adaptivedrag.AdaptiveDragSettings()
        return io.Schema(
            node_id=adaptivedrag.RECIPE.node_id,
            display_name="DragKit Drag (AdaptiveDrag)",
            category="DragKit",
            description=(
                "AdaptiveDrag: super-pixels (SLIC on SAM 2's masks, or on the picture without SAM 2) set each "
                "handle's radii and confine its motion supervision and tracking to its super-pixel on the side "
                "facing the target; the step budget grows while handles stall (up to max_budget) and backward "
                "moves are rejected. Without a mask in the drag, the mask is made the paper's way (mask_mode). "
                "Invert with the AdaptiveDrag preset; sample with DragKit CLoss Sampler."
            ),
            inputs=[
                *_common_inputs(),
                io.Image.Input("image", tooltip="The image the drag was placed on: its super-pixels."),
                Sam2ModelType.Input("sam2_model", optional=True,
                                    tooltip="SAM 2 for the super-pixels and the mask (the paper's way); without it SLIC "
                                            "runs on the picture itself, which the paper finds worse."),
                io.Combo.Input("budget_mode", options=list(adaptivedrag.BUDGET_MODES), default=d.budget_mode,
                               tooltip="adaptive: the paper's backtracking (grow the budget on stalls, reject backward "
                                       "moves); official: the released code's fixed initial_budget steps."),
                io.Int.Input("initial_budget", default=d.initial_budget, min=1, max=5000),
                io.Int.Input("max_budget", default=d.max_budget, min=1, max=5000,
                             tooltip="Cap of the adaptive budget (paper: 300; the code's unused max_step: 500)."),
                io.Float.Input("learning_rate", default=d.learning_rate, min=1e-5, max=1.0, step=0.001),
                io.Float.Input("mask_weight", default=d.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip="λ: how strongly the region outside the mask is kept."),
                io.Int.Input("superpixels", default=d.superpixels, min=8, max=5000, tooltip="SLIC's number of segments."),
                io.Int.Input("points_per_side", default=32, min=2, max=64,
                             tooltip="SAM 2's automatic point grid (32 × 32 in the paper; fewer is faster)."),
                io.Combo.Input("mask_mode", options=list(masks.BACKGROUND_MODES), default="official",
                               tooltip="When the drag has no mask: official = the SAM 2 mask under the handle (the line "
                                       "search when there is none), paper = the line search, union = both."),
                io.Int.Input("feature_block", default=d.feature_block, min=0, max=3,
                             tooltip="Decoder stage up_blocks[i] whose features are supervised."),
            ],
            outputs=[EditType.Output(display_name="edit")],
        )

    @classmethod
    def validate_inputs(cls, budget_mode, initial_budget, max_budget, learning_rate, mask_weight, mask_mode) -> bool | str:
        return cls.refusal(budget_mode=budget_mode, initial_budget=initial_budget, max_budget=max_budget,
                           learning_rate=learning_rate, mask_weight=mask_weight, mask_mode=mask_mode)

    @classmethod
    def check_values(cls, values: dict) -> None:
        start, cap = values.get("initial_budget"), values.get("max_budget")
        if start is not None and cap is not None and cap < start:
            raise InputError(f"max_budget: {cap} is below initial_budget ({start})")

    @classmethod
    @checked
    def execute(cls, model, inversion, drag, image, budget_mode, initial_budget, max_budget, learning_rate, mask_weight,
                superpixels, points_per_side, mask_mode, feature_block, conditioning=None, sam2_model=None) -> io.NodeOutput:
        check_edit_inputs(model, inversion, drag)
        picture = picture_of(drag_image(image, drag))
        automatic = None if sam2_model is None else sam2_model.automatic_masks(picture, points_per_side)
        prepared = masks.adaptive_masks(picture, drag.handles, drag.targets, automatic, superpixels, mask_mode)
        if drag.mask is None:
            drag = drag.with_mask(prepared.background)
        settings = adaptivedrag.AdaptiveDragSettings(
            learning_rate=learning_rate, feature_block=feature_block, initial_budget=initial_budget,
            max_budget=max_budget, budget_mode=budget_mode, mask_weight=mask_weight, superpixels=superpixels)
        optimise = partial(adaptivedrag.optimise, superpixels=prepared.segments)
        return run_drag(optimise, settings, model, conditioning, inversion, drag)


DRAGNEXT_MODES = {"regions (paper)": dragnext.DragNeXtSettings(), "code parity": dragnext.DragNeXtSettings.code()}


class DragKitDragNeXt(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = dragnext.DragNeXtSettings()
        return io.Schema(
            node_id=dragnext.RECIPE.node_id,
            display_name="DragKit Drag (DragNeXt)",
            category="DragKit",
            description=(
                "DragNeXt: each pair's region (painted in the Editor, typed translate, deform or rotate about a "
                "centre) is sent toward its target a little further at every iteration, and the latent is "
                "optimised so that the features there match the region's original features; no point tracking. "
                "Runs at the first pbsi_timesteps timesteps (K iterations each, a fresh Adam per timestep), keeping "
                "the area outside the editable mask. 'code parity' adds the released code's GoodDrag point phase at "
                "the first three timesteps and its per-region mask term. Invert with the 'GoodDrag / DragNeXt' "
                "preset (0.75); sample with the Mutual-Attention Sampler (layers 10–15) or the CLoss Sampler."
            ),
            inputs=[
                *_common_inputs(),
                io.Combo.Input("mode", options=list(DRAGNEXT_MODES), default="regions (paper)"),
                io.Combo.Input("eta_mode", options=list(dragnext.ETA_MODES), default=d.eta_mode,
                               tooltip="How far the regions go at each iteration: code = a ramp over the first three "
                                       "timesteps, then the full target; paper = Eq. 5 as printed (stops short of the "
                                       "target); final = the full target from the start (the paper's ablation)."),
                io.Int.Input("pbsi_timesteps", default=d.pbsi_timesteps, min=1, max=50,
                             tooltip="Timesteps at which the latent is optimised (the paper finds 5 saturates)."),
                io.Int.Input("iterations", default=d.iterations, min=1, max=1000, tooltip="K: Adam steps per timestep."),
                io.Float.Input("learning_rate", default=d.learning_rate, min=1e-5, max=1.0, step=0.001),
                io.Float.Input("mask_weight", default=d.mask_weight, min=0.0, max=100.0, step=0.01,
                               tooltip="λ: how strongly the region outside the editable mask is kept."),
                io.Float.Input("fallback_radius", default=d.fallback_radius, min=1.0, max=64.0, step=1.0,
                               tooltip="A pair without a painted region moves (translates) a disc of this radius around "
                                       "its handle, in feature pixels (half the image size: 4 = 8 image pixels)."),
                io.Int.Input("feature_block", default=d.feature_block, min=0, max=3,
                             tooltip="Decoder stage up_blocks[i] whose features are matched."),
            ],
            outputs=[EditType.Output(display_name="edit")],
        )

    @classmethod
    def validate_inputs(cls, mode, eta_mode, learning_rate, mask_weight, fallback_radius) -> bool | str:
        return cls.refusal(mode=mode, eta_mode=eta_mode, learning_rate=learning_rate, mask_weight=mask_weight,
                           fallback_radius=fallback_radius)

    @classmethod
    @checked
    def execute(cls, model, inversion, drag, mode, eta_mode, pbsi_timesteps, iterations, learning_rate, mask_weight,
                fallback_radius, feature_block, conditioning=None) -> io.NodeOutput:
        settings = replace(DRAGNEXT_MODES[mode], eta_mode=eta_mode, pbsi_timesteps=pbsi_timesteps, iterations=iterations,
                           learning_rate=learning_rate, mask_weight=mask_weight, fallback_radius=fallback_radius,
                           feature_block=feature_block)
        return run_drag(dragnext.optimise, settings, model, conditioning, inversion, drag)


DRAG_NODES = [DragKitDragDiffusion, DragKitGoodDrag, DragKitEasyDrag, DragKitAdaptiveDrag, DragKitDragNeXt]
