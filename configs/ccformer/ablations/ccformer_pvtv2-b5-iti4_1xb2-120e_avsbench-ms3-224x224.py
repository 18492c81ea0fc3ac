# Ablation (Table VIII): 4 ITI layers after each ICI layer.
_base_ = ['../ccformer_pvtv2-b5_1xb2-120e_avsbench-ms3-224x224.py']
model = dict(decode_head=dict(decoder=dict(num_iti_layers=4)))
