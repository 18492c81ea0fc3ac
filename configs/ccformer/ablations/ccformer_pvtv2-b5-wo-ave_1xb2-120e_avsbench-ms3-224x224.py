# Ablation (Table IV): without AVE (audio-guided vision enhancement) in the EIM.
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(neck=dict(use_ave=False))
