"""Heads: each takes the encoder's tokens and returns raw tensors (decoding lives in postprocess)."""
