"""model: the two hand-written networks (BERT, GPT-Neo) and their strict loaders."""
