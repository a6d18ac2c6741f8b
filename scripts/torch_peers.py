"""The engine's composite models written with torch.nn modules, parameter names and order as the
engine's (so `load_state_dict` copies weights across), for the end-to-end tests and the benchmarks.
Nothing here is used by the engine itself."""


def torch_gpt(torch, vocab_size, block_size, n_layer, n_head, n_embd, dropout=0.0, activation="gelu"):
    """layers.gpt.GPT in torch.nn (float32; `.double()` for float64): token + position embeddings,
    pre-LN causal blocks (TransformerEncoderLayer, norm_first), final LayerNorm, head tied to wte."""
    nn = torch.nn

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList([
                nn.TransformerEncoderLayer(n_embd, n_head, 4 * n_embd, dropout, activation=activation,
                                           batch_first=True, norm_first=True) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight                     # tied

        def forward(self, idx):
            T = idx.shape[1]
            x = self.drop(self.wte(idx) + self.wpe(torch.arange(T)))
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)     # True above the diagonal
            for block in self.blocks:
                x = block(x, src_mask=mask, is_causal=True)
            return self.lm_head(self.ln_f(x))
    return TorchGPT()
