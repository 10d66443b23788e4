"""Training and evaluation of the spam classifier on labelled corpora."""
