# Ablation (Table IV): without bi-modal contrastive learning.
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(use_bcl=False)
