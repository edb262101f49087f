"""The CLIP model: loading, export to ONNX, and encoding pictures and text."""
