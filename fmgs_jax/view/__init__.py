"""Browser viewer of a trained avatar (`--mode=view`): viser's client camera -> our camera (camera.py),
the render callback (render_fn.py) and the viser app (server.py; needs the `view` extra)."""
