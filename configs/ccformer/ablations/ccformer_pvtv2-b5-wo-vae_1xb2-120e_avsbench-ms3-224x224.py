# Ablation (Table IV): without VAE (vision-guided audio enhancement) in the EIM.
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(neck=dict(use_vae=False))
