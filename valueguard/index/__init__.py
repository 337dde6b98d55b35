"""The index layer: the FAISS store of reference embeddings (store.py) and its manifest format (manifest.py).
The read-out that turns neighbours into values is one layer up, in valueguard/estimation/."""
