"""The model registry: one YAML per shipped variant (`edgepose-n.yaml` -> `--config edgepose-n`).

Package data, read with importlib.resources by `edgepose.nn.config`, so the registry works after a
non-editable `pip install`. No code here: this package only holds the files.
"""
