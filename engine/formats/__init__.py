"""Model file formats read without torch or transformers: each turns a file into what a transformers
checkpoint directory holds (a config dict, float32 tensors under Hugging Face names, a tokenizer.json)."""
