"""tokenizer_bridge: load the two tokenizers and translate GPT-Neo tokens into BERT tokens (B6, B8, B16)."""
