# Ablation (Table IV): without the ITI layers (3 ICI layers only).
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(decode_head=dict(decoder=dict(num_iti_layers=0)))
