# Ablation: BCL in one direction only (the enhanced-audio query against the original-audio keys) instead of the sum
# of both directions; what the paper configs did before they followed the authors' code (docs/design.md,
# "Fidelity").
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(bcl_loss=dict(directions='query_to_key'))
