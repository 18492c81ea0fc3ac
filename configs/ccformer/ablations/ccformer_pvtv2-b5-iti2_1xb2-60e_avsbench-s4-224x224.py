# Ablation (Table VIII): 2 ITI layers after each ICI layer.
_base_ = ['../ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py']
model = dict(decode_head=dict(decoder=dict(num_iti_layers=2)))
