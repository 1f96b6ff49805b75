"""What DragKit needs of ComfyUI is present in the ComfyUI under test (nodes/host/symbols.py)."""

from harness.comfy_inprocess import comfyui_path, import_comfy


def comfyui_version() -> str:
    text = (comfyui_path() / "comfyui_version.py").read_text()
    return text.split("__version__", 1)[1].split('"')[1]


def test_every_comfyui_name_dragkit_uses_is_there():
    import_comfy()
    from dragkit.nodes.host.symbols import missing_symbols

    missing = missing_symbols()
    assert not missing, f"ComfyUI {comfyui_version()} lacks what DragKit uses: {', '.join(missing)}"


def test_a_missing_name_is_named():
    import_comfy()
    from dragkit.nodes.host.symbols import missing_symbols

    missing = missing_symbols({"comfy.utils": ("ProgressBar", "NoSuchHelper"), "comfy.no_such_module": ("thing",),
                               "comfy.model_patcher": ("ModelPatcher.no_such_method",)})
    assert missing == ["comfy.utils.NoSuchHelper", "comfy.no_such_module.thing", "comfy.model_patcher.ModelPatcher.no_such_method"]
