"""model (lecture math): the hand-written networks (BERT, GPT-Neo), dropout and half precision, the sampler, LoRA, the n-gram judge, and their strict loaders."""
