"""The receptive-field lab: what RNNs, CNNs and self-attention can see, measured on the same input."""
