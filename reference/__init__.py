"""Reference implementations: the oracle the hidden tests compare students against."""
