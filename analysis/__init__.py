"""Analysis of networks built with the engine: linear regions, signal propagation, gradient traces, t-SNE, theory exercises."""
