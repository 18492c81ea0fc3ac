# Ablation (Table IV): without the EIM (projections only).
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(neck=dict(use_eim=False))
