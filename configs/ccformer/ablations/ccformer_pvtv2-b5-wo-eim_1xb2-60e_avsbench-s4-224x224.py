# Ablation (Table IV): without the EIM (projections only).
_base_ = ['../ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py']
model = dict(neck=dict(use_eim=False))
