"""The triage model: synthetic cohort, training, LiteRT conversion, evaluation, model card.

Only `train.py` and `convert.py` need tensorflow (the `[train]` extra, `make train`); everything
else runs with numpy and LiteRT. The committed artifacts live in `artifacts/<version>/`.
"""
