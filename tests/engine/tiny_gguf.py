"""Tiny GGUF files written with gguf.GGUFWriter (llama.cpp's own writer): a header like a real model's
(architecture, sizes, file type, a tokenizer's string arrays) over a few small tensors."""

import gguf
import numpy as np

TOKENS = ["<s>", "</s>", "a", "b", "ab", "Ġthe", "Ġcat", "ĠПривет", "你好", "🙂"]
MERGES = ["a b", "Ġ t", "Ġt he"]


def write_tiny_gguf(
    path,
    architecture="llama",
    file_type=gguf.LlamaFileType.ALL_F32,
    tensor_type=gguf.GGMLQuantizationType.F32,
    n_layer=2,
    big_endian=False,
    with_file_type=True,
):
    """A 2-block model's header and tensors, 32 wide; returns the number of parameters written."""
    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(path, architecture, endianess=endian)
    writer.add_block_count(n_layer)
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(10000.0)
    if with_file_type:
        writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(TOKENS)
    writer.add_token_types([1] * len(TOKENS))
    writer.add_token_merges(MERGES)
    writer.add_array("tfund.test.floats", [0.5, 1.5, 2.5])
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (len(TOKENS), 32), "output_norm.weight": (32,)}
    for block in range(n_layer):
        shapes |= {f"blk.{block}.attn_q.weight": (32, 32), f"blk.{block}.attn_k.weight": (16, 32), f"blk.{block}.attn_norm.weight": (32,)}
    for name, shape in shapes.items():
        data = rng.standard_normal(shape).astype(np.float32)
        if len(shape) == 2 and tensor_type != gguf.GGMLQuantizationType.F32:  # norms stay F32, as llama.cpp writes them
            writer.add_tensor(name, gguf.quants.quantize(data, tensor_type), raw_dtype=tensor_type)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sum(int(np.prod(shape)) for shape in shapes.values())
