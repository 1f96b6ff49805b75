"""DragKit's ComfyUI nodes (V3 schema, comfy_api v0_0_2): thin adapters over core/."""

from comfy_api.v0_0_2 import ComfyExtension, io

from .auto_mask import DragKitAutoMask
from .drag import DRAG_NODES
from .editor import DragKitEditor
from .inversion import DragKitDDIMInvert
from .lora import DragKitLoRAFinetune
from .metrics import DragKitBenchmarkSample, DragKitMetrics
from .metrics import register_folder as register_lpips_folder
from .points import POINT_NODES
from .sam2_loader import DragKitSAM2Loader, register_folder
from .sampler import SAMPLER_NODES


class DragKitExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        register_folder()  # models/sam2, before the loader lists it
        register_lpips_folder()  # models/lpips, the Metrics node's LPIPS weights
        return [
            DragKitEditor,
            *POINT_NODES,
            DragKitSAM2Loader,
            DragKitAutoMask,
            DragKitLoRAFinetune,
            DragKitDDIMInvert,
            *DRAG_NODES,
            *SAMPLER_NODES,
            DragKitBenchmarkSample,
            DragKitMetrics,
        ]
