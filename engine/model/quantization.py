"""A model's weights rounded the way llama.cpp stores them, then read back as float32: what quantization costs.

    net_q, report = quantized(net, "q4_0")    # a new NumpyLM; `net` is left as it was

The rounding is the `gguf` package's own (`gguf.quants.quantize`, then `dequantize`): the same blocks of 32
numbers along a matrix's input dimension, one scale per block (and a minimum for the _1 types), as llama.cpp's
file types of those names. Which tensors, as llama.cpp's quantizer chooses them for these types:
- every matrix inside the blocks (q, k and v, the attention output, the MLP's up, gate and down) at the type;
- the unembedding ("output") at Q8_0, higher precision, as llama.cpp keeps it (it uses Q6_K when the rows are
  a multiple of 256, a type the gguf package cannot write; Q8_0 otherwise); a tied model's token embedding *is*
  its unembedding, so it is Q8_0 too; an untied model's token embedding gets the type;
- norms, biases and a learned position table stay float32 (one-dimensional, or, for positions, never
  quantized by llama.cpp);
- a matrix whose input dimension is not a multiple of 32 stays float32 (the report lists it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.model.transformer import NumpyLM

QUANT_TYPES = ("q8_0", "q5_1", "q5_0", "q4_1", "q4_0")  # what --quantize-b offers: the gguf package writes them all
OUTPUT_TYPE = "q8_0"  # the unembedding's (see the module docstring)
BLOCK = 32  # numbers per block for every type above


@dataclass
class QuantizationReport:
    """What `quantized` did, for the JSON report and the screen."""

    type: str  # "Q4_0"
    source_type: str  # the weights it started from: "F32", or a GGUF's file type ("Q4_1")
    matrices: int = 0  # matrices rounded (the unembedding included)
    kept_f32: list[str] = field(default_factory=list)  # matrices left in float32 (input dimension not a multiple of 32)

    @property
    def note(self) -> str:
        """The phrase "re-quantized from Q4_1" when the source was already quantized; "" from full precision."""
        return "" if self.source_type in ("F32", "F16", "BF16") else f"re-quantized from {self.source_type}"

    def as_dict(self) -> dict:
        return {"type": self.type, "from": self.source_type, "matrices": self.matrices, "kept_f32": self.kept_f32, "note": self.note}


def quant_type_problem(qtype: str, source_type: str, name: str = "the model") -> str | None:
    """Why `qtype` is refused for weights stored as `source_type`, in one sentence, or None."""
    if qtype not in QUANT_TYPES:
        return f"{qtype!r} is not a type offered here ({', '.join(QUANT_TYPES)})"
    if qtype.upper() == source_type.upper():
        return (
            f"{name} is already {source_type.upper()}; re-quantizing {source_type.upper()} to {qtype.upper()} gives back the "
            "same weights (exactly lossless), so there is nothing to compare: pick another type"
        )
    return None


def round_trip(w: np.ndarray, qtype: str) -> np.ndarray:  # [in, out] -> [in, out] float32
    """Quantize a matrix laid [in, out] in blocks along `in` (llama.cpp's rows are [out, in]) and read it back."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    kind = GGMLQuantizationType[qtype.upper()]
    rows = np.ascontiguousarray(w.T, dtype=np.float32)  # [out, in]: llama.cpp's layout, blocks along each row
    return np.ascontiguousarray(dequantize(quantize(rows, kind), kind).reshape(rows.shape).T)  # [in, out]


def quantized(net: NumpyLM, qtype: str, source_type: str = "F32", name: str = "the model") -> tuple[NumpyLM, QuantizationReport]:
    """A copy of `net` whose matrices went through `qtype` (see the module docstring). ValueError (one sentence)
    for a type not offered, or the type the weights are already stored in."""
    if problem := quant_type_problem(qtype, source_type, name):
        raise ValueError(problem)
    report = QuantizationReport(qtype.upper(), source_type.upper())

    def rounded(w: np.ndarray | None, name: str, kind: str = qtype) -> np.ndarray | None:  # [in, out]
        if w is None:
            return None
        if w.shape[0] % BLOCK:
            report.kept_f32.append(name)
            return w
        report.matrices += 1
        return round_trip(w, kind)

    def dense(layer: dict | None, name: str) -> dict | None:
        return None if layer is None else {**layer, "w": rounded(layer["w"], name)}

    p = net.params
    blocks = []
    for i, block in enumerate(p["blocks"]):
        attn, mlp = block["attn"], block["mlp"]
        blocks.append(
            {
                **block,
                "attn": {"qkv": dense(attn["qkv"], f"{i}.attn.qkv"), "o": dense(attn["o"], f"{i}.attn.o")},
                "mlp": {name: dense(mlp[name], f"{i}.mlp.{name}") for name in ("up", "gate", "down")},
            }
        )
    unembed = rounded(p["unembed"], "unembed", OUTPUT_TYPE)  # [d, V]
    if net.arch.tied:
        embed = np.ascontiguousarray(unembed.T)  # [V, d]: the same matrix
    else:
        embed = rounded(p["embed"].T, "embed").T  # [V, d]: its rows (d numbers) are the blocks
        embed = np.ascontiguousarray(embed)
    params = {**p, "embed": embed, "unembed": unembed, "blocks": blocks}
    return NumpyLM(net.arch, params), report
