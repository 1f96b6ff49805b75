"""DragKit's algorithms in pure PyTorch / NumPy; nothing here imports ComfyUI (tests/unit/test_layout.py).

The Denoiser protocol (`denoiser.py`) is all the methods see of a model; `methods/` holds one module
per method with its settings, `optimise` and pipeline recipe; `families.py` the per-family layers.
"""
